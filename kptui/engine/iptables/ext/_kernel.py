"""What the ct group of extensions (recent, hashlimit, connlimit, ...) shares.

- ``HZ`` and ``jiffies``: the kernel counts time in jiffies; the reference
  kernel (Linux 6.18 on the machine the scenarios are recorded on) has
  CONFIG_HZ=250, so one jiffy is 4 ms of the box's simulated clock.
- ``check_proc_name``: x_tables.c xt_check_proc_name, the kernel's check of a
  name that becomes a /proc file (recent lists, hashlimit tables).
- ``plen`` (xtopt's): libxtables' XTTYPE_PLEN / XTTYPE_PLENMASK parser (xtopt_parse_plen):
  a prefix length, else anything getaddrinfo(AI_NUMERICHOST) reads as an IPv4
  address (``255.255.0.0``, but also ``33``, which is 0.0.0.33). A mask that is not
  a prefix gives xtables_ipmask_to_cidr's -1, kept in a uint8_t: 255, which
  XTTYPE_PLENMASK turns into the all-ones mask (checked: ``--connlimit-mask
  255.0.255.0`` and ``--ctorigsrc 1.2.3.4/33`` save as /32).
- ``shared``: the objects the kernel keeps per network namespace by name (a
  recent list, a hashlimit table): every rule naming it uses the same one, made
  from the first such rule of the ruleset (the first checkentry to run).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kptui.engine.iptables.ext.l4common import kernel_refuses as refusal_text
from kptui.engine.iptables.values import BadValue
from kptui.engine.jiffies import HZ, jiffies  # noqa: F401 - the extensions take them here

U32 = 0xFFFFFFFF
U64 = 0xFFFFFFFFFFFFFFFF


def msecs_to_jiffies(ms: int) -> int:
    """msecs_to_jiffies for HZ 250: rounded up to whole jiffies."""
    step = 1000 // HZ
    return (ms + step - 1) // step


def kernel_refuses(what: str, errno_text: str = "Invalid argument") -> BadValue:
    """The kernel's checkentry refused the rule (iptables-nft: RULE_APPEND failed), in
    the one wording of such refusals (l4common.kernel_refuses)."""
    return BadValue(refusal_text(what, errno_text))


def check_proc_name(ext: str, name: str) -> None:
    """xt_check_proc_name: the name becomes a file under /proc/net."""
    if name == "" or name in (".", "..") or "/" in name:
        raise kernel_refuses(f"{ext}: the name {name!r} cannot be a /proc file name")


def truncate(text: str, size: int) -> str:
    """xtopt_parse_string into a char[size]: at most size - 1 bytes are kept."""
    raw = text.encode("utf-8", "surrogateescape")
    if len(raw) < size:
        return text
    return raw[:size - 1].decode("utf-8", "surrogateescape")


def c_int(v: int) -> int:
    """A u32 printed with %d."""
    return v - (1 << 32) if v & 0x80000000 else v


def shared(ctx: Any, match: Any, key: Any, make: Callable[[list[Any]], Any]) -> Any:
    """The per-netns object ``match`` uses (its attribute ``shared``), found or made.

    The kernel looks such objects up by name in the netns: the first rule's
    checkentry creates it, later ones take a reference. Here every match of the
    same class and ``key`` in the box's ruleset gets the same object, made by
    ``make(peers)`` from all of them in ruleset order. Without a box (a bare
    MatchContext), the object is the match's own.
    """
    if match.shared is not None:
        return match.shared
    box = getattr(ctx, "box", None)
    peers: list[Any] = []
    if box is not None:
        for table in box.ruleset.tables.values():
            for chain in table.chains.values():
                for rule in chain.rules:
                    for m in rule.matches:
                        if type(m) is type(match) and m.shared_key() == key:
                            if m.shared is not None:
                                match.shared = m.shared
                                return m.shared
                            peers.append(m)
    if match not in peers:
        peers.append(match)
    obj = make(peers)
    for m in peers:
        m.shared = obj
    return obj
