"""-m rateest and -j RATEEST (libxt_rateest / libxt_RATEEST 1.8.9): parsed and printed.

RATEEST feeds a named rate estimator (gen_estimator: an EWMA of bytes and
packets per second, sampled by a timer); -m rateest compares estimators with
each other or with fixed rates. kptui's clock only moves between packets and
models no estimator timers, so neither is simulated: a walk that reaches one
stops, named.

libxt_rateest still uses the old getopt parser: its rate options take an
optional argument (the next word, unless it starts with ``-`` or ``!``), each
refusal is worded by the extension itself, and the alias options (``--rateest``
for ``--rateest1``, ``--rateest-bps`` for ``--rateest-bps2``, ...) share their
option's once-only check. Not checked here: the kernel refuses a rateest match
naming an estimator no RATEEST rule created (ENOENT), and a RATEEST rule reusing
a name with other parameters (EINVAL).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from kptui.engine.iptables.ext._kernel import kernel_refuses, truncate
from kptui.engine.iptables.matches import Match, Opt
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtTarget, strtoui
from kptui.engine.numbers import NumberError, parse_float, split_float

IFNAMSIZ = 16
U32 = 0xFFFFFFFF
TIME_UNITS_PER_SEC = 1_000_000

# xt_rateest.h flags and modes
DELTA, LT, GT, EQ = "delta", "lt", "gt", "eq"

# iproute's rate suffixes, matched without regard to case (strcasecmp): bits per second
_SUFFIXES = (("bit", 1.0), ("Kibit", 1024.0), ("kbit", 1000.0), ("Mibit", 1024.0 ** 2),
             ("mbit", 1e6), ("Gibit", 1024.0 ** 3), ("gbit", 1e9), ("Tibit", 1024.0 ** 4),
             ("tbit", 1e12), ("Bps", 8.0), ("KiBps", 8.0 * 1024), ("KBps", 8000.0),
             ("MiBps", 8.0 * 1024 ** 2), ("MBps", 8e6), ("GiBps", 8.0 * 1024 ** 3),
             ("GBps", 8e9), ("TiBps", 8.0 * 1024 ** 4), ("TBps", 8e12))
_TIME_UNITS = {"s": 1e6, "sec": 1e6, "secs": 1e6, "ms": 1e3, "msec": 1e3, "msecs": 1e3,
               "us": 1.0, "usec": 1.0, "usecs": 1.0}


def _strtod(text: str) -> tuple[float, str] | None:
    """strtod's decimal numbers (kptui refuses hex floats, inf, nan and signs)."""
    number, rest = split_float(text.lstrip(" \t\n\v\f\r"))
    if not number:
        return None
    try:
        return parse_float(number), rest
    except NumberError:
        return None


def _to_u32(value: float) -> int:
    """A double converted to an unsigned int as gcc does it on x86-64 (through a 64-bit
    integer, so a value beyond 2^32 wraps); kptui refuses what does not fit 64 bits."""
    if not 0 <= value < 2 ** 63:
        raise ValueError(value)
    return math.floor(value) & U32


def parse_rate(text: str) -> int:
    """rateest_get_rate: bytes per second from a rate with an iproute suffix."""
    got = _strtod(text)
    try:
        if got is not None:
            bps, rest = got
            if rest == "":
                return _to_u32(bps / 8.0)
            for name, scale in _SUFFIXES:
                if name.lower() == rest.lower():
                    return _to_u32(bps * scale / 8.0)
    except ValueError:
        pass
    raise BadValue(f"rateest: could not parse rate `{text}'")


def rate_text(rate: int) -> str:
    """rateest_print_rate, not numeric: bits per second."""
    bits = rate * 8.0
    if bits >= 1000.0 * 1000000.0:
        return f"{bits / 1000000.0:.0f}Mbit"
    if bits >= 1000.0 * 1000.0:
        return f"{bits / 1000.0:.0f}Kbit"
    return f"{bits:.0f}bit"


