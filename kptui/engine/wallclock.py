"""The box's wall clock: the scenario key `clock`, what CLOCK_REALTIME and sys_tz say.

kptui's box clock is relative: seconds since the scenario began (``box.clock``, a
packet's `time`). A match that reads the kernel's wall clock (-m time: xt_time's
ktime_get_real_seconds, and sys_tz for --kerneltz) needs it anchored, so a scenario may
say when its time 0 is:

    clock = "2026-12-07T10:30:00+01:00"

an RFC 3339 date-time (``T`` or a blank between date and time, seconds required, an
optional fraction, then ``Z`` or ``+hh:mm``/``-hh:mm``). The instant is the kernel's
real time (UTC) at box time 0: 09:30:00 UTC here. The offset is the kernel's own time
zone, ``sys_tz`` (what settimeofday(2) sets and --kerneltz reads): ``+01:00`` is
``tz_minuteswest = -60``; ``Z``, ``+00:00`` and ``-00:00`` are 0. It must lie within
-15:00..+15:00, as settimeofday(2) requires (kernel/time/time.c). A leap second (``:60``)
is refused: the kernel's real time never shows one. At box time ``t`` the kernel's
clock reads the instant plus ``t`` seconds.

``clock = "now"`` is the time of the run. The engine never reads the real clock (it is
deterministic, DESIGN.md): kptui trace, the app and kptui verify resolve "now" (see
kptui/realclock.py) and rewrite the scenario text with the resolved value
(``with_clock``), so a saved session holds the time it ran at and replays identically.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from kptui.engine.errors import KptuiError
from kptui.engine.numbers import scan_uint

NOW = "now"
NS = 1_000_000_000
MAX_MINUTESWEST = 15 * 60  # do_sys_settimeofday64: "Verify we're within the +-15 hrs range"
_EPOCH = date(1970, 1, 1).toordinal()
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))")
FORMAT_HINT = ('an RFC 3339 date-time such as "2026-12-07T09:30:00Z" or '
               '"2026-12-07T10:30:00+01:00" (the offset is the kernel\'s time zone), '
               'or "now"')


class ClockError(KptuiError):
    """A `clock` value that is not a wall-clock time kptui can give the box."""


@dataclass(frozen=True, slots=True)
class WallClock:
    """The kernel's wall clock at box time 0: real time (UTC) and sys_tz."""

    epoch_ns: int  # nanoseconds since 1970-01-01T00:00:00Z (negative before it)
    minuteswest: int  # sys_tz.tz_minuteswest: -60 for +01:00

    def real_seconds(self, now: float) -> int:
        """ktime_get_real_seconds() at box time ``now``: whole seconds, rounded down."""
        return (self.epoch_ns + round(now * NS)) // NS

    def text(self) -> str:
        return format_clock(self.epoch_ns, self.minuteswest)


def parse_clock(text: str) -> WallClock | None:
    """The value of `clock`: a WallClock, or None for "now" (resolved outside the engine)."""
    if text == NOW:
        return None
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise ClockError(f"clock must be {FORMAT_HINT}")
    year, month, day, hour, minute, second = (_num(m.group(i)) for i in range(1, 7))
    try:
        days = date(year, month, day).toordinal() - _EPOCH
    except ValueError:
        raise ClockError(f"clock: {text[:10]} is not a date (year 0001..9999, its month "
                         "and day)") from None
    if hour > 23 or minute > 59 or second > 59:
        leap = " (a leap second: the kernel's real time never shows one)" \
            if second == 60 and hour <= 23 and minute <= 59 else ""
        raise ClockError(f"clock: {text[11:19]} is not a time of day{leap}")
    offset = 0
    if m.group(9):
        oh, om = _num(m.group(10)), _num(m.group(11))
        if oh > 23 or om > 59:
            raise ClockError(f"clock: {m.group(9)}{m.group(10)}:{m.group(11)} is not a "
                             "time zone offset")
        offset = (oh * 60 + om) * (-1 if m.group(9) == "-" else 1)
    if abs(offset) > MAX_MINUTESWEST:
        raise ClockError(f"clock: the offset {text[-6:]} is the kernel's time zone, and "
                         "settimeofday(2) takes -15:00..+15:00")
    frac = (m.group(7) or ".")[1:10].ljust(9, "0")  # CLOCK_REALTIME counts nanoseconds
    local = ((days * 24 + hour) * 60 + minute) * 60 + second
    return WallClock((local - offset * 60) * NS + _num(frac), -offset)


