#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A plain TCP relay, as docker's userland proxy is, for tests/netns.sh.

    netns_relay.py ADDR PORT TO_ADDR TO_PORT READYFILE [LATE [FIRST]]

Listens on ADDR:PORT; for each connection, connects to TO_ADDR:TO_PORT
from ADDR, as docker-proxy connects from the bridge's address, and
relays both ways, each half-close as it comes.  Creates READYFILE once
it listens.  Serves until killed.  With LATE (seconds), accepts each
connection that long after it came, as a busy proxy does.  With FIRST
(1), connects on only once the client's first bytes came, as an HTTP
proxy reads a request before it picks where it goes.
"""
import select
import socket
import sys
import threading
import time


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def relay(conn, addr, to, first):
    head = conn.recv(65536) if first else b""
    out = socket.create_connection(to, source_address=(addr, 0))
    out.sendall(head)
    ways = [threading.Thread(target=pump, args=(conn, out)),
            threading.Thread(target=pump, args=(out, conn))]
    for w in ways:
        w.start()
    for w in ways:
        w.join()
    conn.close()
    out.close()


def main():
    addr, port, to_addr, to_port, ready = sys.argv[1:6]
    late = float(sys.argv[6]) if len(sys.argv) > 6 else 0
    first = len(sys.argv) > 7 and sys.argv[7] == "1"
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((addr, int(port)))
    lsock.listen(16)
    open(ready, "w").close()
    while True:
        if late:
            select.select([lsock], [], [])
            time.sleep(late)
        conn, _ = lsock.accept()
        threading.Thread(target=relay, args=(conn, addr, (to_addr, int(to_port)), first),
                         daemon=True).start()


main()
