"""A seeded generator of a Kubernetes node's kube-proxy (iptables mode) ruleset.

Why: kube-proxy is the biggest iptables ruleset most users ever meet (tens of
thousands of rules on a busy node), and the one they most often need to
debug. kptui must parse it quickly and walk a packet through it quickly, so
the benchmark and the index tests use a ruleset shaped exactly like the real
thing, in iptables-save's canonical form.

The shape follows kube-proxy's iptables proxier (pkg/proxy/iptables/proxier.go,
Kubernetes 1.2x) and real `iptables-save` dumps of kubeadm/kind nodes:

- nat: PREROUTING and OUTPUT jump to KUBE-SERVICES, which dispatches on
  `-d CLUSTER_IP/32 -p PROTO --dport PORT` to one KUBE-SVC-<hash> chain per
  service port and ends with the KUBE-NODEPORTS rule (`-m addrtype
  --dst-type LOCAL`). A KUBE-SVC chain marks traffic from outside the pod
  CIDR for masquerade, then spreads connections over its endpoints with
  `-m statistic --mode random --probability 1/(n-i)`. A KUBE-SEP chain marks
  hairpin traffic and DNATs. NodePort services add a KUBE-NODEPORTS rule and a
  KUBE-EXT chain. KUBE-POSTROUTING masquerades what carries mark 0x4000.
  A service with ClientIP session affinity (about one in eight) first sends a
  client back to the endpoint it had (`-m recent --rcheck --seconds 10800
  --reap`), and its KUBE-SEP DNAT rules remember the client (`-m recent --set`).
- filter: INPUT/FORWARD/OUTPUT hooks into KUBE-PROXY-FIREWALL, KUBE-NODEPORTS,
  KUBE-EXTERNAL-SERVICES, KUBE-SERVICES (REJECT for services without
  endpoints), KUBE-FORWARD (conntrack + mark) and kubelet's KUBE-FIREWALL.
- chain names are kube-proxy's: prefix + first 16 characters of the base32 of
  sha256(service port name + protocol [+ endpoint]).

Cluster IPs are drawn from 10.96.0.0/12 and pod IPs from 10.244.0.0/16 (one
/24 per node) as a kubeadm cluster with flannel's defaults does. The output is
only text: nothing here touches a network.
"""

from __future__ import annotations

import base64
import hashlib
import random
import zlib
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

CLUSTER_CIDR = IPv4Network("10.96.0.0/12")  # --service-cluster-ip-range
POD_CIDR = IPv4Network("10.244.0.0/16")  # --cluster-cidr
NODE_PORT_RANGE = (30000, 32767)  # --service-node-port-range
MASQ_MARK = "0x4000"
DROP_MARK = "0x8000"

NAMESPACES = (
    "default", "kube-system", "monitoring", "ingress-nginx", "payments", "checkout", "catalog",
    "search", "auth", "billing", "analytics", "logging", "cert-manager", "argocd", "staging",
    "data", "ml", "web", "api", "messaging",
)
WORDS = (
    "api", "web", "frontend", "backend", "cache", "redis", "postgres", "mysql", "kafka",
    "zookeeper", "grafana", "prometheus", "alertmanager", "loki", "nginx", "gateway", "auth",
    "orders", "cart", "catalog", "search", "users", "inventory", "shipping", "billing",
    "notify", "worker", "scheduler", "metrics", "exporter", "queue", "rabbitmq", "minio",
    "elastic", "kibana", "jaeger", "collector", "webhook", "admin", "report",
)
# (port name, protocol, port, target port): the ports services commonly expose.
PORT_SHAPES = (
    ("http", "tcp", 80, 8080), ("https", "tcp", 443, 8443), ("grpc", "tcp", 9090, 9090),
    ("metrics", "tcp", 9100, 9100), ("", "tcp", 8080, 8080), ("redis", "tcp", 6379, 6379),
    ("postgres", "tcp", 5432, 5432), ("mysql", "tcp", 3306, 3306), ("kafka", "tcp", 9092, 9092),
    ("http-alt", "tcp", 8000, 8000), ("web", "tcp", 3000, 3000), ("amqp", "tcp", 5672, 5672),
    ("syslog", "udp", 514, 5514), ("statsd", "udp", 8125, 8125),
)
# Endpoints per service port: mostly 1-3 replicas, some bigger deployments, a few with none.
ENDPOINT_COUNTS = (0, 1, 1, 2, 2, 3, 3, 3, 3, 4, 5, 6, 8)


