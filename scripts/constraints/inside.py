"""Runs inside a jail, as the service's user, in the jail's own network
namespace: stands in for the container network by relaying the peers the
spec files let the service reach (TCP on a loopback address inside, a Unix
socket outside) and the ports peers reach it on (a listening Unix socket
handed in as a file descriptor, relayed to 127.0.0.1 inside); then runs the
service's command in its place (PID 1 of the jail, as in a container).
Standard library only: it runs under Debian's /usr/bin/python3.

    inside.py CONFIG_JSON -- COMMAND...
"""

import json
import os
import socket
import sys
import threading


def pipe(a: socket.socket, b: socket.socket) -> None:
    def one_way(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
    threading.Thread(target=one_way, args=(a, b), daemon=True).start()
    threading.Thread(target=one_way, args=(b, a), daemon=True).start()


def serve(listener: socket.socket, dial) -> None:
    def loop():
        while True:
            conn, _ = listener.accept()
            try:
                peer = dial()
            except OSError:
                conn.close()  # like a refused connection
                continue
            pipe(conn, peer)
    threading.Thread(target=loop, daemon=True).start()


def unix_dialer(path: str):
    def dial():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        return s
    return dial


def local(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.settimeout(None)
    return s


def main() -> int:
    sep = sys.argv.index("--")
    cfg = json.loads(sys.argv[1])
    command = sys.argv[sep + 1:]
    routes = []
    for out in cfg["outbound"]:  # peers this service may reach
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.bind((out["ip"], out["port"]))
        lst.listen(64)
        routes.append((lst, unix_dialer(out["path"])))
    for inbound in cfg["inbound"]:  # ports peers and probes reach this service on
        lst = socket.socket(fileno=inbound["fd"])
        lst.set_inheritable(False)
        routes.append((lst, lambda port=inbound["port"]: local(port)))
    if os.fork() == 0:
        # The relays live in a child; the service's command replaces this
        # process, so its init (tini) is PID 1 and gets SIGTERM, as in a
        # container. When it exits, the kernel ends the relays with it.
        for lst, dial in routes:
            serve(lst, dial)
        threading.Event().wait()
    for lst, _ in routes:
        lst.close()
    os.execvp(command[0], command)


if __name__ == "__main__":
    sys.exit(main())
