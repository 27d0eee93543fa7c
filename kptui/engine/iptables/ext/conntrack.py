"""-m conntrack (libxt_conntrack 1.8.9, revision 3; xt_conntrack.c conntrack_mt).

Parsing and printing follow conntrack3_mt_parse and conntrack_dump: states and
statuses are comma lists of names or their prefixes (``ne,e`` is NEW,ESTABLISHED;
an unknown one is refused with the rest of the list: ``Bad ctstate "foo,BAR"``),
printed in the kernel's bit order; ``--ctproto`` prints as a number; addresses
keep the host bits given and print without ``/32``; a port or expiry range
prints as one number when both ends are equal (a port range also when its high
end is 0).

The match (conntrack_mt) checks the options in the kernel's order, the first
failing one being the reason: state (with the SNAT/DNAT virtual states of the
entry's status), then, without an entry, nothing else can match; direction,
addresses, protocol and ports of either tuple, status bits, and the seconds
left (``--ctexpire``, 0 for an entry not confirmed yet).
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.matches import CT_STATES, _ct_statebit
from kptui.engine.iptables.values import BadValue, ip_text
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch, parse_entry_value, plen

# conntrack_ps_state / conntrack_ps_status: the order names are tried in
_STATE_PARSE = ("INVALID", "NEW", "ESTABLISHED", "RELATED", "UNTRACKED", "SNAT", "DNAT")
_STATUS_PARSE = ("NONE", "EXPECTED", "SEEN_REPLY", "ASSURED", "CONFIRMED")
_STATUS_PRINT = _STATUS_PARSE[1:]
_ADDRS = ("ctorigsrc", "ctorigdst", "ctreplsrc", "ctrepldst")
_PORTS = ("ctorigsrcport", "ctorigdstport", "ctreplsrcport", "ctrepldstport")
_SAVE_ORDER = ("ctstate", "ctproto", *_ADDRS, *_PORTS, "ctstatus", "ctexpire", "ctdir")
_HOST = Entry("host", XT.HOST)


def _ascii_lower(text: str) -> str:
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


def _name_list(arg: str, names: tuple[str, ...], what: str) -> frozenset[str]:
    """conntrack_ps_states/statuses: each part is a (case-insensitive) prefix of a name."""
    got: set[str] = set()
    while True:
        part, comma, rest = arg.partition(",")
        low = _ascii_lower(part)
        hit = next((n for n in names if part and len(part) <= len(n)
                    and _ascii_lower(n[:len(part)]) == low), None)
        if hit is None:
            raise BadValue(f'Bad {what} "{arg}"')
        got.add(hit)
        if not comma:
            return frozenset(got)
        arg = rest


def _range_text(lo: int, hi: int, *, port: bool) -> str:
    if lo == hi or (port and hi == 0):
        return str(lo)
    return f"{lo}:{hi}"


class ConntrackMatch(XtMatch):
    """xt_conntrack (conntrack_mt, revision 3): every given option must hold."""

    name = "conntrack"
    entries = (
        Entry("ctstate", XT.STRING, invert=True),
        Entry("ctproto", XT.PROTOCOL, invert=True),
        *(Entry(a, XT.STRING, invert=True) for a in _ADDRS),
        Entry("ctstatus", XT.STRING, invert=True),
        Entry("ctexpire", XT.UINT32RC, invert=True),
        *(Entry(p, XT.PORTRC, invert=True) for p in _PORTS),
        Entry("ctdir", XT.STRING),
    )

    def __init__(self) -> None:
        super().__init__()
        self.val: dict[str, Any] = {}  # option name -> its value
        self.inv: dict[str, bool] = {}

    @property
    def values(self) -> dict[str, tuple[str, bool]]:
        """--option -> (its value as saved, inverted): what the classic profile checks
        against 2.4's conntrack match (profile_check)."""
        return {f"--{n}": (self._text(n), self.inv[n]) for n in self.val}

    @property
    def proto(self) -> int | None:
        return self.val.get("ctproto")

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        if name == "ctstate":
            value = _name_list(value, _STATE_PARSE, "ctstate")
        elif name == "ctstatus":
            value = _name_list(value, _STATUS_PARSE, "ctstatus") - {"NONE"}
        elif name == "ctproto":
            # conntrack_mt_parse tests XT_INV_PROTO (0x40) in invert_flags, which is
            # the bit of an inverted --ctstatus given before it
            if value == 0 and self.inv.get("ctstatus"):
                raise BadValue("conntrack: rule would never match protocol")
        elif name in _ADDRS:
            host, slash, bits = value.partition("/")
            addr = parse_entry_value(self.name, _HOST, host)
            value = (addr, plen(self.name, name, bits)[1] if slash else 0xFFFFFFFF)
        elif name == "ctexpire":
            value = (value[0], value[1] if len(value) >= 2 else value[0])
        elif name in _PORTS:
            value = (value[0], value[1])
        else:  # ctdir, strcasecmp
            if _ascii_lower(value) not in ("original", "reply"):
                raise BadValue(f'conntrack: Bad value for "--ctdir" option: "{value}"')
            value = _ascii_lower(value).upper()
        self.val[name] = value
        self.inv[name] = inv

    def check(self) -> None:
        if not self.val:
            raise BadValue("conntrack: At least one option is required")

    def _text(self, name: str) -> str:
        v = self.val[name]
        if name == "ctstate":
            return ",".join(s for s in CT_STATES if s in v)
        if name == "ctstatus":
            return ",".join(s for s in _STATUS_PRINT if s in v) or "NONE"
        if name in _ADDRS:
            addr, mask = v
            if mask == 0xFFFFFFFF:
                return ip_text(addr)
            inv = ~mask & 0xFFFFFFFF
            return f"{ip_text(addr)}/{32 - inv.bit_length()}"
        if name in _PORTS or name == "ctexpire":
            return _range_text(*v, port=name != "ctexpire")
        return str(v)

    def save(self) -> str:
        return " ".join(f"{'! ' if self.inv[n] else ''}--{n} {self._text(n)}"
                        for n in _SAVE_ORDER if n in self.val)

    def test(self, pkt: Any, ctx: Any) -> str | None:
        """conntrack_mt: options in the kernel's order; the first failing one is the reason."""
        from kptui.engine.conntrack import ORIGINAL, Status, direction_of

        val, inv = self.val, self.inv
        ct = pkt.meta.ct
        state = _ct_statebit(pkt)
        if "ctstate" in val:
            states = {state}
            if ct is not None:
                if ct.has(Status.SRC_NAT):
                    states.add("SNAT")
                if ct.has(Status.DST_NAT):
                    states.add("DNAT")
            if bool(states & val["ctstate"]) == inv["ctstate"]:
                return (f"ctstate {','.join(sorted(states))} "
                        f"{'in' if inv['ctstate'] else 'not in'} {self._text('ctstate')}")
        if ct is None:
            if "ctstate" in val:
                return None
            return f"no conntrack entry ({state})"
        if "ctdir" in val:
            direction = "ORIGINAL" if direction_of(pkt.meta.ctinfo) == ORIGINAL else "REPLY"
            if direction != val["ctdir"]:
                return f"packet is in the {direction} direction"
        tuples = {"orig": ct.original, "repl": ct.reply}
        for name in _ADDRS:
            if name in val:
                tup = tuples[name[2:6]]
                addr = tup.src if name.endswith("src") else tup.dst
                want, mask = val[name]
                same = not ((int(addr) ^ want) & mask)
                if same == inv[name]:
                    return (f"{name} {addr} {'matches' if inv[name] else 'does not match'} "
                            f"{self._text(name)}")
        if "ctproto" in val and (ct.proto == val["ctproto"]) == inv["ctproto"]:
            return f"connection protocol {ct.proto}"
        for name in _PORTS:
            if name in val:
                tup = tuples[name[2:6]]
                if name[6:9] == "src":
                    port = tup.sport
                elif tup.proto == 1:
                    port = tup.icmp_type << 8 | tup.icmp_code  # ntohs(dst.u.all)
                else:
                    port = tup.dport
                lo, hi = val[name]
                if (lo <= port <= hi) == inv[name]:
                    return (f"{name} {port} {'in' if inv[name] else 'not in'} "
                            f"{lo}:{hi}")
        if "ctstatus" in val:
            mask = Status.NONE
            for bit in val["ctstatus"]:
                mask |= Status[bit]
            if bool(ct.status & mask) == inv["ctstatus"]:
                have = [n for n in _STATUS_PRINT if ct.status & Status[n]] or ["NONE"]
                return (f"ctstatus {','.join(have)} {'has' if inv['ctstatus'] else 'lacks'} "
                        f"{self._text('ctstatus')}")
        if "ctexpire" in val:
            left = int(ct.remaining(ctx.now))
            lo, hi = val["ctexpire"]
            if (lo <= left <= hi) == inv["ctexpire"]:
                return (f"expires in {left} s, {'in' if inv['ctexpire'] else 'not in'} "
                        f"{lo}:{hi}")
        return None


MATCHES = (ConntrackMatch,)
