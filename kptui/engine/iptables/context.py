"""What a match needs to know besides the packet: where it is and the box's view."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any


@dataclass
class MatchContext:
    hook: str
    table: str
    iif: str
    oif: str
    addrtype: Callable[[IPv4Address, str | None], str]  # kernel names: LOCAL, UNICAST, ...
    rng: random.Random
    now: float  # simulated seconds, for -m limit
    src_mac: str | None = None
    pkttype: str = "host"  # host | broadcast | multicast | otherhost
    dst_mac: str | None = None  # receiving interface's MAC, for LOG's MAC= field
    nat: Any = None  # at a nat hook: kptui.engine.nat.NatHook, what the NAT targets bind with
    box: Any = None  # the box (the kernel's struct net): its conntrack table and ruleset
    # changes a match makes to the packet (-m socket --restore-skmark sets the mark):
    # (path, old, new), shown as field changes of the rule, then cleared
    match_changes: list[tuple[str, Any, Any]] = field(default_factory=list)
    # packets a target sends besides this one (-j TEE's copy: ext/tee.Duplicate), which
    # the walk announces after the target's event, then clears
    sent: list[Any] = field(default_factory=list)
