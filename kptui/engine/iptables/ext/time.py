"""-m time (libxt_time 1.8.9, xt_time.c): the time of day, weekday, monthday and date.

Simulated as xt_time.c's time_mt (Linux 6.18) does it, on the box's wall clock: the
scenario's `clock` (kptui.engine.wallclock) plus the box's clock at the walk. The kernel
reads ktime_get_real_seconds() when the rule is evaluated; its time_mt comment says why
it no longer uses skb->tstamp (older kernels took the skb's receive timestamp, setting it
when unset; it now shares its field with the monotonic tx time). A kptui walk runs at its
packet's arrival time, which is both. Without a `clock` the walk stops, named (never a
guess).

The arithmetic is the C's, in its own integer types: --kerneltz subtracts
60 * sys_tz.tz_minuteswest; --datestart/--datestop compare the (signed) seconds; the
time of day is seconds modulo 86400; a --timestart after --timestop is a range across
midnight, and --contiguous then counts its after-midnight part as the day before
(weekday and monthday of the day it began); weekday and monthday come from days since
1970 (u64 division kept in an unsigned int; monthday from the kernel's year table, which
ends in 2039, in a u8; ``1 << monthday`` as x86 shifts, by the count modulo 32).

The option parsers follow libxt_time's C closely, quirks included: segments of
--monthdays/--weekdays are cut to 2/3 characters, weekday names are told
apart by their first two letters, day 0 of the month is accepted, and the
default --datestop (INT_MAX) is always printed.
"""

from __future__ import annotations

import datetime
from typing import Any

from kptui.engine.iptables.ext._idopts import Quick
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch, strtoul_prefix
from kptui.engine.wallclock import box_clock

WEEK_DAYS = ("", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
ALL_MONTHDAYS = 0xFFFFFFFE
ALL_WEEKDAYS = 0xFE
MAX_DAYTIME = 24 * 60 * 60 - 1
INT_MAX = 0x7FFFFFFF
_HUGE = 1 << 64  # what strtoul makes of a negative or too long number: beyond every bound
_EPOCH = datetime.date(1970, 1, 1).toordinal()
SECONDS_PER_DAY = 86400
U32, U64 = 0xFFFFFFFF, (1 << 64) - 1
# xt_time.c's days_since_epoch[], 2039 down to 1970, and days before each month
DAYS_SINCE_EPOCH = tuple(datetime.date(y, 1, 1).toordinal() - _EPOCH
                         for y in range(2039, 1969, -1))
DAYS_SINCE_YEAR = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)
DAYS_SINCE_LEAPYEAR = (0, 31, 60, 91, 121, 152, 182, 213, 244, 274, 305, 335)


def is_leap(y: int) -> bool:
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def weekday_of(stamp: int) -> int:
    """localtime_2: 1 (Mon) .. 7 (Sun) of ``stamp`` (time64_t) seconds: div_u64 into an
    unsigned int r->dse, then (4 + dse - 1) % 7 + 1 in unsigned int."""
    dse = (stamp & U64) // SECONDS_PER_DAY & U32
    return (4 + dse - 1 & U32) % 7 + 1


def monthday_of(stamp: int) -> int:
    """localtime_3's r->monthday (a u8): the year from days_since_epoch[] (the first
    entry not after the day; 2039 for any later day), then the month's first day."""
    w = (stamp & U64) // SECONDS_PER_DAY & U32
    year, first = next(((2039 - i, d) for i, d in enumerate(DAYS_SINCE_EPOCH) if d <= w))
    w -= first
    table = DAYS_SINCE_LEAPYEAR if is_leap(year) else DAYS_SINCE_YEAR
    i = next((i for i in range(11, 0, -1) if table[i] <= w), 0)
    return (w - table[i] + 1) & 0xFF


def _when(stamp: int) -> str:
    try:
        return date_text(stamp)
    except (OverflowError, ValueError):
        return f"{stamp} s since 1970"


def strtoul(text: str, base: int = 10) -> tuple[int, str]:
    """C's strtoul with an end pointer: no digits is 0 with the whole text left."""
    value, rest = strtoul_prefix(text, base)
    if value is None:
        return (0, text) if rest == text else (_HUGE, rest)
    return value, rest