def _num(digits: str) -> int:
    """ASCII digits (the regex let only those through) as their decimal value."""
    return scan_uint(digits) or 0


def format_clock(epoch_ns: int, minuteswest: int) -> str:
    """RFC 3339 text of a clock, in the kernel's time zone (what parse_clock reads back)."""
    offset = -minuteswest
    seconds, ns = divmod(epoch_ns + offset * 60 * NS, NS)
    days, rest = divmod(seconds, 86400)
    day = date.fromordinal(days + _EPOCH)
    text = f"{day.isoformat()}T{rest // 3600:02}:{rest // 60 % 60:02}:{rest % 60:02}"
    if ns:
        text += f".{ns:09}".rstrip("0")
    if not offset:
        return text + "Z"
    sign = "-" if offset < 0 else "+"
    return text + f"{sign}{abs(offset) // 60:02}:{abs(offset) % 60:02}"


# -- "now": the text of a scenario with its clock resolved --------------------------------

_NOW_VALUE = re.compile(r"""^(\s*clock\s*=\s*)("now"|'now')(\s*(?:#.*)?)$""")
_CLOCK_KEY = re.compile(r"""^[ \t]*["']?clock["']?[ \t]*=""", re.MULTILINE)


def with_clock(text: str, file: str, value: str | Callable[[], str]) -> str:
    """``text`` with its top-level ``clock = "now"`` written as ``clock = "VALUE"``.

    Pure: the caller reads the real clock (``value`` may be a function, called only when
    the text says "now"). A text without ``clock = "now"`` comes back
    unchanged. The rewritten text is parsed again and must equal the original but for
    the clock; a "now" written so that its line cannot be rewritten (a quoted key, a
    multi-line string) is a ClockError asking for ``clock = "now"`` on a line of its own.
    """
    if "now" not in text or not _CLOCK_KEY.search(text):  # cheap: no second parse
        return text
    from kptui.engine.scenario import _Lines, _read_toml

    data = _read_toml(text, file)
    if data.get("clock") != NOW:
        return text
    if callable(value):
        value = value()
    parse_clock(value)  # the caller's value must itself be a clock
    lines = text.splitlines(keepends=True)
    at = _Lines(text).top_key("clock")
    line = lines[at - 1] if at else ""
    body = line.rstrip("\r\n")
    m = _NOW_VALUE.match(body)
    fail = ClockError(f'{file}:{at or "?"}: clock = "now": kptui could not write the '
                      'resolved time into the scenario; write clock = "now" on a line '
                      "of its own")
    if m is None:
        raise fail
    lines[at - 1] = f'{m.group(1)}"{value}"{m.group(3)}' + line[len(body):]
    new = "".join(lines)
    if _read_toml(new, file) != {**data, "clock": value}:
        raise fail
    return new


def resolved(scenario: Any, value: str) -> Any:
    """``scenario`` (a Scenario) loaded again with its ``clock = "now"`` set to ``value``;
    the scenario itself when its clock is not "now"."""
    if getattr(scenario, "clock", "") != NOW:
        return scenario
    from kptui.engine.scenario import load_scenario

    return load_scenario(with_clock(scenario.text, scenario.file, value), file=scenario.file,
                         read_file=getattr(scenario, "read_file", None))


def box_clock(box: Any) -> WallClock:
    """The box's wall clock, or the walk stops, named: no clock is never guessed."""
    clock = getattr(box, "wall_clock", None)
    if isinstance(clock, WallClock):
        return clock
    from kptui.engine.errors import UnsupportedError

    if clock == NOW:
        raise UnsupportedError(
            '-m time with clock = "now" unresolved: kptui trace, verify and the app '
            "resolve it to the time of the run; the engine never reads the real clock")
    raise UnsupportedError(
        "-m time needs the box's wall clock, and the scenario has none: give it a "
        'top-level clock = "2026-12-07T09:30:00Z" (the date and time at its time 0; an '
        "offset such as +01:00 is the kernel's time zone, for --kerneltz) or "
        'clock = "now"')
