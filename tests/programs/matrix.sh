#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Real programs from Debian's packages under usmc-run, in the configuration
# their package ships where the program has one, each run three ways:
#   smc          server and client under usmc-run: the data must go through
#                shared memory, or, where the server's architecture keeps its
#                connections TCP (a case sets tcp_why), be TCP with the
#                fallback reasons usmc-stat -s counted, and only those the
#                case names (tcp_reasons)
#   server-only  server under usmc-run, plain clients: TCP
#   client-only  plain server, clients under usmc-run: TCP (also "fallback")
# and once more with both ends plain (tcp), which only times the workload.
# Each row starts the server on a free loopback port, runs a bounded client
# workload and checks the bytes that came back by sha256 or the program's
# own count.  Each row has its own registry directory (USMC_REGISTRY_DIR),
# so the counters of `usmc-stat -s` are the row's alone, and a sampler polls
# `usmc-stat --json` for the row's processes while the client runs.  A row is ok when the data is
# right and
#   shared memory: an SMCD socket was seen moving bytes, the counters show
#                  shared-memory connections and bytes, no fallback
#   TCP:           no SMCD socket, no shared-memory connection or byte, and
#                  fallbacks were counted (usmc did run and chose TCP)
# The workload's time is compared with the plain TCP run's: the ratio is
# written in the table, and a row more than 10% slower is flagged SLOWER,
# never failed.
#
# usage: tests/programs/matrix.sh BUILD_DIR [PROGRAM...]
#   PROGRAM: see all_programs below (default: all)
#   MATRIX_MODES="smc server-only client-only"   the modes to run
#   MATRIX_TIMING=0               no plain TCP run to time against
#   MATRIX_INSTALL=0              never install missing packages
#   MATRIX_TABLE=FILE             also append the rows to FILE, as Markdown
#   MATRIX_ALLOW_MISSING=1        rows whose packages cannot be installed are
#                                 skipped (by default that fails the run: a
#                                 row skipped in CI would hide its program)
# Exit status: 0 every row ran ok (or, with MATRIX_ALLOW_MISSING=1, at least
# one ran and the rest could not be installed); 1 a row failed, or could not
# be installed; 77 skipped as a whole, saying why (USMC_MATRIX_SKIP).

set -u
if [ -n "${USMC_MATRIX_SKIP:-}" ]; then
	echo "skipped: $USMC_MATRIX_SKIP"
	exit 77
fi
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: matrix.sh BUILD_DIR [PROGRAM...]}
shift
build=$(cd "$build" && pwd)
RUN=$build/tools/usmc-run
STAT=$build/tools/usmc-stat
# The interpreter itself, once: a version manager's shim costs a shell per call.
PY=$(python3 -c 'import sys; print(sys.executable)') || exit 2
HELPER="$PY $here/helper.py"
PATH=$PATH:/usr/sbin:/sbin
for t in "$RUN" "$STAT"; do
	[ -x "$t" ] || { echo "matrix: $t is missing; build first" >&2; exit 2; }
done

all_programs="python-http nginx-curl nginx-wrk redis-cli redis-benchmark memcached iperf3 openssl sockperf
	nginx-shipped sshd apache2-event apache2-prefork postgresql lighttpd rsync dnsmasq
	lemp gunicorn haproxy python-reuseport socat python-asyncio node node-cluster java redis-replication stunnel squid varnish mariadb
	socat-single git-daemon"
programs=${*:-$all_programs}
modes=${MATRIX_MODES:-smc server-only client-only}
modes=${modes//fallback/client-only}

# Debian packages each program needs.
packages_of() {
	case $1 in
	python-http) echo python3 curl ;;
	nginx-curl) echo nginx curl ;;
	nginx-wrk) echo nginx wrk curl ;;
	redis-cli | redis-replication) echo redis-server redis-tools ;;
	redis-benchmark) echo redis-server redis-tools ;;
	memcached) echo memcached libmemcached-tools ;;
	iperf3) echo iperf3 ;;
	openssl) echo openssl ;;
	sockperf) echo sockperf ;;
	sshd) echo openssh-server openssh-client ;;
	apache2-event | apache2-prefork) echo apache2 curl ;;
	nginx-shipped) echo nginx curl ;;
	dnsmasq) echo dnsmasq-base bind9-dnsutils ;;
	postgresql) echo postgresql ;;
	lighttpd) echo lighttpd curl ;;
	rsync) echo rsync ;;
	haproxy) echo haproxy curl python3 ;;
	socat | socat-single) echo socat ;;
	git-daemon) echo git ;;
	python-asyncio) echo python3 ;;
	python-reuseport) echo python3 curl ;;
	lemp) echo nginx php-fpm curl ;;
	gunicorn) echo gunicorn curl ;;
	node | node-cluster) echo nodejs curl ;;
	java) echo openjdk-17-jdk-headless ;;
	stunnel) echo stunnel4 openssl python3 ;;
	squid) echo squid curl python3 ;;
	varnish) echo varnish curl python3 ;;
	mariadb) echo mariadb-server mariadb-client ;;
	*) echo "matrix: unknown program $1" >&2; exit 2 ;;
	esac
}
installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"
}

