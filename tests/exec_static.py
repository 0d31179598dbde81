# SPDX-License-Identifier: MIT
"""A shared-memory connection handed to a program that cannot take it over.

  exec_static.py server PORTFILE CAT   two connections: the static CAT gets the
                                       first through subprocess (vfork + execve),
                                       the second through fork + execv
  exec_static.py client PORT           sends 64 KiB on each and reads to the end
"""
import os
import socket
import subprocess
import sys


def server(portfile, cat):
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.bind(("127.0.0.1", 0))
    lst.listen(4)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(lst.getsockname()[1]))
    os.rename(portfile + ".tmp", portfile)
    conn, _ = lst.accept()
    conn.recv(1)  # the client's first byte: the connection is in shared memory by now
    subprocess.run([cat], stdin=conn, stdout=conn)
    conn.close()
    conn, _ = lst.accept()
    conn.recv(1)
    pid = os.fork()
    if pid == 0:
        os.dup2(conn.fileno(), 0)
        os.dup2(conn.fileno(), 1)
        os.execv(cat, [cat])
    conn.close()
    os.waitpid(pid, 0)
    return 0


def client(port):
    for way in ("vfork", "fork"):
        s = socket.create_connection(("127.0.0.1", int(port)))
        s.sendall(b"x")
        got, err = 0, "EOF"
        try:
            s.sendall(b"y" * 65536)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += len(chunk)
        except OSError as e:
            err = e.__class__.__name__
        s.close()
        print(f"client ({way}): {got} bytes back, then {err}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(server(sys.argv[2], sys.argv[3]) if sys.argv[1] == "server" else client(sys.argv[2]))
