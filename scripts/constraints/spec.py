"""Reads how docket's own services are declared (docker-compose.yml, the
rendered k8s dev overlay, the Dockerfile) into one shape the jail can start.

Nothing here decides a constraint: every field of a Spec comes from a spec
file, so the check and the deployment files cannot drift apart.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import re
import shlex
import subprocess
from pathlib import Path

import yaml

# Images built from this repository's Dockerfile: image name -> build target.
OWN_IMAGES = {"docket": "docket", "docket-convert": "convert"}


@dataclasses.dataclass
class Mount:
    path: str
    kind: str  # "tmpfs", "volume" (named or anonymous), "emptydir", "bind"
    name: str = ""
    read_only: bool = False
    mode: int | None = None  # tmpfs mode


@dataclasses.dataclass
class Spec:
    deployment: str  # "compose" or "k8s"
    name: str  # compose service / k8s workload name
    target: str  # Dockerfile target
    argv: list[str]
    entry: list[str]  # the entrypoint part of argv (what `run SERVICE ARGS` keeps)
    env: dict[str, str]
    workdir: str
    uid: int
    gid: int
    groups: list[int]
    read_only: bool
    cap_drop_all: bool
    no_new_privs: bool
    mounts: list[Mount]
    grace: float | None  # seconds between SIGTERM and SIGKILL (None: one-shot)
    one_shot: bool
    ports: set[int]  # what peers and probes may connect to
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    depends_on: list[str] = dataclasses.field(default_factory=list)


# --- the Dockerfile ------------------------------------------------------------

@dataclasses.dataclass
class Image:
    env: dict[str, str]
    workdir: str
    user: str
    entrypoint: list[str]
    cmd: list[str]
    binaries: list[str]


def _instructions(text: str) -> list[tuple[str, str]]:
    out, buf = [], ""
    for line in text.splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def _json_or_shell(value: str) -> list[str]:
    value = value.strip()
    if value.startswith("["):
        return yaml.safe_load(value)
    return ["/bin/sh", "-c", value]


def dockerfile(path: Path) -> dict[str, Image]:
    """Every stage's ENV, WORKDIR, USER, ENTRYPOINT and CMD, with inheritance."""
    stages: dict[str, Image] = {}
    bins: list[str] = []
    cur: Image | None = None
    for word, rest in _instructions(path.read_text()):
        if word == "FROM":
            parts = rest.split()
            base = stages.get(parts[0])
            cur = dataclasses.replace(base, env=dict(base.env)) if base else Image({}, "/", "root", [], [], [])
            if len(parts) >= 3 and parts[1].upper() == "AS":
                stages[parts[2]] = cur
        elif cur is None:
            continue
        elif word == "ARG" and rest.startswith("BINS="):
            bins = shlex.split(rest[len("BINS="):])[0].split()
        elif word == "ENV":
            for tok in shlex.split(rest):
                k, _, v = tok.partition("=")
                cur.env[k] = v
        elif word == "WORKDIR":
            cur.workdir = rest
        elif word == "USER":
            cur.user = rest
        elif word == "ENTRYPOINT":
            cur.entrypoint, cur.cmd = _json_or_shell(rest), []
        elif word == "CMD":
            cur.cmd = _json_or_shell(rest)
        elif word == "COPY" and "/out/" in rest:
            cur.binaries = bins
    return stages


def _user(text: str) -> tuple[int, int]:
    u, _, g = str(text).partition(":")
    if not u.isdigit():
        raise SystemExit(f"user {text!r}: only numeric users can be checked without the image's /etc/passwd")
    return int(u), int(g) if g else int(u)


# --- docker-compose ------------------------------------------------------------

def _interpolate(value, env=os.environ):
    if isinstance(value, str):
        return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    return value


