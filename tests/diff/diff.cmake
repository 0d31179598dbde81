# The differential semantics suite (tests/diff/run.sh): plain socket
# programs, each run as kernel TCP and under usmc-run through shared
# memory; the transcripts must be identical.
#
# usmc_diff is an ordinary program: it knows nothing of usmc and links
# nothing of it, so that only usmc-run's preload makes it a usmc program.
add_executable(usmc_diff diff/diff_main.c diff/diff_io.c diff/diff_close.c diff/diff_poll.c
               diff/diff_epoll.c diff/diff_sig.c diff/diff_opts.c diff/diff_exec.c
               diff/diff_exec_state.c
               diff/diff_zcopy.c
               diff/diff_stdio.c
               diff/diff_async.c
               diff/diff_alias.c diff/diff_exec_ways.c diff/diff_edges.c
               diff/diff_threads.c diff/diff_exit.c diff/diff_limits.c
               diff/diff_refused.c diff/diff_storm.c diff/diff_fork_shut.c)
target_link_libraries(usmc_diff PRIVATE Threads::Threads)

# Cases whose transcripts must be the same: each is the test diff_<case>.
set(USMC_DIFF_CASES
  half_close peek waitall nonblock vectored msg msg_trunc iov_invalid sendfile dup threads fd_numbers fd_numbers_many fd_numbers_pending
  files_beside_conns prefork_storm prefork_late_accept
  shutdown_reader shutdown_poller shutdown_epoller shutdown_epoller_et shutdown_writer shutdown_acceptor
  shutdown_child_reader shutdown_child_poller shutdown_child_epoller shutdown_child_epoller_et
  shutdown_child_epoll_writer
  close_reader close_poller close_epoller close_acceptor close_reader_early dup2_reader
  linger_reset close_unread reset_unaccepted so_error_reset epipe sigpipe sigpipe_shut refused nb_connect
  exit_waiting exit_unread exit_full exit_forked killed_rung
  fork_write fork_both fork_early fork_handoff fork_underscore fork_sys_fork fork_sys_clone fork_sys_clone3 fork_clone
  fork_shut_wr fork_shut_rd fork_shut_rdwr fork_child_shut_wr fork_child_shut_rd
  poll_masks select_masks epoll_masks select_peer_close poll_peer_close epoll_peer_close
  select_many listen_poll shut_rd poll_full_before_accept epoll_out_full
  epoll_two_sets epoll_et_in epoll_et_out epoll_et_fresh epoll_oneshot epoll_nested
  epoll_fd_reuse epoll_exclusive epoll_mod_data epoll_set_reuse
  epoll_dup_reuse epoll_vfork_close epoll_refused_reader poll_refused_reader select_refused_reader
  eintr sa_restart sa_restart_unaccepted rcvtimeo rcvtimeo_unaccepted rcvtimeo_answer_late
  rcvlowat
  sockopts short_optlen names ipv6 fionread fionread_fresh
  exec_self exec_raw exec_raw_at exec_inetd exec_spawn exec_cloexec exec_only_cloexec exec_spawn_cloexec exec_fail
  exec_stdio
  exec_twice exec_chain exec_shut_wr exec_spawn_parent exec_shut_rd exec_child_shut exec_spawn_shut exec_vfork_shut exec_rcvtimeo exec_linger
  exec_rcvlowat exec_reconnect
  exec_vfork exec_vfork_sh exec_vfork_parent exec_clone_vm_parent exec_system exec_popen
  stdio_lines stdio_rw stdio_bulk stdio_dprintf stdio_std_fork stdio_std_linebuf
  sendfile_big splice sendfile_from_socket zcopy_plain zcopy_not_tcp fcntl64 aliases
  closefrom raw_syscall raw_syscall_v2 aio aio_in_shm sigio io_uring_plain io_uring_listener
  aliases_waits aliases_fds
  exec_v exec_vp exec_vpe exec_le exec_lp exec_fexecve exec_execveat exec_spawnp
  stdio_io_fdopen stdio_dprintf_chk
  splice_epipe stdio_freopen stdio_freopen64
  oob urgent_mark urgent_passed urgent_inline urgent_inline_listener urgent_twice)

# Cases where usmc differs from kernel TCP, with what differs.  Each is the
# test diff_bug_<case>, which shows the difference in its output and passes
# whether or not it appears (some come and go with timing); it fails only
# if the case itself is broken.  Once usmc is fixed, `tests/diff/run.sh
# BUILD_DIR CASE` passes every time: move the case up into USMC_DIFF_CASES.
set(USMC_DIFF_KNOWN_BUGS)

# As tests/preload.cmake: gcc's shared sanitizer runtime cannot come
# before the preload library, so a gcc sanitizer build skips these.
set(USMC_DIFF_SKIP "")
if(USMC_SANITIZE AND NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  set(USMC_DIFF_SKIP "gcc's shared sanitizer runtime must load before libusmc-preload.so; build with clang to run this test under sanitizers")
endif()

# Cases whose server runs Debian's programs (sh, cat) under the preload:
# an instrumented preload needs a sanitizer runtime those lack.
set(USMC_DIFF_SYSTEM_PROGRAMS exec_vfork_sh exec_system exec_popen)
set(USMC_DIFF_SYSTEM_SKIP "${USMC_DIFF_SKIP}")
if(USMC_SANITIZE)
  set(USMC_DIFF_SYSTEM_SKIP "an instrumented libusmc-preload.so needs a sanitizer runtime sh and cat lack")
endif()

set(USMC_DIFF_RUN sh ${CMAKE_CURRENT_SOURCE_DIR}/diff/run.sh)
foreach(case ${USMC_DIFF_CASES})
  add_test(NAME diff_${case} COMMAND ${USMC_DIFF_RUN} ${PROJECT_BINARY_DIR} ${case})
endforeach()
foreach(case ${USMC_DIFF_KNOWN_BUGS})
  add_test(NAME diff_bug_${case}
           COMMAND ${USMC_DIFF_RUN} --expect-diff ${PROJECT_BINARY_DIR} ${case})
endforeach()
foreach(case ${USMC_DIFF_CASES} ${USMC_DIFF_KNOWN_BUGS})
  set(name diff_${case})
  if(case IN_LIST USMC_DIFF_KNOWN_BUGS)
    set(name diff_bug_${case})
  endif()
  set(skip "${USMC_DIFF_SKIP}")
  if(case IN_LIST USMC_DIFF_SYSTEM_PROGRAMS)
    set(skip "${USMC_DIFF_SYSTEM_SKIP}")
  endif()
  set_tests_properties(${name} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300 LABELS diff
                       ENVIRONMENT "USMC_PRELOAD_SKIP=${skip}")
endforeach()
# Every case of usmc_diff is in one of the two lists: none is dropped silently.
add_test(NAME diff_registered
         COMMAND ${USMC_DIFF_RUN} --registered ${PROJECT_BINARY_DIR}
                 ${USMC_DIFF_CASES} ${USMC_DIFF_KNOWN_BUGS})
