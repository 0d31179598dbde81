#!/bin/bash
# SPDX-License-Identifier: MIT
#
# usmc-run --kernel over soft-RoCE: an unmodified static server and client,
# both asking for TCP, talk real SMC-R.  smc_diag shows both sockets in
# SMC-R mode, the kernel counts the handshake, the rxe devices carry the
# data, and the bytes arrive intact.
# shellcheck disable=SC2317 # the functions run through expect
set -u
# guest.sh has sourced lib.sh; by hand: BUILD=... SRC=... bash CASE
# shellcheck source=tests/kernel/lib.sh
declare -F expect >/dev/null || . "$SRC/tests/kernel/lib.sh"
RUN=$BUILD/tools/usmc-run
N=4194304
W=$(mktemp -d)

# rxe_packets: packets both soft-RoCE devices have sent so far.
rxe_packets() {
	cat /sys/class/infiniband/rxe[ab]/ports/1/hw_counters/sent_pkts 2>/dev/null |
		awk '{ n += $1 } END { print n + 0 }'
}

# handshakes FILE: SMC-R handshakes (v1 and v2) the client side counted.
handshakes() {
	awk '/^SMC-R v[12] handshakes/ { n += $4 } END { print n + 0 }' "$1"
}

rxe_setup || fail "rxe_setup"
"$STAT" --kernel -s > "$W/stats0" || fail "usmc-stat --kernel -s"
packets0=$(rxe_packets)

"$RUN" --kernel "$PEER" server --addr "$RXE_B" > "$W/s" 2>&1 &
server=$!
wait_line "$W/s" '^listening port=' || fail "no server"
port=$(sed -n 's/^listening port=//p' "$W/s")
"$RUN" --kernel "$PEER" client --addr "$RXE_B" --port "$port" --bytes $N --hold 3 > "$W/c" 2>&1 &
client=$!
wait_line "$W/c" '^client: ' 120 || fail "client"
"$STAT" --kernel > "$W/list"
"$STAT" --kernel -s > "$W/stats1"
wait $client || fail "client: $(cat "$W/c")"
wait $server || fail "server: $(cat "$W/s")"
cat "$W/list"

cport=$(sed -n 's/^client: port=\([0-9]*\) .*/\1/p' "$W/c")
expect "SMC sockets (256) for both static programs" [ "$(protocols "$W/s" "$W/c")" = 256 ]
expect "$N bytes, checksum equal (SMC-R)" transferred "$W/s" "$W/c" $N
expect "smc_diag: the client's socket is SMC-R" \
	[ "$(row "$W/list" "$RXE_A:$cport" "$RXE_B:$port" | awk '{print $8}')" = SMC-R ]
expect "smc_diag: the server's socket is SMC-R" \
	[ "$(row "$W/list" "$RXE_B:$port" "$RXE_A:$cport" | awk '{print $8}')" = SMC-R ]
expect "the kernel counted an SMC-R handshake" \
	[ "$(handshakes "$W/stats1")" -gt "$(handshakes "$W/stats0")" ]
expect "the rxe devices carried the data" [ $(($(rxe_packets) - packets0)) -gt $((N / 4096)) ]
rm -rf "$W"
exit 0