def parse_date(text: str) -> int:
    """time_parse_date: YYYY[-MM[-DD[Thh[:mm[:ss]]]]], in UTC, as seconds (u32)."""
    bad = BadValue(f'Invalid date "{text}" specified. Should be YYYY[-MM[-DD[Thh[:mm[:ss]]]]]')
    parts = [1970, 1, 1, 0, 0, 0]
    limits = ((1970, 2038), (0, 12), (0, 31), (0, 23), (0, 59), (0, 59))
    seps = ("-", "-", "T", ":", ":", "")
    rest = text
    for i, ((lo, hi), sep) in enumerate(zip(limits, seps, strict=True)):
        parts[i], rest = strtoul(rest)
        if (rest[:1] != sep or not sep) and rest or not lo <= parts[i] <= hi:
            raise bad
        if not rest:
            break
        rest = rest[1:]
    year, month, day, hour, minute, second = parts
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1  # mktime normalises
    days = datetime.date(year, month, 1).toordinal() - _EPOCH + day - 1
    value = ((days * 24 + hour) * 60 + minute) * 60 + second
    if value < 0:
        raise BadValue("mktime returned an error")
    return value & 0xFFFFFFFF


def date_text(value: int) -> str:
    t = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=value)
    return t.strftime("%Y-%m-%dT%H:%M:%S")


def _daytime(t: int) -> str:
    return f"{t // 3600:02}:{t // 60 % 60:02}:{t % 60:02}"


def parse_daytime(text: str) -> int:
    """time_parse_minutes: hh:mm[:ss] (the error quotes the part it stopped at)."""
    def bad(at: str) -> BadValue:
        return BadValue(f'invalid time "{at}" specified, should be hh:mm[:ss] format and '
                        "within the boundaries")
    hour, rest = strtoul(text)
    if rest[:1] != ":" or hour > 23:
        raise bad(text)
    at = rest[1:]
    minute, rest = strtoul(at)
    if rest and rest[:1] != ":" or minute > 59:
        raise bad(at)
    second = 0
    if rest:
        at = rest[1:]
        second, rest = strtoul(at)
        if rest or second > 59:
            raise bad(at)
    return (hour * 60 + minute) * 60 + second


def _segments(arg: str, size: int) -> list[str]:
    """my_strseg with a buffer of ``size`` bytes: comma-separated, each cut to size - 1."""
    out = []
    rest: str | None = arg
    while rest:
        seg, comma, after = rest.partition(",")
        out.append(seg[:size - 1])
        rest = after if comma else None
    return out


def parse_monthdays(arg: str) -> int:
    mask = 0
    for day in _segments(arg, 3):
        i, rest = strtoul(day, 0)
        if rest or i > 31:
            raise BadValue(f"{day} is not a valid day for --monthdays")
        mask |= 1 << i
    return mask


def parse_weekdays(arg: str) -> int:
    mask = 0
    for day in _segments(arg, 4):
        i, rest = strtoul(day, 0)
        if not rest:
            if i == 0:
                raise BadValue("No, the week does NOT begin with Sunday.")
            mask |= 1 << (i % 32)  # x86's shift count; kept in a u8 below
            continue
        hits = [n for n in range(1, 8) if day[:2] == WEEK_DAYS[n][:2] and len(day) >= 2]
        if not hits:
            raise BadValue(f"{day} is not a valid day specifier")
        for n in hits:
            mask |= 1 << n
    return mask & 0xFF


