# SPDX-License-Identifier: MIT
#
# The first programs of the matrix (sourced by matrix.sh): HTTP, key-value
# stores, benchmarks and TLS.  Each case runs with $mode, $d (its directory)
# and $port, and leaves $note (what it checked, or why it failed).


www() {
	mkdir -p "$d/www"
	$HELPER wwwfile "$d/www/blob" $((16 << 20)) 1
}

case_python_http() {
	www
	start_server python3 -m http.server --bind 127.0.0.1 --directory "$d/www" "$port" || return 1
	# Held open until the sampler has looked (held_get), to be seen.
	with_sampler held_get sampler_looked "$d/got" client curl -sS --fail \
		"http://127.0.0.1:$port/blob" 2>"$d/client.log" || fail "curl: $(cat "$d/client.log")" || return 1
	same_file "$d/www/blob" "$d/got" "GET /blob" || return 1
	note="GET of 16 MiB, sha256 equal"
}

# shellcheck source=nginx_shipped_conf.sh
. "$here/nginx_shipped_conf.sh"

# nginx in the shape of Debian's nginx.conf (nginx_shipped_conf: a master
# and `worker_processes auto` workers as www-data, sendfile on, tcp_nopush
# on, gzip, the package's mime types and access log) with a server in the
# shape of its sites-available/default: the default listen on IPv4 and
# IPv6, the row's port and document root.  In the foreground (daemon off,
# as nginx-shipped), and told to keep USMC_REGISTRY_DIR, which it clears.
start_nginx() {
	local n=$d/nginx
	mkdir -p "$n"
	www
	$HELPER wwwfile "$d/www/small" 65536 2
	chmod -R a+rX "$d/www"
	nginx_shipped_conf "$n" off "$(nginx_default_site "$port" "$d/www")"
	# The workers, as www-data, write their registry and counters here.
	chmod 1777 "$d/reg"
	row_users=www-data
	start_server nginx -p "$n" -c "$n/nginx.conf" -e "$n/error.log"
}

case_nginx_curl() {
	start_nginx || return 1
	# Three requests on one kept-alive connection, the last (to stdout)
	# held open until the sampler has looked (held_get).
	with_sampler held_get sampler_looked "$d/got3" client curl -sS --fail \
		-o "$d/got1" "http://127.0.0.1:$port/blob" -o "$d/got2" "http://127.0.0.1:$port/blob" \
		"http://127.0.0.1:$port/blob" 2>"$d/client.log" || fail "curl: $(cat "$d/client.log")" || return 1
	for i in 1 2 3; do
		same_file "$d/www/blob" "$d/got$i" "GET /blob #$i" || return 1
	done
	note="3 GETs of 16 MiB on one connection, sha256 equal"
}

case_nginx_wrk() {
	start_nginx || return 1
	cat >"$d/check.lua" <<EOF
local f = io.open("$d/www/small", "rb")
local expected = f:read("*a")
f:close()
good, bad = 0, 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
function response(status, headers, body)
    if status == 200 and body == expected then good = good + 1 else bad = bad + 1 end
end
function done(summary, latency, requests)
    local g, b = 0, 0
    for _, t in ipairs(threads) do g = g + t:get("good"); b = b + t:get("bad") end
    io.write(string.format("checked: %d equal, %d different\n", g, b))
end
EOF
	with_sampler wrk_work || return 1
	same_file "$d/www/blob" "$d/held" "GET /blob beside wrk" || return 1
	local good bad
	read -r good bad < <(sed -n 's/^checked: \([0-9]*\) equal, \([0-9]*\) different/\1 \2/p' "$d/wrk.out")
	[ -n "$good" ] || fail "wrk: no check line: $(tr '\n' ' ' <"$d/wrk.out")" || return 1
	grep -qE 'Socket errors|Non-2xx' "$d/wrk.out" &&
		{ fail "wrk: $(grep -E 'Socket errors|Non-2xx' "$d/wrk.out")"; return 1; }
	[ "$good" -gt 0 ] && [ "$bad" -eq 0 ] || fail "wrk: $good bodies equal, $bad different" || return 1
	note="wrk 1 s, 8 connections: $good responses of 64 KiB, all equal; a GET of 16 MiB beside, sha256 equal"
}

# wrk_work: wrk, and beside it a GET of www/blob held open until the
# sampler has looked (held_get): wrk's connections live a second, which
# may all pass between two looks of a loaded machine's sampler.
wrk_work() {
	# Beside wrk, not before it: its hold is no time to take off wrk's.
	HELD_ACCOUNT= held_get sampler_looked "$d/held" client curl -sS --fail "http://127.0.0.1:$port/blob" \
		2>"$d/held.log" &
	local held=$! rc=0
	client wrk -t 2 -c 8 -d 1s -s "$d/check.lua" "http://127.0.0.1:$port/small" >"$d/wrk.out" 2>&1 ||
		fail "wrk: $(tail -n 3 "$d/wrk.out")" || rc=1
	wait "$held" || fail "curl beside wrk: $(cat "$d/held.log")" || rc=1
	return $rc
}

