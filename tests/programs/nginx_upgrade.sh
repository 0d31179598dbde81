#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# nginx's binary upgrade under load, under usmc-run: nginx in the shape of
# Debian's nginx.conf (daemon, master and `worker_processes auto` workers
# as www-data, sendfile on, tcp_nopush on), clients under usmc-run fetching
# a file again and again; USR2 makes the master exec a new master with the
# listener, QUIT then ends the old master and its workers.  No request may
# fail (every body checked by sha256), no connection may fall back to TCP
# (the counters of the test's own registry), and after the upgrade a
# connection is still in shared memory: usmc-stat shows it SMCD in a
# worker of the new master.
#
# usage: tests/programs/nginx_upgrade.sh BUILD_DIR
# Exit status: 0 ok, 1 a check failed, 77 skipped (nginx or curl missing,
# or USMC_MATRIX_SKIP says why).
set -u
# shellcheck source=nginx_shipped_conf.sh
. "$(dirname "$0")/nginx_shipped_conf.sh"
# shellcheck source=held_get.sh
. "$(dirname "$0")/held_get.sh"
if [ -n "${USMC_MATRIX_SKIP:-}" ]; then
	echo "skipped: $USMC_MATRIX_SKIP"
	exit 77
fi
build=$(cd "${1:?usage: nginx_upgrade.sh BUILD_DIR}" && pwd)
RUN=$build/tools/usmc-run STAT=$build/tools/usmc-stat
# Installed as nginx_shipped.sh installs them, so that a fresh machine runs this too.
for p in nginx curl; do
	if ! command -v "$p" >/dev/null && [ ! -x "/usr/sbin/$p" ] && [ "$(id -u)" -eq 0 ] &&
		[ "${MATRIX_INSTALL:-1}" != 0 ]; then
		timeout 300 apt-get update -qq >/dev/null 2>&1
		DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq \
			--no-install-recommends nginx curl >/dev/null 2>&1
	fi
	command -v "$p" >/dev/null || [ -x "/usr/sbin/$p" ] || { echo "skipped: $p is not installed"; exit 77; }
done

d=$(mktemp -d /tmp/usmc-nginx-upgrade.XXXXXX) || exit 2
chmod 755 "$d"
n=$d/nginx
mkdir -p "$n" "$d/www" "$d/reg"
chmod 1777 "$d/reg"
export USMC_REGISTRY_DIR=$d/reg
cleanup() {
	local p
	for p in "$n/nginx.pid" "$n/nginx.pid.oldbin"; do
		[ -s "$p" ] && kill -TERM "$(cat "$p")" 2>/dev/null
	done
	sleep 0.3
	rm -rf "$d"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	tail -n 5 "$n/error.log" >&2
	exit 1
}

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
head -c $((4 << 20)) /dev/urandom >"$d/www/blob"
chmod -R a+rX "$d/www"
sum=$(sha256sum <"$d/www/blob" | cut -d' ' -f1)
nginx_shipped_conf "$n" on "	server {
		listen $port default_server;
		root $d/www;
	}"

# load N OUT: N GETs one after the other, each checked; "ok bad" into OUT.
load() {
	local i ok=0 bad=0 s
	for i in $(seq "$1"); do
		s=$("$RUN" curl -sS --max-time 20 "http://127.0.0.1:$port/blob" | sha256sum | cut -d' ' -f1)
		if [ "$s" = "$sum" ]; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
	done
	echo "$ok $bad" >"$2"
}

# The binary nginx execs at USR2 is the one it was started as: a full path.
"$RUN" /usr/sbin/nginx -p "$n" -c "$n/nginx.conf" -e "$n/error.log" || fail "nginx did not start"
# Probed under usmc-run too: a plain client's connection counts a fallback
# in the master's counters, which its workers share.
for _ in $(seq 100); do
	[ -s "$n/nginx.pid" ] && "$RUN" curl -s -o /dev/null "http://127.0.0.1:$port/blob" && break
	sleep 0.05
done
old=$(cat "$n/nginx.pid") || fail "no pid file"
load 60 "$d/load1" &
loader=$!
sleep 0.5
kill -USR2 "$old"
# The old master renames its pid file; the new one writes its own after.
new=
for _ in $(seq 200); do
	[ -s "$n/nginx.pid.oldbin" ] && [ -s "$n/nginx.pid" ] && new=$(cat "$n/nginx.pid" 2>/dev/null)
	[ -n "$new" ] && [ "$new" != "$old" ] && break
	sleep 0.05
done
[ -n "$new" ] && [ "$new" != "$old" ] || fail "no new master after USR2"
sleep 0.5
kill -QUIT "$old"
wait "$loader"
read -r ok bad <"$d/load1"
echo "during the upgrade: $ok GETs whole, $bad failed (old master $old, new $new)"
[ "$bad" = 0 ] || fail "$bad GETs failed during the upgrade"
for _ in $(seq 100); do
	kill -0 "$old" 2>/dev/null || break
	sleep 0.05
done
kill -0 "$old" 2>/dev/null && fail "the old master did not quit"
# After it: a GET held open for usmc-stat to see (held_get: its reader
# waits 2 s after the first byte), and more load.
held_get "sleep 2" "$d/slow" "$RUN" curl -sS "http://127.0.0.1:$port/blob" &
slow=$!
seen=
# Looked at for as long as the GET lasts, not a fixed number of times;
# on a failure, the counters and the last look say what there was.
while kill -0 "$slow" 2>/dev/null; do
	"$STAT" >"$d/stat.last" 2>&1
	seen=$(awk -v p="$port" '$2 == "nginx" && $4 == "ESTAB" && $5 ~ ":"p"$" && $7 == "SMCD"' "$d/stat.last")
	[ -n "$seen" ] && break
	sleep 0.1
done
wait "$slow" || fail "the GET after the upgrade failed"
[ "$(sha256sum <"$d/slow" | cut -d' ' -f1)" = "$sum" ] || fail "the GET after the upgrade is not the file"
if [ -z "$seen" ]; then
	"$STAT" -s 2>&1 | sed -n '/fallbacks by reason/,$p'
	echo "usmc-stat's last look during the GET:"
	awk -v p="$port" 'NR == 1 || $5 ~ ":"p"$" || $6 ~ ":"p"$"' "$d/stat.last"
	fail "no connection of the new master's workers in shared memory"
fi
load 20 "$d/load2"
read -r ok bad <"$d/load2"
[ "$bad" = 0 ] || fail "$bad GETs failed after the upgrade"
fallbacks=$("$STAT" -s --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["counters"]["fallbacks"])')
[ "$fallbacks" = 0 ] || fail "$fallbacks connections fell back to TCP: $("$STAT" -s | sed -n '/fallbacks by/,$p' | tr '\n' ' ')"
echo "after: $seen"
echo "ok: nginx binary upgrade under load, no GET failed, no fallback, shared memory after"
