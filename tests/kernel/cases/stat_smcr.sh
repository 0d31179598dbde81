# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# SMC-R over soft-RoCE (rxe_setup): client and server really use SMC-R,
# the bytes arrive intact, usmc-stat --kernel shows mode SMC-R and the rdma
# device of each end, and usmc-stat --kernel -s counts one more successful
# SMC-Rv2 handshake on each side.
set -u
port=7301

rxe_setup || fail "rxe_setup"
# v2_ok SIDE: the SMC-R v2 handshakes counted so far (1: client, 2: server).
v2_ok() {
	"$STAT" --kernel -s | awk -v f=$(($1 + 3)) '/^SMC-R v2 handshakes/ { print $f }'
}
client_before=$(v2_ok 1)
server_before=$(v2_ok 2)

"$PEER" server --proto smc --addr "$RXE_B" --port $port >server.log 2>&1 &
server=$!
wait_line server.log '^listening' || fail "no server"
"$PEER" client --proto smc --addr "$RXE_B" --port $port --bytes 8000000 --hold 60 >client.log 2>&1 &
client=$!
wait_line client.log '^client:' 60 || fail "no client"
cport=$(sed -n 's/^client: port=\([0-9]*\) .*/\1/p' client.log)

stat_snapshot

expect "the client listed as SMC-R" \
	listed list.txt $client "$RXE_A:$cport" "$RXE_B:$port" ACTIVE SMC-R - -
expect "the server's socket listed as SMC-R" \
	listed list.txt $server "$RXE_B:$port" "$RXE_A:$cport" ACTIVE SMC-R - -
expect "the client's link on rxea" grep -qE "^$client .* rxea/1 client$" list.txt
expect "the server's link on rxeb" grep -qE "^$server .* rxeb/1 server$" list.txt
expect "JSON with the link" grep -q '"link": {"port": 1, "role": "client", "device": "rxea"' list.json
expect "one more SMC-Rv2 handshake as client" test "$(v2_ok 1)" = $((client_before + 1))
expect "one more SMC-Rv2 handshake as server" test "$(v2_ok 2)" = $((server_before + 1))
expect "8000000 bytes or more sent over SMC-R" \
	awk '/^SMC-R bytes sent/ { exit !($4 + 0 >= 8000000) }' stats.txt

kill -TERM $client
wait $client || fail "client: exit status $?: $(cat client.log)"
wait $server || fail "server: exit status $?: $(cat server.log)"
expect "8000000 bytes checked by the client" grep -q '^client: .* bytes=8000000 .* ok$' client.log
expect "8000000 bytes checked by the server" grep -q '^server: bytes=8000000 .* ok$' server.log
