#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Real programs, unmodified, measured two ways over loopback:
#   plain   server and client as they are: the kernel's TCP
#   usmc    server and client under usmc-run: shared memory
# Runs are interleaved (each round measures every figure plain, then under
# usmc) and each figure is the median of the rounds.  Under usmc every
# measurement has its own registry directory, and its counters (usmc-stat -s)
# must show shared-memory connections and no fallback, or the figure is
# marked "(fallback!)".
#
# usage: bench/programs.sh BUILD_DIR [PROGRAM...]
#   PROGRAM: iperf3 sockperf redis nginx nginx_conns nginx_shipped (default: all)
#   ROUNDS=3   rounds (the median is taken over them)
#   CONNS="10 100 1000"  nginx_conns's levels of concurrency
# The programs come from Debian's packages (iperf3 sockperf redis-server
# redis-tools nginx wrk); tests/programs/matrix.sh installs them.

set -u
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: programs.sh BUILD_DIR [PROGRAM...]}" && pwd) || exit 2
shift
RUN=$build/tools/usmc-run
STAT=$build/tools/usmc-stat
HELPER="python3 $here/../tests/programs/helper.py"
rounds=${ROUNDS:-3}
programs=${*:-iperf3 sockperf redis nginx nginx_conns nginx_shipped}
for t in "$RUN" "$STAT"; do
	[ -x "$t" ] || { echo "programs: $t is missing; build first" >&2; exit 2; }
done