start_redis() {
	start_server redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
		--dir "$d" --protected-mode no
}

case_redis_cli() {
	start_redis || return 1
	# A 4 MiB value through -x, then read back ten times on one connection
	# held open a second; and 1000 small keys through a pipe.
	$HELPER wwwfile "$d/raw" $((3 << 20)) 3
	base64 -w0 <"$d/raw" >"$d/value"
	client redis-cli -p "$port" -x SET blob <"$d/value" >"$d/set.out" 2>&1 &&
		grep -qx OK "$d/set.out" || fail "SET blob: $(cat "$d/set.out")" || return 1
	with_sampler client redis-cli -p "$port" -r 10 -i 0.1 --raw GET blob >"$d/get.out" 2>&1 ||
		fail "GET blob: $(head -c 200 "$d/get.out")" || return 1
	for _ in $(seq 10); do cat "$d/value"; echo; done >"$d/get.want"
	same_file "$d/get.want" "$d/get.out" "10 x GET blob" || return 1
	for i in $(seq 1000); do echo "SET key:$i value-$i-$RANDOM$RANDOM"; done >"$d/cmds"
	sed -n 's/^SET \([^ ]*\) .*/GET \1/p' "$d/cmds" >>"$d/cmds"
	{ for i in $(seq 1000); do echo OK; done; sed -n 's/^SET [^ ]* //p' "$d/cmds"; } >"$d/cmds.want"
	client redis-cli -p "$port" <"$d/cmds" >"$d/cmds.out" 2>&1 ||
		fail "redis-cli pipe: $(head -n 3 "$d/cmds.out")" || return 1
	same_file "$d/cmds.want" "$d/cmds.out" "1000 SET + 1000 GET" || return 1
	note="SET 4 MiB + 10 GETs, 1000 SET/GET, all equal"
}

case_redis_benchmark() {
	start_redis || return 1
	with_sampler client redis-benchmark -p "$port" -n 40000 -c 8 -d 512 -t set,get,lpush,lpop \
		--csv >"$d/bench.out" 2>&1 || fail "redis-benchmark: $(tail -n 3 "$d/bench.out")" || return 1
	local n
	n=$(grep -cE '^"(SET|GET|LPUSH|LPOP)","[0-9.]+"' "$d/bench.out")
	[ "$n" = 4 ] || fail "redis-benchmark: $(tr '\n' ' ' <"$d/bench.out" | head -c 300)" || return 1
	# The server must have answered every request: its own count.
	local done
	done=$(client redis-cli -p "$port" INFO stats | sed -n 's/^total_commands_processed:\([0-9]*\).*/\1/p')
	[ "${done:-0}" -ge 160000 ] || fail "redis-server processed ${done:-?} commands of 160000" || return 1
	local sets
	sets=$(sed -n 's/^"SET","\([0-9.]*\)".*/\1/p' "$d/bench.out")
	note="4 tests x 40000 requests, 8 connections (SET $sets/s); server counted $done commands"
}

case_memcached() {
	local user=()
	[ "$(id -u)" -eq 0 ] && user=(-u root)
	start_server memcached -l 127.0.0.1 -p "$port" -U 0 -t 2 -m 64 "${user[@]}" || return 1
	with_sampler client $HELPER memcache "$port" 4 >"$d/client.out" 2>&1 ||
		fail "$(tail -n 2 "$d/client.out")" || return 1
	client memcstat --servers="127.0.0.1:$port" >"$d/stat.out" 2>&1 ||
		fail "memcstat: $(head -n 3 "$d/stat.out")" || return 1
	local items
	items=$(sed -n 's/^[[:space:]]*curr_items: *\([0-9]*\).*/\1/p' "$d/stat.out")
	[ "$items" = 100 ] || fail "memcstat: curr_items ${items:-missing}, 100 expected" || return 1
	client memccat --servers="127.0.0.1:$port" key007 >"$d/cat.out" 2>&1 ||
		fail "memccat: $(head -c 200 "$d/cat.out")" || return 1
	note="$(cat "$d/client.out" | sed 's/^memcache: //'); memcstat 100 items; memccat ok"
}

