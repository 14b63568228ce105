"""One deployment's jailed run: stand-ins for its backing services, its
services started in their jails in dependency order, the demo through
them, and a clean stop within each declared grace period."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path

from jail import Hub, Jailed, bwrap_argv
from netmodel import Net
from spec import Spec

# The backing services' names in the spec files and the ports they serve.
STANDIN_PORTS = {"rabbitmq": {5672}, "postgres": {5432}, "redis": {6379}, "minio": {9000}}


class Failed(Exception):
    pass


def _sh(*cmd: str) -> str:
    return subprocess.run(list(cmd), check=True, capture_output=True, text=True).stdout


def _http_unix(path: str, target: str, timeout: float = 2) -> int:
    """Status of a GET over a Unix socket (the relay into a jail)."""
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(f"GET {target} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        head = s.recv(64).decode(errors="replace")
        s.close()
        return int(head.split()[1]) if head.startswith("HTTP/") else 0
    except (OSError, ValueError, IndexError):
        return 0


def _tcp_unix(path: str) -> bool:
    """True once something inside the jail accepted a connection on the relayed port."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(path)
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return bool(s.recv(1))
    except OSError:
        return False


class Run:
    def __init__(self, dep: str, specs: list[Spec], net: Net, work: Path, bin_dir: Path, binaries: list[str],
                 base_dir: Path, say, moto: str) -> None:
        self.dep, self.specs, self.net, self.work = dep, specs, net, work
        self.bin_dir, self.binaries, self.base_dir, self.say, self.moto = bin_dir, binaries, base_dir, say, moto
        tag = f"docket-constraints-{dep}"
        self.vhost, self.db, self.prefix = tag, tag.replace("-", "_"), tag
        self.hub = Hub(work / "sock")
        self.running: list[Jailed] = []
        self.jails: list[Jailed] = []  # every jail started, for the cleanup
        self.moto_proc = None

    # --- stand-ins ---------------------------------------------------------------
    def standins(self) -> None:
        if self.vhost in _sh("rabbitmqctl", "-q", "list_vhosts").split():
            _sh("rabbitmqctl", "-q", "delete_vhost", self.vhost)
        _sh("rabbitmqctl", "-q", "add_vhost", self.vhost)
        _sh("rabbitmqctl", "-q", "set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qAtc"]
        _sh(*psql, f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
        _sh(*psql, f'CREATE DATABASE "{self.db}"')
        port = _free_port()
        self.moto_proc = subprocess.Popen([self.moto, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        buckets = set()
        for s in self.specs:
            for k in ("STORAGE_URL", "SCRATCH_URL"):
                u = urllib.parse.urlsplit(s.env.get(k, ""))
                if u.scheme == "s3":
                    buckets.add(u.hostname)
        for b in sorted(buckets):
            _sh("curl", "-fsS", "-X", "PUT", f"http://127.0.0.1:{port}/{b}")
        hosts = {"rabbitmq": ("127.0.0.1", 5672), "postgres": ("127.0.0.1", 5432), "redis": ("127.0.0.1", 6379),
                 "minio": ("127.0.0.1", port)}
        for name, to in hosts.items():
            for p in STANDIN_PORTS[name]:
                self.hub.standin(name, p, to)
        self.say(f"stand-ins: rabbitmq -> 127.0.0.1:5672 vhost {self.vhost} (user guest); postgres -> 127.0.0.1:5432 "
                 f"database {self.db} (user postgres); redis -> 127.0.0.1:6379 prefix {self.prefix}; "
                 f"minio -> moto on 127.0.0.1:{port}, buckets {', '.join(sorted(buckets))}")

    def translate(self, s: Spec) -> None:
        """The only edits to a spec's environment: credentials and namespaces of our own."""
        env = s.env
        if "AMQP_URL" in env:
            u = urllib.parse.urlsplit(env["AMQP_URL"])
            env["AMQP_URL"] = f"amqp://guest:guest@{u.hostname}:{u.port or 5672}/{urllib.parse.quote(self.vhost, safe='')}"
        if "DATABASE_URL" in env:
            u = urllib.parse.urlsplit(env["DATABASE_URL"])
            env["DATABASE_URL"] = f"postgres://postgres@{u.hostname}:{u.port or 5432}/{self.db}"
        if "REDIS_URL" in env:
            env["REDIS_KEY_PREFIX"] = self.prefix

    def cleanup(self) -> None:
        for j in self.jails:
            j.kill()
        if self.moto_proc:
            self.moto_proc.kill()
        for cmd in (["rabbitmqctl", "-q", "delete_vhost", self.vhost],
                    ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qAtc",
                     f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)']):
            subprocess.run(cmd, capture_output=True)
        keys = subprocess.run(["redis-cli", "--scan", "--pattern", f"{self.prefix}:*"], capture_output=True, text=True).stdout.split()
        for i in range(0, len(keys), 500):
            subprocess.run(["redis-cli", "del", *keys[i:i + 500]], capture_output=True)

    # --- jails ---------------------------------------------------------------------
    def start(self, s: Spec, argv: list[str] | None = None, label: str | None = None) -> Jailed:
        if argv is not None:
            s = Spec(**{**s.__dict__, "argv": argv, "one_shot": True, "ports": set(), "mounts": list(s.mounts)})
        work = self.work / (label or s.name)
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        cmd, fds = bwrap_argv(s, self.net, self.hub, work, self.bin_dir, self.binaries, self.base_dir)
        j = Jailed(s, cmd, fds, work)
        self.jails.append(j)
        if not s.one_shot:
            self.running.append(j)
        return j

    def finish(self, j: Jailed, deadline: float, what: str) -> None:
        try:
            code = j.proc.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            j.kill()
            raise Failed(f"{what} did not finish in {deadline:.0f}s:\n{j.tail()}")
        if code != 0:
            raise Failed(f"{what} exited with {code}:\n{j.tail()}")
        self.say(f"{what}: done")

    def await_ready(self, j: Jailed, deadline: float = 90) -> None:
        s, end = j.spec, time.monotonic() + deadline
        http = int(s.env["HTTP_ADDR"].rsplit(":", 1)[1]) if "HTTP_ADDR" in s.env else None
        while time.monotonic() < end:
            if j.proc.poll() is not None:
                raise Failed(f"{s.name} exited with {j.proc.returncode} at start:\n{j.tail()}")
            if http and _http_unix(self.hub.path(s.name, http), "/readyz") == 200:
                return
            if not http and all(_tcp_unix(self.hub.path(s.name, p)) for p in s.ports):
                return
            time.sleep(0.5)
        raise Failed(f"{s.name} not ready after {deadline:.0f}s:\n{j.tail()}")

    def check_alive(self) -> None:
        for j in self.running:
            if j.proc.poll() is not None:
                raise Failed(f"{j.spec.name} exited with {j.proc.returncode}:\n{j.tail()}")

    def stop_all(self) -> None:
        """SIGTERM everything; each must exit by itself within its grace period."""
        started = time.monotonic()
        for j in reversed(self.running):
            j.stop()
        problems = []
        for j in reversed(self.running):
            left = max(0.0, started + j.spec.grace - time.monotonic())
            try:
                code = j.proc.wait(timeout=left)
            except subprocess.TimeoutExpired:
                j.kill()
                problems.append(f"{j.spec.name} ignored SIGTERM for its whole grace period ({j.spec.grace:.0f}s)")
                continue
            if code != 0:
                problems.append(f"{j.spec.name} exited with {code} after SIGTERM:\n{j.tail()}")
        self.running = []
        if problems:
            raise Failed("\n".join(problems))
        self.say(f"every service stopped by itself after SIGTERM in {time.monotonic() - started:.1f}s")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
