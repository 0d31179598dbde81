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
