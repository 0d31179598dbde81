# usmc-run: an ordinary TCP program, taken over with LD_PRELOAD.

# Built as any program is, without usmc, with the checked libc calls.
add_executable(preload_echo preload_echo.c)
target_compile_options(preload_echo PRIVATE -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=2)

# Statically linked: LD_PRELOAD cannot reach it, so it stays plain TCP.
# Sanitizer runtimes do not link statically, and it needs none.
add_executable(preload_echo_static preload_echo.c)
target_compile_options(preload_echo_static PRIVATE -fno-sanitize=all)
target_link_options(preload_echo_static PRIVATE -static -fno-sanitize=all)

# A sanitizer build instruments the preload library too.  clang links its
# sanitizer runtime into each program, where the preloaded library finds
# it; gcc's runtime is a shared library that must be loaded before every
# other one, ahead of the preload, which LD_PRELOAD order cannot give.
set(USMC_PRELOAD_SKIP "")
if(USMC_SANITIZE AND NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  set(USMC_PRELOAD_SKIP "gcc's shared sanitizer runtime must load before libusmc-preload.so; build with clang to run this test under sanitizers")
endif()

set(PRELOAD_RUN sh ${CMAKE_CURRENT_SOURCE_DIR}/preload_run.sh
    --run $<TARGET_FILE:usmc-run> --echo $<TARGET_FILE:preload_echo>
    --echo-static $<TARGET_FILE:preload_echo_static>)

function(preload_test name)
  add_test(NAME preload_${name} COMMAND ${PRELOAD_RUN} ${ARGN})
  set_tests_properties(preload_${name} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 60
                       ENVIRONMENT "USMC_PRELOAD_SKIP=${USMC_PRELOAD_SKIP}")
endfunction()

set(MiB64 67108864)
# Both ends under usmc-run: shared memory, with every server loop.
foreach(loop blocking poll epoll epoll-et select)
  preload_test(shm_${loop} --server usmc --client usmc --loop ${loop} --size ${MiB64} --lo shm)
endforeach()
preload_test(shm_ipv6 --server usmc --client usmc --family 6 --loop epoll --size 4194304 --lo shm)
# One end under usmc-run, either way round, and neither: TCP.
preload_test(fallback_client --server plain --client usmc --loop poll --size ${MiB64} --lo tcp)
preload_test(fallback_server --server usmc --client plain --loop epoll-et --size ${MiB64} --lo tcp)
preload_test(tcp --server plain --client plain --loop blocking --size ${MiB64} --lo tcp)
# A static program ignores the preload and meets its usmc peer over TCP.
preload_test(static_server --server static --client usmc --loop epoll --size 16777216 --lo tcp)
preload_test(static_client --server usmc --client static --loop poll --size 16777216 --lo tcp)

add_test(NAME preload_cli COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/preload_cli.sh
         $<TARGET_FILE:usmc-run> $<TARGET_FILE:preload_echo> $<TARGET_FILE:usmc-preload>)
set_tests_properties(preload_cli PROPERTIES
                     ENVIRONMENT "USMC_PRELOAD_SKIP=${USMC_PRELOAD_SKIP}")

# recvmmsg/sendmmsg, splice both ways, epoll_pwait2: shared memory under
# usmc-run, TCP without it, bytes checked either way.
add_executable(preload_calls preload_calls.c)
if(NOT USMC_PRELOAD_SKIP)
  add_test(NAME preload_calls_shm COMMAND $<TARGET_FILE:usmc-run> $<TARGET_FILE:preload_calls>
           --expect shm)
endif()
add_test(NAME preload_calls_tcp COMMAND preload_calls --expect tcp)