case_iperf3() {
	start_server iperf3 -s -1 -B 127.0.0.1 -p "$port" || return 1
	with_sampler client iperf3 -c 127.0.0.1 -p "$port" -t 2 -J >"$d/iperf.json" 2>"$d/client.log" ||
		fail "iperf3: $(head -c 300 "$d/iperf.json") $(cat "$d/client.log")" || return 1
	local r
	r=$(python3 -c '
import json, sys
e = json.load(open(sys.argv[1]))["end"]
s, r = e["sum_sent"]["bytes"], e["sum_received"]["bytes"]
print(s, r, int(e["sum_received"]["bits_per_second"] / 1e6))' "$d/iperf.json" 2>&1)
	local sent recv mbit
	read -r sent recv mbit <<<"$r"
	[ "${recv:-0}" -gt 0 ] 2>/dev/null && [ "$recv" -le "$sent" ] ||
		fail "iperf3: sent ${sent:-?} received ${recv:-?} ($r)" || return 1
	note="2 s: $recv bytes received of $sent sent, $mbit Mbit/s"
}

case_openssl() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
		-days 1 -keyout "$d/key.pem" -out "$d/cert.pem" >/dev/null 2>&1 || fail "no certificate" || return 1
	# Upload: the client's stdin arrives on the server's stdout; the pause
	# keeps the connection open to be seen.
	$HELPER lines "$d/up" 20000 5
	# s_server ends the connection when its stdin ends: a FIFO it holds
	# open both ways never does.
	mkfifo "$d/in"
	server_in=$d/in start_server openssl s_server -accept "127.0.0.1:$port" -cert "$d/cert.pem" \
		-key "$d/key.pem" -naccept 1 -quiet || return 1
	# s_client ends at the end of its stdin, dropping what it has not sent:
	# the input ends only when the server has written all of it.
	with_sampler sh -c '{ head -n 10000 "$2"; sleep 0.8; tail -n +10001 "$2"
		size=$(stat -c %s "$2")
		for i in $(seq 200); do [ "$(stat -c %s "$3")" -ge "$size" ] && break; sleep 0.05; done; } |
		timeout -k 2 60 "$1" openssl s_client -connect "127.0.0.1:$4" -quiet -no_ign_eof -nocommands' \
		sh "$(wrap "$mode" client)" "$d/up" "$d/server.out" "$port" >"$d/client.log" 2>&1 ||
		fail "s_client: $(tail -n 3 "$d/client.log")" || return 1
	for _ in $(seq 50); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
	same_file "$d/up" "$d/server.out" "upload" || return 1
	# Download: s_server -WWW serves a file over a fresh server.
	local up_note="upload $(stat -c %s "$d/up") bytes"
	stop_server
	www
	: >"$d/server.log"
	port=$($HELPER port)
	cd "$d/www" || return 1
	start_server openssl s_server -accept "127.0.0.1:$port" -cert "$d/cert.pem" \
		-key "$d/key.pem" -naccept 1 -quiet -WWW
	local rc=$?
	cd "$work" || return 1
	[ $rc = 0 ] || return 1
	printf 'GET /blob HTTP/1.0\r\n\r\n' |
		client openssl s_client -connect "127.0.0.1:$port" -quiet >"$d/resp" 2>"$d/client.log" ||
		fail "s_client -WWW: $(tail -n 3 "$d/client.log")" || return 1
	$HELPER strip-http "$d/resp" "$d/got" || fail "s_client -WWW: no HTTP response" || return 1
	same_file "$d/www/blob" "$d/got" "download" || return 1
	note="TLS: $up_note, download 16 MiB (-WWW), sha256 equal"
}

case_sockperf() {
	start_server sockperf server --tcp -i 127.0.0.1 -p "$port" || return 1
	with_sampler sh -c '
		timeout -k 2 30 "$1" sockperf ping-pong --tcp -i 127.0.0.1 -p "$2" -t 1 -m 1024 >"$3/pp.out" 2>&1 &&
		timeout -k 2 30 "$1" sockperf throughput --tcp -i 127.0.0.1 -p "$2" -t 1 -m 16384 >"$3/tp.out" 2>&1' \
		sh "$(wrap "$mode" client)" "$port" "$d" || fail "sockperf: $(tail -n 3 "$d/pp.out" "$d/tp.out" 2>/dev/null | tr '\n' ' ')" || return 1
	local f
	for f in pp tp; do
		grep -q 'Summary:' "$d/$f.out" || fail "sockperf $f: no summary: $(tail -n 3 "$d/$f.out" | tr '\n' ' ')" || return 1
	done
	if ! grep -qE 'dropped messages = 0; # duplicated messages = 0; # out-of-order messages = 0' "$d/pp.out"; then
		fail "sockperf ping-pong: $(grep -E 'dropped messages' "$d/pp.out")"
		return 1
	fi
	local lat mps
	lat=$(sed -n 's/.*Summary: Latency is \([0-9.]*\) usec.*/\1/p' "$d/pp.out")
	mps=$(sed -n 's/.*Summary: Message Rate is \([0-9]*\) \[msg\/sec\].*/\1/p' "$d/tp.out")
	note="ping-pong 1 s (latency $lat us, none lost or out of order), throughput 1 s ($mps msg/s)"
}

