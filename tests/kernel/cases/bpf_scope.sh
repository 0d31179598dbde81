#!/bin/bash
# SPDX-License-Identifier: MIT
#
# usmc-run --kernel: a static program that asks for TCP (smc_peer) gets
# kernel SMC sockets, over IPv4 and IPv6, and so do its children and a
# daemon it leaves behind, while programs outside keep TCP.  Over loopback
# the SMC sockets fall back to TCP (no SMC device) and the bytes arrive
# intact.  usmc-run passes on exit status and signals, and leaves nothing
# attached.
# shellcheck disable=SC2317 # the functions run through expect
set -u
# guest.sh has sourced lib.sh; by hand: BUILD=... SRC=... bash CASE
# shellcheck source=tests/kernel/lib.sh
declare -F expect >/dev/null || . "$SRC/tests/kernel/lib.sh"
KERNEL=$BUILD/tools/usmc-kernel
RUN=$BUILD/tools/usmc-run
N=1048576
W=$(mktemp -d)

# first FILE: the SO_PROTOCOL of the first socket smc_peer made: the
# listener of a server, the socket of a client.  (An accepted connection
# that fell back to TCP reports 6 on Linux 6.12, even with an explicit
# IPPROTO_SMC listener; smc_diag tells what it is.)
first() {
	grep -m1 -o 'SO_PROTOCOL=[0-9]*' "$1" | cut -d= -f2
}

port_of() {
	sed -n 's/^listening port=//p' "$1"
}

client_port() {
	sed -n 's/^client: port=\([0-9]*\) .*/\1/p' "$1"
}

smc_modules || fail "cannot load the smc modules"
expect "usmc-kernel status: the machine can" "$KERNEL" status

echo "== outside usmc-run: plain TCP"
"$PEER" server > "$W/s0" &
wait_line "$W/s0" '^listening port=' || fail "no server"
"$PEER" client --port "$(port_of "$W/s0")" --bytes $N > "$W/c0" || fail "client (TCP)"
wait $! || fail "server (TCP)"
expect "TCP sockets (6)" [ "$(protocols "$W/s0" "$W/c0")" = 6 ]
expect "$N bytes, checksum equal (TCP)" transferred "$W/s0" "$W/c0" $N

echo "== both ends under usmc-run --kernel, loopback"
"$RUN" --kernel "$PEER" server > "$W/s1" 2>&1 &
server=$!
wait_line "$W/s1" '^listening port=' || fail "no server under usmc-run"
port=$(port_of "$W/s1")
"$RUN" --kernel "$PEER" client --port "$port" --bytes $N --hold 3 > "$W/c1" 2>&1 &
client=$!
wait_line "$W/c1" '^client: ' 60 || fail "client under usmc-run"
"$STAT" --kernel > "$W/list1"
wait $client || fail "client under usmc-run: $(cat "$W/c1")"
wait $server || fail "server under usmc-run: $(cat "$W/s1")"
expect "SMC sockets (256) for a static program asking for TCP" \
	[ "$(first "$W/s1")$(first "$W/c1")" = 256256 ]
expect "$N bytes, checksum equal (SMC falling back over loopback)" \
	transferred "$W/s1" "$W/c1" $N
cport=$(client_port "$W/c1")
expect "smc_diag lists the client's socket, fallen back to TCP" \
	[ "$(row "$W/list1" "127.0.0.1:$cport" "127.0.0.1:$port" | awk '{print $8}')" = TCP ]
expect "and the server's accepted one" \
	[ "$(row "$W/list1" "127.0.0.1:$port" "127.0.0.1:$cport" | awk '{print $8}')" = TCP ]

echo "== IPv6"
"$RUN" --kernel "$PEER" server --addr ::1 > "$W/s6" 2>&1 &
server=$!
wait_line "$W/s6" '^listening port=' || fail "no IPv6 server"
"$RUN" --kernel "$PEER" client --addr ::1 --port "$(port_of "$W/s6")" --bytes $N > "$W/c6" 2>&1 ||
	fail "IPv6 client: $(cat "$W/c6")"
wait $server || fail "IPv6 server: $(cat "$W/s6")"
expect "AF_INET6 sockets are SMC too" [ "$(first "$W/s6")$(first "$W/c6")" = 256256 ]
expect "$N bytes, checksum equal (IPv6)" transferred "$W/s6" "$W/c6" $N

echo "== descendants: a child of a shell, a daemon left behind"
# The shell exits at once; the server, detached with setsid, lives on
# below usmc-run, the subreaper, and stays in scope.
"$RUN" --kernel sh -c "setsid $PEER server --nonblock --cloexec > $W/s2 2>&1 & exit 0" &
run=$!
wait_line "$W/s2" '^listening port=' || fail "no daemon"
sleep 0.5
expect "usmc-run waits for the daemon after the shell exited" kill -0 $run
expect "the daemon is usmc-run's child now" \
	[ "$(ps -o ppid= -C smc_peer | tr -d ' ')" = "$run" ]
"$RUN" --kernel sh -c "$PEER client --port $(port_of "$W/s2") --bytes $N > $W/c2; exit 0" ||
	fail "client below a shell"
wait $run || fail "usmc-run of the daemon: $?"
expect "SMC sockets for the shell's child and the daemon" \
	[ "$(first "$W/s2")$(first "$W/c2")" = 256256 ]
expect "$N bytes, checksum equal (descendants)" transferred "$W/s2" "$W/c2" $N

echo "== a server in scope, a client outside"
"$RUN" --kernel "$PEER" server > "$W/s3" 2>&1 &
server=$!
wait_line "$W/s3" '^listening port=' || fail "no server"
"$PEER" client --port "$(port_of "$W/s3")" --bytes $N > "$W/c3" || fail "TCP client"
wait $server || fail "server in scope"
expect "the server's listener is SMC" [ "$(first "$W/s3")" = 256 ]
expect "the client outside keeps TCP" [ "$(protocols "$W/c3")" = 6 ]
expect "$N bytes, checksum equal (SMC server, TCP client)" transferred "$W/s3" "$W/c3" $N

echo "== exit status and signals"
"$RUN" --kernel sh -c 'exit 7'
expect "the program's exit status (7)" [ $? = 7 ]
"$RUN" --kernel sh -c 'kill -TERM $$' &
wait $!
expect "death by the program's signal (143)" [ $? = 143 ]
"$RUN" --kernel sleep 100 &
run=$!
sleep 1
kill -TERM $run
wait $run
expect "SIGTERM passed on to the program" [ $? = 143 ]
"$RUN" --kernel /nonexistent 2> "$W/err"
expect "127 for a program that cannot run" [ $? = 127 ]
expect "and one line why" grep -q 'cannot run /nonexistent' "$W/err"

echo "== nothing left attached"
expect "no usmc program in the kernel" [ "$(bpftool prog show | grep -c usmc_socket)" = 0 ]
expect "nothing pinned" [ ! -e /sys/fs/bpf/usmc ]
"$PEER" hold --hold 1 > "$W/after" || fail "smc_peer hold"
expect "a new program gets TCP again" [ "$(protocols "$W/after")" = 6 ]
rm -rf "$W"
exit 0
