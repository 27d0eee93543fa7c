"""-m statistic (libxt_statistic 1.8.9, xt_statistic.c): every nth packet, or at random.

nth: the rule keeps a counter that starts at every - packet (userspace sets it,
statistic_check) and goes up by one per packet the rule sees, wrapping to 0
after every - 1; the packet that makes it 0 matches. random: a 31-bit draw
below probability * 2^31 matches (the box's seeded generator stands in for
the kernel's get_random_u32).
"""

from __future__ import annotations

import math
from typing import Any

from kptui.engine.iptables.ext._idopts import Quick
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch

_PROBABILITY: dict[str, int] = {}  # text -> lround(2^31 * p), for texts parsed before
_CONSISTENT = ({"--mode", "--probability"}, {"--mode", "--every", "--packet"})


class StatisticMatch(Quick, XtMatch):
    name = "statistic"
    entries = (Entry("mode", XT.STRING, mand=True),
               Entry("probability", XT.DOUBLE, invert=True, min=0, max=1,
                     excl=("every", "packet")),
               Entry("every", XT.UINT32, min=1, invert=True, excl=("probability",),
                     also=("packet",)),
               Entry("packet", XT.UINT32, excl=("probability",), also=("every",)))
    stateful = True
    state_attrs = ("count",)

    def __init__(self) -> None:
        super().__init__()
        self.mode = "random"  # XT_STATISTIC_MODE_RANDOM is 0, the default
        self.prob = 0
        self.every = 0  # stored as every - 1, like the kernel
        self.packet = 0
        self.inv = False
        self.count: int | None = None

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        prob = _PROBABILITY.get(args[0]) if opt == "--probability" else None
        if prob is None or opt in self.seen:
            super().option(opt, args, inv)
            if opt == "--probability" and len(_PROBABILITY) < 1024:
                _PROBABILITY[args[0]] = self.prob
        else:  # a probability read before (a restore repeats the same few)
            self.prob, self.inv = prob, self.inv or inv

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        self.inv = self.inv or inv
        if name == "mode":
            if value not in ("random", "nth"):
                raise BadValue(f'Bad mode "{value}"')
            self.mode = value
        elif name == "probability":
            self.prob = math.floor(0x80000000 * value + 0.5)  # lround
        elif name == "every":
            self.every = value - 1
        else:
            self.packet = value

    def finish(self) -> None:  # x6_fcheck runs before the option table's checks
        self.check()
        if self.seen not in _CONSISTENT:  # those two satisfy the table's excl and also
            self.fcheck()

    def check(self) -> None:
        given = self.seen
        if self.mode == "random" and "--probability" not in given:
            raise BadValue("--probability must be specified when using random mode")
        if self.mode == "nth" and not given & {"--every", "--packet"}:
            raise BadValue("--every and --packet must be specified when using nth mode")
        if self.packet > self.every:
            raise BadValue("the --packet p must be 0 <= p <= n-1")

    def save(self) -> str:
        neg = "! " if self.inv else ""
        if self.mode == "random":
            return f"--mode random {neg}--probability {self.prob / 0x80000000:.11f}"
        return f"--mode nth {neg}--every {self.every + 1} --packet {self.packet}"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        if self.mode == "random":
            hit = ctx.rng.getrandbits(31) < self.prob
        else:
            if self.count is None:
                self.count = self.every - self.packet  # info->u.nth.count
            self.count = 0 if self.count == self.every else self.count + 1
            hit = self.count == 0
        if hit != self.inv:
            return None
        return f"statistic {self.mode} did not select this packet"


MATCHES = (StatisticMatch,)