@dataclass
class ServicePort:
    """One service port: the unit kube-proxy writes a KUBE-SVC chain for."""

    namespace: str
    name: str
    port_name: str
    proto: str
    cluster_ip: IPv4Address
    port: int
    target_port: int
    endpoints: list[IPv4Address] = field(default_factory=list)
    node_port: int | None = None
    affinity: bool = False  # sessionAffinity: ClientIP

    def __post_init__(self) -> None:
        # decided by the name, not the seeded generator, so earlier dumps keep their shape
        self.affinity = zlib.crc32(f"{self.namespace}/{self.name}".encode()) % 8 == 0

    @property
    def port_key(self) -> str:
        """kube-proxy's ServicePortName string: ns/name or ns/name:port."""
        base = f"{self.namespace}/{self.name}"
        return f"{base}:{self.port_name}" if self.port_name else base

    @property
    def svc_chain(self) -> str:
        return chain_name("KUBE-SVC-", self.port_key + self.proto)

    @property
    def ext_chain(self) -> str:
        return chain_name("KUBE-EXT-", self.port_key + self.proto)

    def sep_chain(self, endpoint: IPv4Address) -> str:
        key = f"{self.port_key}{self.proto}{endpoint}:{self.target_port}"
        return chain_name("KUBE-SEP-", key)


def chain_name(prefix: str, key: str) -> str:
    """servicePortChainName / servicePortEndpointChainName from proxier.go."""
    digest = hashlib.sha256(key.encode()).digest()
    return prefix + base64.b32encode(digest).decode()[:16]


def probability(n: int) -> str:
    """The text iptables-save prints for `--probability 1/n`.

    xt_statistic stores the probability as a u32 fraction of 2^31; iptables-save
    prints it back with 11 decimals: 1/3 -> 0.33333333349, 1/2 -> 0.50000000000.
    """
    stored = round(float(f"{1.0 / n:0.10f}") * 0x80000000)
    return f"{stored / 0x80000000:.11f}"


def make_services(min_rules: int = 20_000, *, seed: int = 1) -> list[ServicePort]:
    """Service ports, in KUBE-SERVICES order, until the ruleset has ``min_rules`` rules."""
    rng = random.Random(seed)
    used_ips: set[IPv4Address] = set()
    used_names: set[tuple[str, str]] = set()
    used_node_ports: set[int] = set()
    pod_ips = _pod_ip_source(rng)
    out: list[ServicePort] = list(_system_services(used_ips, pod_ips))
    total = count_rules(out)
    while total < min_rules:
        ns = rng.choice(NAMESPACES)
        name = f"{rng.choice(WORDS)}-{rng.choice(WORDS)}"
        if (ns, name) in used_names:
            name = f"{name}-{rng.randrange(100, 999)}"
            if (ns, name) in used_names:
                continue
        used_names.add((ns, name))
        ip = _free_cluster_ip(rng, used_ips)
        n_ports = rng.choice((1, 1, 1, 1, 2, 2, 3))
        shapes = rng.sample(PORT_SHAPES, n_ports)
        if n_ports > 1:  # multi-port services must name their ports
            shapes = [s if s[0] else ("main",) + s[1:] for s in shapes]
        n_endpoints = rng.choice(ENDPOINT_COUNTS)
        pods = [next(pod_ips) for _ in range(n_endpoints)]
        node_port_svc = rng.random() < 0.12
        ports = []
        for port_name, proto, port, target in shapes:
            sp = ServicePort(ns, name, port_name, proto, ip, port, target, list(pods))
            if node_port_svc:
                sp.node_port = _free_node_port(rng, used_node_ports)
            ports.append(sp)
        out.extend(ports)
        total += count_rules(ports)
    # kube-proxy iterates a Go map: the order of KUBE-SERVICES is effectively random
    # but stable between syncs; keep the well-known system services in front.
    head, tail = out[:4], out[4:]
    rng.shuffle(tail)
    return head + tail


