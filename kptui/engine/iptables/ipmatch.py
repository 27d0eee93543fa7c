"""The IP part of a rule (-s -d -i -o -p -f), tested first as ip_packet_match does."""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.values import ip_text, net_text, proto_text


def _neg(inv: bool) -> str:
    return "! " if inv else ""


def iface_matches(pattern: str, name: str) -> bool:
    """Kernel ifname compare: a trailing '+' matches any name with that prefix."""
    if pattern.endswith("+"):
        return name.startswith(pattern[:-1])
    return name == pattern


class IPMatch:
    """Always the first match of a rule. Unset parts match everything."""

    name = "ip"

    def __init__(self) -> None:
        self.src: tuple[int, int, bool] | None = None
        self.dst: tuple[int, int, bool] | None = None
        self.iif: tuple[str, bool] | None = None
        self.oif: tuple[str, bool] | None = None
        self.proto = 0
        self.proto_inv = False
        self.frag: bool | None = None  # True: -f, False: ! -f

    def save(self) -> str:
        out = []
        for flag, v in (("-s", self.src), ("-d", self.dst)):
            if v is not None and (v[1] != 0 or v[2]):
                out.append(f"{_neg(v[2])}{flag} {net_text(v[0], v[1])}")
        for flag, w in (("-i", self.iif), ("-o", self.oif)):
            if w is not None:
                out.append(f"{_neg(w[1])}{flag} {w[0]}")
        if self.proto or self.proto_inv:
            out.append(f"{_neg(self.proto_inv)}-p {proto_text(self.proto)}")
        if self.frag is not None:
            out.append(f"{_neg(not self.frag)}-f")
        return " ".join(out)

    def test(self, pkt: Any, ctx: Any) -> str | None:
        ip = pkt.ip
        if self.src is not None:
            a, m, inv = self.src
            if ((int(ip.src) & m) == a) == inv:
                return f"source {ip.src} {'is' if inv else 'is not'} in {net_text(a, m)}"
        if self.dst is not None:
            a, m, inv = self.dst
            if ((int(ip.dst) & m) == a) == inv:
                return f"destination {ip.dst} {'is' if inv else 'is not'} in {net_text(a, m)}"
        if self.iif is not None:
            pat, inv = self.iif
            if iface_matches(pat, ctx.iif) == inv:
                return f"in-interface {ctx.iif or '(none)'} {'matches' if inv else 'is not'} {pat}"
        if self.oif is not None:
            pat, inv = self.oif
            if iface_matches(pat, ctx.oif) == inv:
                return f"out-interface {ctx.oif or '(none)'} {'matches' if inv else 'is not'} " \
                       f"{pat}"
        if self.proto:
            if (ip.proto == self.proto) == self.proto_inv:
                return f"protocol {proto_text(ip.proto)} {'is' if self.proto_inv else 'is not'} " \
                       f"{proto_text(self.proto)}"
        elif self.proto_inv:  # ! -p all never matches
            return "! -p all matches no packet"
        if self.frag is not None:
            is_frag = ip.frag_offset != 0
            if is_frag != self.frag:
                return "not a non-first fragment" if self.frag else "a non-first fragment"
        return None


__all__ = ["IPMatch", "iface_matches", "ip_text"]
