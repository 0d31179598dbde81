# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# Shell functions for the kernel SMC cases; guest.sh sources this file
# before each case, with BUILD (the build tree) and SRC (the sources) set.

# shellcheck disable=SC2034 # for the cases
PEER=$BUILD/tests/smc_peer
# shellcheck disable=SC2034
STAT=$BUILD/tools/usmc-stat
# The two ends of rxe_setup's veth pair.
RXE_A=10.2.0.1
RXE_B=10.2.0.2

# fail MESSAGE: ends the case.
fail() {
	echo "FAIL: $*"
	exit 1
}

# expect WHAT COMMAND [ARG]...: runs COMMAND; if it fails, the case fails
# saying what was expected.  Prints "  ok: WHAT" otherwise, so that the
# output of a failed case shows how far it got.
expect() {
	local what=$1
	shift
	"$@" || fail "expected $what (command: $*)"
	echo "  ok: $what"
}

# checksum [FILE]: a checksum of FILE or of stdin, for comparing bytes sent
# with bytes received.
checksum() {
	sha256sum "$@" | cut -d' ' -f1
}

# wait_line FILE REGEX [SECONDS]: waits until a line of FILE matches.
wait_line() {
	local i
	for ((i = 0; i < ${3:-20} * 10; i++)); do
		grep -qE "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "no line matching '$2' in $1 after ${3:-20}s:"
	cat "$1"
	return 1
}

# row FILE LOCAL PEER: the line of the usmc-stat --kernel listing in FILE
# for the socket LOCAL -> PEER (fields: PID COMMAND FD FAMILY STATE LOCAL
# PEER MODE FALLBACK PEER-DIAG DETAIL).
row() {
	awk -v l="$2" -v p="$3" '$6 == l && $7 == p' "$1"
}

# listed FILE PID LOCAL PEER STATE MODE FALLBACK PEER-DIAG: whether the
# usmc-stat --kernel listing in FILE has this line ("-" where it prints "-").
listed() {
	awk -v pid="$2" -v l="$3" -v p="$4" -v s="$5" -v m="$6" -v f="$7" -v d="$8" '
		$1 == pid && $6 == l && $7 == p && $5 == s && $8 == m && $9 == f && $10 == d { n++ }
		END { exit n != 1 }' "$1"
}

# unlisted FILE PORT: whether no socket of the listing has PORT on its side.
unlisted() {
	awk -v port="$2" 'NR > 1 && $6 ~ ":" port "$" { n++ } END { exit n > 0 }' "$1"
}

# show FILE: the file, indented, for the case's output.
show() {
	sed 's/^/    /' "$1"
}

# smc_modules: the kernel's SMC and its diagnostics.
smc_modules() {
	modprobe smc && modprobe smc_diag
}

# rxe_setup: SMC-R over soft-RoCE between RXE_A (veth va, rdma device rxea)
# and RXE_B (vb, rxeb).  Idempotent.  Why it looks the way it does:
#  - rdma_rxe in 6.12 listens for RoCEv2 (UDP 4791) in init_net only, so
#    both ends stay in init_net instead of in two network namespaces;
#  - two local addresses would talk over lo, so the local routing table
#    moves behind rules that send traffic between them across the veth pair
#    (accept_local and no rp_filter let the packets arrive);
#  - rxe has RoCEv2 GIDs only, hence SMC-Rv2, which the kernel proposes
#    only when a user EID is set;
#  - one link per link group, or each group adds a second link over the
#    other rxe device, since both are local.
rxe_setup() {
	[ -e /sys/class/infiniband/rxeb ] && return 0
	smc_modules && modprobe rdma_rxe || return 1
	"$BUILD/tests/smc_ctl" ueid-add USMC-KERNEL-TESTS || return 1
	sysctl -qw net.smc.smcr_max_links_per_lgr=1
	ip link add va type veth peer name vb
	ip addr add "$RXE_A/24" dev va
	ip addr add "$RXE_B/24" dev vb
	ip link set va up
	ip link set vb up
	local d
	for d in all default va vb; do
		sysctl -qw "net.ipv4.conf.$d.rp_filter=0" "net.ipv4.conf.$d.accept_local=1"
	done
	ip rule add pref 100 lookup local
	ip rule del pref 0
	ip route add "$RXE_B" dev va src "$RXE_A" table 10
	ip rule add pref 10 iif lo to "$RXE_B" lookup 10
	ip route add "$RXE_A" dev vb src "$RXE_B" table 11
	ip rule add pref 11 iif lo to "$RXE_A" lookup 11
	ip neigh replace "$RXE_B" lladdr "$(cat /sys/class/net/vb/address)" dev va nud permanent
	ip neigh replace "$RXE_A" lladdr "$(cat /sys/class/net/va/address)" dev vb nud permanent
	rdma link add rxea type rxe netdev va || return 1
	rdma link add rxeb type rxe netdev vb || return 1
}

# protocols FILE...: every SO_PROTOCOL smc_peer printed, sorted, one of each.
protocols() {
	grep -ho 'SO_PROTOCOL=[0-9]*' "$@" | cut -d= -f2 | sort -u | paste -sd' '
}

# transferred SERVER_OUT CLIENT_OUT BYTES: both ends checked BYTES bytes
# with the same checksum.
transferred() {
	local s c
	s=$(sed -n 's/^server: bytes=\([0-9]*\) fnv=\([0-9a-f]*\) ok$/\1 \2/p' "$1")
	c=$(sed -n 's/^client: port=[0-9]* bytes=\([0-9]*\) fnv=\([0-9a-f]*\) ok$/\1 \2/p' "$2")
	[ -n "$s" ] && [ "$s" = "$c" ] && [ "${s%% *}" = "$3" ]
}

# stat_snapshot: usmc-stat --kernel as text, JSON and counters, into
# list.txt, list.json and stats.txt of the current directory.
stat_snapshot() {
	"$STAT" --kernel >list.txt || fail "usmc-stat --kernel: exit status $?"
	"$STAT" --kernel --json >list.json || fail "usmc-stat --kernel --json: exit status $?"
	"$STAT" --kernel -s >stats.txt || fail "usmc-stat --kernel -s: exit status $?"
	show list.txt
	show stats.txt
}
