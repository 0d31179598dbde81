# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# usmc-stat --kernel against sockets in known states (smc_peer hold): a
# listener, a connected pair, a connection to a plain TCP listener (the
# client falls back: 0x03010000, peer did not indicate SMC), and a pair
# closed again, which must not be listed.  Over IPv4 and IPv6 loopback,
# where the connected pair falls back too, and over soft-RoCE, where it is
# SMC-R.
set -u

# check SERVER_ADDR CLIENT_ADDR FAMILY MODE CLIENT_REASON SERVER_REASON
#       SERVER_DIAG SMC_SOCKETS
# SMC_SOCKETS: how many of the 8 sockets say SO_PROTOCOL 256; an accepted
# one says 6 once it has fallen back, since its file then is the TCP one's.
check() {
	local srv=$1 cli=$2 family=$3 mode=$4 creason=$5 sreason=$6 sdiag=$7 nsmc=$8
	local p lport c1 c2 tport c3 any="0.0.0.0:0"
	if [ "$family" = IPv6 ]; then
		srv="[$srv]" cli="[$cli]" any="[::]:0"
	fi
	"$PEER" hold --proto smc --addr "$1" >hold.log 2>&1 &
	p=$!
	wait_line hold.log '^ready' 60 || fail "smc_peer hold --addr $1"
	lport=$(sed -n 's/^listen port=//p' hold.log)
	c1=$(sed -n 's/^connected client_port=\([0-9]*\) .*/\1/p' hold.log)
	c2=$(sed -n 's/^fallback client_port=\([0-9]*\) .*/\1/p' hold.log)
	tport=$(sed -n 's/^fallback .*server_port=//p' hold.log)
	c3=$(sed -n 's/^closed client_port=\([0-9]*\) .*/\1/p' hold.log)
	"$STAT" --kernel >list.txt || fail "usmc-stat --kernel: exit status $?"
	echo "  $1:"
	show list.txt

	expect "$1: the listener" listed list.txt $p "$srv:$lport" "$any" LISTEN - - -
	expect "$1: the connected client ($mode)" \
		listed list.txt $p "$cli:$c1" "$srv:$lport" ACTIVE "$mode" "$creason" -
	expect "$1: the connected server side ($mode)" \
		listed list.txt $p "$srv:$lport" "$cli:$c1" ACTIVE "$mode" "$sreason" "$sdiag"
	expect "$1: the client of a plain TCP server fell back, 0x03010000" \
		listed list.txt $p "$cli:$c2" "$srv:$tport" ACTIVE TCP 0x03010000 -
	expect "$1: the plain TCP server is not listed" unlisted list.txt "$tport"
	expect "$1: the closed pair is not listed" unlisted list.txt "$c3"
	expect "$1: four sockets, all $family" \
		test "$(awk -v p=$p -v f="$family" '$1 == p && $4 == f' list.txt | wc -l)" = 4
	expect "$1: SO_PROTOCOL 256 $nsmc times, 6 for the rest" \
		test "$(grep -cx SO_PROTOCOL=256 hold.log) $(grep -cx SO_PROTOCOL=6 hold.log)" = "$nsmc $((8 - nsmc))"
	kill -TERM $p
	wait $p || fail "smc_peer hold: exit status $?"
}

check 127.0.0.1 127.0.0.1 IPv4 TCP 0x03030000 0x05000000 0x03030000 4
check ::1 ::1 IPv6 TCP 0x03030000 0x05000000 0x03030000 4
rxe_setup || fail "rxe_setup"
check "$RXE_B" "$RXE_A" IPv4 SMC-R - - - 6
