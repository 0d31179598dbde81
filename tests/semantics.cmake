# TCP semantics: each case runs as plain TCP, as usmc falling back (either
# end plain) and as usmc through shared memory, over IPv4 and IPv6.
add_executable(semantics semantics.c sem_io.c sem_close.c sem_poll.c sem_opts.c)
target_link_libraries(semantics PRIVATE usmc_harness)
target_include_directories(semantics PRIVATE ${USMC_INCLUDE_DIRS})

set(USMC_SEM_CASES
  nonblock dontwait partial_read readv_writev sendmsg_recvmsg peek waitall waitall_eof
  shutdown_wr epipe sigpipe sigpipe_shut close_unread linger0 linger0_after_data reset_write
  close_unread_by_client linger0_by_client
  poll poll_reset epoll epoll_reset epoll_et
  fionread bufsize_1k bufsize_40k bufsize_16m so_error so_error_reset ss)
# SO_PEEK_OFF belongs to the kernel socket: only where it carries the data.
set(USMC_SEM_TCP_ONLY_CASES peek_off)

foreach(fam 4 6)
  foreach(way tcp fallback fallback-server smc)
    set(cases ${USMC_SEM_CASES})
    if(NOT way STREQUAL "smc")
      list(APPEND cases ${USMC_SEM_TCP_ONLY_CASES})
    endif()
    foreach(case ${cases})
      add_test(NAME semantics_${case}_${way}_ipv${fam}
               COMMAND semantics --case ${case} --way ${way} --family ${fam})
      set_tests_properties(semantics_${case}_${way}_ipv${fam} PROPERTIES TIMEOUT 60)
      if(case STREQUAL "peek")
        # Counters of its own, to check them exactly (usmc-stat -s counts per user).
        set(dir ${CMAKE_CURRENT_BINARY_DIR}/registry-peek-${way}-ipv${fam})
        file(MAKE_DIRECTORY ${dir})
        set_tests_properties(semantics_${case}_${way}_ipv${fam} PROPERTIES
                             ENVIRONMENT USMC_REGISTRY_DIR=${dir})
      endif()
    endforeach()
  endforeach()
endforeach()
