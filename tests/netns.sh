#!/bin/bash
# SPDX-License-Identifier: MIT
# Shared memory between network namespaces of one host, through the
# rendezvous directory: builds a topology with ip netns, veth pairs, a
# bridge and nft, runs a usmc server and a usmc client as nobody in two
# namespaces, and checks the bytes (length and checksum, on both ends),
# the mode and reason each end reports, and what crossed the veth.
#
#   netns.sh TOPOLOGY NETNS_PEER [USMC_STAT]
#   routed  client ns A -- veth -- router ns R -- veth -- server ns B
#   bridge  A and B each with a veth leg on a bridge in R
#   dnat    routed, the client dials R's address, which R's nft maps to B
#   dnatport  dnat through a published port (8080) that R maps to the
#           server's (7411), as docker -p 8080:7411 does, named in the
#           rendezvous directory's port map (usmc-nat, written by root)
#   dnatmasq  dnatport, and R masquerades too: both ends fall back with
#           0x03000007
#   dnatproxy  the published port relayed by a plain program (netns_relay.py)
#           that connects from the published address, as docker's userland
#           proxy does: two TCP connections, both ends fall back with 0x03000007
#   dnatforeign  dnatport, but the port map is another user's (daemon's):
#           ignored, the client finds no listener (0x03030000)
#   masq    routed, and R masquerades A's connections to B: the client
#           falls back with 0x03000007, the bytes cross the veth intact
#   prefork routed, and three forked workers of the server accept on its
#           listener, as a prefork server's do
#   inetd   routed, and the server forks a child for each connection, which
#           closes its copy of the listener before it serves (socat's fork
#           mode, dnsmasq): the listener's name in the directory stays for
#           the connections after it
#   reuseport  routed, and the server is two processes with a listener each
#           on the port, an SO_REUSEPORT group: each binds a queue of its own
#           in the rendezvous directory, the client posts to both; a name
#           left by a member that died is cleared as they join
#   sidecar  routed, and B redirects what comes in for the port to a proxy
#           of its own (netns_relay.py under usmc-run, as nobody), as a
#           service mesh's sidecar captures inbound connections; the proxy
#           connects on to the server.  The first client's Proposal went to
#           the server, which never gets its connection: the proxy refuses
#           it, and the client falls back at once (0x03000009), no CLC
#           timeout.  The proxy lists the redirect it learned, and the
#           clients after it propose to the proxy: shared memory from the
#           client to the proxy and from the proxy to the server.  The proxy
#           accepts each connection late: the first client listed its
#           connection long before, and is woken by the proxy's refusal.
#   sidecarearly  sidecar, but the first client is slow to list its
#           connection (strace delays its getsockname() after connect()):
#           the proxy has noted the connection before, and the client finds
#           the note: its socket is TCP as connect() returns
#   sidecaruser  sidecar, but the server runs as another user (daemon)
#           than its clients and its proxy, as a mesh's applications do
#           beside their sidecars' one user: the first client's Proposal
#           reaches no listener of its own user on the port it dials (the
#           server's is another user's) and it is TCP at once (0x03010000);
#           the proxy learns the redirect from its connection all the same,
#           and the clients after it propose to the proxy, in shared memory;
#           the proxy's own connection to the server is TCP (two users)
#   sidecarbare  sidecar, but the server sees no rendezvous directory, as
#           an application in a pod without it: the first client finds no
#           listener on the port it dials and is TCP at once (0x03030000),
#           but it dialled an address the directory lists (the proxy's
#           namespace's), so the proxy looks and learns all the same
#   sidecarout  routed, and A sends what nobody dials to the port to a
#           proxy of its own (netns_relay.py, plain, as daemon), as a mesh's
#           outbound capture does; the proxy connects on once the client's
#           first bytes came, as an HTTP proxy does.  The client's Proposal
#           went to the server in B, which never gets its connection, and
#           the client finds the other end of its connection in its own
#           namespace: TCP at once (0x03000009), no CLC timeout
#   killed  routed, and each client is killed (SIGKILL) once it has written,
#           before the server accepts: the server must read every byte it
#           wrote and then the end, in shared memory, as TCP gives a killed
#           peer's data and then its FIN (the client's TCP socket travels
#           with its Proposal, which must not hold the connection open)
#   user    routed, the client runs as another user (daemon): it finds no
#           listener of its own user and stays TCP (0x03030000)
#   reuse   routed, one client process makes the connections one after the
#           other: from the second on, each reuses the segment the one
#           before it made toward that listener
#   relisten  reuse, but the server is a new process with a new listener
#           for each connection, bound under the same name right after the
#           one before closed: each connection finds it (the client's kept
#           listing of the directory is read again), in shared memory, and
#           none reuses the segment made toward the listener before
# Needs root to build the topology (exit 77 otherwise); the peers run as nobody.
set -euo pipefail

