"""-j NFLOG (libxt_NFLOG 1.8.9; iptables-nft turns it into nft's ``log group``).

iptables-nft stores the rule as an nft log expression (nft.c add_log) and reads
it back as NFLOG (nft-shared.c nft_parse_log), which decides what iptables-save
prints: the prefix as typed up to NF_LOG_PREFIXLEN - 1 bytes, the group unless
0, --nflog-size (a snaplen), the threshold unless 0; --nflog-range has nowhere
to go and disappears (checked on this machine).

Simulated: the target never decides (nft_log_eval, like xt_NFLOG, continues).
The packet goes to nfnetlink_log's group for a userspace logger (ulogd); kptui
runs none, and the kernel log gets nothing, so there is no LogLine: the
TargetApplied detail says what was sent.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.targets import TargetResult
from kptui.engine.iptables.values import BadValue, save_string
from kptui.engine.iptables.xtopt import XT, Entry, XtTarget

NF_LOG_PREFIXLEN = 128


def cut_bytes(text: str, size: int) -> str:
    """snprintf(buf, size, "%s", text): at most size - 1 bytes (a UTF-8 character may
    be cut, as in C; its bytes stay as surrogate escapes)."""
    raw = text.encode("utf-8", "surrogateescape")
    return raw[:size - 1].decode("utf-8", "surrogateescape") if len(raw) >= size else text


class NflogTarget(XtTarget):
    name = "NFLOG"
    entries = (Entry("nflog-group", XT.UINT16), Entry("nflog-prefix", XT.STRING, min=1),
               Entry("nflog-range", XT.UINT32, excl=("nflog-size",)),
               Entry("nflog-size", XT.UINT32, excl=("nflog-range",)),
               Entry("nflog-threshold", XT.UINT16))

    def __init__(self) -> None:
        super().__init__()
        self.group = 0
        self.prefix = ""
        self.size: int | None = None  # --nflog-size (XT_NFLOG_F_COPY_LEN)
        self.threshold = 0  # XT_NFLOG_DEFAULT_THRESHOLD

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        """NFLOG_parse (--nflog-range is read and never stored by iptables-nft)."""
        if name == "nflog-group":
            self.group = value
        elif name == "nflog-prefix":
            if "\n" in value:
                raise BadValue("Newlines not allowed in --log-prefix")
            self.prefix = cut_bytes(value, NF_LOG_PREFIXLEN)
        elif name == "nflog-size":
            self.size = value
        elif name == "nflog-threshold":
            self.threshold = value

    def save(self) -> str:
        """nflog_print with "--", of what nft_parse_log read back."""
        out = [f"--nflog-prefix {save_string(self.prefix)}"] if self.prefix else []
        if self.group:
            out.append(f"--nflog-group {self.group}")
        if self.size is not None:
            out.append(f"--nflog-size {self.size}")
        if self.threshold:
            out.append(f"--nflog-threshold {self.threshold}")
        return " ".join(out)

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        what = "the packet" if self.size is None else f"its first {self.size} bytes"
        prefix = f" with prefix {self.prefix!r}" if self.prefix else ""
        return TargetResult("CONTINUE",
                            detail=f"{what} sent to nflog group {self.group}{prefix} (no "
                                   "userspace logger is simulated; nothing goes to the "
                                   "kernel log)")


TARGETS = (NflogTarget,)
