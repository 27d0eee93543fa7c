"""Every match and target kptui knows, by the name iptables loads it by.

The core modules (matches.py, targets.py) and the extension modules (ext/) in
one table each; an extension module may replace a core class of the same name.
"""

from __future__ import annotations

from kptui.engine.iptables import matches, targets
from kptui.engine.iptables.ext import extension_classes

_EXT_MATCHES, _EXT_TARGETS = extension_classes()

MATCHES: dict[str, type[matches.Match]] = {
    **matches.MATCHES, **{cls.name: cls for cls in _EXT_MATCHES}}
TARGETS: dict[str, type[targets.Target]] = {
    **targets.TARGETS, **{cls.name: cls for cls in _EXT_TARGETS}}

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
        cls = MATCHES.get(name) if name.islower() else TARGETS.get(name)
        if cls is None:
            out["unknown"].append(name)
        elif getattr(cls, "gone", False):  # iptables knows it, Linux 6.18 refuses it
            out["gone"].append(name)
        elif issubclass(cls, matches.Match):
            out["simulated" if cls.test is not matches.Match.test else "parsed"].append(name)
        else:
            out["simulated" if cls.apply is not targets.Target.apply else "parsed"].append(name)
    return out
