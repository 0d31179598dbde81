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
foreach(case nofile_client nofile_server memfd_client_eperm memfd_client_enosys
        memfd_server_eperm memfd_server_enosys registry close_early many)
  add_test(NAME exhaust_${case} COMMAND exhaust --case ${case})
  set_tests_properties(exhaust_${case} PROPERTIES TIMEOUT 60)
endforeach()
usmc_test(load)
add_test(NAME load_60s COMMAND load --seconds 60 --clients 4 --conns 16)
set_tests_properties(load_60s PROPERTIES TIMEOUT 240)
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
