#!/bin/sh
# SPDX-License-Identifier: MIT
#
# A shared-memory connection inherited by a program that cannot load
# usmc-run's preload (a static binary): usmc ends the connection before
# the exec, so the program reads no byte (its read fails or sees EOF) and
# the peer sees the connection end, never doorbell bytes as data.  Both the
# vfork path (Python's subprocess) and fork + exec are covered.
# tests/exec_setuid.sh runs it on a set-user-ID program.
#
# usage: exec_static.sh BUILD_DIR CAT [WHAT]   (WHAT names CAT in the verdict)
set -u
[ -n "${USMC_PRELOAD_SKIP:-}" ] && { echo "skipped: $USMC_PRELOAD_SKIP"; exit 77; }
command -v python3 >/dev/null || { echo "skipped: no python3"; exit 77; }
here=$(cd "$(dirname "$0")" && pwd)
RUN=$1/tools/usmc-run
cat=$2
tmp=$(mktemp -d /tmp/usmc-static.XXXXXX) || exit 2
trap 'rm -rf "$tmp"' EXIT
export USMC_REGISTRY_DIR=$tmp/reg
mkdir -m 700 "$USMC_REGISTRY_DIR"

timeout -k 5 90 "$RUN" python3 "$here/exec_static.py" server "$tmp/port" "$cat" 2>"$tmp/server.err" &
server=$!
for _ in $(seq 1 100); do
	[ -s "$tmp/port" ] && break
	sleep 0.1
done
timeout -k 5 30 "$RUN" python3 "$here/exec_static.py" client "$(cat "$tmp/port")" >"$tmp/client" 2>&1
wait $server
cat "$tmp/client" "$tmp/server.err"
fail=0
[ "$(grep -c "^cat: read 0 bytes, then" "$tmp/server.err")" = 2 ] || fail=1
[ "$(grep -c "^client ([a-z]*): 0 bytes back, then" "$tmp/client")" = 2 ] || fail=1
# The peer sees the end as TCP shows a reset: an error, not a quiet EOF.
[ "$(grep -c "then \(ConnectionResetError\|BrokenPipeError\)" "$tmp/client")" = 2 ] || fail=1
what=${3:-static program}
[ $fail = 0 ] && echo "ok: both connections ended, no byte read by the $what" ||
	echo "FAIL: the $what or the peer saw bytes, or no error"
exit $fail
