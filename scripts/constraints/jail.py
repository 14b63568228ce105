"""Starts one service as its spec declares, with bubblewrap: the host's root
read-only (when the spec says read-only), writable only where a volume,
tmpfs or emptyDir is declared, as the declared user with every capability
dropped, with exactly the declared environment, working directory and
command, in namespaces of its own (network, PID, IPC, hostname). The Unix
socket relays that stand in for the network live here too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
from pathlib import Path

from inside import pipe  # the relay the jail runs inside, reused outside
from spec import Spec
from netmodel import Net

INSIDE = Path(__file__).resolve().parent / "inside.py"
# Where the relay and the Unix sockets appear inside a jail: fixed paths, since
# the checkout itself may sit under a path the jail covers (a clone in /tmp).
JAIL_INSIDE = "/usr/local/bin/docket-check-inside.py"
JAIL_SOCKETS = "/usr/local/lib/docket-check"
# Docker's PATH for Linux images that set none (Debian's images do not).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Hub:
    """Unix sockets outside the jails: relays to this machine's stand-ins,
    and the listening ends of every jailed service's ports."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o755)
        self.listeners: dict[str, socket.socket] = {}

    def path(self, endpoint: str, port: int) -> str:
        return str(self.root / f"{endpoint}-{port}")

    def _listen(self, path: str) -> socket.socket:
        if os.path.exists(path):
            os.unlink(path)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        os.chmod(path, 0o777)  # the jails' users connect to it
        s.listen(64)
        return s

    def standin(self, name: str, port: int, to: tuple[str, int]) -> None:
        lst = self._listen(self.path(name, port))

        def loop():
            while True:
                conn, _ = lst.accept()
                try:
                    peer = socket.create_connection(to, timeout=5)
                    peer.settimeout(None)
                except OSError:
                    conn.close()
                    continue
                pipe(conn, peer)
        threading.Thread(target=loop, daemon=True).start()

    def inbound(self, spec: Spec, port: int) -> socket.socket:
        key = self.path(spec.name, port)
        if key not in self.listeners:
            self.listeners[key] = self._listen(key)
        return self.listeners[key]