topo=$1
peer=$2
stat=${3:-}
size=${NETNS_SIZE:-8388608}
# A killed client's bytes wait in its ring for an answer that comes only
# once it is dead: what it writes must fit there.
[ "$topo" != killed ] || size=200000
conns=3
port=7411

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
command -v ip >/dev/null || { echo "SKIP: no ip"; exit 77; }
if [ "$topo" = dnatproxy ] || [ "$topo" = sidecar ] || [ "$topo" = sidecarearly ] ||
	[ "$topo" = sidecarout ] || [ "$topo" = sidecaruser ] || [ "$topo" = sidecarbare ]; then
	command -v python3 >/dev/null || { echo "FAIL: python3 is missing"; exit 1; }
fi
if [ "$topo" = sidecarearly ]; then
	command -v strace >/dev/null || { echo "FAIL: strace is missing"; exit 1; }
fi
if [ "$topo" != routed ] && [ "$topo" != bridge ] && [ "$topo" != prefork ] && [ "$topo" != user ] &&
	[ "$topo" != inetd ] &&
	[ "$topo" != reuse ] && [ "$topo" != reuseport ] && [ "$topo" != relisten ] &&
	[ "$topo" != killed ]; then
	command -v nft >/dev/null || { echo "FAIL: nft is missing"; exit 1; }
fi

. "$(dirname "$0")/netns_topo.sh"
tag=um$$
A=${tag}a B=${tag}b R=${tag}r
work=$(mktemp -d)
rdv=$work/rdv
mkdir -m 1777 "$rdv"
chmod 1777 "$work"

cleanup() {
	netns_topo_cleanup
	rm -rf "$work"
}
trap cleanup EXIT

as_nobody() {
	local ns=$1 user=${as_user:-nobody}; shift
	ip netns exec "$ns" setpriv --reuid="$user" --regid="$(id -g "$user")" --clear-groups \
		env USMC_RENDEZVOUS_DIR="$rdv" USMC_RENDEZVOUS_NAT="${nat:-}" NETNS_HOLD="${hold:-}" \
		NETNS_KILLED="${killed:-}" \
		USMC_CLC_TIMEOUT_MS="${USMC_CLC_TIMEOUT_MS:-2000}" "$@"
}

netns_topo_build "$topo"
# The operator's port map: root's, read by every namespace that sees the directory.
[ -z "$natmap" ] || echo "# docker -p, as the operator wrote it
$natmap" >"$rdv/usmc-nat"
[ "$topo" != dnatforeign ] || chown daemon "$rdv/usmc-nat"

veth_bytes() {
	local rx tx
	rx=$(nsx $A cat /sys/class/net/va/statistics/rx_bytes)
	tx=$(nsx $A cat /sys/class/net/va/statistics/tx_bytes)
	echo $((rx + tx))
}

