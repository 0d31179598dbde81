# Link groups, crashes, the socket lister and policy.
usmc_test(rings_many)
add_test(NAME rings_many COMMAND rings_many)
set_tests_properties(rings_many PROPERTIES TIMEOUT 120 LABELS unit)
usmc_test(lgr_reuse)
add_test(NAME lgr_reuse_1000 COMMAND lgr_reuse 1000)
usmc_test(answers_unread)
add_test(NAME answers_unread_read COMMAND answers_unread --read)
add_test(NAME answers_unread_poll COMMAND answers_unread --poll)
add_test(NAME answers_unread_burst COMMAND answers_unread --burst)
usmc_test(answers_hangup)
add_test(NAME answers_hangup COMMAND answers_hangup)
usmc_test(lgr_peer_exec)
add_test(NAME lgr_peer_exec COMMAND lgr_peer_exec)
set_tests_properties(lgr_peer_exec PROPERTIES LABELS unit)
usmc_test(accept_order)
target_link_libraries(accept_order PRIVATE pthread)
add_test(NAME accept_order COMMAND accept_order 2000)
set_tests_properties(accept_order PROPERTIES LABELS unit)
usmc_test(kill_peer)
foreach(victim client server server-before-accept client-before-accept client-channel
               client-before-decline client-after-fin-wait2)
  add_test(NAME kill_${victim} COMMAND kill_peer --kill ${victim} --rounds 10)
endforeach()
usmc_test(fork_listener)
add_test(NAME fork_listener COMMAND fork_listener)
add_test(NAME fork_listener_plain_worker COMMAND fork_listener --plain-worker)
# A poll that never looks at an unanswered Proposal hangs: this limit fails it.
set_tests_properties(fork_listener_plain_worker PROPERTIES TIMEOUT 60)
add_test(NAME fork_listener_early_clients COMMAND fork_listener --early-clients)
add_test(NAME fork_listener_early_pair COMMAND fork_listener --early-pair)
add_test(NAME fork_listener_plain_first COMMAND fork_listener --plain-first)
usmc_test(queue_nowhere)
add_test(NAME queue_nowhere COMMAND queue_nowhere)
usmc_test(ack_dropped)
add_test(NAME ack_dropped COMMAND ack_dropped)
# Its nftables table goes even if the test is killed.
add_test(NAME ack_dropped_cleanup
         COMMAND sh -c "nft delete table inet usmc_ack_dropped 2>/dev/null; true")
set_tests_properties(ack_dropped PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 60 LABELS needs-root
                     FIXTURES_REQUIRED ack_dropped_rule)
set_tests_properties(ack_dropped_cleanup PROPERTIES LABELS needs-root
                     FIXTURES_CLEANUP ack_dropped_rule)
add_test(NAME fork_listener_dead_holder COMMAND fork_listener --dead-holder)
add_test(NAME fork_listener_late_orphan COMMAND fork_listener --late-orphan)
add_test(NAME fork_listener_dead_orphan COMMAND fork_listener --dead-orphan)
add_test(NAME fork_listener_killed_orphan COMMAND fork_listener --killed-orphan)
add_test(NAME fork_listener_maker_closes COMMAND fork_listener --maker-closes)
add_test(NAME fork_listener_maker_closes_reuseport COMMAND fork_listener --maker-closes-reuseport)
add_test(NAME fork_listener_maker_closes_chroot COMMAND fork_listener --maker-closes-chroot)
set_tests_properties(fork_listener_maker_closes_chroot PROPERTIES SKIP_RETURN_CODE 77
                     LABELS needs-root)
usmc_test(maker_accepts)
add_test(NAME maker_accepts COMMAND maker_accepts)
set_tests_properties(maker_accepts PROPERTIES LABELS unit)
usmc_test(decline_marker)
add_test(NAME decline_marker COMMAND decline_marker)
set_tests_properties(decline_marker PROPERTIES LABELS unit)
usmc_test(seg_reuse)
add_test(NAME seg_reuse COMMAND seg_reuse)
set_tests_properties(seg_reuse PROPERTIES LABELS unit)
usmc_test(reuseport)
add_test(NAME reuseport COMMAND reuseport)
set_tests_properties(reuseport PROPERTIES TIMEOUT 120 LABELS unit)
# The Accept's doorbell: rung for a client that sleeps in epoll, not for one that watches its channel.
usmc_test(accept_bell)
add_test(NAME accept_bell COMMAND accept_bell)
set_tests_properties(accept_bell PROPERTIES TIMEOUT 120 LABELS unit)
# Nor for a client whose server answered while it was still inside connect().
usmc_test(connect_answered)
add_test(NAME connect_answered COMMAND connect_answered)
set_tests_properties(connect_answered PROPERTIES TIMEOUT 60 LABELS unit)
usmc_test(spin_busy)
add_test(NAME spin_busy COMMAND spin_busy)
set_tests_properties(spin_busy PROPERTIES TIMEOUT 120 LABELS unit)
usmc_test(first_bell)
add_test(NAME first_bell COMMAND first_bell)
set_tests_properties(first_bell PROPERTIES TIMEOUT 120 LABELS unit)

