"""-j LED (libxt_LED 1.8.9, xt_LED.c): parsed, not simulated (it blinks an LED trigger).

Linux 6.18 on the machine that recorded iptables' answers has no xt_LED, so its
save form is the one libxt_LED's LED_save prints, transliterated: the id always
in double quotes with " and \\ escaped, the delay printed with %d (``inf`` is
0xffffffff, printed -1), --led-always-blink when set.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtTarget, strtoui

U32 = 0xFFFFFFFF
# .max = sizeof(xt_led_info.id) - sizeof("netfilter-"): 27 - 11
ID_MAX = 16


class LedTarget(XtTarget):
    name = "LED"
    entries = (Entry("led-trigger-id", XT.STRING, mand=True, max=ID_MAX),
               Entry("led-delay", XT.STRING), Entry("led-always-blink"))

    def __init__(self) -> None:
        super().__init__()
        self.id = ""
        self.delay = 0
        self.always_blink = False

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        """LED_parse."""
        if name == "led-trigger-id":
            self.id = value
        elif name == "led-delay":
            if value[:3].lower() == "inf":
                self.delay = U32
            else:
                delay = strtoui(value, 0, U32)
                if delay is None:
                    raise BadValue(f"Delay value must be within range 0..{U32}")
                self.delay = delay
        else:
            self.always_blink = True

    def save(self) -> str:
        """LED_save."""
        escaped = self.id.replace("\\", "\\\\").replace('"', '\\"')
        out = [f'--led-trigger-id "{escaped}"']
        if self.delay:  # a __u32 printed with %d
            out.append(f"--led-delay {self.delay - (1 << 32) if self.delay >> 31 else self.delay}")
        if self.always_blink:
            out.append("--led-always-blink")
        return " ".join(out)


TARGETS = (LedTarget,)
