#!/bin/sh
# SPDX-License-Identifier: MIT
#
# A listener given at exec, as systemd socket activation gives it
# (listen_adopt.c): the server under usmc-run, which did not make the
# listener, must still get shared memory with usmc-run clients, from the
# connection after its first accept on; plain clients, and usmc-run
# clients of a plain server, stay TCP.  Every connection is checked by
# length and checksum, its path by what its own TCP socket carried.
#
# usage: listen_adopt.sh USMC_RUN LISTEN_ADOPT blocking|poll

SKIP=77
run=$1 prog=$2 loop=$3
CONNS=6 SIZE=1048576

if [ -n "${USMC_PRELOAD_SKIP:-}" ]; then
	echo "skipped: $USMC_PRELOAD_SKIP"
	exit $SKIP
fi
tmp=$(mktemp -d) || exit 1
server_pid=
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$tmp"' EXIT
# A registry of its own: no other test's listener on a reused port.
export USMC_REGISTRY_DIR="$tmp/registry"
mkdir "$USMC_REGISTRY_DIR" || exit 1

# way SERVER CLIENT [--shm-after K]: SERVER and CLIENT are "usmc" or "plain".
way() {
	server=$1 client=$2
	shift 2
	rm -f "$tmp/port"
	if [ "$server" = usmc ]; then
		"$prog" activate "$tmp/port" "$run" "$prog" server $CONNS "$loop" &
	else
		"$prog" activate "$tmp/port" "$prog" server $CONNS "$loop" &
	fi
	server_pid=$!
	for _ in $(seq 100); do
		[ -s "$tmp/port" ] && break
		sleep 0.05
	done
	if [ "$client" = usmc ]; then
		"$run" "$prog" client "$tmp/port" $CONNS $SIZE "$@"
	else
		"$prog" client "$tmp/port" $CONNS $SIZE "$@"
	fi
	client_rc=$?
	wait "$server_pid"
	server_rc=$?
	server_pid=
	if [ $client_rc != 0 ] || [ $server_rc != 0 ]; then
		echo "FAIL: server $server, client $client: client exited $client_rc, server $server_rc" >&2
		exit 1
	fi
	echo "ok: server $server, client $client"
}

way usmc usmc --shm-after 1
way usmc plain
way plain usmc

# The real thing: systemd-socket-activate listens, and execs the server at
# the first connection, with the environment it is told to pass on.
if ! command -v systemd-socket-activate >/dev/null; then
	echo "FAIL: systemd-socket-activate is missing (Debian package systemd)" >&2
	exit 1
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
systemd-socket-activate -E USMC_REGISTRY_DIR -l "127.0.0.1:$port" \
	"$run" "$prog" server $CONNS "$loop" 2>"$tmp/activate.err" &
server_pid=$!
for _ in $(seq 100); do
	grep -q "^Listening on" "$tmp/activate.err" && break
	sleep 0.05
done
echo "$port" >"$tmp/port"
"$run" "$prog" client "$tmp/port" $CONNS $SIZE --shm-after 1
client_rc=$?
wait "$server_pid"
server_rc=$?
server_pid=
if [ $client_rc != 0 ] || [ $server_rc != 0 ]; then
	cat "$tmp/activate.err" >&2
	echo "FAIL: systemd-socket-activate: client exited $client_rc, server $server_rc" >&2
	exit 1
fi
echo "ok: systemd-socket-activate, server and client usmc"