workers=0
[ "$topo" = prefork ] && workers=3
[ "$topo" = inetd ] && workers=f
[ "$topo" = reuseport ] && workers=r2
if [ "$topo" = reuseport ]; then
	# A member that died without closing left its name: the next member to join clears it.
	dead=$rdv/usmc-$port-$(stat -L -c %i /run/netns/"$B")-m999999
	# Debian's own python3: another user may not reach one in root's PATH.
	[ -x /usr/bin/python3 ] || { echo "FAIL: /usr/bin/python3 is missing"; exit 1; }
	setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups /usr/bin/python3 -c \
		'import socket, sys; socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET).bind(sys.argv[1])' "$dead"
	[ -S "$dead" ] || { echo "FAIL: no dead member's name to clear"; exit 1; }
fi
# sidecar: the proxy, in the server's namespace, on the port B redirects to.
if [ "$topo" = sidecar ] || [ "$topo" = sidecarearly ] || [ "$topo" = sidecaruser ] ||
	[ "$topo" = sidecarbare ]; then
	late=$([ "$topo" = sidecar ] && echo 0.3 || echo 0)
	as_nobody $B "$(dirname "$stat")/usmc-run" /usr/bin/python3 "$(dirname "$0")/netns_relay.py" \
		$dst 15006 $dst $port "$work/relay.ready" $late >"$work/relay.out" 2>&1 &
	for _ in $(seq 100); do [ -e "$work/relay.ready" ] && break; sleep 0.05; done
	[ -e "$work/relay.ready" ] || { echo "FAIL: the proxy did not listen"; cat "$work/relay.out"; exit 1; }
fi
# sidecarout: the client's own proxy, plain, of another user, whose connections are not redirected.
if [ "$topo" = sidecarout ]; then
	ip netns exec $A setpriv --reuid=daemon --regid="$(id -g daemon)" --clear-groups \
		/usr/bin/python3 "$(dirname "$0")/netns_relay.py" 0.0.0.0 15001 $dst $port \
		"$work/relay.ready" 0 1 >"$work/relay.out" 2>&1 &
	for _ in $(seq 100); do [ -e "$work/relay.ready" ] && break; sleep 0.05; done
	[ -e "$work/relay.ready" ] || { echo "FAIL: the proxy did not listen"; cat "$work/relay.out"; exit 1; }
fi
# sidecarbare: the server sees no directory, as an application in a pod without it.
server_env=()
[ "$topo" != sidecarbare ] || server_env=(env USMC_RENDEZVOUS_DIR=)
# relisten: a server process per connection.
serve_conns=$conns
[ "$topo" != relisten ] || serve_conns=1
start_server() {
	rm -f "$work/ready"
	killed=$([ "$topo" = killed ] && echo "$work/k" || true) \
		as_user=$([ "$topo" = sidecaruser ] && echo daemon || echo nobody) as_nobody $B \
		"${server_env[@]}" "$peer" server $port $serve_conns "$work/ready" $workers >>"$work/server.out" 2>>"$work/server.err" &
	spid=$!
	for _ in $(seq 100); do [ -e "$work/ready" ] && break; sleep 0.05; done
	[ -e "$work/ready" ] || { echo "FAIL: server did not listen"; cat "$work/server.err"; exit 1; }
}
start_server
# Long after the listener came: the client's listing of the directory is kept.
[ "$topo" != relisten ] || sleep 0.3
ls -l "$rdv"
[ "$topo" != reuseport ] || [ ! -e "$dead" ] || { echo "FAIL: a dead member's name stayed"; exit 1; }