# More members than slots: those without one refuse their clients at once.
add_test(NAME reuseport_crowded COMMAND reuseport 6)
set_tests_properties(reuseport_crowded PROPERTIES TIMEOUT 120 LABELS unit)
# Then two members with a slot die: those without one take their slots.
add_test(NAME reuseport_rejoin COMMAND reuseport 6 rejoin)
set_tests_properties(reuseport_rejoin PROPERTIES TIMEOUT 120 LABELS unit)
usmc_test(stat_listing)
add_test(NAME stat_listing COMMAND stat_listing $<TARGET_FILE:usmc-stat>)
usmc_test(stat_cli)
add_test(NAME stat_cli COMMAND stat_cli $<TARGET_FILE:usmc-stat>)
# Rings of one size, so that the bytes sent wrap one.
set_tests_properties(stat_cli PROPERTIES ENVIRONMENT USMC_BUFSIZE=256k)
usmc_test(policy)
add_test(NAME policy COMMAND policy)
set_tests_properties(policy PROPERTIES LABELS unit)
add_test(NAME policy_check
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/policy_check.sh $<TARGET_FILE:usmc-run>)
set_tests_properties(policy_check PROPERTIES LABELS unit)
# The installed files, used as a user would: by a program built with plain cc,
# which an instrumented library cannot serve, so the release build checks it.
if(NOT USMC_SANITIZE)
  add_test(NAME install_check
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/install_check.sh ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR})
  set_tests_properties(install_check PROPERTIES LABELS unit)
endif()
usmc_test(capture_check)
add_test(NAME capture_check
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/capture_check.sh $<TARGET_FILE:capture_check>)
set_tests_properties(capture_check PROPERTIES LABELS unit)
# Every tool's command line: --help, --version, usage errors (status 2).
set(USMC_CLI_TOOLS $<TARGET_FILE:usmc-run> $<TARGET_FILE:usmc-stat> $<TARGET_FILE:usmc-bench>)
if(TARGET usmc-kernel)
  list(APPEND USMC_CLI_TOOLS $<TARGET_FILE:usmc-kernel>)
endif()
add_test(NAME cli COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cli.sh ${USMC_CLI_TOOLS})
set_tests_properties(cli PROPERTIES LABELS unit)
add_test(NAME completion COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/completion.sh
         ${PROJECT_SOURCE_DIR}/completion/usmc $<TARGET_FILE_DIR:usmc-stat>)
set_tests_properties(completion PROPERTIES LABELS unit SKIP_RETURN_CODE 77)
add_test(NAME run_enable COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/run_enable.sh $<TARGET_FILE:usmc-run>)
set_tests_properties(run_enable PROPERTIES LABELS unit)
usmc_test(reasons)
add_test(NAME reasons COMMAND reasons)
set_tests_properties(reasons PROPERTIES LABELS unit TIMEOUT 60)
usmc_test(dup_fds)
add_test(NAME dup_fds COMMAND dup_fds)
# A child per connection that exits without closing it: its ring's slot serves again.
# Connections handed to a worker with SCM_RIGHTS (a Node.js cluster's primary).
usmc_test(accept_poll)
add_test(NAME accept_poll COMMAND accept_poll)
set_tests_properties(accept_poll PROPERTIES TIMEOUT 60 LABELS unit)
usmc_test(close_orphan)
add_test(NAME close_orphan COMMAND close_orphan)
add_test(NAME close_orphan_late COMMAND close_orphan --late)
add_test(NAME close_orphan_dropped COMMAND close_orphan --dropped)
set_tests_properties(close_orphan close_orphan_late close_orphan_dropped PROPERTIES TIMEOUT 60 LABELS unit)
add_test(NAME close_orphan_late_other_user COMMAND close_orphan --late-other-user)
set_tests_properties(close_orphan_late_other_user PROPERTIES TIMEOUT 60 LABELS needs-root
                     SKIP_RETURN_CODE 77)