class RateestMatch(Match):
    """xt_rateest_match_info, as rateest_parse fills it."""

    name = "rateest"
    own_checks = True
    # option -> (getopt id, argument: 1 required, -1 optional, 0 none)
    _IDS: ClassVar[dict[str, tuple[str, int]]] = {
        "--rateest1": ("rateest1", 1), "--rateest": ("rateest1", 1),
        "--rateest2": ("rateest2", 1),
        "--rateest-bps1": ("bps1", -1), "--rateest-pps1": ("pps1", -1),
        "--rateest-bps2": ("bps2", -1), "--rateest-pps2": ("pps2", -1),
        "--rateest-bps": ("bps2", -1), "--rateest-pps": ("pps2", -1),
        "--rateest-delta": ("delta", 0), "--rateest-lt": ("lt", 0),
        "--rateest-gt": ("gt", 0), "--rateest-eq": ("eq", 0),
    }
    options = {o: Opt(n, True) for o, (_, n) in _IDS.items()}
    _NO_INVERT = {"rateest1": "rateest", "rateest2": "rateest", "bps1": "rateest-bps",
                  "bps2": "rateest-bps", "pps1": "rateest-pps", "pps2": "rateest-pps",
                  "delta": "rateest-delta"}
    _TWICE = {"rateest1": "--rateest1", "rateest2": "--rateest2", "bps1": "--rateest-bps1",
              "pps1": "--rateest-pps1", "bps2": "--rateest-bps2", "pps2": "--rateest-pps2",
              "delta": "--rateest-delta", "lt": "lt/gt/eq", "gt": "lt/gt/eq", "eq": "lt/gt/eq"}

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.name1 = self.name2 = ""
        self.rel = self.bps = self.pps = self.delta = self.invert = False
        self.mode = ""
        self.rates = {"bps1": 0, "bps2": 0, "pps1": 0, "pps2": 0}

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        key, _ = self._IDS[opt]
        if inv and key in self._NO_INVERT:
            raise BadValue(f"rateest: {self._NO_INVERT[key]} can't be inverted")
        if key in self.ids:
            raise BadValue(f"rateest: can't specify {self._TWICE[key]} twice")
        self.ids.add(key)
        if key in ("rateest1", "rateest2"):
            name = truncate(args[0], IFNAMSIZ)
            if key == "rateest1":
                self.name1 = name
            else:
                self.name2, self.rel = name, True
        elif key in self.rates:
            if key.startswith("bps"):
                self.bps = True
                if args:
                    self.rates[key] = parse_rate(args[0])
            else:
                self.pps = True
                if args:
                    v = strtoui(args[0], 0, U32)
                    if v is None:
                        raise BadValue(f"rateest: could not parse pps `{args[0]}'")
                    self.rates[key] = v
        elif key == "delta":
            self.delta = True
        else:
            self.mode = key
            self.invert = self.invert or inv

    def finish(self) -> None:
        """xt_rateest_mt_checkentry (iptables' final check only sets ABS when not REL)."""
        if not (self.bps or self.pps):
            raise kernel_refuses("rateest: neither --rateest-bps nor --rateest-pps given")
        if not self.mode:
            raise kernel_refuses("rateest: none of --rateest-lt, --rateest-gt, --rateest-eq "
                                 "given")

    def _mode_text(self) -> str:
        return f"{'! ' if self.invert else ''}--rateest-{self.mode}"

    def _rate(self, what: str, r1: int, r2: int) -> str:
        show = rate_text if what == "bps" else str
        if self.delta:
            out = [f"--rateest-{what}1 {show(r1)}", self._mode_text(), f"--rateest-{what}2"]
        else:
            out = [self._mode_text(), f"--rateest-{what}"]
        if not self.rel or self.delta:
            out[-1] += f" {show(r2)}"
        return " ".join(out)

    def save(self) -> str:
        out = ["--rateest-delta"] if self.delta else []
        out.append(f"--rateest1 {self.name1}" if self.rel else f"--rateest {self.name1}")
        if self.bps:
            out.append(self._rate("bps", self.rates["bps1"], self.rates["bps2"]))
        if self.pps:
            out.append(self._rate("pps", self.rates["pps1"], self.rates["pps2"]))
        if self.rel:
            out.append(f"--rateest2 {self.name2}")
        return " ".join(out)


def _time(text: str, what: str) -> int:
    """RATEEST_get_time: microseconds, from a number and an optional unit."""
    got = _strtod(text)
    if got is not None:
        t, rest = got
        scale = _TIME_UNITS.get(rest.lower(), None) if rest else 1.0
        if scale is not None:
            try:
                return _to_u32(t * scale)
            except ValueError:
                pass
    raise BadValue(f'RATEEST: bad {what} value "{text}"')


def time_text(us: int) -> str:
    """RATEEST_print_time."""
    if us >= TIME_UNITS_PER_SEC:
        return f"{us / TIME_UNITS_PER_SEC:.1f}s"
    if us >= TIME_UNITS_PER_SEC // 1000:
        return f"{us / (TIME_UNITS_PER_SEC / 1000):.1f}ms"
    return f"{us}us"


class RateestTarget(XtTarget):
    name = "RATEEST"
    entries = (Entry("rateest-name", XT.STRING, mand=True),
               Entry("rateest-interval", XT.STRING, mand=True),
               Entry("rateest-ewmalog", XT.STRING, mand=True))

    def __init__(self) -> None:
        super().__init__()
        self.est = ""
        self.us_interval = self.us_ewma = 0  # rateest_tg_udata
        self.interval = self.ewma_log = 0

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        if name == "rateest-name":
            self.est = truncate(value, IFNAMSIZ)
        elif name == "rateest-interval":
            self.us_interval = _time(value, "interval")
        else:
            self.us_ewma = _time(value, "ewmalog")

    def check_rule(self, proto: int, proto_inv: bool) -> None:
        """RATEEST_final_check: the interval as 2^(n-2) s, the EWMA as a power of two."""
        interval = 0
        while interval <= 5 and self.us_interval > (1 << interval) * (TIME_UNITS_PER_SEC // 4):
            interval += 1
        if interval > 5:
            raise BadValue("RATEEST: interval value is too large")
        self.interval = interval - 2
        ewma = 1
        while ewma < 32:
            w = 1.0 - 1.0 / (1 << ewma)
            if self.us_interval / (-math.log(w)) > self.us_ewma:
                break
            ewma += 1
        self.ewma_log = ewma - 1
        if self.ewma_log == 0 or self.ewma_log >= 31:
            raise BadValue("RATEEST: ewmalog value is out of range")

    def save(self) -> str:
        local_interval = (TIME_UNITS_PER_SEC << (self.interval + 2)) // 4
        local_ewma = (local_interval * (1 << self.ewma_log)) & U32
        return (f"--rateest-name {self.est} --rateest-interval {time_text(local_interval)} "
                f"--rateest-ewmalog {time_text(local_ewma)}")


MATCHES = (RateestMatch,)
TARGETS = (RateestTarget,)
