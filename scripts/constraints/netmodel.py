"""Who may reach whom, read from the spec files: compose networks (an
`internal` network has no way out), Kubernetes Services and the egress
rules of NetworkPolicies. Every jailed service gets a network namespace of
its own (as a container does); this decides which peers it can dial there.
"""

from __future__ import annotations

import ipaddress

from spec import Spec


class Net:
    """Names every service can resolve, and which (name, port) each may reach."""

    def __init__(self) -> None:
        self.ips: dict[str, str] = {}  # host name -> loopback address inside every jail
        self.aliases: dict[str, str] = {}  # FQDN -> short name
        self.target: dict[tuple[str, int], tuple[str, int]] = {}  # (name, port) -> (endpoint, port)
        self.allowed: dict[str, set[tuple[str, int]]] = {}  # spec name -> reachable (name, port)
        self.outside: dict[str, bool] = {}  # spec name -> has a way out of the deployment
        self.peers: dict[str, set[str]] = {}  # spec name -> every service it can dial, by name

    def name(self, host: str) -> None:
        if host not in self.ips:
            self.ips[host] = str(ipaddress.ip_address("127.0.1.1") + len(self.ips))

    def hosts_file(self) -> str:
        lines = ["127.0.0.1\tlocalhost"]
        for host, ip in self.ips.items():
            extra = " ".join(a for a, s in self.aliases.items() if s == host)
            lines.append(f"{ip}\t{host} {extra}".rstrip())
        return "\n".join(lines) + "\n"


def compose(doc: dict, specs: list[Spec], standins: dict[str, set[int]]) -> Net:
    net = Net()
    services = doc["services"]

    def networks(svc: dict) -> list[str]:
        n = svc.get("networks") or ["default"]
        return list(n) if isinstance(n, (list, dict)) else ["default"]

    declared = doc.get("networks") or {}
    ports: dict[str, set[int]] = {s.name: s.ports for s in specs}
    for name in services:
        net.name(name)
        for p in ports.get(name, standins.get(name, set())):
            net.target[(name, p)] = (name, p)
    for s in specs:
        mine = set(networks(services[s.name]))
        peers = {n for n, svc in services.items() if n != s.name and mine & set(networks(svc))}
        net.allowed[s.name] = {(n, p) for n in peers for p in ports.get(n, standins.get(n, set()))}
        net.peers[s.name] = peers
        net.outside[s.name] = any(not (declared.get(n) or {}).get("internal") for n in mine)
    return net


def _selects(selector: dict, labels: dict) -> bool:
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        val, op = labels.get(e["key"]), e["operator"]
        if op == "In" and val not in e["values"]:
            return False
        if op == "NotIn" and val in e["values"]:
            return False
        if op == "Exists" and e["key"] not in labels:
            return False
        if op == "DoesNotExist" and e["key"] in labels:
            return False
    return True


def k8s(docs: list[dict], specs: list[Spec], standins: dict[str, set[int]], namespace: str) -> Net:
    net = Net()
    pods = {d["metadata"]["name"]: d["spec"]["template"] for d in docs
            if d["kind"] in ("Deployment", "StatefulSet", "Job")}
    for d in docs:
        if d["kind"] != "Service":
            continue
        svc = d["metadata"]["name"]
        net.name(svc)
        for fq in (f"{svc}.{namespace}", f"{svc}.{namespace}.svc", f"{svc}.{namespace}.svc.cluster.local"):
            net.aliases[fq] = svc
        backends = [w for w, t in pods.items() if _selects({"matchLabels": d["spec"]["selector"]}, t["metadata"]["labels"])]
        for p in d["spec"]["ports"]:
            tp = p.get("targetPort", p["port"])
            for w in backends:
                if isinstance(tp, str):
                    named = [cp["containerPort"] for c in pods[w]["spec"]["containers"] for cp in c.get("ports") or []
                             if cp.get("name") == tp]
                    tp = named[0]
                endpoint = w if any(s.name == w for s in specs) else svc
                net.target[(svc, p["port"])] = (endpoint, tp)
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    labels_of = {w: t["metadata"].get("labels") or {} for w, t in pods.items()}
    for s in specs:
        mine = [p for p in policies if "Egress" in p["spec"].get("policyTypes", [])
                and _selects(p["spec"].get("podSelector") or {}, s.labels)]
        allowed = set()
        for (svc, port), (endpoint, tport) in net.target.items():
            if endpoint == s.name:
                continue
            if not mine:
                allowed.add((svc, port))
                continue
            tlabels = labels_of.get(endpoint) or next(
                (t["metadata"].get("labels") or {} for w, t in pods.items() if w == endpoint), {})
            if endpoint == svc and svc in standins:  # a stand-in: the Service's own pods' labels
                sel = next(d["spec"]["selector"] for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == svc)
                tlabels = next((t["metadata"].get("labels") for t in pods.values()
                                if _selects({"matchLabels": sel}, t["metadata"].get("labels") or {})), {})
            for pol in mine:
                for rule in pol["spec"].get("egress") or []:
                    to_ok = not rule.get("to") or any(
                        "podSelector" in peer and "ipBlock" not in peer and _selects(peer["podSelector"], tlabels)
                        for peer in rule["to"])
                    ports_ok = not rule.get("ports") or any(rp.get("port") in (tport, None) for rp in rule["ports"])
                    if to_ok and ports_ok:
                        allowed.add((svc, port))
        net.allowed[s.name] = allowed
        net.peers[s.name] = {n for n, _ in allowed}
        # A way out: an egress rule with no `to` on a port other than DNS, or no policy at all.
        net.outside[s.name] = not mine or any(
            not rule.get("to") and not all(rp.get("port") == 53 for rp in rule.get("ports") or [{}])
            for pol in mine for rule in pol["spec"].get("egress") or [])
    return net
