"""-m limit (libxt_limit 1.8.9, xt_limit.c): a token bucket per rule.

The bucket is kept in microseconds of the box's simulated clock: it holds
burst packets' worth of credit, each packet costs one average period, and
credit comes back with time.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.ext._idopts import Quick
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch
from kptui.engine.numbers import scan_uint, split_uint

XT_LIMIT_SCALE = 10000
_UNITS = ((b"second", 1), (b"minute", 60), (b"hour", 3600), (b"day", 86400))
_PRINT = (("day", XT_LIMIT_SCALE * 86400), ("hour", XT_LIMIT_SCALE * 3600),
          ("min", XT_LIMIT_SCALE * 60), ("sec", XT_LIMIT_SCALE))


def _atoi(text: str) -> int:
    """atoi as a uint32_t: leading blanks, a sign, decimal digits up to the first other."""
    body = text.lstrip(" \t\n\v\f\r")
    neg = body[:1] == "-"
    if body[:1] in ("+", "-") and body:
        body = body[1:]
    digits, _ = split_uint(body, 10)
    value = min(scan_uint(digits, 10) or 0, 0x7FFFFFFFFFFFFFFF)  # strtol's clamp, then (int)
    return (-value if neg else value) & 0xFFFFFFFF


_RATES: dict[str, int] = {}  # a restore repeats the same few rates
_RATES_MAX = 1024


def parse_rate(text: str) -> int:
    """parse_rate: ``N[/unit]`` (a prefix of second, minute, hour or day) -> the average
    period in 1/10000 s."""
    period = _RATES.get(text)
    if period is None:
        period = _parse_rate(text)
        if len(_RATES) < _RATES_MAX:
            _RATES[text] = period
    return period


def _parse_rate(text: str) -> int:
    bad = BadValue(f'bad rate "{text}"\'')
    num, slash, unit = text.partition("/")
    mult = 1
    if slash:
        word = unit.encode("utf-8", "surrogateescape").lower()
        hits = [m for name, m in _UNITS if word and name[:len(word)] == word]
        if not hits:
            raise bad
        mult = hits[0]
    r = _atoi(text)
    if not r:
        raise bad
    period = XT_LIMIT_SCALE * mult // r
    if period == 0:
        raise BadValue(f'Rate too fast "{text}"')
    return period


def rate_text(period: int) -> str:
    """print_rate."""
    i = 1
    while i < len(_PRINT):
        mult = _PRINT[i][1]
        if period > mult or mult // period < mult % period:
            break
        i += 1
    name, mult = _PRINT[i - 1]
    return f"{mult // period}/{name}"


class LimitMatch(Quick, XtMatch):
    name = "limit"
    entries = (Entry("limit", XT.STRING), Entry("limit-burst", XT.UINT32, min=0, max=10000))
    stateful = True
    state_attrs = ("credit", "prev")

    def __init__(self) -> None:
        super().__init__()
        self.period = XT_LIMIT_SCALE * 3600 // 3  # XT_LIMIT_AVG "3/hour"
        self.burst = 5
        self.credit: int | None = None
        self.prev = 0

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        if name == "limit":
            self.period = parse_rate(value)
        else:
            # iptables-nft makes -m limit an nft limit expression, where burst 0 means
            # the default, 5 (nft_limit_init; checked: `--limit-burst 0` saves as none)
            self.burst = value or 5

    def save(self) -> str:
        s = f"--limit {rate_text(self.period)}"
        return s + (f" --limit-burst {self.burst}" if self.burst != 5 else "")

    def test(self, pkt: Any, ctx: Any) -> str | None:
        now = round(ctx.now * 1_000_000)
        cost = self.period * 100  # microseconds per packet
        cap = cost * max(self.burst, 1)
        if self.credit is None:
            self.credit, self.prev = cap, now
        self.credit = min(cap, self.credit + max(0, now - self.prev))
        self.prev = now
        if self.credit >= cost:
            self.credit -= cost
            return None
        return f"rate limit {rate_text(self.period)} burst {self.burst} exceeded"


MATCHES = (LimitMatch,)
