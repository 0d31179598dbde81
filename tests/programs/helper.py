#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Small pieces of the program matrix (matrix.sh).

  helper.py port                          a free loopback TCP port
  helper.py sample STAT PID OUT STOPFILE  polls `STAT --json` for the sockets
                                          of PID and the processes below it
                                          until STOPFILE exists; writes the
                                          largest SMCD byte counts seen to OUT,
                                          and what the kernel's TCP carried for
                                          those sockets (ss, tcp_info)
  helper.py sampled OUT                   what sample wrote, as "sockets sent
                                          received tcp_sockets tcp_moved
                                          tcp_carried"
  helper.py last-look OUT                 the row's connections in sample's
                                          last look that saw any
  helper.py counters STAT...              `STAT -s --json` summed over each STAT
                                          as "conns fallbacks sent received
                                          timer_settled exec_secure
                                          reason,reason..."
  (STAT: the usmc-stat command line, as one word list)
  helper.py memcache PORT SEED            sets, gets and multi-gets known values
  helper.py wwwfile PATH SIZE SEED        a file of SIZE reproducible bytes
  helper.py tree DIR COUNT                DIR/fI of I*97 reproducible bytes
                                          for I in 1..COUNT
  helper.py lines PATH COUNT SEED         COUNT lines of reproducible text
  helper.py strip-http IN OUT             the body of an HTTP response
  helper.py echo PORT CONNS SIZE SEED     CONNS connections one after the other,
                                          each sending SIZE bytes to an echo
                                          server and checking what comes back
                                          (the first pauses 0.6 s halfway)
  helper.py asyncio-echo PORT             an asyncio echo server
  helper.py reuseport-http DIR PORT N     N processes serving DIR over HTTP,
                                          each with a listener of its own on
                                          PORT (SO_REUSEPORT)
