"""`clock = "now"`: this machine's real time and kernel time zone (I/O; never the engine).

The engine is deterministic and never reads the clock on the wall
(kptui.engine.wallclock). kptui trace, the app and kptui verify resolve a scenario's
``clock = "now"`` here: the current CLOCK_REALTIME, in the kernel's own time zone
(sys_tz, which gettimeofday(2) returns and xt_time's --kerneltz reads). The scenario text
is then rewritten with that value (wallclock.with_clock), so everything that keeps the
text (a saved session) keeps the resolved time, and a replay never resolves it again.
"""

from __future__ import annotations

import time

from kptui.engine.errors import KptuiError
from kptui.engine.wallclock import format_clock

# gettimeofday's syscall number (glibc's gettimeofday may leave the time zone zeroed)
SYS_GETTIMEOFDAY = {"x86_64": 96, "aarch64": 169, "riscv64": 169, "i686": 78, "i386": 78,
                    "armv7l": 78, "ppc64le": 78, "s390x": 78}


def kernel_minuteswest() -> int:
    """sys_tz.tz_minuteswest, as gettimeofday(2) reports it (0 on most machines).

    ctypes is imported here, for a `clock = "now"` only: every `kptui trace` imports
    this module, and importing ctypes costs it a few milliseconds."""
    import ctypes
    import platform

    class _Timezone(ctypes.Structure):
        _fields_ = [("tz_minuteswest", ctypes.c_int), ("tz_dsttime", ctypes.c_int)]

    number = SYS_GETTIMEOFDAY.get(platform.machine())
    if number is None:
        raise KptuiError(f'clock = "now": kptui cannot read the kernel\'s time zone on '
                         f"{platform.machine()}; give the scenario an explicit clock")
    tz = _Timezone()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(number, None, ctypes.byref(tz)) != 0:
        raise KptuiError('clock = "now": gettimeofday(2) failed: '
                         f"errno {ctypes.get_errno()}")
    return tz.tz_minuteswest


def now_clock(epoch_ns: int | None = None) -> str:
    """The `clock` text for ``epoch_ns`` (default: now) in the kernel's time zone."""
    return format_clock(time.time_ns() if epoch_ns is None else epoch_ns,
                        kernel_minuteswest())


def resolve_text(text: str, file: str) -> str:
    """``text`` with a top-level ``clock = "now"`` resolved to the time of the call."""
    from kptui.engine.wallclock import with_clock

    return with_clock(text, file, now_clock)


def resolve(scenario, epoch_ns: int | None = None):  # noqa: ANN001, ANN201 - a Scenario
    """``scenario`` with its ``clock = "now"`` resolved (itself when it has no "now")."""
    from kptui.engine.wallclock import NOW, resolved

    if getattr(scenario, "clock", "") != NOW:
        return scenario
    return resolved(scenario, now_clock(epoch_ns))
