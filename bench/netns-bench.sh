#!/bin/bash
# SPDX-License-Identifier: MIT
# usmc-bench between two network namespaces of one host (client and server
# joined by veth pairs through a router, or a bridge), through the
# rendezvous directory, then the same in one namespace, for the
# cross-namespace column of docs/BENCHMARKS.md.  Needs root.
#
#   netns-bench.sh USMC_BENCH routed|bridge [usmc-bench options]
set -euo pipefail

bench=$(realpath "$1")
topo=$2
shift 2
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }

. "$(dirname "$0")/../tests/netns_topo.sh"
tag=ub$$
A=${tag}a B=${tag}b R=${tag}r
rdv=$(mktemp -d)
chmod 1777 "$rdv"
trap 'netns_topo_cleanup; rm -rf "$rdv"' EXIT
netns_topo_build "$topo"

echo "== between network namespaces ($topo): server in $B, client in $A dialling $dst"
USMC_RENDEZVOUS_DIR=$rdv USMC_BENCH_NETNS="/run/netns/$B /run/netns/$A $dst" "$bench" "$@"
echo "== in one network namespace"
USMC_RENDEZVOUS_DIR= "$bench" "$@"