def _fresh_dir(path: Path, like: str, mode: int | None = None, group: int | None = None) -> None:
    """A new volume: owner and mode of the image's directory (the host's
    stands in for the image), as Docker copies them into a new volume."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    st = os.stat(like) if os.path.exists(like) else None
    os.chown(path, st.st_uid if st else 0, group if group is not None else (st.st_gid if st else 0))
    os.chmod(path, mode if mode is not None else (st.st_mode & 0o7777 if st else 0o755))


def _existing_ancestor(path: str) -> str:
    p = Path(path)
    while not p.exists():
        p = p.parent
    return str(p)


def _shadow(dirpath: str, keep_out: set[str]) -> list[str]:
    """A read-only tmpfs copy of a host directory (its entries bound back), so
    that mount points the image has but the host lacks can be created in it."""
    args = ["--tmpfs", dirpath]
    for entry in sorted(os.listdir(dirpath)):
        p = os.path.join(dirpath, entry)
        if p in keep_out:
            continue
        if os.path.islink(p):
            args += ["--symlink", os.readlink(p), p]
        elif os.path.isdir(p):
            args += ["--ro-bind", p, p]
        else:
            args += ["--ro-bind", p, p]
    return args


def bwrap_argv(spec: Spec, net: Net, hub: Hub, work: Path, bin_dir: Path, binaries: list[str],
               base_dir: Path) -> tuple[list[str], list[int]]:
    """The bubblewrap command line for `spec`, and the descriptors it inherits."""
    if not spec.read_only:
        raise SystemExit(f"{spec.deployment} {spec.name}: declares a writable root filesystem; "
                         "docket's services must run with a read-only one")
    args = ["bwrap", "--die-with-parent", "--new-session", "--unshare-net", "--unshare-pid", "--as-pid-1", "--unshare-ipc",
            "--unshare-uts", "--hostname", spec.name[:63], "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    targets = [f"/usr/local/bin/{b}" for b in binaries] + [m.path for m in spec.mounts] + [JAIL_INSIDE, JAIL_SOCKETS]
    shadows = sorted({_existing_ancestor(t) for t in targets if not os.path.exists(t)})
    for s in shadows:
        args += _shadow(s, set(targets))
    hosts = work / "hosts"
    hosts.write_text(net.hosts_file())
    args += ["--ro-bind", str(hosts), "/etc/hosts"]
    for b in binaries:
        args += ["--ro-bind", str(bin_dir / b), f"/usr/local/bin/{b}"]
    args += ["--ro-bind", str(INSIDE), JAIL_INSIDE, "--ro-bind", str(hub.root), JAIL_SOCKETS]
    for i, m in enumerate(spec.mounts):
        if m.kind == "tmpfs":
            args += ["--perms", oct(m.mode if m.mode is not None else 0o1777)[2:], "--tmpfs", m.path]
            continue
        if m.kind == "bind":
            src = (base_dir / m.name).resolve()
            args += ["--ro-bind" if m.read_only else "--bind", str(src), m.path]
            continue
        if m.kind == "emptydir":
            src = work / "volumes" / f"emptydir-{m.name}"
            _fresh_dir(src, "", 0o2777 if spec.groups else 0o777, spec.groups[0] if spec.groups else None)
        elif m.name:  # a named compose volume, shared by the services that name it
            src = work.parent / "named-volumes" / m.name
            if not src.exists():
                _fresh_dir(src, m.path)
        else:  # anonymous: new for each container
            src = work / "volumes" / f"anonymous-{i}"
            _fresh_dir(src, m.path)
        args += ["--ro-bind" if m.read_only else "--bind", str(src), m.path]
    for s in shadows:
        args += ["--remount-ro", s]
    env = {"PATH": DEFAULT_PATH, **spec.env}
    args += ["--clearenv"]
    for k, v in env.items():
        args += ["--setenv", k, v]
    args += ["--chdir", spec.workdir]
    fds, inbound = [], []
    for port in sorted(spec.ports):
        lst = hub.inbound(spec, port)
        fds.append(lst.fileno())
        inbound.append({"fd": lst.fileno(), "port": port})
    outbound = []
    # Relays only for the peers the service's settings name: a relay's listener
    # inside the jail would otherwise collide with the service's own port.
    for name, port in sorted(net.allowed.get(spec.name, set()) & dialed(spec.env, net)):
        endpoint, tport = net.target[(name, port)]
        outbound.append({"ip": net.ips[name], "port": port, "path": f"{JAIL_SOCKETS}/{Path(hub.path(endpoint, tport)).name}"})
    drop = ["setpriv", f"--reuid={spec.uid}", f"--regid={spec.gid}"]
    drop += [f"--groups={','.join(map(str, spec.groups))}"] if spec.groups else ["--clear-groups"]
    if spec.cap_drop_all:
        drop += ["--inh-caps=-all", "--bounding-set=-all"]
    if spec.no_new_privs:
        drop += ["--no-new-privs"]
    cfg = json.dumps({"outbound": outbound, "inbound": inbound})
    args += ["--"] + drop + ["/usr/bin/python3", JAIL_INSIDE, cfg, "--"] + spec.argv
    return args, fds


DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671, "postgres": 5432, "postgresql": 5432, "redis": 6379, "http": 80,
                 "https": 443}


def dialed(env: dict[str, str], net: Net) -> set[tuple[str, int]]:
    """The (host, port) pairs the URLs in a service's environment name."""
    found = set()
    for value in env.values():
        for scheme, host, port in re.findall(r"([a-z][a-z0-9+.-]*)://(?:[^@/\s]*@)?([A-Za-z0-9.-]+)(?::(\d+))?", value):
            host = net.aliases.get(host, host)
            if host in net.ips and (port or scheme in DEFAULT_PORTS):
                found.add((host, int(port) if port else DEFAULT_PORTS[scheme]))
    return found


class Jailed:
    """A service started in its jail, its log in `work/log`."""

    def __init__(self, spec: Spec, argv: list[str], fds: list[int], work: Path) -> None:
        self.spec = spec
        self.log_path = work / "log"
        self.log = open(self.log_path, "wb")
        info_r, info_w = os.pipe()
        self.proc = subprocess.Popen(argv[:1] + ["--info-fd", str(info_w)] + argv[1:], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     pass_fds=fds + [info_w])
        os.close(info_w)
        text = ""
        while not (m := re.search(r'"child-pid": (\d+)', text)):
            chunk = os.read(info_r, 4096).decode()
            if not chunk:
                break
            text += chunk
        # Kept open: bwrap writes more to it later and would die of SIGPIPE.
        self.info = info_r
        # The jail's PID 1 (the service's init; the relays run under it), seen
        # from here. Killing it ends everything in the jail.
        self.child = int(m.group(1)) if m else None

    def stop(self) -> None:
        """SIGTERM to what the container runtime would signal (PID 1)."""
        if self.child and self.proc.poll() is None:
            try:
                os.kill(self.child, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        # setpriv changing the user clears bwrap's parent-death signal, so
        # killing bwrap alone would leave the jail running.
        if self.proc.poll() is None:  # so the child's PID is still its own
            for pid in (self.child, self.proc.pid):
                try:
                    if pid:
                        os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.proc.wait()
        self.close()

    def close(self) -> None:
        if self.info is not None:
            os.close(self.info)
            self.info = None

    def tail(self, n: int = 15) -> str:
        self.log.flush()
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join("    | " + line[:300] for line in lines[-n:])