# usmc-stat, run in our namespace, lists both ends with their own addresses and namespaces.
stat_check() {
	local out=$work/stat.out
	for _ in $(seq 1500); do [ -e "$hold.held" ] && break; sleep 0.02; done
	[ -e "$hold.held" ] || { echo "FAIL: the client did not get its answer within 30 s"; touch "$hold"; return 1; }
	# (Through a port-changing NAT the client's end shows the port it dialled.)
	{ "$stat" -W -P $port; [ "$cport" = $port ] || "$stat" -W -P "$cport"; } >"$out" 2>&1 || true
	touch "$hold"
	cat "$out"
	for ns in $A:${first_mode:-$want_mode_client} $B:$want_mode_server; do
		local ino mode=${ns#*:}
		ns=${ns%:*}
		ino=$(stat -L -c %i /run/netns/"$ns")
		grep -q " $mode .*netns:$ino\$" "$out" || { echo "FAIL: usmc-stat: no $mode socket in $ns ($ino)"; return 1; }
	done
}

case $topo in
masq|dnatmasq|dnatproxy) want_mode=TCP want_client=0x03000007 want_server=0x03000007 ;;
user|dnatforeign) want_mode=TCP want_client=0x03030000 want_server=0x03010000 ;;
sidecar|sidecarearly|sidecarbare) want_mode=SMCD want_client=0x00000000 want_server=0x00000000 ;;
sidecaruser) want_mode=SMCD want_client=0x00000000 want_server=0x03010000 ;;
sidecarout) want_mode=TCP want_client=0x03000009 want_server=0x03010000 ;;
*) want_mode=SMCD want_client=0x00000000 want_server=0x00000000 ;;
esac
want_mode_client=$want_mode want_mode_server=$want_mode
# A sidecar's first client: TCP at once; the others in shared memory with the proxy.
first= first_mode=
case $topo in
sidecar|sidecarearly) first="mode=TCP reason=0x03000009" first_mode=TCP ;;
sidecaruser) first="mode=TCP reason=0x03010000" first_mode=TCP want_mode_server=TCP ;;
sidecarbare) first="mode=TCP reason=0x03030000" first_mode=TCP ;;
esac
# sidecarearly: the client's getsockname() after its connect() waits, as a preempted client's would.
slow_first=()
[ "$topo" != sidecarearly ] ||
	slow_first=(strace -f -qq -o /dev/null -e trace=getsockname -e inject=getsockname:delay_enter=300000)
fail=0
before=$(veth_bytes)
# reuse: one client process, all the connections, with counters of its own.
clients=$conns per_client=() client_env=()
if [ "$topo" = reuse ] || [ "$topo" = relisten ]; then
	clients=1 per_client=($conns)
	mkdir -m 0777 "$work/creg"
	client_env=(env USMC_REGISTRY_DIR="$work/creg")
	[ "$topo" != relisten ] || client_env+=(NETNS_BETWEEN="$work/between")
fi
if [ "$topo" = killed ]; then
	# Each client killed once it has written; only then does the server accept.
	clients=0
	for i in $(seq $conns); do
		killed=$work/k$i as_nobody $A "$peer" client "$dst" $cport "$size" $((i * 2654435761 << 12)) >>"$work/client.out" 2>>"$work/client.err" &
		cpid=$!
		for _ in $(seq 1500); do [ -e "$work/k$i.sent" ] && break; sleep 0.02; done
		[ -e "$work/k$i.sent" ] || { echo "FAIL: client $i did not write"; cat "$work/client.err"; exit 1; }
		netns_our_pids $A | xargs -r kill -9
		wait $cpid 2>/dev/null || true
		touch "$work/k.go.$((i - 1))"
	done
fi
for i in $(seq $clients); do
	slow=()
	[ "$i" != 1 ] || slow=("${slow_first[@]}")
	hold=
	[ "$i" = 1 ] && [ -n "$stat" ] && hold=$work/hold
	as_user=$([ "$topo" = user ] && echo daemon || echo nobody) as_nobody $A "${client_env[@]}" "${slow[@]}" "$peer" client "$dst" $cport "$size" $((i * 2654435761 << 12)) "${per_client[@]}" >>"$work/client.out" 2>>"$work/client.err" &
	cpid=$!
	[ -n "$hold" ] && { stat_check || fail=1; }
	if [ "$topo" = relisten ]; then
		# Each connection done, its server gone with its listener: the next server listens.
		for c in $(seq $((conns - 1))); do
			for _ in $(seq 1500); do [ -e "$work/between.$c" ] && break; sleep 0.02; done
			[ -e "$work/between.$c" ] || { echo "FAIL: connection $c did not end"; exit 1; }
			wait $spid || { echo "FAIL: server"; cat "$work/server.err"; exit 1; }
			start_server
			touch "$work/between.go.$c"
		done
	fi
	wait $cpid || { echo "FAIL: client $i"; cat "$work/client.err" "$work/client.out"; exit 1; }
