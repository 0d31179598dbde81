# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# IPPROTO_SMC over 127.0.0.1: no RDMA or ISM device serves loopback, so the
# client declines with "no SMC device" (0x03030000) and the server falls
# back because its peer declined (0x05000000, the peer's 0x03030000 as its
# diagnosis).  usmc-stat --kernel lists both ends that way, with their
# process and real addresses; the bytes arrive intact either way.
set -u
port=7101

"$PEER" server --proto smc --port $port >server.log 2>&1 &
server=$!
wait_line server.log '^listening' || fail "no server"
"$PEER" client --proto smc --port $port --bytes 3000000 --hold 60 >client.log 2>&1 &
client=$!
wait_line client.log '^client:' || fail "no client"
cport=$(sed -n 's/^client: port=\([0-9]*\) .*/\1/p' client.log)

stat_snapshot

expect "SO_PROTOCOL=256 on the client's socket" grep -qx SO_PROTOCOL=256 client.log
# A socket that fell back hands its file to the TCP socket underneath, so
# the accepted one (it fell back before accept returned) says 6.
expect "SO_PROTOCOL 256 on the listener, 6 on the accepted fallback socket" \
	test "$(grep -x 'SO_PROTOCOL=[0-9]*' server.log | paste -sd' ')" = "SO_PROTOCOL=256 SO_PROTOCOL=6"
expect "the client listed: ACTIVE, TCP fallback 0x03030000" \
	listed list.txt $client 127.0.0.1:"$cport" 127.0.0.1:$port ACTIVE TCP 0x03030000 -
expect "the server's socket listed: ACTIVE, TCP fallback 0x05000000, peer 0x03030000" \
	listed list.txt $server 127.0.0.1:$port 127.0.0.1:"$cport" ACTIVE TCP 0x05000000 0x03030000
expect "the listener listed" listed list.txt $server 127.0.0.1:$port 0.0.0.0:0 LISTEN - - -
expect "the reasons in words" grep -q "no SMC device found" list.txt
expect "JSON with the client's reason" \
	grep -q '"local": "127.0.0.1:'"$cport"'", "peer": "127.0.0.1:'$port'", "mode": "TCP", "fallback_reason": "0x03030000"' list.json
expect "the client's fallback counted" grep -qE '^  client +0x03030000 .* [1-9][0-9]*$' stats.txt
expect "the server's fallback counted" grep -qE '^  server +0x05000000 .* [1-9][0-9]*$' stats.txt

kill -TERM $client
wait $client || fail "client: exit status $?: $(cat client.log)"
wait $server || fail "server: exit status $?: $(cat server.log)"
expect "3000000 bytes checked by the client" grep -q '^client: .* bytes=3000000 .* ok$' client.log
expect "3000000 bytes checked by the server" grep -q '^server: bytes=3000000 .* ok$' server.log
