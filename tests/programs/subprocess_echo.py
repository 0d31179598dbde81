# SPDX-License-Identifier: MIT
"""Python's subprocess with a socket as the child's stdin and stdout.

  subprocess_echo.py server PORTFILE   accepts 3 connections; each is handed to a
                                        child (cat, sh -c cat, cat with close_fds=False)
                                        through subprocess.Popen(stdin=conn, stdout=conn)
  subprocess_echo.py client PORT       3 connections: 4 MiB each up, echoed back, equal
"""
import os
import socket
import subprocess
import sys

CHILDREN = [["cat"], ["sh", "-c", "cat"], ["cat"]]
SIZE = 4 << 20


def server(portfile):
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.bind(("127.0.0.1", 0))
    lst.listen(8)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(lst.getsockname()[1]))
    os.rename(portfile + ".tmp", portfile)
    for i, argv in enumerate(CHILDREN):
        conn, _ = lst.accept()
        child = subprocess.Popen(argv, stdin=conn, stdout=conn, close_fds=(i != 2))
        conn.close()
        rc = child.wait(timeout=60)
        print(f"server: {' '.join(argv)} exited {rc}", flush=True)
        if rc != 0:
            return 1
    return 0


def client(port):
    ok = True
    for argv in CHILDREN:
        data = os.urandom(SIZE)
        s = socket.create_connection(("127.0.0.1", int(port)))
        got = bytearray()
        # 64 KiB at a time, each read back whole before the next: cat echoes as it goes.
        for off in range(0, SIZE, 65536):
            s.sendall(data[off : off + 65536])
            while len(got) < off + 65536:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                got += chunk
            if len(got) < off + 65536:
                break
        s.shutdown(socket.SHUT_WR)
        rest = s.recv(1)
        s.close()
        same = bytes(got) == data and rest == b""
        print(f"client: {' '.join(argv)}: {len(got)} of {SIZE} bytes back, "
              f"{'equal' if same else 'DIFFERENT'}", flush=True)
        ok &= same
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(server(sys.argv[2]) if sys.argv[1] == "server" else client(sys.argv[2]))
