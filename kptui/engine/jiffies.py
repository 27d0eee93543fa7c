"""The kernel's clock for timers and timeouts: jiffies of the box's simulated clock.

The reference kernel (Linux 6.18, as Debian and Fedora build it) has CONFIG_HZ=250,
so one jiffy is 4 ms. A leaf module: the iptables extensions (ext/_kernel.py) and
the ipset sets (ipsets.py) both count in it.
"""

from __future__ import annotations

import math

HZ = 250  # CONFIG_HZ of the reference kernel


def jiffies(now: float) -> int:
    """The jiffies counter at ``now`` seconds of the box's clock."""
    return math.floor(now * HZ + 1e-9)
