#!/bin/bash
# SPDX-License-Identifier: MIT
# Shared memory between two docker containers through the rendezvous
# directory, bind-mounted into both: an unmodified echo server and client
# (preload_echo) under usmc-run, as nobody, each in a container made from
# a local debootstrap image (tests/docker_image.sh; never pulled).
#
#   docker.sh USMC_RUN PRELOAD_ECHO
#
# Rounds: "bridge", the client dials the server container's address on
# docker0; "published", the server's port 7411 is published as 8080 and
# the client dials the docker0 gateway's 8080, named in the directory's
# port map (usmc-nat).  Each checks the bytes (the client the echo's
# length and checksum, the server every byte), what each end's TCP
# connection carried (the kernel's TCP_INFO: next to nothing in shared
# memory) and the bytes on the client container's veth.  docker's
# userland proxy relays container-to-gateway connections itself (two TCP
# connections, a plain program between): then the published round checks
# that both ends fall back with their bytes intact.
# Exits 77, saying why, where docker cannot run.
set -euo pipefail

run=$(realpath "$1")
echo=$(realpath "$2")
image=${USMC_DOCKER_IMAGE:-usmc-debootstrap:bookworm}
size=${DOCKER_SIZE:-8388608}
port=7411
published=8080

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
command -v docker >/dev/null || { echo "SKIP: no docker command"; exit 77; }
if ! err=$(docker info 2>&1 >/dev/null); then
	echo "SKIP: no docker daemon: ${err//$'\n'/ }"
	exit 77
fi
docker image inspect "$image" >/dev/null 2>&1 ||
	{ echo "SKIP: no local image $image: make it with tests/docker_image.sh"; exit 77; }

# The build tree, mounted where it is: usmc-run finds its library beside it.
tree=$(cd "$(dirname "$run")/.." && pwd -P)
case $echo in "$tree"/*) ;; *) echo "FAIL: $echo is not under $tree"; exit 1 ;; esac
tag=usmc$$
work=$(mktemp -d)
rdv=$work/rdv
mkdir -m 1777 "$rdv"
cleanup() {
	docker rm -f "${tag}s" "${tag}c" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

# start NAME [docker run options]: a container that idles, for docker exec.
start() {
	local name=$1
	shift
	docker run -d --pull never --name "$name" -v "$rdv:/run/usmc" -v "$tree:$tree:ro" "$@" \
		"$image" sleep 300 >/dev/null
}
as_nobody() { docker exec -u 65534:65534 -e USMC_CLC_TIMEOUT_MS=1000 "$@"; }
veth_bytes() {
	docker exec "${tag}c" sh -c 'echo $(( $(cat /sys/class/net/eth0/statistics/rx_bytes) +
		$(cat /sys/class/net/eth0/statistics/tx_bytes) ))'
}
# carried WHO FILE: what that end's TCP connection carried, as it printed it.
carried() { sed -n "s/^$1: connection's TCP carried \([0-9]*\) bytes/\1/p" "$2"; }

fail=0
# round NAME ADDRESS PORT smc|tcp: one echo, the client dialling ADDRESS:PORT.
round() {
	local name=$1 dial=$2 dport=$3 want=$4 before moved spid who n
	as_nobody "${tag}s" "$run" "$echo" server --addr any --port $port --size "$size" \
		--loop epoll >"$work/server.out" 2>&1 &
	spid=$!
	for _ in $(seq 200); do
		ls "$rdv" | grep -q "^usmc-$port-" && break
		sleep 0.05
	done
	before=$(veth_bytes)
	as_nobody "${tag}c" "$run" "$echo" client --addr "$dial" --port "$dport" --size "$size" \
		>"$work/client.out" 2>&1 || { echo "FAIL: $name: client"; fail=1; }
	wait $spid || { echo "FAIL: $name: server"; fail=1; }
	moved=$(($(veth_bytes) - before))
	cat "$work/client.out" "$work/server.out"
	echo "$name: the client container's veth moved $moved bytes for $size echoed"
	grep -q "^client: $size bytes echoed" "$work/client.out" ||
		{ echo "FAIL: $name: the echo is not what the client sent"; fail=1; }
	grep -q "^server: echoed $size bytes, all as sent" "$work/server.out" ||
		{ echo "FAIL: $name: the server did not get what the client sent"; fail=1; }
	for who in client server; do
		n=$(carried $who "$work/$who.out")
		if [ "$want" = smc ] && [ "${n:-$size}" -ge $((size / 64)) ]; then
			echo "FAIL: $name: the $who's TCP carried ${n:-?} bytes: not shared memory"; fail=1
		# (The echo's tail may be unacknowledged yet when an end counts: one way at least.)
		elif [ "$want" = tcp ] && [ "${n:-0}" -lt "$size" ]; then
			echo "FAIL: $name: the $who's TCP carried ${n:-?} bytes, not the stream"; fail=1
		fi
	done
	if [ "$want" = smc ] && [ "$moved" -ge $((size / 32)) ]; then
		echo "FAIL: $name: $moved bytes crossed the veth"; fail=1
	fi
}

start "${tag}s" -p "$published:$port"
start "${tag}c"
server_ip=$(docker inspect -f '{{.NetworkSettings.IPAddress}}' "${tag}s")
gateway=$(docker inspect -f '{{.NetworkSettings.Gateway}}' "${tag}s")
round bridge "$server_ip" $port smc

# docker -p: the operator's port map, root's, for every container that sees the directory.
echo "$gateway:$published=$port" >"$rdv/usmc-nat"
if pgrep -f "docker-proxy .*-host-port $published( |$)" >/dev/null; then
	echo "published: docker's userland proxy relays the connection: both ends TCP"
	round published "$gateway" $published tcp
else
	round published "$gateway" $published smc
fi
[ $fail = 0 ] && echo "PASS: docker"
exit $fail
