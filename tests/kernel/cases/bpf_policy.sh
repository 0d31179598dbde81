# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# Per-connection policy through the kernel's smc_hs_ctrl struct_ops.
#
# On a kernel without it (Debian's 6.12): usmc-kernel policy says so in one
# line and exits 1.  On a kernel with it (6.19+ with SMC and
# CONFIG_SMC_HS_CTRL_BPF, see docs/KERNEL.md): with the rule
# "tcp 127.0.0.1:PORT" an IPPROTO_SMC connection to PORT sends its SYN
# without the SMC option, so both ends fall back because the peer did not
# indicate SMC (0x03010000), while a connection to another port tries SMC
# and falls back for the ordinary loopback reason (no SMC device,
# 0x03030000).  Deleting the rule brings PORT back to SMC.  A rule on the
# client's address makes the server answer without the option.  disable
# --all leaves nothing behind.
set -u
KCTL=$BUILD/tools/usmc-kernel
tcp_port=7401
smc_port=7402

smc_modules 2>/dev/null

if [ ! -e /proc/sys/net/smc/hs_ctrl ]; then
	rc=0
	"$KCTL" policy add "tcp 127.0.0.1:$tcp_port" >out.txt 2>&1 || rc=$?
	show out.txt
	expect "exit status 1 without smc_hs_ctrl" test $rc = 1
	expect "one line saying why" test "$(wc -l <out.txt)" = 1
	expect "the reason" grep -qx \
		'usmc-kernel: per-connection policy is unavailable on this kernel (needs Linux 6.19+ smc_hs_ctrl)' out.txt
	expect "status says unavailable" sh -c "'$KCTL' status | grep -q 'unavailable on this kernel (needs Linux 6.19+ smc_hs_ctrl)'"
	expect "nothing pinned" test ! -e /sys/fs/bpf/usmc
	exit 0
fi

# connect_once PORT TAG [ADDR]: an IPPROTO_SMC connection to ADDR:PORT
# (default 127.0.0.1), held until killed; leaves TAG.server.log and
# TAG.client.log, the pids in server_pid and client_pid, the client's port
# in client_port.
connect_once() {
	"$PEER" server --proto smc --addr "${3:-127.0.0.1}" --port "$1" >"$2.server.log" 2>&1 &
	server_pid=$!
	wait_line "$2.server.log" '^listening' || fail "no server on $1"
	"$PEER" client --proto smc --addr "${3:-127.0.0.1}" --port "$1" --bytes 1000000 --hold 60 \
		>"$2.client.log" 2>&1 &
	client_pid=$!
	wait_line "$2.client.log" '^client:' || fail "no client to $1"
	client_port=$(sed -n 's/^client: port=\([0-9]*\) .*/\1/p' "$2.client.log")
}

# finish TAG: stops the pair and checks the bytes on both ends.
finish() {
	kill -TERM "$client_pid"
	wait "$client_pid" || fail "client: exit status $?: $(cat "$1.client.log")"
	wait "$server_pid" || fail "server: exit status $?: $(cat "$1.server.log")"
	expect "$1: 1000000 bytes, same length and checksum on both ends" \
		transferred "$1.server.log" "$1.client.log" 1000000
}

expect "policy add" "$KCTL" policy add "tcp 127.0.0.1:$tcp_port"
expect "net.smc.hs_ctrl selects it" test "$(sysctl -n net.smc.hs_ctrl)" = usmc
"$KCTL" policy show >show.txt
show show.txt
expect "policy show lists the rule" grep -qE "^ +1  tcp 127\.0\.0\.1:$tcp_port$" show.txt
expect "the struct_ops map is pinned" test -e /sys/fs/bpf/usmc/policy_ops

connect_once $tcp_port tcp
tcp_client=$client_pid tcp_cport=$client_port
stat_snapshot
expect "to $tcp_port: no SMC option, the client falls back with 0x03010000 (peer did not offer SMC)" \
	listed list.txt "$tcp_client" 127.0.0.1:"$tcp_cport" 127.0.0.1:$tcp_port ACTIVE TCP 0x03010000 -
expect "and so does the server, 0x03010000" \
	listed list.txt "$server_pid" 127.0.0.1:$tcp_port 127.0.0.1:"$tcp_cport" ACTIVE TCP 0x03010000 -
finish tcp

connect_once $smc_port smc
stat_snapshot
expect "to $smc_port: SMC tried, the ordinary loopback fallback 0x03030000" \
	listed list.txt "$client_pid" 127.0.0.1:"$client_port" 127.0.0.1:$smc_port ACTIVE TCP 0x03030000 -
finish smc

"$KCTL" status >status.txt
show status.txt
expect "status counts the connection kept to TCP" grep -qE '^policy: .* [1-9][0-9]* kept to TCP' status.txt

expect "policy del" "$KCTL" policy del "tcp 127.0.0.1:$tcp_port"
connect_once $tcp_port again
stat_snapshot
expect "without the rule, $tcp_port tries SMC again (0x03030000)" \
	listed list.txt "$client_pid" 127.0.0.1:"$client_port" 127.0.0.1:$tcp_port ACTIVE TCP 0x03030000 -
finish again

# The server's side: to 127.0.0.2 the client's SYN offers SMC, but the
# server sees the SYN come from 127.0.0.1 and answers without the option.
expect "policy set: tcp 127.0.0.1" sh -c "echo 'tcp 127.0.0.1' | '$KCTL' policy set -"
connect_once $smc_port server 127.0.0.2
stat_snapshot
expect "to 127.0.0.2: the server's SYN-ACK has no SMC option, the client falls back with 0x03010000" \
	listed list.txt "$client_pid" 127.0.0.1:"$client_port" 127.0.0.2:$smc_port ACTIVE TCP 0x03010000 -
finish server

expect "policy set from standard input" sh -c "printf 'tcp 10.0.0.0/8 # a comment\nsmc [::1]:80-90; tcp *:5432\n' | '$KCTL' policy set -"
"$KCTL" policy show >show.txt
show show.txt
expect "three rules, in order" test "$(awk '{print $2, $3}' show.txt | paste -sd'|')" = \
	"tcp 10.0.0.0/8|smc [::1]:80-90|tcp *:5432"
rc=0
"$KCTL" policy add "tcp 10.0.0.0/33" >bad.txt 2>&1 || rc=$?
expect "a bad rule is refused as a usage error, exit status 2" test $rc = 2

expect "disable --all" "$KCTL" disable --all
expect "nothing left in bpffs" test ! -e /sys/fs/bpf/usmc
expect "net.smc.hs_ctrl cleared" test -z "$(sysctl -n net.smc.hs_ctrl)"