"""
import json
import os
import asyncio
import hashlib
import random
import re
import select
import shlex
import socket
import subprocess
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def descendants(pid):
    """PID and every process below it: a server's forked workers."""
    parent = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open("/proc/%s/stat" % p) as f:
                    parent[int(p)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    tree, grew = {pid}, True
    while grew:
        more = {p for p, pp in parent.items() if pp in tree} - tree
        tree |= more
        grew = bool(more)
    return tree


def usmc_mapped(pid):
    try:
        with open("/proc/%d/maps" % pid) as f:
            return "libusmc" in f.read()
    except OSError:
        return False


SS_BYTES = re.compile(r"\b(bytes_acked|bytes_received):(\d+)")


def kernel_bytes():
    """What the kernel's TCP carried for each established socket, by its addresses
    (tcp_info's bytes_acked and bytes_received, as ss prints them)."""
    try:
        text = subprocess.run(["ss", "-Htin", "state", "established"], capture_output=True,
                              text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    seen, key = {}, None
    for line in text.splitlines():
        if not line[:1].isspace():
            f = line.split()
            key = (f[2], f[3]) if len(f) >= 4 else None
        elif key:
            seen[key] = sum(int(v) for _, v in SS_BYTES.findall(line))
    return seen


def sample(stat, pid, out, stopfile):
    """Keeps the largest counts of each SMCD socket of PID while it lives, with
    what its kernel TCP socket carried (an oracle blind to usmc)."""
    best = {}
    tcp = {}
    modes = set()
    looks = 0
    last = []
    deadline = time.monotonic() + 120
    while not os.path.exists(stopfile) and time.monotonic() < deadline:
        try:
            ours = descendants(int(pid))
            # One look at every process, quick enough to see connections
            # that last a fraction of a second on a loaded machine; one
            # process at a time only if that list is spoilt (another user's
            # odd socket table must not hide ours).
            text = subprocess.run(shlex.split(stat) + ["--json"], capture_output=True,
                                  text=True, timeout=10).stdout
            try:
                socks = [s for s in json.loads(text).get("sockets", []) if s.get("pid") in ours]
            except ValueError:
                socks = []
                for p in sorted(ours):
                    if not usmc_mapped(p):
                        continue
                    text = subprocess.run(shlex.split(stat) + ["--json", "-p", str(p)],
                                          capture_output=True, text=True, timeout=10).stdout
                    try:
                        socks += json.loads(text).get("sockets", [])
                    except ValueError:
                        pass
        except subprocess.SubprocessError:
            socks = []
        conns = [s for s in socks if "LISTEN" not in (s["mode"], s["tcp_state"])]
        if conns:
            last = conns
        kernel = kernel_bytes() if any(s["mode"] == "SMCD" for s in socks) else {}
        for s in socks:
            modes.add(s["mode"])
            if s["mode"] != "SMCD":
                continue
            key = (s["fd"], s["peer"])
            sent, recv = best.get(key, (0, 0))
            best[key] = (max(sent, s["bytes_sent"]), max(recv, s["bytes_received"]))
            carried = kernel.get((s["local"], s["peer"]))
            if carried is not None:
                tcp[key] = max(tcp.get(key, 0), carried)
        if not os.path.exists(stopfile + ".ready"):
            # The client starts only now: a slow first look must not miss its run.
            open(stopfile + ".ready", "w").close()
        # How many looks are done, for a workload that waits for one (sampler_looked).
        looks += 1
        with open(stopfile + ".looks.tmp", "w") as f:
            f.write("%d\n" % looks)
        os.replace(stopfile + ".looks.tmp", stopfile + ".looks")
        time.sleep(0.02)
    with open(out, "w") as f:
        json.dump({"smcd_sockets": len(best),
                   "bytes_sent": sum(v[0] for v in best.values()),
                   "bytes_received": sum(v[1] for v in best.values()),
                   # The sockets the kernel was asked about: what usmc moved, and TCP carried.
                   "tcp_sockets": len(tcp),
                   "tcp_moved": sum(sum(best[k]) for k in tcp),
                   "tcp_carried": sum(tcp.values()),
                   "modes": sorted(modes), "last": last}, f)


def counters(*stats):
    """The counters summed over each STAT command line (one per user)."""
    total, reasons = [0, 0, 0, 0, 0, 0], set()
    for stat in stats:
        r = subprocess.run(shlex.split(stat) + ["-s", "--json"], capture_output=True, text=True,
                           timeout=10)
        try:
            j = json.loads(r.stdout)
            c = j["counters"]
            reasons |= set(j.get("fallbacks_by_reason", {}))
        except (ValueError, KeyError):
            continue  # no usmc process of this user ran: no counters file
        for i, k in enumerate(("smcd_connections", "fallbacks", "bytes_sent", "bytes_received",
                               "handshake_timer_wakeups", "exec_secure")):
            total[i] += c.get(k, 0)
    print(*total, ",".join(sorted(reasons)))


def sampled(path):
    try:
        s = json.load(open(path))
    except (OSError, ValueError):
        s = {}
    print(*(s.get(k, 0) for k in ("smcd_sockets", "bytes_sent", "bytes_received",
                                  "tcp_sockets", "tcp_moved", "tcp_carried")))


def last_look(path):
    """The connections of the last look that saw any, one a line."""
    try:
        last = json.load(open(path)).get("last", [])
    except (OSError, ValueError):
        last = []
    for s in last:
        print(s["pid"], s["command"], s["tcp_state"], s["local"], s["peer"], s["mode"],
              "sent %d received %d" % (s["bytes_sent"], s["bytes_received"]),
              s["fallback_reason_text"] or "")
    if not last:
        print("(none of the row's connections was seen)")


def recv_until(sock, end):
    buf = bytearray()
    while not buf.endswith(end):
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise RuntimeError("connection closed after %d bytes" % len(buf))
        buf += chunk
    return bytes(buf)


def memcache(port, seed):
    """The text protocol: 100 values of 1 to 256 KiB, set, got one by one,
    then all in one multi-get over a second connection, after a pause that
    keeps the connections open to be seen."""
    rnd = random.Random(seed)
    items = {"key%03d" % i: rnd.randbytes(rnd.randint(1, 256 << 10)) for i in range(100)}
    a = socket.create_connection(("127.0.0.1", port), timeout=30)
    for k, v in items.items():
        a.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (k.encode(), len(v), v))
        if recv_until(a, b"\r\n") != b"STORED\r\n":
            raise RuntimeError("set %s not stored" % k)
    for k, v in items.items():
        a.sendall(b"get %s\r\n" % k.encode())
        want = b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (k.encode(), len(v), v)
        got = recv_until(a, b"END\r\n")
        while len(got) < len(want):
            got += recv_until(a, b"END\r\n")
        if got != want:
            raise RuntimeError("get %s: %d bytes differ from the %d set" % (k, len(got), len(want)))
    b = socket.create_connection(("127.0.0.1", port), timeout=30)
    time.sleep(0.6)
    b.sendall(b"get " + b" ".join(k.encode() for k in items) + b"\r\n")
    want = b"".join(b"VALUE %s 0 %d\r\n%s\r\n" % (k.encode(), len(v), v)
                    for k, v in items.items()) + b"END\r\n"
    got = bytearray()
    while len(got) < len(want):
        chunk = b.recv(1 << 20)
        if not chunk:
            break
        got += chunk
    if bytes(got) != want:
        raise RuntimeError("multi-get: %d bytes, %d expected or different" % (len(got), len(want)))
    total = sum(len(v) for v in items.values())
    a.close()
    b.close()
    print("memcache: 100 values, %d bytes set, got back twice, all equal" % total)


def wwwfile(path, size, seed):
    with open(path, "wb") as f:
        f.write(random.Random(seed).randbytes(size))


def tree(path, count):
    for i in range(1, count + 1):
        wwwfile(os.path.join(path, "f%d" % i), i * 97, i)


def lines(path, count, seed):
    rnd = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    with open(path, "w") as f:
        for i in range(count):
            f.write("%06d %s\n" % (i, "".join(rnd.choices(alphabet, k=rnd.randint(1, 200)))))


def strip_http(src, dst):
    data = open(src, "rb").read()
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1."):
        raise SystemExit("strip-http: no HTTP response in %s" % src)
    open(dst, "wb").write(body)


def sampler_looked(looks_file, bound=20.0):
    """Returns once the sampler (matrix.sh's with_sampler) has made a whole
    look begun after this call, or after bound seconds: as sampler_looked
    in matrix.sh.  The wait decides no result."""
    def count():
        try:
            with open(looks_file) as f:
                return int(f.read() or 0)
        except (OSError, ValueError):
            return 0
    n, end = count(), time.monotonic() + bound
    while count() < n + 2 and time.monotonic() < end:
        time.sleep(0.05)


def echo(port, conns, size, seed):
    """Writes while it reads, so that neither side's buffers can fill."""
    total = spurious = 0
    for c in range(conns):
        data = random.Random(seed + c).randbytes(size)
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.setblocking(False)
        sent, got, paused = 0, hashlib.sha256(), False
        back = 0
        deadline = time.monotonic() + 30
        while back < size:
            if time.monotonic() > deadline:
                raise SystemExit("echo: connection %d: %d of %d bytes back after 30 s"
                                 % (c, back, size))
            r, w, _ = select.select([s], [s] if sent < size else [], [], 1)
            if c == 0 and sent >= size // 2 and not paused:
                # The first connection stays open until the sampler has seen it
                # (a while, outside the matrix), however slow its looks on a loaded machine.
                looks, account = os.environ.get("SAMPLER_LOOKS"), os.environ.get("HELD_ACCOUNT")
                t0 = time.time()
                if looks:
                    sampler_looked(looks)
                else:
                    time.sleep(0.6)
                if account:
                    # Not the workload's time (with_sampler takes it off, as held_get's).
                    with open(account, "a") as f:
                        f.write("%f %f\n" % (t0, time.time()))
                paused = True
            try:
                if w:
                    sent += s.send(data[sent:sent + (1 << 18)])
                    if sent == size:
                        s.shutdown(socket.SHUT_WR)
                chunk = s.recv(1 << 20) if r else None
            except BlockingIOError:
                # select() may report a socket ready that is not: counted.
                spurious += 1
                continue
            if r:
                if not chunk:
                    raise SystemExit("echo: connection %d closed after %d of %d bytes"
                                     % (c, back, size))
                got.update(chunk)
                back += len(chunk)
        s.setblocking(True)
        if s.recv(1):
            raise SystemExit("echo: connection %d: more bytes than sent" % c)
        s.close()
        if got.digest() != hashlib.sha256(data).digest():
            raise SystemExit("echo: connection %d: sha256 of the %d bytes back differs" % (c, size))
        total += size
    print("%d connections, %d bytes echoed, sha256 equal%s" % (
        conns, total, ", %d EAGAIN after select" % spurious if spurious else ""))


def asyncio_echo(port):
    async def handle(reader, writer):
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def serve():
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


def reuseport_http(root, port, n):
    import functools
    import http.server
    import signal

    class Server(http.server.ThreadingHTTPServer):
        def server_bind(self):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            super().server_bind()

    children = []
    for _ in range(n - 1):
        pid = os.fork()
        if pid == 0:
            children = None
            break
        children.append(pid)

    def stop(*_):
        for pid in children or []:
            os.kill(pid, signal.SIGTERM)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=root)
    handler.log_message = lambda *a: None
    Server(("127.0.0.1", port), handler).serve_forever()


def main(argv):
    cmd = argv[1]
    if cmd == "port":
        free_port()
    elif cmd == "sample":
        sample(*argv[2:6])
    elif cmd == "sampled":
        sampled(argv[2])
    elif cmd == "last-look":
        last_look(argv[2])
    elif cmd == "counters":
        counters(*argv[2:])
    elif cmd == "memcache":
        memcache(int(argv[2]), int(argv[3]))
    elif cmd == "wwwfile":
        wwwfile(argv[2], int(argv[3]), int(argv[4]))
    elif cmd == "tree":
        tree(argv[2], int(argv[3]))
    elif cmd == "lines":
        lines(argv[2], int(argv[3]), int(argv[4]))
    elif cmd == "echo":
        echo(*(int(a) for a in argv[2:6]))
    elif cmd == "asyncio-echo":
        asyncio_echo(int(argv[2]))
    elif cmd == "reuseport-http":
        reuseport_http(argv[2], int(argv[3]), int(argv[4]))
    elif cmd == "strip-http":
        strip_http(argv[2], argv[3])
    else:
        raise SystemExit("helper.py: unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv)
