# A hostile peer against the shared-memory path: one entry per attack.
usmc_test(hostile_peer)
target_sources(hostile_peer PRIVATE hostile_cdc.c hostile_segment.c)
foreach(attack prod_beyond prod_backwards wrap_jump prod_overfull lap_beyond cons_ahead cons_backwards
        abort_flip garbage_hints silence sealed peer_write_map peer_scribble tcp_alien
        tcp_alien_counted)
  add_test(NAME hostile_${attack} COMMAND hostile_peer --case ${attack})
  set_tests_properties(hostile_${attack} PROPERTIES TIMEOUT 60 LABELS security)
endforeach()

# Peers of two users: TCP unless both name each other (needs root).
usmc_test(cross_user)
add_test(NAME cross_user COMMAND cross_user)

# usmc-stat against hostile command names and a socket table that flips its size.
usmc_test(stat_hostile)
foreach(case names flip)
  add_test(NAME stat_hostile_${case} COMMAND stat_hostile $<TARGET_FILE:usmc-stat> ${case})
  set_tests_properties(stat_hostile_${case} PROPERTIES TIMEOUT 120 LABELS security)
endforeach()

# Segments a peer hands over: only sealed shmem memfds are mapped.
usmc_test(peer_segment)
add_test(NAME peer_segment COMMAND peer_segment)
set_tests_properties(peer_segment PROPERTIES TIMEOUT 60 LABELS security)
# With huge pages, a sealed hugetlb memfd maps: only the file system check refuses it.
add_test(NAME peer_segment_huge_pool COMMAND peer_segment --huge-pool)
set_tests_properties(peer_segment_huge_pool PROPERTIES TIMEOUT 60 SKIP_RETURN_CODE 77
                     LABELS "security;needs-root" RUN_SERIAL TRUE)
# Other processes against a listener's channel (another user: needs root).
usmc_test(hostile_user)
foreach(case backlog squat churn idle proposals)
  add_test(NAME hostile_user_${case} COMMAND hostile_user --case ${case})
  set_tests_properties(hostile_user_${case} PROPERTIES TIMEOUT 120 LABELS "security;needs-root")
endforeach()
# Junk and a channel out of sync on carriers of a process that speaks no usmc.
usmc_test(hostile_carrier)
add_test(NAME hostile_carrier COMMAND hostile_carrier)
set_tests_properties(hostile_carrier PROPERTIES TIMEOUT 60 LABELS security)
# The client is told the server's reason for TCP.
usmc_test(hs_reason)
add_test(NAME hs_reason COMMAND hs_reason)
set_tests_properties(hs_reason PROPERTIES TIMEOUT 60 LABELS security)
# The data path under a seccomp filter like OpenSSH's pre-auth sandbox.
usmc_test(seccomp_data)
add_test(NAME seccomp_data COMMAND seccomp_data)
add_test(NAME seccomp_data_no_fork COMMAND seccomp_data --no-fork)
set_tests_properties(seccomp_data seccomp_data_no_fork PROPERTIES TIMEOUT 120 LABELS security)
# The mutation runner, on three mutants its tests must catch: a smoke check
# of tests/mutate/run.sh (the whole list takes minutes: see docs/SECURITY.md).
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  add_test(NAME mutate_smoke
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/mutate/mutate.py
                   ${PROJECT_BINARY_DIR} --only reader_overread,policy_port_hi,peek_counted)
  set_tests_properties(mutate_smoke PROPERTIES LABELS slow TIMEOUT 900)
endif()