def count_rules(ports: list[ServicePort]) -> int:
    """Rules a list of service ports adds to nat and filter (without the fixed skeleton)."""
    n = 0
    for sp in ports:
        k = len(sp.endpoints)
        if k == 0:
            n += 1 + (1 if sp.node_port else 0)  # filter REJECTs
        else:
            n += 1 + 1 + k + 2 * k  # KUBE-SERVICES, SVC masq, SVC jumps, SEP masq + DNAT
            if sp.affinity:
                n += k  # SVC: back to the endpoint the client had
            if sp.node_port:
                n += 1 + 2  # KUBE-NODEPORTS + KUBE-EXT
    return n


def render(ports: list[ServicePort], *, save_marks: bool = False) -> str:
    """The whole ruleset as `iptables-save` prints it (without the date comments).

    Checked on this machine (iptables 1.8.9 nf_tables, in a netns): restoring
    this text and running iptables-save gives it back line for line, except
    that kube-proxy's MARK spellings (`--or-mark 0x4000`, `--xor-mark 0x4000`,
    which is what kube-proxy feeds iptables-restore) come back as
    `--set-xmark 0x4000/0x4000` and `--set-xmark 0x4000/0x0`. With
    ``save_marks`` the output uses the latter, i.e. it is exactly a dump.
    """
    text = "".join((_mangle(), _filter(ports), _nat(ports)))
    if save_marks:
        text = text.replace(f"--or-mark {MASQ_MARK}", f"--set-xmark {MASQ_MARK}/{MASQ_MARK}")
        text = text.replace(f"--xor-mark {MASQ_MARK}", f"--set-xmark {MASQ_MARK}/0x0")
    return text


def kube_proxy_ruleset(
    min_rules: int = 20_000, *, seed: int = 1, save_marks: bool = False
) -> tuple[str, list[ServicePort]]:
    """The iptables-save text and the service ports it was made from, in KUBE-SERVICES order."""
    ports = make_services(min_rules, seed=seed)
    return render(ports, save_marks=save_marks), ports


def without_conntrack(text: str) -> str:
    """The ruleset as the first packet of a NEW connection sees it, without conntrack matches.

    kptui does not model connection tracking yet (its matches raise
    UnsupportedError), so the `--ctstate NEW` tests are dropped (they would
    match) and the rules with other conntrack tests removed (they would not
    match a NEW packet, except `! --ctstate RELATED,ESTABLISHED,DNAT`, which
    only concerns 127.0.0.0/8 destinations).
    """
    text = text.replace("-m conntrack --ctstate NEW ", "")
    return "".join(line for line in text.splitlines(keepends=True)
                   if "-m conntrack" not in line)


# -- tables ------------------------------------------------------------------------