class TimeMatch(Quick, XtMatch):
    name = "time"
    entries = (Entry("datestart", XT.STRING), Entry("datestop", XT.STRING),
               Entry("timestart", XT.STRING), Entry("timestop", XT.STRING),
               Entry("contiguous"),
               Entry("weekdays", XT.STRING, invert=True),
               Entry("monthdays", XT.STRING, invert=True),
               Entry("localtz", excl=("utc",)), Entry("utc", excl=("localtz", "kerneltz")),
               Entry("kerneltz", excl=("utc",)))

    def __init__(self) -> None:
        super().__init__()
        self.date_start, self.date_stop = 0, INT_MAX
        self.daytime_start, self.daytime_stop = 0, MAX_DAYTIME
        self.monthdays, self.weekdays = ALL_MONTHDAYS, ALL_WEEKDAYS
        self.local_tz = self.contiguous = False

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        if name == "datestart":
            self.date_start = parse_date(value)
        elif name == "datestop":
            self.date_stop = parse_date(value)
        elif name == "timestart":
            self.daytime_start = parse_daytime(value)
        elif name == "timestop":
            self.daytime_stop = parse_daytime(value)
        elif name == "contiguous":
            self.contiguous = True
        elif name in ("localtz", "kerneltz"):
            self.local_tz = True
        elif name == "monthdays":
            self.monthdays = parse_monthdays(value) ^ (ALL_MONTHDAYS if inv else 0)
        elif name == "weekdays":
            self.weekdays = parse_weekdays(value) ^ (ALL_WEEKDAYS if inv else 0)

    def check(self) -> None:
        if self.contiguous and self.daytime_start < self.daytime_stop:
            raise BadValue("time: --contiguous only makes sense when stoptime is smaller "
                           "than starttime")

    def test(self, pkt: Any, ctx: Any) -> str | None:
        """time_mt: None when the packet matches, else which condition failed."""
        clock = box_clock(ctx.box)
        stamp = clock.real_seconds(ctx.now)  # ktime_get_real_seconds()
        zone = "UTC"
        if self.local_tz:  # --kerneltz: "Adjust for local timezone"
            stamp -= 60 * clock.minuteswest
            zone = f"kernel time ({clock.text()[-6:] if clock.minuteswest else 'UTC'})"
        return self.mismatch(stamp, zone)

    def mismatch(self, stamp: int, zone: str = "UTC") -> str | None:
        """time_mt from ``stamp`` (seconds, after --kerneltz) on."""
        if stamp < self.date_start or stamp > self.date_stop:
            return (f"time: {_when(stamp)} {zone} is outside --datestart "
                    f"{date_text(self.date_start)} --datestop {date_text(self.date_stop)}")
        packet_time = stamp % SECONDS_PER_DAY  # localtime_1 (stamp >= date_start >= 0)
        start, stop = self.daytime_start, self.daytime_stop
        if start < stop:
            if packet_time < start or packet_time > stop:
                return (f"time: {_daytime(packet_time)} {zone} is outside --timestart "
                        f"{_daytime(start)} --timestop {_daytime(stop)}")
        else:
            if start > packet_time > stop:
                return (f"time: {_daytime(packet_time)} {zone} is outside --timestart "
                        f"{_daytime(start)} --timestop {_daytime(stop)} (across midnight)")
            if self.contiguous and packet_time <= stop:
                stamp -= SECONDS_PER_DAY  # the range began the day before
        day = weekday_of(stamp)
        if not self.weekdays & 1 << day:
            return f"time: {WEEK_DAYS[day]} is not in --weekdays"
        if self.monthdays != ALL_MONTHDAYS:
            mday = monthday_of(stamp)
            if not self.monthdays & 1 << (mday & 31):
                return f"time: day {mday} of the month is not in --monthdays"
        return None

    def save(self) -> str:
        """time_save, piece by piece (each piece starts with its blank, as printf's)."""
        out = ""
        if (self.daytime_start, self.daytime_stop) != (0, MAX_DAYTIME):
            for opt, t in (("timestart", self.daytime_start), ("timestop", self.daytime_stop)):
                out += f" --{opt} {_daytime(t)}"
        if self.monthdays != ALL_MONTHDAYS:
            out += " --monthdays " + ",".join(str(i) for i in range(1, 32)
                                              if self.monthdays >> i & 1)
        if self.weekdays != ALL_WEEKDAYS:
            out += " --weekdays " + ",".join(WEEK_DAYS[i] for i in range(1, 8)
                                             if self.weekdays >> i & 1)
        if self.date_start:
            out += f" --datestart {date_text(self.date_start)}"
        out += f" --datestop {date_text(self.date_stop)}"
        if self.local_tz:
            out += " --kerneltz"
        if self.contiguous:
            out += " --contiguous"
        return out[1:]


MATCHES = (TimeMatch,)
