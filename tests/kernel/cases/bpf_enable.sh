#!/bin/bash
# SPDX-License-Identifier: MIT
#
# usmc-kernel enable/disable switch the new sockets of processes that are
# already running, without restarting them: by cgroup (and its children),
# by command name, by process (and its children), by network namespace.
# The running process is a small Perl program that, for each line on its
# stdin, makes a TCP socket (protocol 0), prints its SO_PROTOCOL and, when
# given a port, sends smc_peer's server a length and bytes whose checksum
# both ends compare.  disable --all leaves nothing behind.
# shellcheck disable=SC2317 # the functions run through expect and trap
set -u
# guest.sh has sourced lib.sh; by hand: BUILD=... SRC=... bash CASE
# shellcheck source=tests/kernel/lib.sh
declare -F expect >/dev/null || . "$SRC/tests/kernel/lib.sh"
KERNEL=$BUILD/tools/usmc-kernel
RUN=$BUILD/tools/usmc-run
W=$(mktemp -d)
CG=/sys/fs/cgroup/usmc-bpf-test
NS=usmc-bpf-test
PROBE=$W/usmcprobe	# a copy of perl, so that its command name is its own

cat > "$W/probe.pl" <<'PERL'
use strict;
use warnings;
no warnings 'portable';
use Socket;
$| = 1;

sub fnv {
	use integer;
	my ($h, $bytes) = @_;
	for my $c (unpack("C*", $bytes)) {
		$h ^= $c;
		$h *= 0x100000001b3;
	}
	return $h;
}

