#!/bin/sh
# SPDX-License-Identifier: MIT
#
# A binary upgrade in nginx's manner under usmc-run (listen_exec.c): the
# master's worker serves, the master execs a new master with the
# listener (USR2), old and new workers serve side by side, the old master
# quits (QUIT), the new workers serve alone.  Every connection of every
# phase is checked by length and checksum and must be in shared memory:
# its own TCP socket carries less than an eighth of its bytes
# (listen_adopt's client).
#
# usage: listen_exec.sh USMC_RUN LISTEN_EXEC LISTEN_ADOPT

SKIP=77
run=$1 prog=$2 client=$3
CONNS=8 SIZE=1048576

if [ -n "${USMC_PRELOAD_SKIP:-}" ]; then
	echo "skipped: $USMC_PRELOAD_SKIP"
	exit $SKIP
fi
tmp=$(mktemp -d) || exit 1
master= new=
trap '[ -n "$master" ] && kill "$master" 2>/dev/null; [ -n "$new" ] && kill "$new" 2>/dev/null; rm -rf "$tmp"' EXIT
export USMC_REGISTRY_DIR="$tmp/registry"
mkdir "$USMC_REGISTRY_DIR" || exit 1

wait_file() {
	for _ in $(seq 200); do
		[ -s "$1" ] && return 0
		sleep 0.05
	done
	echo "FAIL: $1 never came" >&2
	exit 1
}

phase() {
	if ! "$run" "$client" client "$tmp/port" $CONNS $SIZE --shm-after 0; then
		echo "FAIL: $1" >&2
		exit 1
	fi
	echo "ok: $1"
}

"$run" "$prog" master "$tmp/port" "$tmp/new.pid" &
master=$!
wait_file "$tmp/port"
phase "the master's worker"
kill -USR2 "$master"
wait_file "$tmp/new.pid"
new=$(cat "$tmp/new.pid")
phase "old and new workers side by side"
kill -QUIT "$master"
wait "$master" || { echo "FAIL: the old master exited $?" >&2; exit 1; }
master=
phase "the new master's worker alone, the old master gone"
kill -TERM "$new"
new=
# The new master closed the listener, and its own standard input is still open.
wait_file "$tmp/new.pid.closed"
echo "ok: the new master's close of the listener left its other descriptors alone"
