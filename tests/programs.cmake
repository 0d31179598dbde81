# Real programs from Debian's packages under usmc-run (tests/programs/matrix.sh):
# each pair with both ends under usmc-run (shared memory) and with a plain
# server (fallback).  Missing packages are installed when possible; a
# program whose package cannot be installed is reported as skipped.
# Debian's programs carry no sanitizer runtime for an instrumented preload
# library, so a sanitizer build skips the matrix.
find_program(USMC_BASH bash)
if(USMC_BASH)
  set(USMC_MATRIX_SKIP "")
  if(USMC_SANITIZE)
    set(USMC_MATRIX_SKIP "an instrumented libusmc-preload.so needs a sanitizer runtime the packaged programs lack")
  endif()
  add_test(NAME programs_matrix
           COMMAND ${USMC_BASH} ${CMAKE_CURRENT_SOURCE_DIR}/programs/matrix.sh ${PROJECT_BINARY_DIR})
  set_tests_properties(programs_matrix PROPERTIES TIMEOUT 300 RUN_SERIAL TRUE SKIP_RETURN_CODE 77
                       ENVIRONMENT "USMC_MATRIX_SKIP=${USMC_MATRIX_SKIP}")
endif()

# nginx in Debian's shipped configuration (master and workers, sendfile on,
# the default listen) under usmc-run, served to plain and usmc clients.
if(USMC_BASH)
  add_test(NAME programs_nginx_shipped
           COMMAND ${USMC_BASH} ${CMAKE_CURRENT_SOURCE_DIR}/programs/nginx_shipped.sh ${PROJECT_BINARY_DIR})
  set_tests_properties(programs_nginx_shipped PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77
                       LABELS programs ENVIRONMENT "USMC_MATRIX_SKIP=${USMC_MATRIX_SKIP}")
endif()
