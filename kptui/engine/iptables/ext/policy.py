"""-m policy (libxt_policy 1.8.9, xt_policy.c): the IPsec policy a packet was or will be
handled by.

Parsed and printed, not simulated: kptui models no IPsec (xfrm states and
policies), so the walk stops at the match rather than guessing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kptui.engine.iptables.ext._idopts import Quick
from kptui.engine.iptables.ext.ipvs import hostmask_text, parse_hostmask
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch

XT_POLICY_MAX_ELEM = 4
_PROTO_NAMES = {51: "ah", 50: "esp", 108: "ipcomp"}  # getprotobynumber
_IN_HOOKS = frozenset({"PREROUTING", "INPUT", "FORWARD"})  # policy_mt_check
_OUT_HOOKS = frozenset({"FORWARD", "OUTPUT", "POSTROUTING"})


@dataclass
class _Elem:
    """struct xt_policy_elem: each given field with its `!`."""

    fields: dict[str, tuple[Any, bool]] = field(default_factory=dict)


class PolicyMatch(Quick, XtMatch):
    name = "policy"
    entries = (Entry("dir", XT.STRING), Entry("pol", XT.STRING), Entry("strict"),
               Entry("reqid", XT.UINT32, multi=True, invert=True),
               Entry("spi", XT.UINT32, multi=True, invert=True),
               Entry("tunnel-src", XT.STRING, multi=True, invert=True),
               Entry("tunnel-dst", XT.STRING, multi=True, invert=True),
               Entry("proto", XT.PROTOCOL, multi=True, invert=True),
               Entry("mode", XT.STRING, multi=True, invert=True),
               Entry("next", multi=True, also=("strict",)))

    def __init__(self) -> None:
        super().__init__()
        self.dir = ""
        self.none = self.strict = False
        self.elems = [_Elem()]

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        e = self.elems[-1]
        if name == "dir":
            if value not in ("in", "out"):
                raise BadValue(f'policy_match: invalid dir "{value}"')
            self.dir = value
        elif name == "pol":
            if value not in ("none", "ipsec"):
                raise BadValue(f'policy match: invalid policy "{value}"')
            self.none = self.none or value == "none"
        elif name == "strict":
            self.strict = True
        elif name == "next":
            if len(self.elems) == XT_POLICY_MAX_ELEM:
                raise BadValue("policy match: maximum policy depth reached")
            self.elems.append(_Elem())
        else:
            if name in e.fields:
                raise BadValue(f"policy match: double --{name} option")
            if name in ("tunnel-src", "tunnel-dst"):
                value = parse_hostmask(self.name, name, value)
            elif name == "proto" and value not in _PROTO_NAMES:
                raise BadValue("policy match: protocol must be ah/esp/ipcomp")
            elif name == "mode" and value not in ("transport", "tunnel"):
                raise BadValue(f'policy match: invalid mode "{value}"')
            e.fields[name] = (value, inv)

    def check(self) -> None:
        """policy_check."""
        if not self.dir:
            raise BadValue("policy match: neither --dir in nor --dir out specified")
        if self.none:
            if self.strict:
                raise BadValue("policy match: policy none but --strict given")
            if len(self.elems) > 1:
                raise BadValue("policy match: policy none but policy given")
        for i, e in enumerate(self.elems if not self.none else ()):
            if self.strict and not e.fields:
                raise BadValue(f"policy match: empty policy element {i}. --strict is in "
                               "effect, but at least one of reqid, spi, tunnel-src, "
                               "tunnel-dst, proto or mode is required.")
            mode, inv = e.fields.get("mode", ("transport", False))  # 0 is transport
            if ("tunnel-src" in e.fields or "tunnel-dst" in e.fields) and \
                    (mode == "tunnel") == inv:
                raise BadValue("policy match: --tunnel-src/--tunnel-dst is only valid in "
                               "tunnel mode")

    def allowed_chains(self) -> frozenset[str] | None:
        return _IN_HOOKS if self.dir == "in" else _OUT_HOOKS

    def save(self) -> str:
        out = [f"--dir {self.dir}", f"--pol {'none' if self.none else 'ipsec'}"]
        if self.strict:
            out.append("--strict")
        elems = [] if self.none else self.elems
        for i, e in enumerate(elems):
            for name in ("reqid", "spi", "proto", "mode", "tunnel-dst", "tunnel-src"):
                if name not in e.fields:
                    continue
                value, inv = e.fields[name]
                text = {"spi": lambda v: f"0x{v:x}", "proto": _PROTO_NAMES.get,
                        "tunnel-dst": lambda v: hostmask_text(*v),
                        "tunnel-src": lambda v: hostmask_text(*v)}.get(name, str)(value)
                out.append(f"{'! ' if inv else ''}--{name} {text}")
            if i + 1 < len(elems):
                out.append("--next")
        return " ".join(out)


MATCHES = (PolicyMatch,)
