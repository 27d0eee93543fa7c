"""-m connlabel (libxt_connlabel 1.8.9, xt_connlabel.c): a connection's label bits.

connlabel_mt: no conntrack entry, the rule's `!` is the answer; the label bit set
on the connection matches (`!`: does not); else --set sets it and matches, and
without --set it does not. Labels live on the entry (Conn.labels); the kernel
gives every entry created once a connlabel rule exists its labels, and in a kptui
box the rules come before the packets, so every entry has them.
Kernel-verified: tests/kernel/scenarios/ext-connlabel.toml.

A label is a bit number (0-127, the kernel refuses a higher one with ERANGE) or a
name from /etc/xtables/connlabel.conf. Neither that file nor connection labels
exist in kptui (nor on the machine the answers were recorded on), so a name is
refused as iptables refuses it without the file. The bit is kept in a u16, as in
struct xt_connlabel_mtinfo. Saved as ``--label "N"``: iptables prints the number
in quotes when it has no name for it.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.ext._kernel import kernel_refuses
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch, strtoul_prefix

XT_CONNLABEL_MAXBIT = 127
LABEL_FILE = "/etc/xtables/connlabel.conf"


def _label_bit(text: str) -> int:
    """connlabel_value_parse: strtoul base 0 of the whole text, kept in an int (then a u16)."""
    value, rest = strtoul_prefix(text)
    if text and value is not None and rest == "" and value <= 0xFFFFFFFFFFFFFFFF:
        as_int = value & 0xFFFFFFFF
        if not as_int & 0x80000000:
            return as_int & 0xFFFF
    raise BadValue(f"label '{text}' not found or invalid value (Warning: cannot open "
                   f"{LABEL_FILE}: No such file or directory; kptui has no label names, "
                   "give the bit number)")


class ConnlabelMatch(XtMatch):
    name = "connlabel"
    stateful = True  # --set changes the connection
    entries = (Entry("label", XT.STRING, mand=True, invert=True, min=1),
               Entry("set"))

    def __init__(self) -> None:
        super().__init__()
        self.bit = 0
        self.inv = False
        self.set = False

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        if name == "label":
            self.bit, self.inv = _label_bit(value), inv
        else:
            self.set = True

    def check(self) -> None:
        if self.bit > XT_CONNLABEL_MAXBIT:  # connlabel_mt_check
            raise kernel_refuses(f"connlabel: label bit {self.bit} is more than "
                                 f"{XT_CONNLABEL_MAXBIT}", "Numerical result out of range")

    def save(self) -> str:
        text = f'{"! " if self.inv else ""}--label "{self.bit}"'
        return text + (" --set" if self.set else "")

    def test(self, pkt: Any, ctx: Any) -> str | None:
        conn = pkt.meta.ct
        if conn is None:
            return None if self.inv else "the packet has no conntrack entry"
        bit = 1 << self.bit
        if conn.labels & bit:
            return f"the connection has label {self.bit}, and the rule says !" \
                if self.inv else None
        if self.set:
            conn.labels |= bit
            return f"label {self.bit} set on the connection, and the rule says !" \
                if self.inv else None
        return None if self.inv else f"the connection has no label {self.bit}"


MATCHES = (ConnlabelMatch,)
