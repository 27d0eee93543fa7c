"""-m esp, -m ah, -m ipcomp (libxt_esp, libipt_ah, libxt_ipcomp 1.8.9): an SPI range.

Parsed and printed as iptables 1.8.9 does, not simulated: kptui models TCP, UDP and
ICMP, so a rule's ``-p esp`` (which the kernel requires: the match is registered
for that protocol only) stops its packets first; a packet of another protocol
(read from bytes) that gets this far stops the walk as unsupported.
"""

from __future__ import annotations

from typing import Any, ClassVar

from kptui.engine.iptables.ext.l4common import kernel_refuses
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch


class _SpiMatch(XtMatch):
    """``[!] --XXXspi spi[:spi]``; the full range 0:4294967295 prints as nothing."""

    spi_option: ClassVar[str] = ""
    proto_number: ClassVar[int] = 0
    spi_hi_default: ClassVar[int] = 0xFFFFFFFF  # the .init of esp and ah; ipcomp has none

    def __init_subclass__(cls, **kw: Any) -> None:
        if cls.spi_option:
            cls.protos = (cls.proto_number,)
            cls.proto_error = kernel_refuses(
                f"{cls.name} match: only valid for protocol {cls.proto_number}")
        super().__init_subclass__(**kw)

    def __init__(self) -> None:
        super().__init__()
        self.spis = (0, self.spi_hi_default)
        self.inv = False

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        if name == self.spi_option:
            self.spis = (value[0], value[-1])  # one value: spis[1] = spis[0]
            self.inv = self.inv or inv

    def save(self) -> str:
        lo, hi = self.spis
        if (lo, hi) == (0, 0xFFFFFFFF):
            return ""
        return f"{'! ' if self.inv else ''}--{self.spi_option} " + \
            (f"{lo}:{hi}" if lo != hi else f"{lo}")


class EspMatch(_SpiMatch):
    name = "esp"
    spi_option = "espspi"
    proto_number = 50
    entries = (Entry("espspi", XT.UINT32RC, invert=True),)


class AhMatch(_SpiMatch):
    name = "ah"
    spi_option = "ahspi"
    proto_number = 51
    entries = (Entry("ahspi", XT.UINT32RC, invert=True),)


class IpcompMatch(_SpiMatch):
    """No .init: without --ipcompspi the range is 0:0 and prints as ``--ipcompspi 0``
    (checked with iptables-save 1.8.9)."""

    name = "ipcomp"
    spi_option = "ipcompspi"
    proto_number = 108
    spi_hi_default = 0
    entries = (Entry("ipcompspi", XT.UINT32RC, invert=True), Entry("compres"))

    def __init__(self) -> None:
        super().__init__()
        self.hdrres = False

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        if name == "compres":
            self.hdrres = True
        super().parsed(name, value, inv)

    def save(self) -> str:
        return " ".join(p for p in (super().save(), "--compres" if self.hdrres else "") if p)


MATCHES = (EspMatch, AhMatch, IpcompMatch)