done
if [ "$workers" != 0 ] && [ "$workers" != f ]; then
	# Workers serve until killed: once each connection is reported.
	for _ in $(seq 250); do
		[ "$(grep -c '^server' "$work/server.out")" -ge $conns ] && break
		sleep 0.02
	done
	# One may have gone meanwhile: kill's complaint is no failure of the test.
	netns_our_pids $B | xargs -r kill 2>/dev/null || true
	wait $spid || true
	# (ip netns exec reports the signal that ended the server.)
	if grep -qv "^Terminated$" "$work/server.err"; then echo "FAIL: server"; cat "$work/server.err"; exit 1; fi
else
	wait $spid || { echo "FAIL: server"; cat "$work/server.err"; exit 1; }
fi
after=$(veth_bytes)
moved=$((after - before))

cat "$work/client.out" "$work/server.out"
echo "veth va: $moved bytes for $conns connections of $size bytes"

for who in client server; do
	# A killed client reported before any answer: only its bytes are compared.
	[ "$topo" = killed ] && [ $who = client ] && continue
	want=want_$who mode=want_mode_$who
	n=$(grep -c "^$who mode=${!mode} reason=${!want} len=$size " "$work/$who.out" || true)
	if [ $who = client ] && [ "$topo" = sidecarearly ]; then
		head -1 "$work/client.err" | grep -q "^connected $first\$" ||
			{ echo "FAIL: the first client was not $first as connect() returned"; fail=1; }
	fi
	if [ $who = client ] && [ -n "$first" ]; then
		head -1 "$work/client.out" | grep -q "^client $first len=$size " ||
			{ echo "FAIL: the first client was not $first"; fail=1; }
		n=$((n + 1))
	fi
	[ "$n" = $conns ] || { echo "FAIL: $who: $n of $conns connections in ${!mode} (${!want})"; fail=1; }
done
# Each connection's length and checksum, as the client sent them, counted by the server.
if ! diff <(awk '$2 ~ /^mode=/ {print $4, $5}' "$work/client.out" | sort) <(awk '{print $4, $5}' "$work/server.out" | sort); then
	echo "FAIL: the server counted other bytes than the clients sent"; fail=1
fi
if [ "$topo" = relisten ]; then
	# Each listener is another: a segment made toward the one before is not its.
	reused=$(sed -n 's/^client segments_reused=//p' "$work/client.out")
	[ "${reused:-x}" = 0 ] || { echo "FAIL: the client reused ${reused:-?} segments toward new listeners"; fail=1; }
fi
if [ "$topo" = reuse ]; then
	# The first connection makes the client's segment; each after it finds it free.
	reused=$(sed -n 's/^client segments_reused=//p' "$work/client.out")
	[ "${reused:-0}" -ge $((conns - 1)) ] ||
		{ echo "FAIL: the client reused ${reused:-no} segments in $conns connections"; fail=1; }
fi
if [ -n "$first" ]; then
	# The first connection's bytes over TCP, the others' in shared memory.
	[ "$moved" -ge "$size" ] && [ "$moved" -lt $((size + conns * size / 64)) ] ||
		{ echo "FAIL: $moved bytes crossed the veth"; fail=1; }
elif [ "$want_mode" = SMCD ]; then
	# Shared memory: the handshake and a few doorbells cross the veth, not the data.
	[ "$moved" -lt $((conns * size / 64)) ] || { echo "FAIL: $moved bytes crossed the veth"; fail=1; }
else
	[ "$moved" -ge $((conns * size)) ] || { echo "FAIL: only $moved bytes crossed the veth"; fail=1; }
fi
[ $fail = 0 ] && echo "PASS: $topo"
exit $fail