usmc_test(pass_conn)
add_test(NAME pass_conn COMMAND pass_conn)
set_tests_properties(pass_conn PROPERTIES TIMEOUT 60 LABELS unit)
usmc_test(peer_end)
add_test(NAME peer_end COMMAND peer_end)
set_tests_properties(peer_end PROPERTIES TIMEOUT 60 LABELS unit)
usmc_test(exit_bell)
add_test(NAME exit_bell COMMAND exit_bell)
set_tests_properties(exit_bell PROPERTIES TIMEOUT 120 LABELS unit)
usmc_test(fork_exit)
add_test(NAME fork_exit COMMAND fork_exit)
set_tests_properties(fork_exit PROPERTIES TIMEOUT 120 LABELS unit)
usmc_test(fork_conn)
foreach(case handoff both_write client_handoff holder_killed killed_holders)
  add_test(NAME fork_conn_${case} COMMAND fork_conn --case ${case})
  set_tests_properties(fork_conn_${case} PROPERTIES TIMEOUT 120)
endforeach()
# A holder killed between counting its bytes and publishing them (ptrace, x86-64).
usmc_test(killed_mid_write)
foreach(case lap_end mid_lap)
  add_test(NAME killed_mid_write_${case} COMMAND killed_mid_write --case ${case})
  set_tests_properties(killed_mid_write_${case} PROPERTIES TIMEOUT 60 LABELS unit SKIP_RETURN_CODE 77)
endforeach()
add_test(NAME fork_conn_close_race COMMAND fork_conn --case close_race --rounds 1000)
set_tests_properties(fork_conn_close_race PROPERTIES TIMEOUT 300 LABELS unit)
# fork() while other threads hold usmc's locks: the child's calls return.
usmc_test(fork_threads)
add_test(NAME fork_threads COMMAND fork_threads --rounds 200)
set_tests_properties(fork_threads PROPERTIES TIMEOUT 120 LABELS unit SKIP_RETURN_CODE 77)
usmc_test(wakeup)
foreach(case data shutdown space)
  foreach(drainer none thread fork)
    add_test(NAME wakeup_${case}_${drainer} COMMAND wakeup --case ${case} --drainer ${drainer})
    # Alone: another test's spinning drainer must not take the waiter's CPU.
    set_tests_properties(wakeup_${case}_${drainer} PROPERTIES TIMEOUT 120 LABELS unit RUN_SERIAL TRUE)
  endforeach()
endforeach()
foreach(case data space)
  add_test(NAME wakeup_${case}_corked COMMAND wakeup --case ${case} --drainer none --corked)
  set_tests_properties(wakeup_${case}_corked PROPERTIES TIMEOUT 120 LABELS unit RUN_SERIAL TRUE)
endforeach()
usmc_test(epoll_handoff)
target_link_libraries(epoll_handoff PRIVATE pthread)
foreach(case space_later space_now data_now)
  add_test(NAME epoll_handoff_${case} COMMAND epoll_handoff --case ${case})
  add_test(NAME epoll_handoff_${case}_busy COMMAND epoll_handoff --case ${case} --busy-set)
  set_tests_properties(epoll_handoff_${case} epoll_handoff_${case}_busy PROPERTIES TIMEOUT 120 LABELS unit)
endforeach()
add_test(NAME wakeup_foreign COMMAND wakeup --case foreign)
set_tests_properties(wakeup_foreign PROPERTIES TIMEOUT 60 LABELS security)
add_test(NAME wakeup_plain_poll COMMAND wakeup --case plain_poll)
set_tests_properties(wakeup_plain_poll PROPERTIES TIMEOUT 60 LABELS unit)
add_test(NAME wakeup_poll_then_plain COMMAND wakeup --case poll_then_plain)
set_tests_properties(wakeup_poll_then_plain PROPERTIES TIMEOUT 60 LABELS unit)
# Between network namespaces, through the rendezvous directory: each topology
# built with ip netns, veth pairs, a bridge and nft (root), the peers as nobody.
usmc_test(netns_peer)
foreach(topo routed bridge dnat dnatport dnatmasq dnatforeign dnatproxy masq prefork inetd reuseport user reuse relisten sidecar
             sidecarearly sidecaruser sidecarbare sidecarout killed)
  add_test(NAME netns_${topo} COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/netns.sh ${topo} $<TARGET_FILE:netns_peer>
           $<TARGET_FILE:usmc-stat>)
  set(labels "needs-root;programs")
  if(topo STREQUAL "user" OR topo STREQUAL "dnatforeign")
    set(labels "needs-root;security")
  endif()
  set_tests_properties(netns_${topo} PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77 LABELS "${labels}")
endforeach()
# Two docker containers from a local debootstrap image (tests/docker_image.sh),
# the rendezvous directory bind-mounted into both, usmc-run inside.  Label
# docker: not in run-tests.sh's passes, as most machines have no docker daemon
# or no such image; it says why it skips (exit 77).
add_test(NAME docker_containers COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/docker.sh $<TARGET_FILE:usmc-run>
         $<TARGET_FILE:preload_echo>)
