#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# nginx as Debian ships it, under usmc-run, served to plain clients.
#
# The configuration has the shape of Debian's /etc/nginx/nginx.conf and
# sites-available/default: a master and `worker_processes auto` workers
# (as www-data when run as root), `sendfile on`, `tcp_nopush on`, gzip,
# the default listen on every address, IPv4 and IPv6; only the paths and
# the port are the test's.  The clients are a plain curl (the connection is
# TCP, and nginx's sendfile meets a socket usmc leaves to the kernel) and a
# curl under usmc-run.  Each request's bytes are checked by sha256: whole
# files of 1 byte, 100 kB and 16 MiB, a byte range (sendfile at an offset),
# four clients at once, and a client after them all (a worker that spins
# would leave it waiting).  The workers must have libusmc-preload mapped:
# they did run under usmc.
#
# usage: tests/programs/nginx_shipped.sh BUILD_DIR
# Exit status: 0 ok, 1 a check failed, 77 skipped (nginx or curl missing,
# or USMC_MATRIX_SKIP says why).
set -u
if [ -n "${USMC_MATRIX_SKIP:-}" ]; then
	echo "skipped: $USMC_MATRIX_SKIP"
	exit 77
fi
build=$(cd "${1:?usage: nginx_shipped.sh BUILD_DIR}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
RUN=$build/tools/usmc-run
for p in nginx curl; do
	if ! command -v "$p" >/dev/null && [ "$(id -u)" -eq 0 ] && [ "${MATRIX_INSTALL:-1}" != 0 ]; then
		timeout 300 apt-get update -qq >/dev/null 2>&1
		DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq \
			--no-install-recommends nginx curl >/dev/null 2>&1
	fi
	command -v "$p" >/dev/null || { echo "skipped: $p is not installed"; exit 77; }
done
PATH=$PATH:/usr/sbin

d=$(mktemp -d /tmp/usmc-nginx.XXXXXX) || exit 2
chmod 755 "$d"
master=
workers=
cleanup() {
	local p
	for p in $master $workers; do
		kill "$p" 2>/dev/null
	done
	for _ in $(seq 50); do
		[ -n "$master" ] && kill -0 "$master" 2>/dev/null || break
		sleep 0.1
	done
	# A worker that spins never reads its signal: it gets the KILL.
	for p in $master $workers; do
		kill -9 "$p" 2>/dev/null
	done
	rm -rf "$d"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(python3 "$here/helper.py" port)
mkdir -p "$d/www" "$d/got"
python3 "$here/helper.py" wwwfile "$d/www/one.bin" 1 1
python3 "$here/helper.py" wwwfile "$d/www/small.bin" 100000 2
python3 "$here/helper.py" wwwfile "$d/www/big.bin" $((16 << 20)) 3
echo '<html><body>usmc</body></html>' >"$d/www/index.html"
chmod -R a+rX "$d/www"

# shellcheck source=nginx_shipped_conf.sh
. "$here/nginx_shipped_conf.sh"
nginx_shipped_conf "$d" on "$(nginx_default_site "$port" "$d/www")"

failed=0
fail() {
	echo "FAIL: $*"
	failed=1
}

# As systemd starts it: the master daemonizes and writes its pid file.
timeout 30 "$RUN" nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log" ||
	{ echo "FAIL: nginx did not start: $(tail -n 3 "$d/error.log")"; exit 1; }
for _ in $(seq 100); do
	[ -s "$d/nginx.pid" ] && break
	sleep 0.1
done
master=$(cat "$d/nginx.pid" 2>/dev/null)
[ -n "$master" ] || { echo "FAIL: no pid file: $(tail -n 3 "$d/error.log")"; exit 1; }
# The master writes its pid file before it forks its workers.
for _ in $(seq 100); do
	workers=$(pgrep -P "$master" | tr '\n' ' ')
	[ -n "$workers" ] && break
	sleep 0.1
done
[ -n "$workers" ] || fail "the master has no workers"
for w in $workers; do
	grep -q libusmc-preload /proc/"$w"/maps 2>/dev/null || fail "worker $w does not run under usmc-run"
done
echo "nginx master $master, workers: $workers(listen $port, sendfile on)"

# get WHO URL NAME [curl options]: fetches URL into got/NAME, bounded.
get() {
	local who=$1 url=$2 name=$3
	shift 3
	local pre=
	[ "$who" = usmc ] && pre=$RUN
	$pre curl -sS --fail --max-time 30 "$@" -o "$d/got/$name" "$url" 2>"$d/got/$name.err"
	case $? in
	0) return 0 ;;
	28) # a server that does not answer in 30 s will not: stop here
		fail "$who curl $url: $(cat "$d/got/$name.err")"
		exit 1 ;;
	*) fail "$who curl $url: $(cat "$d/got/$name.err")"; return 1 ;;
	esac
}

# same WANT NAME WHAT: the bytes fetched into got/NAME are those of the file WANT.
same() {
	local a b
	a=$(sha256sum <"$1" | cut -d' ' -f1)
	b=$(sha256sum <"$d/got/$2" 2>/dev/null | cut -d' ' -f1)
	if [ "$a" = "$b" ]; then
		echo "ok   $3: $(stat -c %s "$1") bytes, sha256 equal"
	else
		fail "$3: $(stat -c %s "$d/got/$2" 2>/dev/null || echo no) bytes, sha256 differs"
	fi
}

for _ in $(seq 100); do
	ss -Hltn "sport = :$port" 2>/dev/null | grep -q LISTEN && break
	sleep 0.1
done

for who in plain usmc; do
	base=http://127.0.0.1:$port
	for f in one small big; do
		get "$who" "$base/$f.bin" "$who-$f" && same "$d/www/$f.bin" "$who-$f" "$who curl GET /$f.bin"
	done
	get "$who" "http://[::1]:$port/big.bin" "$who-big6" &&
		same "$d/www/big.bin" "$who-big6" "$who curl GET /big.bin over IPv6"
	get "$who" "$base/" "$who-index" && same "$d/www/index.html" "$who-index" "$who curl GET /"
	# A range: nginx sends the file from an offset.
	tail -c +1001 "$d/www/big.bin" | head -c 2000000 >"$d/range"
	get "$who" "$base/big.bin" "$who-range" -r 1000-2000999 &&
		same "$d/range" "$who-range" "$who curl GET /big.bin bytes 1000-2000999"
	# Four clients at once, then one more.
	pids=()
	for i in 1 2 3 4; do
		get "$who" "$base/big.bin" "$who-many$i" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do
		wait "$p"
	done
	for i in 1 2 3 4; do
		same "$d/www/big.bin" "$who-many$i" "$who curl #$i of four at once"
	done
	get "$who" "$base/small.bin" "$who-after" && same "$d/www/small.bin" "$who-after" "$who curl after them"
done

# No worker may be left spinning: each is asleep in its event loop.
sleep 0.5
for w in $(pgrep -P "$master"); do
	state=$(awk '{ print $3 }' /proc/"$w"/stat 2>/dev/null)
	[ "$state" = R ] && sleep 1 && state=$(awk '{ print $3 }' /proc/"$w"/stat 2>/dev/null)
	[ "$state" = R ] && fail "worker $w is still running with no client"
done
[ $failed = 0 ] && echo "nginx as shipped under usmc-run: every answer right"
[ $failed = 0 ] || { echo "--- error.log:"; tail -n 10 "$d/error.log"; }
exit $failed