def _table(name: str, builtins: list[tuple[str, str]], rules: dict[str, list[str]]) -> str:
    lines = [f"*{name}"]
    lines += [f":{chain} {policy} [0:0]" for chain, policy in builtins]
    builtin_names = [chain for chain, _ in builtins]
    user = sorted(c for c in rules if c not in builtin_names)
    lines += [f":{chain} - [0:0]" for chain in user]
    for chain in builtin_names + user:
        lines += [f"-A {chain} {rule}" for rule in rules.get(chain, [])]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def _mangle() -> str:
    return _table("mangle", [(c, "ACCEPT") for c in
                             ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")],
                  {"KUBE-KUBELET-CANARY": [], "KUBE-PROXY-CANARY": []})


def _c(text: str) -> str:
    return f'-m comment --comment "{text}"'


def _filter(ports: list[ServicePort]) -> str:
    new = "-m conntrack --ctstate NEW"
    rules: dict[str, list[str]] = {
        "INPUT": [
            f'{new} {_c("kubernetes load balancer firewall")} -j KUBE-PROXY-FIREWALL',
            f'{_c("kubernetes health check service ports")} -j KUBE-NODEPORTS',
            f'{new} {_c("kubernetes externally-visible service portals")} '
            "-j KUBE-EXTERNAL-SERVICES",
            "-j KUBE-FIREWALL",
        ],
        "FORWARD": [
            f'{new} {_c("kubernetes load balancer firewall")} -j KUBE-PROXY-FIREWALL',
            f'{_c("kubernetes forwarding rules")} -j KUBE-FORWARD',
            f'{new} {_c("kubernetes service portals")} -j KUBE-SERVICES',
            f'{new} {_c("kubernetes externally-visible service portals")} '
            "-j KUBE-EXTERNAL-SERVICES",
            f'-s {POD_CIDR} {_c("flanneld forward")} -j ACCEPT',
            f'-d {POD_CIDR} {_c("flanneld forward")} -j ACCEPT',
        ],
        "OUTPUT": [
            f'{new} {_c("kubernetes load balancer firewall")} -j KUBE-PROXY-FIREWALL',
            f'{new} {_c("kubernetes service portals")} -j KUBE-SERVICES',
            "-j KUBE-FIREWALL",
        ],
        "KUBE-FIREWALL": [
            f'{_c("kubernetes firewall for dropping marked packets")} '
            f"-m mark --mark {DROP_MARK}/{DROP_MARK} -j DROP",
            f'! -s 127.0.0.0/8 -d 127.0.0.0/8 {_c("block incoming localnet connections")} '
            "-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
        ],
        "KUBE-FORWARD": [
            "-m conntrack --ctstate INVALID -j DROP",
            f'{_c("kubernetes forwarding rules")} -m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT',
            f'{_c("kubernetes forwarding conntrack rule")} '
            "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        ],
        "KUBE-EXTERNAL-SERVICES": [],
        "KUBE-NODEPORTS": [],
        "KUBE-PROXY-FIREWALL": [],
        "KUBE-SERVICES": [],
        "KUBE-KUBELET-CANARY": [],
        "KUBE-PROXY-CANARY": [],
    }
    for sp in ports:
        if sp.endpoints:
            continue
        reject = "-j REJECT --reject-with icmp-port-unreachable"
        rules["KUBE-SERVICES"].append(
            f"-d {sp.cluster_ip}/32 -p {sp.proto} {_c(sp.port_key + ' has no endpoints')} "
            f"-m {sp.proto} --dport {sp.port} {reject}")
        if sp.node_port:
            rules["KUBE-EXTERNAL-SERVICES"].append(
                f"-p {sp.proto} {_c(sp.port_key + ' has no endpoints')} "
                f"-m addrtype --dst-type LOCAL -m {sp.proto} --dport {sp.node_port} {reject}")
    return _table("filter", [("INPUT", "ACCEPT"), ("FORWARD", "ACCEPT"), ("OUTPUT", "ACCEPT")],
                  rules)


def _nat(ports: list[ServicePort]) -> str:
    rules: dict[str, list[str]] = {
        "PREROUTING": [f'{_c("kubernetes service portals")} -j KUBE-SERVICES'],
        "OUTPUT": [f'{_c("kubernetes service portals")} -j KUBE-SERVICES'],
        "POSTROUTING": [f'{_c("kubernetes postrouting rules")} -j KUBE-POSTROUTING'],
        "KUBE-MARK-DROP": [f"-j MARK --set-xmark {DROP_MARK}/{DROP_MARK}"],
        "KUBE-MARK-MASQ": [f"-j MARK --or-mark {MASQ_MARK}"],
        "KUBE-POSTROUTING": [
            f"-m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
            f"-j MARK --xor-mark {MASQ_MARK}",
            f'{_c("kubernetes service traffic requiring SNAT")} -j MASQUERADE --random-fully',
        ],
        "KUBE-NODEPORTS": [],
        "KUBE-SERVICES": [],
        "KUBE-KUBELET-CANARY": [],
        "KUBE-PROXY-CANARY": [],
    }
    for sp in ports:
        if not sp.endpoints:
            continue
        key, proto = sp.port_key, sp.proto
        dst = (f"-d {sp.cluster_ip}/32 -p {proto} {_c(key + ' cluster IP')} "
               f"-m {proto} --dport {sp.port}")
        rules["KUBE-SERVICES"].append(f"{dst} -j {sp.svc_chain}")
        svc = rules.setdefault(sp.svc_chain, [])
        svc.append(f"! -s {POD_CIDR} {dst} -j KUBE-MARK-MASQ")
        n = len(sp.endpoints)
        recent = "-m recent {} --name {} --mask 255.255.255.255 --rsource "
        if sp.affinity:
            for ep in sp.endpoints:
                sep = sp.sep_chain(ep)
                svc.append(f"{_c(f'{key} -> {ep}:{sp.target_port}')} "
                           f"{recent.format('--rcheck --seconds 10800 --reap', sep)}-j {sep}")
        for i, ep in enumerate(sp.endpoints):
            sep = sp.sep_chain(ep)
            stat = ("" if i == n - 1 else
                    f"-m statistic --mode random --probability {probability(n - i)} ")
            svc.append(f"{_c(f'{key} -> {ep}:{sp.target_port}')} {stat}-j {sep}")
            remember = recent.format("--set", sep) if sp.affinity else ""
            rules[sep] = [
                f"-s {ep}/32 {_c(key)} -j KUBE-MARK-MASQ",
                f"-p {proto} {_c(key)} {remember}-m {proto} -j DNAT "
                f"--to-destination {ep}:{sp.target_port}",
            ]
        if sp.node_port:
            rules["KUBE-NODEPORTS"].append(
                f"-p {proto} {_c(key)} -m {proto} --dport {sp.node_port} -j {sp.ext_chain}")
            rules[sp.ext_chain] = [
                f"{_c(f'masquerade traffic for {key} external destinations')} -j KUBE-MARK-MASQ",
                f"-j {sp.svc_chain}",
            ]
    rules["KUBE-SERVICES"].append(
        f'{_c("kubernetes service nodeports; NOTE: this must be the last rule in this chain")} '
        "-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")
    return _table("nat", [(c, "ACCEPT") for c in ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")],
                  rules)


# -- addresses ---------------------------------------------------------------------

def _free_cluster_ip(rng: random.Random, used: set[IPv4Address]) -> IPv4Address:
    first = int(CLUSTER_CIDR.network_address)
    while True:
        ip = IPv4Address(first + rng.randrange(2, CLUSTER_CIDR.num_addresses - 1))
        if ip not in used:
            used.add(ip)
            return ip


def _free_node_port(rng: random.Random, used: set[int]) -> int:
    while True:
        port = rng.randint(*NODE_PORT_RANGE)
        if port not in used:
            used.add(port)
            return port


def _pod_ip_source(rng: random.Random):
    """Unique pod IPs: 40 nodes, each with its /24 of 10.244.0.0/16 (flannel's layout)."""
    base = int(POD_CIDR.network_address)
    free = [base + (node << 8) + host for node in range(40) for host in range(2, 255)]
    rng.shuffle(free)
    for value in free:
        yield IPv4Address(value)
    raise RuntimeError("out of pod addresses")


def _system_services(used_ips: set[IPv4Address], pod_ips) -> list[ServicePort]:
    """default/kubernetes and kube-dns, at the addresses kubeadm gives them."""
    api, dns = IPv4Address("10.96.0.1"), IPv4Address("10.96.0.10")
    used_ips.update((api, dns))
    coredns = [next(pod_ips), next(pod_ips)]
    return [
        ServicePort("default", "kubernetes", "https", "tcp", api, 443, 6443,
                    [IPv4Address("192.168.1.10")]),
        ServicePort("kube-system", "kube-dns", "dns", "udp", dns, 53, 53, list(coredns)),
        ServicePort("kube-system", "kube-dns", "dns-tcp", "tcp", dns, 53, 53, list(coredns)),
        ServicePort("kube-system", "kube-dns", "metrics", "tcp", dns, 9153, 9153, list(coredns)),
    ]


if __name__ == "__main__":
    import sys

    text, _ = kube_proxy_ruleset(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
    sys.stdout.write(text)