# Installs what is missing, once; packages that cannot be installed leave
# their programs skipped.
need=(python3 iproute2 procps coreutils)
for p in $programs; do
	need+=($(packages_of "$p"))
done
missing=()
for p in $(printf '%s\n' "${need[@]}" | sort -u); do
	installed "$p" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] && [ "${MATRIX_INSTALL:-1}" != 0 ]; then
	sudo=
	[ "$(id -u)" -eq 0 ] || sudo="sudo -n"
	echo "== installing: ${missing[*]}"
	timeout 300 $sudo apt-get update -qq >/dev/null 2>&1
	for p in "${missing[@]}"; do
		DEBIAN_FRONTEND=noninteractive timeout 300 $sudo apt-get install -y -qq \
			--no-install-recommends "$p" >/dev/null 2>&1 || echo "== cannot install $p"
	done
fi
for p in python3 iproute2; do
	installed "$p" || { echo "matrix: $p is required" >&2; exit 2; }
done

work=$(mktemp -d /tmp/usmc-matrix.XXXXXX) || exit 2
# Servers that drop to their own user (www-data, postgres) reach their files
# through it; each row's registry stays its own.
chmod 711 "$work"
pids=()
# Commands a case leaves to undo what it made outside $work (a postgresql
# cluster) if the run ends before the case could: run after the servers end.
at_exit=()
cleanup() {
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null
	done
	wait 2>/dev/null
	for c in "${at_exit[@]}"; do
		eval "$c"
	done
	[ -n "${MATRIX_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rows=()
failed=0
ran=0
uninstallable=

# ---- helpers used by the cases ----------------------------------------------

# wrap MODE SIDE: the launcher of that side in that mode (env: plain).
wrap() {
	case $1-$2 in
	smc-*|server-only-server|client-only-client) echo "$RUN" ;;
	*) echo env ;;
	esac
}

# [server_in=FILE] [side=client] start_server CMD...: starts the server of
# this row (under usmc-run when the mode says so for the server, or for the
# client with side=client: a relay on the client's side), as $as_user when a
# case sets it, bounded to 120 s, and waits until $port listens.  Sets spid,
# the server process.
start_server() {
	# A background command's stdin is /dev/null unless redirected on it.
	timeout -k 2 120 $as_user $(wrap "$mode" "${side:-server}") "$@" <>"${server_in:-/dev/null}" \
		>>"$d/server.out" 2>>"$d/server.log" &
	local t=$!
	pids+=("$t")
	spid=
	for _ in $(seq 300); do
		[ -z "$spid" ] && spid=$(pgrep -P "$t" | head -n1)
		if ss -Hltn "sport = :$port" 2>/dev/null | grep -q LISTEN; then
			[ -n "$spid" ] && return 0
		fi
		kill -0 "$t" 2>/dev/null || break
		sleep 0.05
	done
	note="server did not listen on $port: $(tail -n 3 "$d/server.log" "$d/server.out" | tr '\n' ' ')"
	return 1
}

stop_server() {
	[ -n "${spid:-}" ] && kill "$spid" 2>/dev/null
	for _ in $(seq 50); do
		kill -0 "$spid" 2>/dev/null || break
		sleep 0.05
	done
	# A server that forked keeps its children in its process group.
	[ -n "${spid:-}" ] && pkill -9 -P "$spid" 2>/dev/null
	kill -9 "$spid" 2>/dev/null
	spid=
}

# client CMD...: runs a client of this row (under usmc-run when the mode
# says so, as $as_user when a case sets it), bounded.
client() {
	timeout -k 2 30 $as_user $(wrap "$mode" client) "$@"
	local rc=$?
	[ $rc = 124 ] && echo "$1: timed out after 30 s" >&2
	return $rc
}

