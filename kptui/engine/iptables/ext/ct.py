"""-j CT (libxt_CT 1.8.9 revision 2, xt_CT.c): the raw table's conntrack template.

Parsed and printed as iptables does (ct_parse_v1, ct_save_v1), with the checks
xt_ct_tg_check makes when the rule is added. Simulated: ``--notrack`` (the
packet becomes UNTRACKED; every other option is then ignored, by the kernel
too). Anything else attaches a template (zone, helper, event masks) that
conntrack.py does not model, so a packet reaching it stops the walk, named.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.errors import UnsupportedError
from kptui.engine.iptables.targets import TargetResult
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtTarget, strtoui

# ct_event_tbl / exp_event_tbl: name -> bit (IPCT_*, IPEXP_*), in the order saved
CT_EVENTS = {"new": 0, "related": 1, "destroy": 2, "reply": 3, "assured": 4,
             "protoinfo": 5, "helper": 6, "mark": 7, "natseqinfo": 8, "secmark": 10}
EXP_EVENTS = {"new": 0}
ZONE_DIR_ORIG, ZONE_DIR_REPL, ZONE_MARK = 2, 4, 8  # XT_CT_ZONE_*
HELPER_SIZE, TIMEOUT_SIZE = 16, 32  # xt_ct_target_info_v1 helper[16], timeout[32]
# The helpers Linux 6.18 registers (nf_conntrack_*.c) and the protocol each is for;
# checked on this machine with `-p P -j CT --helper NAME` (the name is case-sensitive).
HELPERS: dict[str, frozenset[int]] = {
    "ftp": frozenset({6}), "irc": frozenset({6}), "sane": frozenset({6}),
    "pptp": frozenset({6}), "Q.931": frozenset({6}), "sip": frozenset({6, 17}),
    "tftp": frozenset({17}), "amanda": frozenset({17}), "netbios-ns": frozenset({17}),
    "snmp": frozenset({17}), "snmp_trap": frozenset({17}), "RAS": frozenset({17}),
    "H.245": frozenset({17})}


def _events(table: dict[str, int], text: str) -> int:
    """ct_parse_events: comma-separated names (strsep: an empty one is unknown)."""
    mask = 0
    for word in text.split(","):
        if word not in table:
            raise BadValue(f'Unknown event type "{word}"')
        mask |= 1 << table[word]
    return mask


def _events_text(table: dict[str, int], mask: int) -> str:
    return ",".join(name for name, bit in table.items() if mask & 1 << bit)


class CtTarget(XtTarget):
    name = "CT"
    tables = frozenset({"raw"})
    entries = (Entry("notrack"), Entry("helper", XT.STRING), Entry("timeout", XT.STRING),
               Entry("ctevents", XT.STRING), Entry("expevents", XT.STRING),
               Entry("zone-orig", XT.STRING), Entry("zone-reply", XT.STRING),
               Entry("zone", XT.STRING))

    def __init__(self) -> None:
        super().__init__()
        self.notrack = False
        self.helper = ""
        self.timeout = ""
        self.ct_events = 0
        self.exp_events = 0
        self.zone = 0
        self.zone_flags = 0

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        """ct_parse_v1 (strings are XTOPT_PUT: cut to their field's size)."""
        if name == "notrack":
            self.notrack = True
        elif name == "helper":
            self.helper = value[:HELPER_SIZE - 1]
        elif name == "timeout":
            self.timeout = value[:TIMEOUT_SIZE - 1]
        elif name == "ctevents":
            self.ct_events = _events(CT_EVENTS, value)
        elif name == "expevents":
            self.exp_events = _events(EXP_EVENTS, value)
        else:  # ct_parse_zone_id
            self.zone_flags |= {"zone-orig": ZONE_DIR_ORIG, "zone-reply": ZONE_DIR_REPL}.get(
                name, 0)
            self.zone = 0
            if value.lower() == "mark":
                self.zone_flags |= ZONE_MARK
            else:
                zone = strtoui(value, 0, 0xFFFF)
                if zone is None:
                    raise BadValue(f"Cannot parse {value} as a zone ID")
                self.zone = zone

    def finish(self, proto: int, proto_inv: bool) -> None:
        super().finish(proto, proto_inv)
        self.kernel_check(proto, proto_inv)  # at RULE_APPEND: after iptables' own checks

    def kernel_check(self, proto: int, proto_inv: bool) -> None:
        """xt_ct_tg_check: a helper must exist for the rule's protocol; kptui's box
        has no timeout policies (nfct timeout objects), so --timeout always fails."""
        if self.notrack:
            return
        known = proto if proto and not proto_inv else 0  # xt_ct_find_proto
        if self.helper and known not in HELPERS.get(self.helper, ()):
            why = (f"no conntrack helper \"{self.helper}\" for this protocol" if known else
                   "a helper needs -p with the protocol, not inverted")
            raise BadValue(f"CT: {why} (the kernel refuses it: No such file or directory)")
        if self.timeout:
            if not known:
                raise BadValue("CT: --timeout needs -p with the protocol, not inverted (the "
                               "kernel refuses it: Invalid argument)")
            raise BadValue(f'CT: no timeout policy "{self.timeout}" (kptui has no nfct '
                           "timeout objects; the kernel refuses it: No such file or "
                           "directory)")

    def zone_text(self) -> str:
        """ct_print_zone_id, or '' when the zone is not printed."""
        if not (self.zone_flags & ZONE_MARK or self.zone):
            return ""
        way = self.zone_flags & (ZONE_DIR_ORIG | ZONE_DIR_REPL)
        suffix = {ZONE_DIR_ORIG: "-orig", ZONE_DIR_REPL: "-reply"}.get(way, "")
        return f"--zone{suffix} {'mark' if self.zone_flags & ZONE_MARK else self.zone}"

    def save(self) -> str:
        """ct_save_v1."""
        out = ["--notrack"] if self.notrack else []
        if self.helper:
            out.append(f"--helper {self.helper}")
        if self.timeout:
            out.append(f"--timeout {self.timeout}")
        if self.ct_events:
            out.append(f"--ctevents {_events_text(CT_EVENTS, self.ct_events)}")
        if self.exp_events:
            out.append(f"--expevents {_events_text(EXP_EVENTS, self.exp_events)}")
        zone = self.zone_text()
        return " ".join(out + [zone] if zone else out)

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        if not self.notrack:
            given = " ".join(opt for opt in self.by_opt if opt in self.seen)
            what = f"with {given}" if given else "without options"
            raise UnsupportedError(f"the CT target {what} (its conntrack template is not "
                                   "modelled; only CT --notrack is)")
        from kptui.engine.conntrack import set_untracked

        out = TargetResult("CONTINUE")
        old = pkt.meta.ctstate
        if set_untracked(pkt.meta):
            out.changes.append(("meta.ctstate", old, "UNTRACKED"))
        else:
            out.detail = "the packet already has its conntrack state (looped back): ignored"
        return out


TARGETS = (CtTarget,)
