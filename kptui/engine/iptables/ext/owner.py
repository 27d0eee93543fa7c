"""-m owner (libxt_owner 1.8.9 revision 1, xt_owner.c): the sending socket's owner.

Only locally generated packets have a socket (OUTPUT and POSTROUTING, the
kernel's hooks for it). A kptui packet says which socket it has in
``meta.sock``: "user" for a process's (a scenario's local packet: its `uid`
and `gid` keys, 0 by default, are the socket file's fsuid and fsgid, with no
supplementary groups), "kernel" for the kernel's ICMP socket (no file), ""
for none (forwarded packets, REJECT's TCP reset).

User and group names are Debian's base-passwd ones (the ids it fixes on every
Debian system), which iptables reads through getpwnam/getgrnam; iptables-save
prints numbers.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.ext._idopts import Quick
from kptui.engine.iptables.ext._kernel import kernel_refuses
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch, strtoul_prefix

USERS = {"root": 0, "daemon": 1, "bin": 2, "sys": 3, "sync": 4, "games": 5, "man": 6,
         "lp": 7, "mail": 8, "news": 9, "uucp": 10, "proxy": 13, "www-data": 33,
         "backup": 34, "list": 38, "irc": 39, "nobody": 65534}
GROUPS = {"root": 0, "daemon": 1, "bin": 2, "sys": 3, "adm": 4, "tty": 5, "disk": 6, "lp": 7,
          "mail": 8, "news": 9, "uucp": 10, "man": 12, "proxy": 13, "kmem": 15,
          "dialout": 20, "fax": 21, "voice": 22, "cdrom": 24, "floppy": 25, "tape": 26,
          "sudo": 27, "audio": 29, "dip": 30, "www-data": 33, "backup": 34, "operator": 37,
          "list": 38, "irc": 39, "src": 40, "shadow": 42, "utmp": 43, "video": 44,
          "sasl": 45, "plugdev": 46, "staff": 50, "games": 60, "users": 100,
          "nogroup": 65534}
_ID_MAX = 0xFFFFFFFE  # "-1 is reversed, so the max is one less than that"
# bits of xt_owner_match_info.match / .invert
UID, GID, SOCKET, SUPPL = 1, 2, 4, 8


def _strtoui(text: str) -> tuple[int | None, str]:
    """xtables_strtoui with an end pointer, base 0, in 0..UINT32_MAX-1: (value, rest)."""
    if text.lstrip(" \t\n\v\f\r").startswith("-"):
        return None, text
    value, rest = strtoul_prefix(text)
    if value is None or value > _ID_MAX:
        return None, rest
    return value, rest


def _range(text: str, opt: str) -> tuple[int, int]:
    """owner_parse_range: ``a``, ``a-b`` or ``a:b``."""
    bad = BadValue(f'owner: Bad value for "{opt}" option: "{text}"')
    lo, rest = _strtoui(text)
    if lo is None:
        raise bad
    hi = lo
    if rest[:1] in ("-", ":") and rest:
        hi, rest = _strtoui(rest[1:])
        if hi is None:
            raise bad
    if rest:
        raise bad
    return lo, hi


class OwnerMatch(Quick, XtMatch):
    name = "owner"
    entries = (Entry("uid-owner", XT.STRING, invert=True),
               Entry("gid-owner", XT.STRING, invert=True),
               Entry("socket-exists", invert=True),
               Entry("suppl-groups"))
    chains = frozenset({"OUTPUT", "POSTROUTING"})  # xt_owner's hooks

    def __init__(self) -> None:
        super().__init__()
        self.match = self.invert = 0
        self.uid = self.gid = (0, 0)

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        if name == "suppl-groups":
            if not self.match & GID:
                raise BadValue('owner: Bad value for "--suppl-groups" option: '
                               '"you need to use --gid-owner first"')
            self.match |= SUPPL
            return
        bit = {"uid-owner": UID, "gid-owner": GID, "socket-exists": SOCKET}[name]
        self.match |= bit
        if inv:
            self.invert |= bit
        if bit == UID:
            uid = USERS.get(value)
            self.uid = (uid, uid) if uid is not None else _range(value, "--uid-owner")
        elif bit == GID:
            gid = GROUPS.get(value)
            self.gid = (gid, gid) if gid is not None else _range(value, "--gid-owner")

    def check(self) -> None:
        if not self.seen:
            raise BadValue("owner: At least one of --uid-owner, --gid-owner or "
                           "--socket-exists is required")
        for bit, opt, (lo, hi) in ((UID, "--uid-owner", self.uid),
                                   (GID, "--gid-owner", self.gid)):
            if self.match & bit and hi < lo:  # owner_check
                raise kernel_refuses(f"owner: {opt} {lo}-{hi} is an empty range")

    def save(self) -> str:
        out = []
        for bit, label in ((SOCKET, "--socket-exists"), (UID, "--uid-owner"),
                           (GID, "--gid-owner"), (SUPPL, "--suppl-groups")):
            if not self.match & bit:
                continue
            word = f"{'! ' if self.invert & bit else ''}{label}"
            if bit in (UID, GID):
                lo, hi = self.uid if bit == UID else self.gid
                word += f" {lo}" if lo == hi else f" {lo}-{hi}"
            out.append(word)
        return " ".join(out)

    def test(self, pkt: Any, ctx: Any) -> str | None:
        """owner_mt, in its order."""
        sock = pkt.meta.sock
        if not sock:  # no socket: only a rule whose every option is inverted matches
            if self.match ^ self.invert:
                return "the packet has no socket (not sent by a local process)"
            return None
        if self.match & self.invert & SOCKET:
            return "the packet has a socket, the rule says ! --socket-exists"
        if sock == "kernel":  # the socket has no file: no owner to compare
            if (self.match ^ self.invert) & (UID | GID):
                return "the packet comes from the kernel's ICMP socket, which no user owns"
            return None
        meta = pkt.meta
        if self.match & UID:
            lo, hi = self.uid
            inside = lo <= meta.uid <= hi
            if inside == bool(self.invert & UID):
                return f"socket owner uid {meta.uid} {'in' if inside else 'not in'} " \
                       f"{lo}-{hi}"
        if self.match & GID:
            lo, hi = self.gid
            inside = lo <= meta.gid <= hi  # no supplementary groups: --suppl-groups adds none
            if inside == bool(self.invert & GID):
                return f"socket owner gid {meta.gid} {'in' if inside else 'not in'} " \
                       f"{lo}-{hi}"
        return None


MATCHES = (OwnerMatch,)
