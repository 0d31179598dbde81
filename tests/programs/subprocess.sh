#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Python's subprocess.Popen(argv, stdin=conn, stdout=conn) under usmc-run
# (tests/programs/subprocess_echo.py): cat, sh -c cat (dash, which starts
# cat with its own vfork) and cat without close_fds, each echoing 4 MiB on
# a shared-memory connection.  Python 3.11 starts children with vfork and
# execve.  Ok when every echo is equal, every child exits 0, and the
# counters of the run's own registry show the connections in shared
# memory with no fallback.
#
# usage: tests/programs/subprocess.sh BUILD_DIR
# Exit status: 0 ok, 1 failed, 77 skipped (no python3, USMC_MATRIX_SKIP).

set -u
if [ -n "${USMC_MATRIX_SKIP:-}" ]; then
	echo "skipped: $USMC_MATRIX_SKIP"
	exit 77
fi
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: subprocess.sh BUILD_DIR}" && pwd)
RUN=$build/tools/usmc-run
STAT=$build/tools/usmc-stat
command -v python3 >/dev/null || { echo "skipped: no python3"; exit 77; }

tmp=$(mktemp -d /tmp/usmc-subprocess.XXXXXX) || exit 2
server=""
cleanup() {
	[ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
export USMC_REGISTRY_DIR=$tmp/reg
mkdir -m 700 "$USMC_REGISTRY_DIR"

"$RUN" python3 "$here/subprocess_echo.py" server "$tmp/port" &
server=$!
for _ in $(seq 1 100); do
	[ -s "$tmp/port" ] && break
	sleep 0.1
done
[ -s "$tmp/port" ] || { echo "FAIL: the server did not start"; exit 1; }
timeout 120 "$RUN" python3 "$here/subprocess_echo.py" client "$(cat "$tmp/port")"
crc=$?
# A client that failed leaves the server waiting for its next connection.
timeout 60 tail --pid="$server" -f /dev/null || kill "$server" 2>/dev/null
wait "$server"
src=$?
server=""
stats=$("$STAT" -s --json 2>/dev/null)
counter() {
	v=$(printf '%s\n' "$stats" | sed -n "s/.*\"$1\": \([0-9]*\).*/\1/p")
	echo "${v:-0}"
}
smcd=$(counter smcd_connections) sent=$(counter bytes_sent) fb=$(counter fallbacks)
path="$smcd shared-memory connection ends, $sent bytes through shared memory, $fb fallbacks"
if [ $crc != 0 ] || [ $src != 0 ]; then
	echo "FAIL: client exited $crc, server $src ($path)"
	exit 1
fi
if [ "$smcd" -lt 6 ] || [ "$sent" -eq 0 ] || [ "$fb" -ne 0 ]; then
	echo "FAIL: not through shared memory ($path)"
	exit 1
fi
echo "ok: three children echoed 4 MiB each; $path"