def _seconds(text) -> float:
    total, units = 0.0, {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    for n, u in re.findall(r"([\d.]+)(ms|us|h|m|s)", str(text)):
        total += float(n) * units[u]
    return total


def compose(path: Path, images: dict[str, Image]) -> tuple[list[Spec], dict]:
    """docket's own compose services (built from the Dockerfile), and the whole file."""
    doc = _interpolate(yaml.safe_load(path.read_text()))
    specs = []
    for name, svc in doc["services"].items():
        target = (svc.get("build") or {}).get("target")
        if target not in images:
            continue
        img = images[target]
        entry = svc.get("entrypoint", img.entrypoint)
        cmd = svc.get("command", img.cmd if "entrypoint" not in svc else [])
        env = dict(img.env)
        raw = svc.get("environment") or {}
        if isinstance(raw, list):
            raw = dict(e.split("=", 1) for e in raw)
        env.update({k: str(v) for k, v in raw.items() if v is not None})
        uid, gid = _user(svc.get("user", img.user))
        mounts = []
        for v in svc.get("volumes") or []:
            if isinstance(v, dict):
                mounts.append(Mount(v["target"], "volume", v.get("source", ""), bool(v.get("read_only"))))
                continue
            parts = v.split(":")
            if len(parts) == 1:
                mounts.append(Mount(parts[0], "volume"))
            else:
                kind = "bind" if parts[0].startswith((".", "/")) else "volume"
                mounts.append(Mount(parts[1], kind, parts[0], len(parts) > 2 and "ro" in parts[2].split(",")))
        tmpfs = svc.get("tmpfs") or []
        for t in [tmpfs] if isinstance(tmpfs, str) else tmpfs:
            p, _, opts = t.partition(":")
            mode = re.search(r"mode=([0-7]+)", opts)
            mounts.append(Mount(p, "tmpfs", mode=int(mode.group(1), 8) if mode else 0o1777))
        ports = {int(str(p).split(":")[-1].split("/")[0]) for p in svc.get("ports") or []}
        ports |= {int(str(p)) for p in svc.get("expose") or []}
        if "HTTP_ADDR" in env:
            ports.add(int(env["HTTP_ADDR"].rsplit(":", 1)[1]))
        one_shot = svc.get("restart") == "no" or "tools" in (svc.get("profiles") or [])
        deps = svc.get("depends_on") or []
        specs.append(Spec(
            deployment="compose", name=name, target=target, argv=list(entry) + list(cmd), entry=list(entry), env=env,
            workdir=svc.get("working_dir", img.workdir), uid=uid, gid=gid, groups=[],
            read_only=bool(svc.get("read_only")), cap_drop_all="ALL" in (svc.get("cap_drop") or []),
            no_new_privs=any("no-new-privileges" in s and not s.endswith("false") for s in svc.get("security_opt") or []),
            mounts=mounts, grace=None if one_shot else _seconds(svc.get("stop_grace_period", "10s")),
            one_shot=one_shot, ports=ports, depends_on=list(deps if isinstance(deps, list) else deps.keys()),
        ))
    return specs, doc


# --- kubernetes ------------------------------------------------------------------

def kustomize(overlay: Path) -> list[dict]:
    out = subprocess.run(["kubectl", "kustomize", str(overlay)], check=True, capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _k8s_env(container: dict, docs: list[dict]) -> dict[str, str]:
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    env: dict[str, str] = {}
    for src in container.get("envFrom") or []:
        if "configMapRef" in src:
            env.update(by_name[("ConfigMap", src["configMapRef"]["name"])].get("data") or {})
        if "secretRef" in src:
            data = by_name[("Secret", src["secretRef"]["name"])].get("data") or {}
            env.update({k: base64.b64decode(v).decode() for k, v in data.items()})
    for e in container.get("env") or []:
        if "value" in e:
            env[e["name"]] = str(e["value"])
        else:
            raise SystemExit(f"env {e['name']}: only plain values and envFrom can be checked")
    return env


def k8s(docs: list[dict], images: dict[str, Image]) -> list[Spec]:
    """docket's own Deployments and Jobs (image docket or docket-convert)."""
    specs = []
    for d in docs:
        if d["kind"] not in ("Deployment", "Job", "StatefulSet"):
            continue
        pod = d["spec"]["template"]["spec"]
        c = pod["containers"][0]
        image = c["image"].rsplit("/", 1)[-1].split(":")[0].split("@")[0]
        if image not in OWN_IMAGES:
            continue
        img = images[OWN_IMAGES[image]]
        entry = list(c.get("command", img.entrypoint))
        argv = entry + list(c.get("args", img.cmd if "command" not in c else []))
        env = dict(img.env)
        env.update(_k8s_env(c, docs))
        psc, csc = pod.get("securityContext") or {}, c.get("securityContext") or {}
        iu, ig = _user(img.user)
        uid = csc.get("runAsUser", psc.get("runAsUser", iu))
        gid = csc.get("runAsGroup", psc.get("runAsGroup", ig))
        groups = [psc["fsGroup"]] if "fsGroup" in psc else []
        vols = {v["name"]: v for v in pod.get("volumes") or []}
        mounts = []
        for m in c.get("volumeMounts") or []:
            v = vols[m["name"]]
            kind = "emptydir" if "emptyDir" in v else "volume"
            mounts.append(Mount(m["mountPath"], kind, m["name"], bool(m.get("readOnly"))))
        caps = (csc.get("capabilities") or {}).get("drop") or []
        one_shot = d["kind"] == "Job"
        specs.append(Spec(
            deployment="k8s", name=d["metadata"]["name"], target=OWN_IMAGES[image], argv=argv, entry=entry, env=env,
            workdir=c.get("workingDir", img.workdir), uid=uid, gid=gid, groups=groups,
            read_only=bool(csc.get("readOnlyRootFilesystem")), cap_drop_all="ALL" in caps,
            no_new_privs=csc.get("allowPrivilegeEscalation") is False,
            mounts=mounts, grace=None if one_shot else float(pod.get("terminationGracePeriodSeconds", 30)),
            one_shot=one_shot, ports={p["containerPort"] for p in c.get("ports") or []},
            labels=dict(d["spec"]["template"]["metadata"].get("labels") or {}),
        ))
    return specs