# with_sampler CMD...: runs CMD while the sampler watches the row's sockets,
# and adds the time CMD took to $wtime, less the holds of held_get.
with_sampler() {
	rm -f "$d/stop" "$d/stop.ready" "$d/stop.looks"
	# The row's processes, both ends: usmc-stat does not list a connection
	# that a forked child (socat fork, rsync) holds once its parent closed it.
	$HELPER sample "$as_user $STAT" $$ "$d/sample.json" "$d/stop" &
	local sp=$! i=0
	# Ended with the servers if the run is: cleanup's wait would wait for it.
	pids+=("$sp")
	# The sampler has looked once before the client starts (bounded: 30 s).
	while [ ! -e "$d/stop.ready" ] && [ $i -lt 600 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	local t0=$EPOCHREALTIME
	export HELD_ACCOUNT=$d/held.account
	# For a workload of helper.py's that holds a connection until the sampler has seen it.
	export SAMPLER_LOOKS=$d/stop.looks
	rm -f "$HELD_ACCOUNT"
	"$@"
	local rc=$?
	unset SAMPLER_LOOKS
	# A GET held for the sampler (held_get) waits for the test: not timed.
	wtime=$($PY -c "
import sys
held = sum(float(b) - float(a) for a, b in (l.split() for l in open(sys.argv[1]))) if sys.argv[1] else 0
print($wtime + max($EPOCHREALTIME - $t0 - held, 0))" "$([ -s "$HELD_ACCOUNT" ] && echo "$HELD_ACCOUNT")")
	unset HELD_ACCOUNT
	touch "$d/stop"
	wait "$sp"
	return $rc
}

# sampler_looked: returns once the sampler has looked at the processes
# after this call (a whole look begun after it; at most 20 s): a workload
# whose connection lives only a fraction of a second on a loaded machine
# holds it open until then.  The wait decides no result.
sampler_looked() {
	local f="$d/stop.looks" n i
	n=$(cat "$f" 2>/dev/null || echo 0)
	for i in $(seq 400); do
		[ "$(cat "$f" 2>/dev/null || echo 0)" -ge $((n + 2)) ] && return 0
		sleep 0.05
	done
	return 0
}

# shellcheck source=held_get.sh
. "$here/held_get.sh"

fail() {
	note=$*
	return 1
}

same_file() {
	local a b
	a=$(sha256sum <"$1" | cut -d' ' -f1)
	b=$(sha256sum <"$2" | cut -d' ' -f1)
	[ "$a" = "$b" ] || fail "$3: $(stat -c %s "$2") bytes, sha256 differs from the $(stat -c %s "$1") sent"
}

for f in "$here"/cases_*.sh; do
	. "$f"
done

# ---- the matrix -----------------------------------------------------------------

# known_failure PROGRAM MODE: why a row fails today for a cause outside
# the matrix (in usmc, or a program's bug that usmc's timing brings out),
# given the failure's note: only that failure is known.  Such a row still
# runs; it shows KNOWN instead of FAIL and does not fail the matrix, and
# shows ok once the cause is gone.
known_failure() {
	case $1-$2 in
	stunnel-smc)
		# The tail of a connection short, nothing else.
		[[ $note == "echo: connection "*" closed after "*" of 2000000 bytes"* ]] &&
			echo "stunnel 5.68 takes POLLHUP on the service's socket as its end when it had not asked" \
				"to read (its buffer toward TLS full) and drops what the socket still holds; plain TCP" \
				"does the same with 32 KiB socket buffers; a ring that has not grown yet (256 KiB) can bring it about (docs/PROGRAMS.md)" ;;
	esac
}

# judge: sets result and note from what usmc-stat saw in this row, and what
# the kernel's TCP carried for the SMCD sockets it saw that still lived when
# ss looked (an eighth at most of what they moved, and 64 bytes a socket:
# doorbells).  A row whose handshakes a timer's look settled (the counters'
# handshake_timer_wakeups) says so in its note.  A TCP row where usmc ran
# only in processes that exec'd in secure-execution mode (the counters'
# exec_secure: the loader ignored LD_PRELOAD, the new image is plain)
# counts no fallback, and is ok so.  A row whose case names the fallbacks
# it has by design (tcp_reasons, with tcp_why or mixed_why) fails on any
# other reason counted.
judge() {
	local conns=$1 fb=$2 shm=$3 seen=$4 seen_bytes=$5 tcp_socks=$6 tcp_moved=$7 tcp_carried=$8
	local secure=$9 reasons=${10} r
	if [ "$mode" = tcp ]; then
		[ "$conns" -eq 0 ] && [ "$fb" -eq 0 ] || result=FAIL note="usmc ran in the plain TCP run"
	elif [ "$mode" = smc ] && [ -n "$mixed_why" ]; then
		if [ "$seen" -eq 0 ] || [ "$conns" -eq 0 ] || [ "$shm" -eq 0 ]; then
			result=FAIL note="no shared-memory connection: $conns counted, $shm bytes, $seen seen"
		elif [ "$fb" -eq 0 ]; then
			result=FAIL note="no TCP connection counted: $mixed_why"
		fi
	elif [ "$mode" = smc ] && [ -z "$tcp_why" ]; then
		if [ "$seen" -eq 0 ] || [ "$seen_bytes" -eq 0 ]; then
			result=FAIL note="usmc-stat never showed an SMCD socket moving data"
		elif [ "$conns" -eq 0 ] || [ "$shm" -eq 0 ]; then
			result=FAIL note="counters: $conns SMCD connections, $shm bytes"
		elif [ "$fb" -ne 0 ]; then
			result=FAIL note="counters: $fb connections fell back to TCP"
		elif [ "$tcp_socks" -gt 0 ] && [ $((tcp_carried * 8)) -gt $((tcp_moved + 512 * tcp_socks)) ]; then
			result=FAIL note="TCP carried $tcp_carried bytes of $tcp_moved moved ($tcp_socks sockets)"
		fi
	elif [ "$seen" -ne 0 ] || [ "$conns" -ne 0 ] || [ "$shm" -ne 0 ]; then
		result=FAIL note="shared memory used: $seen SMCD sockets seen, counters $conns conns, $shm bytes"
	elif [ "$fb" -eq 0 ] && [ "$secure" -eq 0 ]; then
		result=FAIL note="no fallback counted: did usmc run?"
	fi
	if [ "$result" = ok ] && [ "$mode" = smc ] && [ -n "$tcp_reasons" ]; then
		for r in ${reasons//,/ }; do
			[[ " $tcp_reasons " == *" $r "* ]] ||
				{ result=FAIL note="fallback $r counted: this row's are $tcp_reasons"; break; }
		done
	fi
}

# run_row PROGRAM: runs its case in $mode, judges what usmc-stat saw, adds the row.
run_row() {
	local prog=$1 fn=case_${1//-/_}
	d=$work/$prog-$mode
	mkdir -p "$d/reg"
	chmod 700 "$d/reg"
	export USMC_REGISTRY_DIR=$d/reg
	: >"$d/server.log"
	: >"$d/server.out"
	port=$($HELPER port)
	note= spid= as_user= row_users= tcp_why= mixed_why= tcp_reasons= wtime=0 http_via= origin_port=
	local result=ok
	$fn || result=FAIL
	stop_server
	local conns fb sent recv timer secure reasons
	local stats=("$as_user $STAT") u
	for u in $row_users; do
		stats+=("runuser -u $u -- $STAT")
	done
	read -r conns fb sent recv timer secure reasons < <($HELPER counters "${stats[@]}")
	local seen sent_seen recv_seen tcp_socks tcp_moved tcp_carried
	read -r seen sent_seen recv_seen tcp_socks tcp_moved tcp_carried < <($HELPER sampled "$d/sample.json")
	[ $result = ok ] && judge "$conns" "$fb" $((sent + recv)) "$seen" $((sent_seen + recv_seen)) \
		"$tcp_socks" "$tcp_moved" "$tcp_carried" "$secure" "$reasons"
	# A handshake a wait settled at the end of a time slice (the counters'
	# handshake_timer_wakeups): said in the row, which the bytes still decide.
	[ "$mode" = smc ] && [ "${timer:-0}" -gt 0 ] &&
		note="${note:+$note; }TIMER: $timer handshakes settled by a timer's look"
	if [ "$mode" = smc ] && [ "$tcp_socks" -gt 0 ]; then
		note="${note:+$note; }TCP carried $tcp_carried of $tcp_moved bytes moved ($tcp_socks sockets)"
	elif [ "$mode" = smc ] && [ "$seen" -gt 0 ]; then
		# Connections of microseconds end between usmc-stat's look and the kernel's.
		note="${note:+$note; }no SMCD socket lived until the kernel's look"
	fi
	local path=tcp
	[ "$conns" -gt 0 ] && [ $((sent + recv)) -gt 0 ] && path=shm
	# usmc's only trace in the row: execs that left it behind.
	[ "$path" = tcp ] && [ "$fb" -eq 0 ] && [ "$secure" -gt 0 ] && path="tcp (exec secure)"
	[ "$mode" = tcp ] && path=-
	if [ "$mode" = tcp ]; then
		tcp_time=$wtime
		[ $result = ok ] || tcp_time=
	fi
	local ratio=- flag=
	if [ -n "${tcp_time:-}" ] && [ "$mode" != tcp ]; then
		read -r ratio flag < <($PY -c "
r = $wtime / max($tcp_time, 1e-3)
print('%.2f' % r, 'SLOWER' if r > 1.10 else '')")
	fi
	[ "$path" = tcp ] && [ "$mode" = smc ] && [ -n "$tcp_why" ] && note="$note; TCP: $tcp_why"
	[ "$mode" = smc ] && [ -n "$mixed_why" ] && path=both note="$note; $mixed_why"
	local known
	known=$(known_failure "$prog" "$mode")
	[ $result = FAIL ] && [ -n "$known" ] && result=KNOWN note="$note [known: $known]"
	[ $result = FAIL ] && failed=1
	ran=$((ran + 1))
	rows+=("$(printf '%-16s %-11s %-5s %-4s %12s %8.2f %8.2f %6s %-6s %-10s %s' "$prog" "$mode" \
		"$result" "$path" $((sent + recv)) "${tcp_time:-0}" "$wtime" "$ratio" "$flag" "${reasons:--}" "$note")")
	echo "${rows[-1]}"
	if [ -n "${MATRIX_TABLE:-}" ] && [ "$mode" != tcp ]; then
		printf '| %s | %s | %s%s | %s | %s | %.2f | %.2f | %s%s |\n' "$prog" "$mode" "$result" \
			"${flag:+ $flag}" "$path${reasons:+ ($reasons)}" $((sent + recv)) "${tcp_time:-0}" \
			"$wtime" "$ratio" "" >>"$MATRIX_TABLE"
	fi
	[ $result = ok ] || { echo "--- server log:"; tail -n 5 "$d/server.log" "$d/server.out"; } | cut -c1-300
	if [[ $note == "usmc-stat never showed"* ]]; then
		echo "--- counters: $conns SMCD connections, $fb fallbacks${reasons:+ ($reasons)};" \
			"the sampler's last look at the row's connections:"
		$HELPER last-look "$d/sample.json" | cut -c1-300
	fi
}

header=$(printf '%-16s %-11s %-5s %-4s %12s %8s %8s %6s %-6s %-10s %s' program mode result path \
	shm_bytes tcp_s usmc_s ratio flag reasons checked)
echo "$header"
for prog in $programs; do
	missing_pkgs=
	for p in $(packages_of "$prog"); do
		installed "$p" || missing_pkgs="$missing_pkgs $p"
	done
	if [ -n "$missing_pkgs" ]; then
		uninstallable="$uninstallable$missing_pkgs"
		rows+=("$(printf '%-16s %-11s %-5s  package not installable:%s' "$prog" - SKIP "$missing_pkgs")")
		echo "${rows[-1]}"
		continue
	fi
	tcp_time=
	if [ "${MATRIX_TIMING:-1}" != 0 ]; then
		mode=tcp
		run_row "$prog"
	fi
	for mode in $modes; do
		run_row "$prog"
	done
done

echo
echo "== usmc program matrix ($(uname -r), $(date -u +%Y-%m-%d))"
echo "$header"
printf '%s\n' "${rows[@]}"
echo "path: shm when the counters show shared-memory connections and bytes, else tcp;"
echo "shm_bytes: bytes sent and received through shared memory by both ends (usmc-stat -s);"
echo "tcp_s: the workload's seconds with both ends plain; usmc_s: in this mode; ratio usmc_s/tcp_s"
echo "(SLOWER above 1.10, never a failure); reasons: fallback reason codes counted (usmc-stat -s)"
# A matrix of skipped rows tested nothing: that fails, naming what could
# not be installed.  Only USMC_MATRIX_SKIP skips it as a whole.
if [ -n "$uninstallable" ] && [ "${MATRIX_ALLOW_MISSING:-0}" != 1 ]; then
	echo "FAIL: rows skipped, their packages not installable:" \
		"$(printf '%s\n' $uninstallable | sort -u | xargs) (MATRIX_ALLOW_MISSING=1 accepts that)" >&2
	failed=1
fi
if [ "$ran" -eq 0 ]; then
	[ -n "$uninstallable" ] &&
		uninstallable=": no program's packages are installable: $(printf '%s\n' $uninstallable | sort -u | xargs)"
	echo "FAIL: no row ran$uninstallable" >&2
	exit 1
fi
exit $failed
