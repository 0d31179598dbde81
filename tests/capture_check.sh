#!/bin/sh
# USMC_CAPTURE: each process's pcapng, read back by tcpdump, holds both
# directions of its connection byte for byte, with the real ports.
set -eu
prog=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
if ! command -v tcpdump >/dev/null; then
	echo "capture_check needs tcpdump (apt-get install tcpdump)"; exit 1
fi
USMC_CAPTURE="$dir/cap-%p.pcapng" "$prog" "$dir"
n=0
for cap in "$dir"/cap-*.pcapng; do
	n=$((n + 1))
	tcpdump -r "$cap" -nn -x 2>/dev/null | python3 -c '
import sys, re
streams = {}
key = None
hexdata = []
def flush():
    if key is None or not hexdata:
        return
    pkt = bytes.fromhex("".join(hexdata))
    ihl = (pkt[0] & 15) * 4 if pkt[0] >> 4 == 4 else 40
    tcp = pkt[ihl:]
    seq = int.from_bytes(tcp[4:8], "big")
    payload = tcp[(tcp[12] >> 4) * 4:]
    streams.setdefault(key, {})[seq] = payload
for line in sys.stdin:
    m = re.match(r"\S+ IP6? (\S+) > (\S+):", line)
    if m:
        flush(); hexdata = []; key = (m.group(1), m.group(2)); continue
    m = re.match(r"\s+0x[0-9a-f]+:\s+((?:[0-9a-f]{2,4} ?)+)", line)
    if m:
        hexdata.append(m.group(1).replace(" ", ""))
flush()
expect = {n: open(sys.argv[1] + "/" + n, "rb").read() for n in ("c2s.bin", "s2c.bin")}
found = set()
for k, segs in streams.items():
    data = b""
    for seq in sorted(segs):
        if seq - 1 != len(data):
            sys.exit("gap or overlap in %s at %d" % (k, seq))
        data += segs[seq]
    for name, want in expect.items():
        if data == want:
            found.add(name)
            print("%s: %d bytes, as sent (%s)" % (" > ".join(k), len(data), name))
if found != set(expect):
    sys.exit("missing from the capture: %s" % (set(expect) - found))
' "$dir"
done
[ "$n" = 2 ] || { echo "expected a capture of each process, found $n"; exit 1; }
echo "capture_check: ok"
