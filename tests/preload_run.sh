#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Runs preload_echo as a server and a client, each a separate process,
# each plain, under usmc-run, or statically linked under usmc-run.  Both
# check the data; with --lo, two counters show which path carried it:
#   --lo shm   less than 1/8 of the bytes moved went over TCP (shared memory)
#   --lo tcp   more than the bytes moved went over TCP
# The client reports what its own TCP connection carried (TCP_INFO), which
# nothing else disturbs: that is the proof.  The loopback device's tx_bytes
# must agree for "tcp" (other traffic only adds); for "shm" a busy lo is
# tried again a few times and then noted, not failed, since every other
# process of the machine shares it.
#
# usage: preload_run.sh --run USMC_RUN --echo ECHO --echo-static ECHO
#        --server plain|usmc|static --client plain|usmc|static
#        [--size N] [--loop L] [--family 4|6] [--lo shm|tcp]

SKIP=77
LO=/sys/class/net/lo/statistics/tx_bytes

run= echo= echo_static= server=plain client=plain size=1048576 loop=blocking family=4 lo=
while [ $# -ge 2 ]; do
	case $1 in
	--run) run=$2 ;;
	--echo) echo=$2 ;;
	--echo-static) echo_static=$2 ;;
	--server) server=$2 ;;
	--client) client=$2 ;;
	--size) size=$2 ;;
	--loop) loop=$2 ;;
	--family) family=$2 ;;
	--lo) lo=$2 ;;
	*) echo "preload_run.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift 2
done

if [ -n "${USMC_PRELOAD_SKIP:-}" ]; then
	echo "skipped: $USMC_PRELOAD_SKIP"
	exit $SKIP
fi

tmp=$(mktemp -d) || exit 1
server_pid=
cleanup() {
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

# launch KIND ARGS...: runs preload_echo the way KIND says.
launch() {
	kind=$1
	shift
	case $kind in
	plain) "$echo" "$@" ;;
	usmc) "$run" "$echo" "$@" ;;
	static) "$run" "$echo_static" "$@" ;;
	*) echo "preload_run.sh: unknown kind $kind" >&2; return 2 ;;
	esac
}

lo_bytes() {
	cat "$LO" 2>/dev/null || echo -1
}

# One transfer; sets conn_tcp and lo_delta.  Fails the test if either end fails.
transfer() {
	rm -f "$tmp/port"
	before=$(lo_bytes)
	launch "$server" server --port-file "$tmp/port" --size "$size" --loop "$loop" \
		--family "$family" &
	server_pid=$!
	launch "$client" client --port-file "$tmp/port" --size "$size" --family "$family" \
		>"$tmp/client.out"
	client_rc=$?
	cat "$tmp/client.out"
	conn_tcp=$(sed -n 's/.*TCP carried \([0-9]*\) bytes.*/\1/p' "$tmp/client.out")
	wait "$server_pid"
	server_rc=$?
	server_pid=
	after=$(lo_bytes)
	if [ "$client_rc" != 0 ] || [ "$server_rc" != 0 ]; then
		echo "FAIL: client exited $client_rc, server $server_rc" >&2
		exit 1
	fi
	lo_delta=$((after - before))
	[ "$before" -ge 0 ] && [ "$after" -ge 0 ] || lo_delta=
}

# fits BYTES: true if BYTES over TCP fit the path --lo names.
fits() {
	case $lo in
	tcp) [ "$1" -gt "$moved" ] ;;
	shm) [ $(($1 * 8)) -lt "$moved" ] ;;
	esac
}

# The connection's own count holds the stream exactly, with no headers.
# Shared memory must be proven by it: a client that does not say fails.
conn_fits() {
	if [ -z "$conn_tcp" ]; then
		[ "$lo" = tcp ]
		return
	fi
	case $lo in
	tcp) [ "$conn_tcp" -ge "$moved" ] ;;
	shm) fits "$conn_tcp" ;;
	esac
}

# The echo moves every byte twice.
moved=$((2 * size))
echo "server $server, client $client, loop $loop, ipv$family, $size bytes each way"
tries=1
[ "$lo" = shm ] && tries=3
for try in $(seq "$tries"); do
	[ "$try" -gt 1 ] && sleep 1
	transfer
	if [ -z "$lo" ]; then
		exit 0
	fi
	if ! conn_fits; then
		echo "FAIL: the connection's TCP carried $conn_tcp bytes of $moved moved ($lo expected)" >&2
		exit 1
	fi
	if [ -z "$lo_delta" ]; then
		echo "skipped: $LO cannot be read, so the path the data took is unproven"
		exit $SKIP
	fi
	echo "lo tx_bytes grew by $lo_delta for $moved bytes moved"
	fits "$lo_delta" && exit 0
	if [ "$lo" = tcp ]; then
		echo "FAIL: the data did not travel over TCP" >&2
		exit 1
	fi
	echo "other traffic on lo, over 1/8 of the bytes moved (try $try of $tries)" >&2
done
# The connection's own counters (checked above, exactly) proved it; lo is
# shared with every other process of the machine and only confirms it.
echo "note: lo stayed busy with other traffic; the connection's counters stand"
exit 0
