#!/bin/sh
# SPDX-License-Identifier: MIT
#
# A shared-memory connection inherited by a dynamic program set-user-ID to
# another user: the kernel runs its exec in secure-execution mode, and the
# loader ignores usmc-run's preload (a path with a slash).  usmc ends the
# connection before the exec, as for a static program (exec_static.sh):
# the program reads no byte and the peer sees an error, never doorbell
# bytes as data.  Through vfork (Python's subprocess) and fork + exec.
#
# usage: exec_setuid.sh BUILD_DIR DYNAMIC_CAT
set -u
[ -n "${USMC_PRELOAD_SKIP:-}" ] && { echo "skipped: $USMC_PRELOAD_SKIP"; exit 77; }
command -v python3 >/dev/null || { echo "skipped: no python3"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "skipped: needs root (a file set-user-ID to nobody)"; exit 77; }
here=$(cd "$(dirname "$0")" && pwd)
RUN=$1/tools/usmc-run
tmp=$(mktemp -d /tmp/usmc-setuid.XXXXXX) || exit 2
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
if findmnt -no OPTIONS -T "$tmp" 2>/dev/null | grep -qw nosuid; then
	echo "skipped: $tmp is mounted nosuid: no set-user-ID exec"
	exit 77
fi
cat=$tmp/setuid-cat
cp "$2" "$cat" && chown 65534 "$cat" && chmod 4755 "$cat" || exit 2
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
[ "$(grep -c "then \(ConnectionResetError\|BrokenPipeError\)" "$tmp/client")" = 2 ] || fail=1
[ $fail = 0 ] && echo "ok: both connections ended, no byte read by the set-user-ID program" ||
	echo "FAIL: the set-user-ID program or the peer saw bytes, or no error"
exit $fail