set_tests_properties(docker_containers PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77
                     LABELS "docker;needs-root")
usmc_test(epoll_mixed)
foreach(max 1 16)
  add_test(NAME epoll_mixed_${max} COMMAND epoll_mixed --maxevents ${max})
  set_tests_properties(epoll_mixed_${max} PROPERTIES TIMEOUT 60 LABELS unit)
endforeach()
usmc_test(epoll_edge_race)
add_test(NAME epoll_edge_race COMMAND epoll_edge_race)
set_tests_properties(epoll_edge_race PROPERTIES TIMEOUT 120 LABELS unit)

# The library's calls point down its layers; the ones that still point up
# are listed in layers.allow, which only shrinks.
add_test(NAME layers
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/layers.sh
                 ${CMAKE_CURRENT_SOURCE_DIR}/layers.allow "$<TARGET_OBJECTS:usmc_obj>"
                 ${PROJECT_BINARY_DIR}/compile_commands.json)
set_tests_properties(layers PROPERTIES LABELS unit)
# Every variable of the process, the library's and the preload's, is in
# HACKING.md's table "Process state" with what guards it, and every row
# names one that exists.
add_test(NAME globals
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/globals.sh ${PROJECT_SOURCE_DIR}/HACKING.md
                 "$<TARGET_OBJECTS:usmc_obj>;$<TARGET_OBJECTS:usmc-preload>" $<CONFIG>)
set_tests_properties(globals PROPERTIES LABELS unit)
usmc_test(epoll_fair)
add_test(NAME epoll_fair COMMAND epoll_fair)
set_tests_properties(epoll_fair PROPERTIES TIMEOUT 60 LABELS unit)
usmc_test(epoll_pipeline)
add_test(NAME epoll_pipeline COMMAND epoll_pipeline)
add_test(NAME epoll_pipeline_et COMMAND epoll_pipeline --et)
set_tests_properties(epoll_pipeline epoll_pipeline_et PROPERTIES TIMEOUT 120 LABELS unit)
# A doorbell counted but not yet written never holds up its reader's drain.
usmc_test(drain_unwritten)
add_test(NAME drain_unwritten COMMAND drain_unwritten)
set_tests_properties(drain_unwritten PROPERTIES TIMEOUT 60 LABELS unit)
usmc_test(epoll_drained)
target_link_libraries(epoll_drained PRIVATE pthread)
add_test(NAME epoll_drained COMMAND epoll_drained)
add_test(NAME epoll_drained_fork COMMAND epoll_drained --fork)
add_test(NAME epoll_drained_exclusive COMMAND epoll_drained --exclusive)
add_test(NAME epoll_drained_dup COMMAND epoll_drained --dup)
add_test(NAME epoll_drained_fork_et COMMAND epoll_drained --fork --et)
set_tests_properties(epoll_drained epoll_drained_fork epoll_drained_exclusive epoll_drained_dup
                     epoll_drained_fork_et PROPERTIES
                     TIMEOUT 120 LABELS unit
                     ENVIRONMENT USMC_BUFSIZE=16384)
usmc_test(epoll_unseen)
target_link_libraries(epoll_unseen PRIVATE pthread)
add_test(NAME epoll_unseen_fork_asleep COMMAND epoll_unseen --fork-asleep)
add_test(NAME epoll_unseen_abort COMMAND epoll_unseen --abort)
add_test(NAME epoll_unseen_forked_exit COMMAND epoll_unseen --forked-exit)
set_tests_properties(epoll_unseen_fork_asleep epoll_unseen_abort epoll_unseen_forked_exit PROPERTIES
                     TIMEOUT 120 LABELS unit ENVIRONMENT USMC_BUFSIZE=16384)
usmc_test(sleepers_restart)
target_link_libraries(sleepers_restart PRIVATE pthread)
add_test(NAME sleepers_restart COMMAND sleepers_restart)
set_tests_properties(sleepers_restart PROPERTIES LABELS unit TIMEOUT 120)
usmc_test(epoll_out_bells)
add_test(NAME epoll_out_bells COMMAND epoll_out_bells)
set_tests_properties(epoll_out_bells PROPERTIES LABELS unit)
usmc_test(epoll_scale)
add_test(NAME epoll_scale COMMAND epoll_scale)
add_test(NAME epoll_scale_et COMMAND epoll_scale --et)
add_test(NAME epoll_scale_never_sleeps COMMAND epoll_scale --never-sleeps)
# Small rings: two thousand connections' worth of them.
set_tests_properties(epoll_scale epoll_scale_et epoll_scale_never_sleeps PROPERTIES TIMEOUT 120 LABELS unit
                     ENVIRONMENT USMC_BUFSIZE=16384)
