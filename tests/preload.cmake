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

# A listener given at exec (systemd socket activation, inetd): made a usmc
# listener at the first accept of the program that did not make it.
add_executable(listen_adopt listen_adopt.c)
foreach(loop blocking poll)
  add_test(NAME preload_listen_adopt_${loop} COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/listen_adopt.sh
           $<TARGET_FILE:usmc-run> $<TARGET_FILE:listen_adopt> ${loop})
  set_tests_properties(preload_listen_adopt_${loop} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 60
                       LABELS unit ENVIRONMENT "USMC_PRELOAD_SKIP=${USMC_PRELOAD_SKIP}")
endforeach()

# nginx's binary upgrade: a listener handed to a new image by exec.
add_executable(listen_exec listen_exec.c)
add_test(NAME preload_listen_exec COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/listen_exec.sh
         $<TARGET_FILE:usmc-run> $<TARGET_FILE:listen_exec> $<TARGET_FILE:listen_adopt>)
set_tests_properties(preload_listen_exec PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 60
                     LABELS unit ENVIRONMENT "USMC_PRELOAD_SKIP=${USMC_PRELOAD_SKIP}")

add_test(NAME preload_cli COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/preload_cli.sh
         $<TARGET_FILE:usmc-run> $<TARGET_FILE:preload_echo> $<TARGET_SONAME_FILE:usmc-preload>
         ${USMC_PRELOAD_MAP} "$<TARGET_OBJECTS:usmc-preload>")
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

# A program that runs out of descriptors, then execs with a connection in
# shared memory: socket() gets usmc's segment descriptors, the exec EMFILE.
add_executable(preload_exec_emfile preload_exec_emfile.c)
if(NOT USMC_PRELOAD_SKIP)
  add_test(NAME preload_exec_emfile COMMAND $<TARGET_FILE:usmc-run>
           $<TARGET_FILE:preload_exec_emfile>)
  set_tests_properties(preload_exec_emfile PROPERTIES LABELS security TIMEOUT 60)
endif()

# sshd's pre-auth child: a seccomp filter installed with prctl() after the
# socket's first use, a write that finds its ring full.
add_executable(preload_seccomp preload_seccomp.c)
if(NOT USMC_PRELOAD_SKIP)
  add_test(NAME preload_seccomp COMMAND $<TARGET_FILE:usmc-run> $<TARGET_FILE:preload_seccomp>)
  set_tests_properties(preload_seccomp PROPERTIES LABELS security TIMEOUT 60)
endif()

# A program of Linux's AF_SMC: shared memory under usmc-run, the kernel's
# AF_SMC (or EAFNOSUPPORT) without it.
add_executable(preload_af_smc preload_af_smc.c)
if(NOT USMC_PRELOAD_SKIP)
  add_test(NAME preload_af_smc_shm COMMAND $<TARGET_FILE:usmc-run>
           $<TARGET_FILE:preload_af_smc> --expect shm)
  set_tests_properties(preload_af_smc_shm PROPERTIES LABELS unit)
endif()
add_test(NAME preload_af_smc_kernel COMMAND preload_af_smc --expect kernel)
set_tests_properties(preload_af_smc_kernel PROPERTIES LABELS unit)

# A stream glibc made on a descriptor before dup2 put a connection there:
# TCP from its start if not used yet, else the stream refuses (EBADF).
add_executable(preload_stdio_dup2 preload_stdio_dup2.c)
if(NOT USMC_PRELOAD_SKIP)
  add_test(NAME preload_stdio_dup2_shm COMMAND $<TARGET_FILE:usmc-run>
           $<TARGET_FILE:preload_stdio_dup2> --expect shm)
  set_tests_properties(preload_stdio_dup2_shm PROPERTIES LABELS unit TIMEOUT 60)
endif()
add_test(NAME preload_stdio_dup2_tcp COMMAND preload_stdio_dup2 --expect tcp)
set_tests_properties(preload_stdio_dup2_tcp PROPERTIES LABELS unit TIMEOUT 60)

