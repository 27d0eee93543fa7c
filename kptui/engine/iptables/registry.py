"""Every match and target kptui knows, by the name iptables loads it by.

The core modules (matches.py, targets.py) and the extension modules (ext/) in
one table each; an extension module may replace a core class of the same name.

An extension module is imported when a rule first names one of its classes
(``match_class``, ``target_class``), as iptables loads libxt_NAME.so: a trace of a
kube-proxy ruleset needs a dozen of the 68 modules, and importing them all is a
good part of kptui's start-up. ``EXT_MATCHES`` and ``EXT_TARGETS`` say which module
holds which name; tests/test_extension_coverage.py checks them against the modules
(``ext.extension_classes``), so a new extension is a module plus its line here.
"""

from __future__ import annotations

import importlib
from typing import Any

from kptui.engine.iptables import matches, targets

# name -> the module of kptui/engine/iptables/ext that defines it
EXT_MATCHES: dict[str, str] = {
    "addrtype": "addrtype", "ah": "ipsec", "bpf": "bpf", "cgroup": "cgroup",
    "cluster": "cluster", "comment": "comment", "connbytes": "connbytes",
    "connlabel": "connlabel", "connlimit": "connlimit", "connmark": "mark",
    "conntrack": "conntrack", "cpu": "cpu", "dccp": "dccp", "devgroup": "devgroup",
    "dscp": "tos", "ecn": "ecn", "esp": "ipsec", "hashlimit": "hashlimit",
    "helper": "helper", "icmp": "icmp", "ipcomp": "ipsec", "iprange": "iprange",
    "ipvs": "ipvs", "length": "length", "limit": "limit", "mac": "mac", "mark": "mark",
    "multiport": "multiport", "nfacct": "nfacct", "osf": "osf", "owner": "owner",
    "physdev": "physdev", "pkttype": "pkttype", "policy": "policy", "quota": "quota",
    "rateest": "rateest", "realm": "realm", "recent": "recent", "rpfilter": "rpfilter",
    "sctp": "sctp", "set": "ipset", "socket": "socket", "state": "state",
    "statistic": "statistic", "string": "string", "tcpmss": "tcpmss", "time": "time",
    "tos": "tos", "ttl": "ttl", "u32": "u32", "udp": "udp",
}
EXT_TARGETS: dict[str, str] = {
    "AUDIT": "audit", "CHECKSUM": "checksum", "CLUSTERIP": "removed",
    "CONNSECMARK": "secmark", "CT": "ct", "DSCP": "tos_target", "ECN": "ecn",
    "HMARK": "hmark", "IDLETIMER": "idletimer", "LED": "led", "MARK": "mark_target",
    "NFLOG": "nflog", "NFQUEUE": "nfqueue", "RATEEST": "rateest", "SECMARK": "secmark",
    "SET": "ipset", "SYNPROXY": "synproxy", "TCPMSS": "tcpmss", "TCPOPTSTRIP": "tcpmss",
    "TEE": "tee", "TOS": "tos_target", "TPROXY": "tproxy", "TTL": "ttl_target",
    "ULOG": "removed",
}

# the classes known so far: the core ones, then each extension's once imported
_matches: dict[str, type[matches.Match]] = {
    k: v for k, v in matches.MATCHES.items() if k not in EXT_MATCHES}
_targets: dict[str, type[targets.Target]] = {
    k: v for k, v in targets.TARGETS.items() if k not in EXT_TARGETS}


def _load(name: str, where: dict[str, str], known: dict[str, Any], kind: str) -> Any:
    module = where.get(name)
    if module is None:
        return None
    mod = importlib.import_module(f"kptui.engine.iptables.ext.{module}")
    for cls in getattr(mod, kind, ()):
        known[cls.name] = cls
    return known.get(name)


def match_class(name: str) -> type[matches.Match] | None:
    """The match class iptables loads for ``-m name``; None: no such match."""
    cls = _matches.get(name)
    return cls if cls is not None else _load(name, EXT_MATCHES, _matches, "MATCHES")


def target_class(name: str) -> type[targets.Target] | None:
    """The target class for ``-j name``; None: no such target."""
    cls = _targets.get(name)
    return cls if cls is not None else _load(name, EXT_TARGETS, _targets, "TARGETS")


def is_target(name: str) -> bool:
    """Whether ``name`` is a target's (a chain may not take it), without importing it."""
    return name in _targets or name in EXT_TARGETS


# Every IPv4 match and target of iptables 1.8.9's extensions (extensions/libxt_*.c and
# libipt_*.c; libxt_NAT is DNAT, SNAT, MASQUERADE, REDIRECT and NETMAP; libxt_standard is
# the verdicts), by the name iptables loads them by: what iptables-extensions(8) lists.
IPTABLES_MATCHES = (
    "addrtype", "ah", "bpf", "cgroup", "cluster", "comment", "connbytes", "connlabel",
    "connlimit", "connmark", "conntrack", "cpu", "dccp", "devgroup", "dscp", "ecn", "esp",
    "hashlimit", "helper", "icmp", "ipcomp", "iprange", "ipvs", "length", "limit", "mac",
    "mark", "multiport", "nfacct", "osf", "owner", "physdev", "pkttype", "policy", "quota",
    "rateest", "realm", "recent", "rpfilter", "sctp", "set", "socket", "state", "statistic",
    "string", "tcp", "tcpmss", "time", "tos", "ttl", "u32", "udp")
IPTABLES_TARGETS = (
    "AUDIT", "CHECKSUM", "CLASSIFY", "CLUSTERIP", "CONNMARK", "CONNSECMARK", "CT", "DNAT",
    "DSCP", "ECN", "HMARK", "IDLETIMER", "LED", "LOG", "MARK", "MASQUERADE", "NETMAP",
    "NFLOG", "NFQUEUE", "NOTRACK", "RATEEST", "REDIRECT", "REJECT", "SECMARK", "SET", "SNAT",
    "SYNPROXY", "TCPMSS", "TCPOPTSTRIP", "TEE", "TOS", "TPROXY", "TRACE", "TTL", "ULOG")


def coverage() -> dict[str, list[str]]:
    """The modules in three columns, as the README lists them: simulated (a packet that
    reaches one is walked as the kernel would), parsed (printed back, the walk stops
    with "unsupported yet" when a packet reaches it), unknown (iptables' own error); and
    gone: targets Linux 6.18 no longer has, refused as the kernel refuses them."""
    out: dict[str, list[str]] = {"simulated": [], "parsed": [], "unknown": [], "gone": []}
    for name in (*IPTABLES_MATCHES, *IPTABLES_TARGETS):
        cls = match_class(name) if name.islower() else target_class(name)
        if cls is None:
            out["unknown"].append(name)
        elif getattr(cls, "gone", False):  # iptables knows it, Linux 6.18 refuses it
            out["gone"].append(name)
        elif issubclass(cls, matches.Match):
            out["simulated" if cls.test is not matches.Match.test else "parsed"].append(name)
        else:
            out["simulated" if cls.apply is not targets.Target.apply else "parsed"].append(name)
    return out
