"""-m dccp (libxt_dccp 1.8.9): ports, packet types and an option number.

Parsed and printed as iptables 1.8.9 does, not simulated: kptui models TCP, UDP and
ICMP, and the kernel registers the match for ``-p dccp`` only, so the rule's -p
stops its packets first (another protocol's that gets this far stops the walk).

``--sport`` and ``--source-port`` are one option to libxtables (the same id), and
its messages name the first of the table's entries for that id: ``--sport 1:2:3``
is refused as 'Too many components for option "--source-port"' (checked).
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.ext.l4common import kernel_refuses
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch

# dccp_pkt_types[]: DCCP_PKT_REQUEST (0) .. DCCP_PKT_INVALID (10)
DCCP_TYPES = ("REQUEST", "RESPONSE", "DATA", "ACK", "DATAACK", "CLOSEREQ", "CLOSE", "RESET",
              "SYNC", "SYNCACK", "INVALID")
INVALID_OTHER_TYPE_MASK = 0xF800  # types 11-15 go with INVALID
_ALIAS = {"--sport": "--source-port", "--dport": "--destination-port"}


def parse_dccp_types(text: str) -> int:
    mask = 0
    for part in (p for p in text.split(",") if p):  # strtok skips empty fields
        name = part.upper() if part.isascii() else part
        if name not in DCCP_TYPES:
            raise BadValue(f"Unknown DCCP type `{part}'")
        mask |= 1 << DCCP_TYPES.index(name)
    if mask & 1 << 10:
        mask |= INVALID_OTHER_TYPE_MASK
    return mask


def dccp_types_text(mask: int) -> str:
    """print_types: names from bit 0 up, stopping after INVALID."""
    names = []
    for i in range(11):
        if mask >> i & 1:
            names.append(DCCP_TYPES[i])
    return ",".join(names)


class DccpMatch(XtMatch):
    name = "dccp"
    entries = (Entry("source-port", XT.PORTRC, invert=True),
               Entry("sport", XT.PORTRC, invert=True),
               Entry("destination-port", XT.PORTRC, invert=True),
               Entry("dport", XT.PORTRC, invert=True),
               Entry("dccp-types", XT.STRING, invert=True),
               Entry("dccp-option", XT.UINT8, invert=True, min=1, max=255))
    protos = (33,)
    seen_in_option = True  # an alias is seen under the first entry's name
    proto_error = kernel_refuses("dccp match: only valid for protocol 33")

    def __init__(self) -> None:
        super().__init__()
        self.given: dict[str, tuple[Any, bool]] = {}

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        opt = _ALIAS.get(opt, opt)  # xtables_option_lookup by id: the first entry's name
        super().option(opt, args, inv)
        self.seen = self.seen | {opt}

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        if name == "dccp-types":
            value = parse_dccp_types(value)
        self.given[name] = (value, inv)

    def save(self) -> str:
        out = []
        for name, opt in (("source-port", "--sport"), ("destination-port", "--dport")):
            if name in self.given:
                (lo, hi), inv = self.given[name]
                out.append(f"{'! ' if inv else ''}{opt} {lo}:{hi}" if lo != hi
                           else f"{'! ' if inv else ''}{opt} {lo}")
        if "dccp-types" in self.given:
            mask, inv = self.given["dccp-types"]
            out.append(f"{'! ' if inv else ''}--dccp-types {dccp_types_text(mask)}")
        if "dccp-option" in self.given:
            option, inv = self.given["dccp-option"]
            out.append(f"{'! ' if inv else ''}--dccp-option {option}")
        return " ".join(out)


MATCHES = (DccpMatch,)