# A program that sends and receives through io_uring (liburing): plain TCP
# under usmc-run, its bytes checked.  Built where liburing is installed.
find_path(USMC_LIBURING_INCLUDE liburing.h)
find_library(USMC_LIBURING uring)
if(USMC_LIBURING_INCLUDE AND USMC_LIBURING)
  add_executable(preload_io_uring preload_io_uring.c)
  target_include_directories(preload_io_uring PRIVATE ${USMC_LIBURING_INCLUDE})
  target_link_libraries(preload_io_uring PRIVATE ${USMC_LIBURING})
  if(NOT USMC_PRELOAD_SKIP)
    add_test(NAME preload_io_uring COMMAND $<TARGET_FILE:usmc-run> $<TARGET_FILE:preload_io_uring>)
    add_test(NAME preload_io_uring_after_accept
             COMMAND $<TARGET_FILE:usmc-run> $<TARGET_FILE:preload_io_uring> --ring-after-accept)
    add_test(NAME preload_io_uring_after_use
             COMMAND $<TARGET_FILE:usmc-run> $<TARGET_FILE:preload_io_uring> --ring-after-use)
    set_tests_properties(preload_io_uring preload_io_uring_after_accept preload_io_uring_after_use
                         PROPERTIES LABELS unit TIMEOUT 60)
    # The warning that says why a ring on such a connection would hang.
    set_tests_properties(preload_io_uring_after_use PROPERTIES ENVIRONMENT "USMC_LOG=stderr"
      PASS_REGULAR_EXPRESSION "io_uring set up with 1 connection in shared memory.*server: request checked")
  endif()
endif()

# The server's answer at the accepted connection's first use: a connection
# handed on unused, one its client withdraws, one closed unused.
add_executable(preload_first_use preload_first_use.c)
target_link_libraries(preload_first_use PRIVATE Threads::Threads)
add_test(NAME preload_first_use COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/preload_first_use.sh
         $<TARGET_FILE:usmc-run> $<TARGET_FILE:usmc-stat> $<TARGET_FILE:preload_first_use>)
set_tests_properties(preload_first_use PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120 LABELS unit)

# No object of the library calls an interposed name but through usmc_sys.
add_test(NAME interposed_names
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/interposed_names.sh
                 $<TARGET_FILE:usmc-preload> "$<TARGET_OBJECTS:usmc_obj>")
set_tests_properties(interposed_names PROPERTIES LABELS unit)

# A shared-memory connection inherited through exec by a static program:
# ended with an error before the exec, never doorbell bytes as data.
add_executable(exec_static_cat exec_static_cat.c)
target_compile_options(exec_static_cat PRIVATE -fno-sanitize=all)
target_link_options(exec_static_cat PRIVATE -static -fno-sanitize=all)
add_test(NAME preload_exec_static
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/exec_static.sh ${PROJECT_BINARY_DIR}
                 $<TARGET_FILE:exec_static_cat>)
# Python is Debian's: an instrumented preload needs a sanitizer runtime it lacks.
set(USMC_EXEC_STATIC_SKIP "${USMC_PRELOAD_SKIP}")
if(USMC_SANITIZE)
  set(USMC_EXEC_STATIC_SKIP "an instrumented libusmc-preload.so needs a sanitizer runtime python3 lacks")
endif()
set_tests_properties(preload_exec_static PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120 LABELS unit
                     ENVIRONMENT "USMC_PRELOAD_SKIP=${USMC_EXEC_STATIC_SKIP}")

# The same, through an exec of a dynamic program set-user-ID to nobody:
# the loader ignores usmc-run's preload there.  Needs root (chown).
add_executable(exec_secure_cat exec_static_cat.c)
target_compile_options(exec_secure_cat PRIVATE -fno-sanitize=all)
target_link_options(exec_secure_cat PRIVATE -fno-sanitize=all)
add_test(NAME preload_exec_setuid
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/exec_setuid.sh ${PROJECT_BINARY_DIR}
                 $<TARGET_FILE:exec_secure_cat>)
set_tests_properties(preload_exec_setuid PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120
                     LABELS "unit;needs-root"
                     ENVIRONMENT "USMC_PRELOAD_SKIP=${USMC_EXEC_STATIC_SKIP}")

# An exec the kernel runs in secure-execution mode (real and effective ids
# differ, a set-user-ID file): the loader ignores usmc-run's LD_PRELOAD,
# usmc counts it (exec_secure), and a listener handed through it is plain
# TCP to a usmc client at once, its bytes intact.  Needs root.
add_executable(exec_secure exec_secure.c)
add_test(NAME preload_exec_secure
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/exec_secure.sh $<TARGET_FILE:usmc-run>
                 $<TARGET_FILE:usmc-stat> $<TARGET_FILE:exec_secure> $<TARGET_FILE:listen_adopt>)
set_tests_properties(preload_exec_secure PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 60
                     LABELS "unit;needs-root"
                     ENVIRONMENT "USMC_PRELOAD_SKIP=${USMC_PRELOAD_SKIP}")
