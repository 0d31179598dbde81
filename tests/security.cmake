# A hostile peer against the shared-memory path: one entry per attack.
usmc_test(hostile_peer)
foreach(attack prod_beyond prod_backwards wrap_jump prod_overfull cons_ahead cons_backwards
        abort_flip garbage_hints silence sealed peer_write_map peer_scribble tcp_alien)
  add_test(NAME hostile_${attack} COMMAND hostile_peer --case ${attack})
  set_tests_properties(hostile_${attack} PROPERTIES TIMEOUT 60)
endforeach()

# Peers of two users: TCP unless both name each other (needs root).
usmc_test(cross_user)
add_test(NAME cross_user COMMAND cross_user)

# The mutation runner, on three mutants its tests must catch: a smoke check
# of tests/mutate/run.sh (the whole list takes minutes: see docs/SECURITY.md).
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  add_test(NAME mutate_smoke
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/mutate/mutate.py
                   ${PROJECT_BINARY_DIR} --only reader_overread,policy_port_hi,peek_counted)
  set_tests_properties(mutate_smoke PROPERTIES LABELS slow TIMEOUT 900)
endif()