work=$(mktemp -d /tmp/usmc-programs.XXXXXX) || exit 2
chmod 700 "$work"
spid=
cleanup() {
	stop_server
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- servers --------------------------------------------------------------

# start_server CMD...: under usmc-run in mode usmc, bounded to 120 s; waits
# until $port listens.
start_server() {
	local wrap=
	[ "$mode" = usmc ] && wrap=$RUN
	timeout -k 2 120 $wrap "$@" </dev/null >"$d/server.log" 2>&1 &
	spid=$!
	for _ in $(seq 200); do
		ss -Hltn "sport = :$port" 2>/dev/null | grep -q LISTEN && return 0
		kill -0 "$spid" 2>/dev/null || break
		sleep 0.05
	done
	echo "programs: server did not listen: $(tail -n 3 "$d/server.log")" >&2
	return 1
}

stop_server() {
	[ -n "$spid" ] || return 0
	kill "$spid" 2>/dev/null
	wait "$spid" 2>/dev/null
	spid=
}

# client CMD...: under usmc-run in mode usmc, bounded to 60 s.
client() {
	local wrap=
	[ "$mode" = usmc ] && wrap=$RUN
	timeout -k 2 60 $wrap "$@"
}

nginx_conf() {
	mkdir -p "$d/nginx" "$d/www"
	head -c 1024 /dev/urandom >"$d/www/1k"
	head -c 65536 /dev/urandom >"$d/www/64k"
	cat >"$d/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
env USMC_REGISTRY_DIR;
pid $d/nginx/nginx.pid;
error_log $d/nginx/error.log;
events { worker_connections 256; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $d/nginx/body;
    proxy_temp_path $d/nginx/proxy;
    fastcgi_temp_path $d/nginx/fastcgi;
    uwsgi_temp_path $d/nginx/uwsgi;
    scgi_temp_path $d/nginx/scgi;
    server {
        listen 127.0.0.1:$port;
        root $d/www;
    }
}
EOF
}

# ---- the measurements: each prints "NAME VALUE" lines ------------------------

# wrk_figures FILE NAME: NAME-rps, NAME-p99 (ms) and NAME-timeouts of a wrk --latency run.
wrk_figures() {
	python3 - "$1" "$2" <<'PYEOF'
import re, sys
text, name = open(sys.argv[1]).read(), sys.argv[2]
unit = {"us": 1e-3, "ms": 1.0, "s": 1e3}
rps = re.search(r"Requests/sec:\s*([0-9.]+)", text)
p99 = re.search(r"^\s*99%\s+([0-9.]+)(us|ms|s)\s*$", text, re.M)
tmo = re.search(r"timeout (\d+)", text)
if rps:
    print("%s-rps %s" % (name, rps.group(1)))
if p99:
    print("%s-p99 %.3f" % (name, float(p99.group(1)) * unit[p99.group(2)]))
print("%s-timeouts %s" % (name, tmo.group(1) if tmo else 0))
PYEOF
}

bench_iperf3() {
	local p
	for p in 1 4; do
		start_server iperf3 -s -1 -B 127.0.0.1 -p "$port" || return 1
		client iperf3 -c 127.0.0.1 -p "$port" -t 2 -P "$p" -J >"$d/iperf$p.json" 2>&1
		stop_server
		python3 -c 'import json, sys
print(sys.argv[2], json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e9)' \
			"$d/iperf$p.json" "iperf3-P$p" || return 1
		port=$($HELPER port)
	done
}

# Ping-pong runs 1 s: sockperf sizes its sequence numbers for a rate that
# 2 s of sub-microsecond round trips exceed (_seqN > m_maxSequenceNo).
bench_sockperf() {
	start_server sockperf server --tcp -i 127.0.0.1 -p "$port" || return 1
	client sockperf ping-pong --tcp -i 127.0.0.1 -p "$port" -t 1 -m 64 >"$d/pp.out" 2>&1
	client sockperf throughput --tcp -i 127.0.0.1 -p "$port" -t 2 -m 1024 >"$d/tp.out" 2>&1
	stop_server
	sed -n 's/.*Summary: Latency is \([0-9.]*\) usec.*/sockperf-pp-64B \1/p' "$d/pp.out"
	sed -n 's/.*Summary: Message Rate is \([0-9]*\) \[msg\/sec\].*/sockperf-tp-1KiB \1/p' "$d/tp.out"
}

bench_redis() {
	start_server redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
		--dir "$d" --protected-mode no || return 1
	client redis-benchmark -p "$port" -n 100000 -c 16 -d 64 -t set,get --csv >"$d/redis.out" 2>&1
	stop_server
	sed -n 's/^"\(SET\|GET\)","\([0-9.]*\)".*/redis-\1 \2/p' "$d/redis.out"
}

bench_nginx() {
	local f
	for f in 1k 64k; do
		nginx_conf
		start_server nginx -p "$d/nginx" -c "$d/nginx/nginx.conf" -e "$d/nginx/error.log" || return 1
		client wrk -t 2 -c 16 -d 2s "http://127.0.0.1:$port/$f" >"$d/wrk.out" 2>&1
		stop_server
		grep -qE 'Socket errors|Non-2xx' "$d/wrk.out" && echo "programs: $(grep -E 'Socket errors|Non-2xx' "$d/wrk.out")" >&2
		sed -n "s/^Requests\/sec: *\([0-9.]*\).*/nginx-wrk-$f \1/p" "$d/wrk.out"
		port=$($HELPER port)
	done
}

# nginx_level C NAME: nginx as $d/nginx/nginx.conf has it, wrk with C
# connections for 3 s, its figures as NAME (wrk_figures).
nginx_level() {
	start_server nginx -p "$d/nginx" -c "$d/nginx/nginx.conf" -e "$d/nginx/error.log" || return 1
	client wrk -t 2 -c "$1" -d 3s --timeout 2s --latency "http://127.0.0.1:$port/1k" >"$d/wrk$1.out" 2>&1
	stop_server
	wrk_figures "$d/wrk$1.out" "$2"
	port=$($HELPER port)
}

# Keep-alive at scale: wrk with CONNS connections (default 10 100 1000; add
# 10000 on a host with the memory), 1 KiB responses, 3 s each, one nginx
# worker as above with room for them.  Each level gives requests per
# second, the 99th percentile latency, and the requests that wrk's 2 s
# timeout ended.
bench_nginx_conns() {
	local c
	ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
	for c in ${CONNS:-10 100 1000}; do
		nginx_conf
		# Room past nginx's own margin: with a sixteenth of its connections
		# or fewer free, each accept closes idle keep-alive connections
		# (ngx_drain_connections), and at c + 64 a connection storm longer
		# than TCP's (10,000 under usmc) has wrk's closed and reopened.
		sed -i "s/worker_connections 256;/worker_connections $((c + c / 8 + 64));/; s/^worker_processes 1;/&\nworker_rlimit_nofile $((2 * c + 1024));/" \
			"$d/nginx/nginx.conf"
		nginx_level "$c" "nginx-c$c" || return 1
	done
}

# The same in the shape Debian ships nginx (/etc/nginx/nginx.conf): a
# master, worker_processes auto and worker_connections 768, workers as
# www-data, and the RLIMIT_NOFILE of 1,024 that systemd gives the
# service.  One worker with master_process off hides what a listener
# that several processes share costs.
bench_nginx_shipped() {
	local c
	ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
	# The workers, www-data, read the files and the registry's directory.
	chmod 755 "$work" "$d" "$d/reg"
	for c in ${CONNS:-10 100 1000}; do
		nginx_conf
		chmod -R a+rX "$d/www"
		sed -i "s/^master_process off;/master_process on;\nuser www-data;/; s/^worker_processes 1;/worker_processes auto;\nworker_rlimit_nofile 1024;/; s/worker_connections 256;/worker_connections 768;/" \
			"$d/nginx/nginx.conf"
		nginx_level "$c" "nginx-shipped-c$c" || return 1
	done
}

# measure PROGRAM: one round of it in $mode; appends to $work/results.
measure() {
	d=$work/$1-$mode-$round
	mkdir -p "$d/reg"
	chmod 700 "$d/reg"
	export USMC_REGISTRY_DIR=$d/reg
	port=$($HELPER port)
	local out
	out=$(bench_"$1")
	stop_server
	local conns fb sent recv tag=
	read -r conns fb sent recv _ < <($HELPER counters "$STAT")
	if [ "$mode" = usmc ] && { [ "$conns" -eq 0 ] || [ "$fb" -ne 0 ]; }; then
		tag="(fallback!)"
		echo "programs: $1 under usmc: $conns shared-memory connections, $fb fallbacks" >&2
	fi
	printf '%s\n' "$out" | while read -r name value; do
		[ -n "$name" ] && echo "$name $mode $value $tag" >>"$work/results"
	done
}

: >"$work/results"
for round in $(seq "$rounds"); do
	for prog in $programs; do
		for mode in plain usmc; do
			echo "round $round/$rounds: $prog $mode" >&2
			measure "$prog"
		done
	done
done

echo "== bench/programs.sh: median of $rounds interleaved rounds ($(uname -r), $(date -u +%Y-%m-%d))"
python3 - "$work/results" <<'EOF'
import statistics, sys
units = {"iperf3-P1": ("iperf3 -t 2, 1 stream", "Gbit/s", False),
         "iperf3-P4": ("iperf3 -t 2 -P 4", "Gbit/s", False),
         "sockperf-pp-64B": ("sockperf ping-pong -t 1 -m 64, latency", "us", True),
         "sockperf-tp-1KiB": ("sockperf throughput -t 2 -m 1024", "msg/s", False),
         "redis-SET": ("redis-benchmark -c 16 -d 64 SET", "req/s", False),
         "redis-GET": ("redis-benchmark -c 16 -d 64 GET", "req/s", False),
         "nginx-wrk-1k": ("wrk -t 2 -c 16 -d 2s, nginx 1 KiB", "req/s", False),
         "nginx-wrk-64k": ("wrk -t 2 -c 16 -d 2s, nginx 64 KiB", "req/s", False)}
for c in (10, 100, 1000, 10000):
    units["nginx-c%d-rps" % c] = ("wrk -c %d -d 3s, nginx 1 KiB keep-alive" % c, "req/s", False)
    units["nginx-c%d-p99" % c] = ("wrk -c %d, latency p99" % c, "ms", True)
    units["nginx-c%d-timeouts" % c] = ("wrk -c %d, requests past 2 s" % c, "requests", True)
for c in (10, 100, 1000, 10000):
    units["nginx-shipped-c%d-rps" % c] = ("wrk -c %d -d 3s, nginx as Debian ships it" % c, "req/s", False)
    units["nginx-shipped-c%d-p99" % c] = ("wrk -c %d, shipped, latency p99" % c, "ms", True)
    units["nginx-shipped-c%d-timeouts" % c] = ("wrk -c %d, shipped, requests past 2 s" % c, "requests", True)
runs, flagged = {}, set()
for line in open(sys.argv[1]):
    f = line.split()
    runs.setdefault(f[0], {}).setdefault(f[1], []).append(float(f[2]))
    if len(f) > 3:
        flagged.add(f[0])
print("| figure | unit | plain | usmc | usmc/plain |")
print("|---|---|---:|---:|---:|")
def fmt(v):
    return "%.3g" % v if v < 100 else "%.0f" % v
for name in units:
    if name not in runs:
        continue
    label, unit, lower = units[name]
    p = statistics.median(runs[name].get("plain", [0]))
    u = statistics.median(runs[name].get("usmc", [0]))
    spread = lambda m: "%s (%s-%s)" % (fmt(statistics.median(runs[name][m])), fmt(min(runs[name][m])),
                                        fmt(max(runs[name][m])))
    ratio = "x%.2f" % (u / p) if p else "-"
    if lower:
        label += " (lower is better)"
    if name in flagged:
        ratio += " (fallback!)"
    print("| %s | %s | %s | %s | %s |" % (label, unit, spread("plain"), spread("usmc"), ratio))
EOF
