#!/bin/bash
# SPDX-License-Identifier: MIT
# The topologies of tests/netns.sh and bench/netns-bench.sh, sourced:
# netns_topo_build TOPOLOGY makes the namespaces $A (client), $B (server)
# and $R (router or bridge) and their links, and sets dst (the address the
# client dials) and, for a destination NAT, nat (USMC_RENDEZVOUS_NAT).
# The DNAT rule maps $port.  Needs root.

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# netns_our_pids NS: the processes in NS that this script started.  Not
# the others: a usmc-stat of another test enters each namespace for a
# moment to list its sockets, and is not ours to kill.
netns_our_pids() {
	local pid p
	for pid in $(ip netns pids "$1" 2>/dev/null); do
		p=$pid
		while [ -n "$p" ] && [ "$p" -gt 1 ] && [ "$p" != $$ ]; do
			p=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -d' ' -f2)
		done
		[ "$p" = $$ ] && echo "$pid"
	done
	return 0
}

netns_topo_cleanup() {
	for ns in $A $B $R; do netns_our_pids "$ns" | xargs -r kill -9 2>/dev/null || true; done
	for ns in $A $B $R; do ip netns del "$ns" 2>/dev/null || true; done
}

netns_topo_build() {
	local topo=$1
	nat= natmap= cport=${port:-}
	for ns in $A $B $R; do
		ip netns add "$ns"
		nsx "$ns" ip link set lo up
	done
	nsx $R sysctl -qw net.ipv4.ip_forward=1

	case $topo in
	routed|dnat|dnatport|dnatmasq|dnatforeign|dnatproxy|masq|user|prefork|inetd|reuse|reuseport|relisten|killed|\
		sidecar|sidecarearly|sidecaruser|sidecarbare|sidecarout)
		# Made in their namespaces: no name in ours, which parallel runs share.
		ip link add va netns $A type veth peer name vra netns $R
		ip link add vb netns $B type veth peer name vrb netns $R
		nsx $A ip addr add 10.31.1.2/24 dev va
		nsx $R ip addr add 10.31.1.1/24 dev vra
		nsx $B ip addr add 10.31.2.2/24 dev vb
		nsx $R ip addr add 10.31.2.1/24 dev vrb
		for l in va:$A vb:$B vra:$R vrb:$R; do nsx "${l#*:}" ip link set "${l%%:*}" up; done
		nsx $A ip route add default via 10.31.1.1
		nsx $B ip route add default via 10.31.2.1
		dst=10.31.2.2
		;;
	bridge)
		nsx $R ip link add br0 type bridge
		nsx $R ip link set br0 up
		# Made in their namespaces: no name in ours, which parallel runs share.
		ip link add va netns $A type veth peer name vra netns $R
		ip link add vb netns $B type veth peer name vrb netns $R
		nsx $R ip link set vra master br0
		nsx $R ip link set vrb master br0
		nsx $A ip addr add 10.31.3.2/24 dev va
		nsx $B ip addr add 10.31.3.3/24 dev vb
		for l in va:$A vb:$B vra:$R vrb:$R; do nsx "${l#*:}" ip link set "${l%%:*}" up; done
		dst=10.31.3.3
		;;
	*)
		echo "unknown topology $topo"; return 2 ;;
	esac

	case $topo in
	dnat)
		# A service address on R, mapped to the server as docker -p or kube-proxy do.
		nsx $R ip addr add 10.31.9.9/32 dev lo
		nsx $A ip route add 10.31.9.9/32 via 10.31.1.1
		nsx $R nft -f - <<-EOF
		table ip usmc_test {
			chain pre { type nat hook prerouting priority -100; ip daddr 10.31.9.9 tcp dport $port dnat to 10.31.2.2:$port; }
		}
		EOF
		dst=10.31.9.9
		nat=10.31.9.0/24
		;;
	dnatport|dnatmasq|dnatforeign)
		# A published port, mapped to the server's own: docker -p 8080:$port.
		cport=8080
		nsx $R ip addr add 10.31.9.9/32 dev lo
		nsx $A ip route add 10.31.9.9/32 via 10.31.1.1
		local masq=
		[ $topo = dnatmasq ] && masq='chain post { type nat hook postrouting priority 100; oifname "vrb" masquerade; }'
		nsx $R nft -f - <<-EOF
		table ip usmc_test {
			chain pre { type nat hook prerouting priority -100; ip daddr 10.31.9.9 tcp dport $cport dnat to 10.31.2.2:$port; }
			$masq
		}
		EOF
		dst=10.31.9.9
		natmap="10.31.9.9:$cport=$port"
		;;
	dnatproxy)
		# docker's userland proxy: a plain relay on the published address and port.
		cport=8080
		nsx $R ip addr add 10.31.9.9/32 dev lo
		nsx $A ip route add 10.31.9.9/32 via 10.31.1.1
		local ready
		ready=$(mktemp -u)
		nsx $R python3 "$(dirname "${BASH_SOURCE[0]}")/netns_relay.py" 10.31.9.9 $cport 10.31.2.2 $port \
			"$ready" </dev/null >/dev/null 2>&1 &
		for _ in $(seq 100); do [ -e "$ready" ] && break; sleep 0.05; done
		[ -e "$ready" ] || { echo "the relay did not listen"; return 1; }
		rm -f "$ready"
		dst=10.31.9.9
		natmap="10.31.9.9:$cport=$port"
		;;
	sidecarout)
		# A mesh sidecar's outbound capture: A sends what nobody dials to the port to its own proxy's.
		nsx $A nft -f - <<-EOF
		table ip usmc_test {
			chain out { type nat hook output priority -100; meta skuid "nobody" tcp dport $port redirect to :15001; }
		}
		EOF
		;;
	sidecar|sidecarearly|sidecaruser|sidecarbare)
		# A mesh sidecar's inbound capture: B sends what comes in for the port to its proxy's.
		nsx $B nft -f - <<-EOF
		table ip usmc_test {
			chain pre { type nat hook prerouting priority -100; iifname "vb" tcp dport $port redirect to :15006; }
		}
		EOF
		;;
	masq)
		nsx $R nft -f - <<-EOF
		table ip usmc_test {
			chain post { type nat hook postrouting priority 100; oifname "vrb" masquerade; }
		}
		EOF
		;;
	esac
}
