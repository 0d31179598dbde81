# Robustness: peers that crash, stop or leave; exhausted resources; load.
usmc_test(crash_rounds)
# The random mix: 200 rounds from a seed of the clock, which it prints first
# (replay with --seed).  About 3 s in the release build, 5 to 8 s under ASan.
add_test(NAME crash_mix COMMAND crash_rounds --rounds 200)
set_tests_properties(crash_mix PROPERTIES TIMEOUT 180)
# Each of these asserts a TCP behaviour on its own: a peer exiting with data
# unread, and a forked child closing its copy of a connection.
add_test(NAME crash_exit_unread COMMAND crash_rounds --rounds 12 --case exit_unread)
add_test(NAME crash_fork_close COMMAND crash_rounds --rounds 5 --case fork_close)
set_tests_properties(crash_exit_unread crash_fork_close PROPERTIES TIMEOUT 60)
usmc_test(exhaust)
target_sources(exhaust PRIVATE exhaust_pair.c)
foreach(case nofile_client nofile_server memfd_client_eperm memfd_client_enosys
        memfd_server_eperm memfd_server_enosys registry close_early close_orphan many)
  add_test(NAME exhaust_${case} COMMAND exhaust --case ${case})
  set_tests_properties(exhaust_${case} PROPERTIES TIMEOUT 60)
endforeach()
add_test(NAME exhaust_nofile_files COMMAND exhaust --case nofile_files)
set_tests_properties(exhaust_nofile_files PROPERTIES TIMEOUT 60 LABELS security)
usmc_test(load)
add_test(NAME load_60s COMMAND load --seconds 60 --clients 4 --conns 16)
set_tests_properties(load_60s PROPERTIES TIMEOUT 240)
# Limits of the host: a full tmpfs under the registry (root), descriptors, a memory cgroup.
usmc_test(limits)
target_sources(limits PRIVATE exhaust_pair.c)
add_test(NAME limits_shm_full COMMAND limits --case shm_full)
set_tests_properties(limits_shm_full PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77
                     LABELS "needs-root;security")
# Connections at a descriptor limit near their count: TCP fits, and so must usmc.
add_test(NAME limits_nofile_1000_at_1100 COMMAND limits --case nofile 1000 1100)
add_test(NAME limits_nofile_900_at_1024 COMMAND limits --case nofile 900 1024)
add_test(NAME limits_nofile_1000_at_1060 COMMAND limits --case nofile 1000 1060)
add_test(NAME limits_nofile_1000_at_1020 COMMAND limits --case nofile 1000 1020)
set_tests_properties(limits_nofile_1000_at_1100 limits_nofile_900_at_1024
                     limits_nofile_1000_at_1060 limits_nofile_1000_at_1020 PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77
                     LABELS security)
# The same accepted by a prefork worker: its looks through the backlog it
# shares meet the limit too.
add_test(NAME limits_nofile_prefork_200_at_400 COMMAND limits --case nofile_prefork 200 400)
set_tests_properties(limits_nofile_prefork_200_at_400 PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77
                     LABELS security)
add_test(NAME limits_full_table COMMAND limits --case full_table)
set_tests_properties(limits_full_table PROPERTIES TIMEOUT 60 LABELS security)
add_test(NAME limits_memcg COMMAND limits --case memcg)
add_test(NAME limits_memcg_later COMMAND limits --case memcg_later)
set_tests_properties(limits_memcg limits_memcg_later PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77
                     LABELS "needs-root;security")
# A server stalled between taking a Proposal and answering it: both ends
# agree on the mode, or the connection fails on both.
usmc_test(hs_stall)
foreach(case short long dropped)
  add_test(NAME hs_stall_${case} COMMAND hs_stall --case ${case})
  set_tests_properties(hs_stall_${case} PROPERTIES TIMEOUT 60 LABELS security)
endforeach()
# TCP_DEFER_ACCEPT on a usmc listener: no wait for the option's timeout.
usmc_test(hs_defer)
add_test(NAME hs_defer COMMAND hs_defer)
set_tests_properties(hs_defer PROPERTIES TIMEOUT 120 LABELS programs)