sub tcp_socket {
	socket(my $s, AF_INET, SOCK_STREAM, $_[0] // 0) or die "socket: $!";
	return ($s, unpack("i", getsockopt($s, SOL_SOCKET, 38)));	# SO_PROTOCOL
}

# "socket [PROTO]": a socket, protocol 0 or PROTO; "fork": a socket in a
# child; "send PORT N": N bytes to smc_peer's server.
while (my $line = <STDIN>) {
	my ($cmd, @arg) = split ' ', $line;
	if ($cmd eq "fork") {
		my $pid = fork() // die "fork: $!";
		if (!$pid) {
			my (undef, $p) = tcp_socket();
			print "SO_PROTOCOL=$p\n";
			exit 0;
		}
		waitpid($pid, 0);
		next;
	}
	my ($s, $proto) = tcp_socket($cmd eq "socket" ? $arg[0] : 0);
	if ($cmd eq "socket") {
		print "SO_PROTOCOL=$proto\n";
		next;
	}
	my ($port, $n) = @arg;
	connect($s, sockaddr_in($port, inet_aton("127.0.0.1"))) or die "connect: $!";
	my $data = pack("C*", map { ($_ * 131 + ($_ >> 9)) & 0xff } 0 .. $n - 1);
	my $sum = sprintf("%016x", fnv(0xcbf29ce484222325, $data));
	syswrite($s, pack("Q<", $n) . $data) == 8 + $n or die "write: $!";
	my $reply = <$s> // "";
	chomp $reply;
	print "SO_PROTOCOL=$proto bytes=$n fnv=$sum ",
		$reply eq "$n $sum" ? "ok" : "MISMATCH ($reply)", "\n";
}
PERL
cp "$(command -v perl)" "$PROBE" || fail "no perl"

declare -A TO FROM PID

# start NAME [PREFIX...]: a probe, run through PREFIX (e.g. ip netns exec).
start() {
	local name=$1
	shift
	mkfifo "$W/$name.in" "$W/$name.out"
	"$@" "$PROBE" "$W/probe.pl" < "$W/$name.in" > "$W/$name.out" 2> "$W/$name.err" &
	PID[$name]=$!
	exec {fd}> "$W/$name.in"
	TO[$name]=$fd
	exec {fd}< "$W/$name.out"
	FROM[$name]=$fd
}

# ask NAME LINE: the probe's answer to LINE.
ask() {
	local reply
	echo "$2" >&"${TO[$1]}"
	read -r -t 60 reply <&"${FROM[$1]}" || { cat "$W/$1.err"; reply="(no answer)"; }
	echo "$reply"
}

# proto_is NAME WANT [PROTO]: a new socket of the probe, asking for
# protocol PROTO (default 0), has protocol WANT.
proto_is() {
	[ "$(ask "$1" "socket ${3:-0}")" = "SO_PROTOCOL=$2" ]
}

# transfer_is NAME PORT WANT: bytes sent to the server at PORT from a
# socket of protocol WANT, with length and checksum confirmed by both ends.
transfer_is() {
	local reply
	reply=$(ask "$1" "send $2 65536")
	echo "    $reply"
	[[ $reply == "SO_PROTOCOL=$3 bytes=65536 fnv="*" ok" ]]
}

cleanup() {
	"$KERNEL" disable --all 2>/dev/null
	for name in "${!PID[@]}"; do kill "${PID[$name]}" 2>/dev/null; done
	rmdir "$CG/sub" "$CG" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
}
trap cleanup EXIT

smc_modules || fail "cannot load the smc modules"
"$KERNEL" disable --all 2>/dev/null
# One connection for each transfer_is below.
"$PEER" server --connections 4 > "$W/server.out" 2>&1 &
server=$!
wait_line "$W/server.out" '^listening port=' || fail "no server"
port=$(sed -n 's/^listening port=//p' "$W/server.out")

# Started before anything is enabled.
mkdir -p "$CG/sub"
start a
start b
echo "${PID[a]}" > "$CG/cgroup.procs" || fail "cannot move the probe into $CG"
expect "before enable: TCP, bytes checked" transfer_is a "$port" 6

echo "== --cgroup"
expect "enable --cgroup" "$KERNEL" enable --cgroup "$CG"
expect "the running process switches: SMC, bytes checked" transfer_is a "$port" 256
expect "a process outside the cgroup keeps TCP" proto_is b 6
echo "${PID[b]}" > "$CG/sub/cgroup.procs"
expect "moved into a child cgroup, it switches" proto_is b 256
"$KERNEL" status > "$W/status"
expect "status lists the cgroup" grep -q "cgroup  $CG " "$W/status"
expect "status says pinned" grep -q "^program: .*pinned at /sys/fs/bpf/usmc" "$W/status"
expect "disable --cgroup" "$KERNEL" disable --cgroup "$CG"
expect "back to TCP without restart, bytes checked" transfer_is a "$port" 6
expect "for the child cgroup too" proto_is b 6
echo "${PID[a]} ${PID[b]}" | xargs -n1 > /sys/fs/cgroup/cgroup.procs

echo "== --comm"
expect "enable --comm usmcprobe" "$KERNEL" enable --comm usmcprobe
expect "a process of that name switches" proto_is a 256
expect "disable --comm" "$KERNEL" disable --comm usmcprobe
expect "and back" proto_is a 6

echo "== --pid"
expect "enable --pid" "$KERNEL" enable --pid "${PID[a]}"
expect "that process switches: SMC, bytes checked" transfer_is a "$port" 256
expect "its children too" [ "$(ask a fork)" = SO_PROTOCOL=256 ]
expect "another process does not" proto_is b 6
"$KERNEL" status --json > "$W/json"
expect "status --json lists the pid" grep -q "\"type\":\"pid\",\"id\":${PID[a]}," "$W/json"
expect "disable --pid" "$KERNEL" disable --pid "${PID[a]}"
expect "and back, children too" [ "$(ask a fork)" = SO_PROTOCOL=6 ]

echo "== --netns"
ip netns add $NS || fail "ip netns add"
ip -n $NS link set lo up
start c ip netns exec $NS
expect "in the namespace, before enable: TCP" proto_is c 6
expect "enable --netns NAME" "$KERNEL" enable --netns $NS
expect "a process in that namespace switches" proto_is c 256
expect "one outside does not" proto_is a 6
expect "disable --netns PID" "$KERNEL" disable --netns "${PID[c]}"
expect "and back" proto_is c 6

echo "== usmc-run --kernel beside the pinned program"
expect "enable --comm of another program" "$KERNEL" enable --comm not-running
start d "$RUN" --kernel
expect "in usmc-run's scope, IPPROTO_TCP becomes SMC" proto_is d 256 6
expect "outside both scopes, IPPROTO_TCP stays" proto_is a 6 6
expect "disable --comm" "$KERNEL" disable --comm not-running
kill "${PID[d]}"
wait "${PID[d]}"
expect "usmc-run ends with the probe it ran (SIGTERM passed on)" [ $? = 143 ]
unset "PID[d]"

echo "== disable --all"
"$KERNEL" enable --comm usmcprobe --pid "${PID[b]}" || fail "enable two"
expect "switched again" proto_is a 256
expect "disable --all" "$KERNEL" disable --all
expect "nothing left in /sys/fs/bpf/usmc" [ ! -e /sys/fs/bpf/usmc ]
expect "no usmc program in the kernel" [ "$(bpftool prog show | grep -c usmc_socket)" = 0 ]
expect "every process is back to TCP" proto_is a 6
"$KERNEL" status > "$W/status"
expect "status: not pinned" grep -q '^program: *not pinned' "$W/status"
expect "the server checked every transfer" wait $server
exit 0
