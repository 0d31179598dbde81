# Real programs from Debian's packages under usmc-run (tests/programs/matrix.sh),
# in their packages' configurations where they have one, each three ways:
# both ends under usmc-run (smc), a usmc-run server with plain clients
# (server-only), a plain server with usmc-run clients (client-only), and
# timed against both ends plain.  Missing packages are installed when
# possible; a program whose package cannot be installed is reported as
# skipped, and a group none of whose programs can be installed fails.  One entry per
# group of programs, each well under its TIMEOUT on two busy cores.
# Debian's programs carry no sanitizer runtime for an instrumented preload
# library, so a sanitizer build skips the matrix.
find_program(USMC_BASH bash)
if(USMC_BASH)
  set(USMC_MATRIX_SKIP "")
  if(USMC_SANITIZE)
    set(USMC_MATRIX_SKIP "an instrumented libusmc-preload.so needs a sanitizer runtime the packaged programs lack")
  endif()
  set(USMC_MATRIX_GROUPS
      "programs_matrix=python-http nginx-curl nginx-wrk redis-cli redis-benchmark memcached iperf3 openssl sockperf"
      "programs_matrix_daemons=nginx-shipped sshd apache2-event apache2-prefork postgresql lighttpd rsync dnsmasq"
      "programs_matrix_relays=lemp gunicorn haproxy python-reuseport socat python-asyncio node node-cluster java redis-replication"
      "programs_matrix_services=stunnel squid varnish mariadb socat-single git-daemon")
  foreach(group IN LISTS USMC_MATRIX_GROUPS)
    string(REPLACE "=" ";" group "${group}")
    list(GET group 0 name)
    list(GET group 1 progs)
    separate_arguments(progs UNIX_COMMAND "${progs}")
    add_test(NAME ${name}
             COMMAND ${USMC_BASH} ${CMAKE_CURRENT_SOURCE_DIR}/programs/matrix.sh ${PROJECT_BINARY_DIR} ${progs})
    set_tests_properties(${name} PROPERTIES TIMEOUT 900 RUN_SERIAL TRUE SKIP_RETURN_CODE 77
                         LABELS programs ENVIRONMENT "USMC_MATRIX_SKIP=${USMC_MATRIX_SKIP}")
  endforeach()
endif()

# nginx in Debian's shipped configuration (master and workers, sendfile on,
# the default listen) under usmc-run, served to plain and usmc clients.
if(USMC_BASH)
  add_test(NAME programs_nginx_shipped
           COMMAND ${USMC_BASH} ${CMAKE_CURRENT_SOURCE_DIR}/programs/nginx_shipped.sh ${PROJECT_BINARY_DIR})
  set_tests_properties(programs_nginx_shipped PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77
                       LABELS programs ENVIRONMENT "USMC_MATRIX_SKIP=${USMC_MATRIX_SKIP}")
endif()

# nginx's binary upgrade (USR2, then QUIT to the old master) under load:
# no GET fails, nothing falls back, shared memory after it.
if(USMC_BASH)
  add_test(NAME programs_nginx_upgrade
           COMMAND ${USMC_BASH} ${CMAKE_CURRENT_SOURCE_DIR}/programs/nginx_upgrade.sh ${PROJECT_BINARY_DIR})
  set_tests_properties(programs_nginx_upgrade PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77
                       LABELS programs ENVIRONMENT "USMC_MATRIX_SKIP=${USMC_MATRIX_SKIP}")
endif()

# git daemon and git clone over git:// (tests/programs/git_daemon.sh): both
# ends under usmc-run (an exec chain on the daemon's side), and each alone.
if(USMC_BASH)
  add_test(NAME programs_git_daemon
           COMMAND ${USMC_BASH} ${CMAKE_CURRENT_SOURCE_DIR}/programs/git_daemon.sh ${PROJECT_BINARY_DIR})
  set_tests_properties(programs_git_daemon PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77
                       LABELS programs ENVIRONMENT "USMC_MATRIX_SKIP=${USMC_MATRIX_SKIP}")
endif()

# Python's subprocess (vfork + execve) with a shared-memory socket as the
# child's stdin and stdout: cat, sh -c cat (tests/programs/subprocess.sh).
if(USMC_BASH)
  add_test(NAME programs_subprocess
           COMMAND ${USMC_BASH} ${CMAKE_CURRENT_SOURCE_DIR}/programs/subprocess.sh ${PROJECT_BINARY_DIR})
  set_tests_properties(programs_subprocess PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77
                       LABELS programs ENVIRONMENT "USMC_MATRIX_SKIP=${USMC_MATRIX_SKIP}")
endif()
