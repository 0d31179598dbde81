#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Execs the kernel runs in secure-execution mode (AT_SECURE), under
# usmc-run: the loader ignores LD_PRELOAD's path there, so usmc does not
# run in the new image, and counts each such exec (usmc-stat -s,
# exec_secure), never one that is not.  The exec itself runs as it would
# without usmc.  A usmc listener handed through such an exec is plain TCP
# to the new image: a usmc client falls back at once (no CLC timeout, no
# timer's look) and its bytes come back intact (listen_adopt's client
# checks length and checksum).
#
# usage: exec_secure.sh USMC_RUN USMC_STAT EXEC_SECURE LISTEN_ADOPT

SKIP=77
run=$1 stat=$2 prog=$3 adopt=$4

if [ -n "${USMC_PRELOAD_SKIP:-}" ]; then
	echo "skipped: $USMC_PRELOAD_SKIP"
	exit $SKIP
fi
[ "$(id -u)" = 0 ] || { echo "skipped: needs root (setresuid, a set-user-ID file)"; exit $SKIP; }
tmp=$(mktemp -d) || exit 1
server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
export USMC_REGISTRY_DIR="$tmp/registry"
mkdir -m 700 "$USMC_REGISTRY_DIR" || exit 1
fail=0

counter() {
	"$stat" -s --json 2>/dev/null | sed -n "s/.*\"$1\": \([0-9]*\).*/\1/p" | grep . || echo 0
}

# expect N WHAT: the count of secure execs is N after WHAT.
expect() {
	got=$(counter exec_secure)
	if [ "$got" = "$1" ]; then
		echo "ok: $2: exec_secure $got"
	else
		echo "FAIL: $2: exec_secure $got, not $1"
		fail=1
	fi
}

"$run" "$prog" none "$prog" none || fail=1
expect 0 "an exec with the same ids"
"$run" "$prog" uid || fail=1
expect 0 "ids changed, no exec"
out=$("$run" "$prog" uid id -ru)
[ "$out" = 65534 ] || { echo "FAIL: the exec ran with real user '$out', not 65534"; fail=1; }
expect 1 "an exec with real user nobody, effective root"
"$run" "$prog" gid true || fail=1
expect 2 "an exec with real group nogroup, effective root's"
cp "$prog" "$tmp/setuid" && chown 65534 "$tmp/setuid" && chmod 4755 "$tmp/setuid" || exit 1
if findmnt -no OPTIONS -T "$tmp" 2>/dev/null | grep -qw nosuid; then
	echo "skipped: $tmp is mounted nosuid: no set-user-ID exec"
	n=2
else
	out=$("$run" "$prog" none "$tmp/setuid" none id -u)
	[ "$out" = 65534 ] || { echo "FAIL: the set-user-ID exec ran as '$out', not 65534"; fail=1; }
	n=3
	expect $n "an exec of a file set-user-ID to nobody"
fi

# A usmc listener (made by activate, handed to exec_secure by a plain exec)
# handed on through a secure exec to a server that runs without usmc.
"$run" "$adopt" activate "$tmp/port" "$prog" uid "$adopt" server 1 blocking >"$tmp/server" 2>&1 &
server=$!
for _ in $(seq 200); do
	[ -s "$tmp/port" ] && break
	sleep 0.05
done
if ! timeout -k 5 30 "$run" "$adopt" client "$tmp/port" 1 1048576; then
	echo "FAIL: the client through the listener of a secure exec"
	fail=1
fi
wait "$server" || { echo "FAIL: the server exited $?: $(cat "$tmp/server")"; fail=1; }
server=
n=$((n + 1))
expect $n "a listener handed through a secure exec"
timer=$(counter handshake_timer_wakeups) fb=$(counter fallbacks) shm=$(counter smcd_connections)
if [ "$timer" = 0 ] && [ "$fb" = 1 ] && [ "$shm" = 0 ]; then
	echo "ok: the client fell back at once: 1 fallback, no timer's look"
else
	echo "FAIL: the client: $fb fallbacks, $shm shared-memory connections, $timer handshakes a timer settled"
	"$stat" -s
	fail=1
fi
exit $fail
