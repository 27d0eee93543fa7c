"""Compare the kernel's answer for a packet with kptui's, and print them side by side.

Pure (no I/O): the tests that run everywhere use it on recorded kernel answers.
What is compared, and the only normalisation applied, is listed in
kptui/verify/__init__.py's docstring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

COMPARED = ("fate", "out", "trace")
FATE_KEYS = ("action", "iface", "by")  # `message` is kptui's prose; the kernel has none


@dataclass(slots=True)
class Verdict:
    index: int
    differs: list[str]  # which of COMPARED disagree
    kernel: dict[str, Any]
    kptui: dict[str, Any]

    @property
    def agrees(self) -> bool:
        return not self.differs


def normal(result: dict[str, Any]) -> dict[str, Any]:
    """The compared parts of one packet's result, in comparable form."""
    fate = result.get("fate", {})
    return {
        "fate": {k: fate[k] for k in FATE_KEYS if fate.get(k)},
        "out": dict(result.get("out", {})),
        "trace": list(result.get("trace", [])),
    }


def compare(index: int, kernel: dict[str, Any], kptui: dict[str, Any]) -> Verdict:
    k, s = normal(kernel), normal(kptui)
    if kptui.get("fate", {}).get("action") == "error":  # kptui could not walk it: never equal
        s["fate"]["message"] = kptui["fate"].get("message", "")
    differs = [part for part in COMPARED if k[part] != s[part]]
    return Verdict(index, differs, kernel, kptui)


def compare_all(kernel: list[dict[str, Any]], kptui: list[dict[str, Any]]) -> list[Verdict]:
    """Packet by packet; a packet missing on one side is a disagreement in everything."""
    out = []
    for index in range(max(len(kernel), len(kptui))):
        k = kernel[index] if index < len(kernel) else {"fate": {"action": "(missing)"}}
        s = kptui[index] if index < len(kptui) else {"fate": {"action": "(missing)"}}
        out.append(compare(index, k, s))
    return out


def _fate_text(fate: dict[str, Any]) -> str:
    text = fate.get("action", "?")
    if fate.get("iface"):
        text += f" {fate['iface']}"
    if fate.get("by"):
        text += f" by {fate['by']}"
    if fate.get("message"):
        text += f" ({fate['message']})"
    return text


def _out_text(out: dict[str, Any], other: dict[str, Any]) -> str:
    keys = list(out) + [k for k in other if k not in out]
    bits = []
    for key in keys:
        value = out.get(key, "-")
        mark = "*" if out.get(key, None) != other.get(key, None) else ""
        bits.append(f"{mark}{key}={value}")
    return " ".join(bits)


def render(verdict: Verdict, title: str) -> str:
    """Kernel and kptui one above the other per compared part; `!=` marks a disagreement."""
    k, s = normal(verdict.kernel), normal(verdict.kptui)
    status = "agree" if verdict.agrees else "DISAGREE on " + ", ".join(verdict.differs)
    lines = [f"packet {verdict.index}: {title}  [{status}]"]
    rows = {
        "fate": (_fate_text(verdict.kernel.get("fate", {})),
                 _fate_text(verdict.kptui.get("fate", {}))),
        "out": (_out_text(k["out"], s["out"]), _out_text(s["out"], k["out"])),
        "trace": (", ".join(k["trace"]) or "(none)", ", ".join(s["trace"]) or "(none)"),
    }
    for part in COMPARED:
        sign = "!=" if part in verdict.differs else "  "
        kern, sim = rows[part]
        lines.append(f"  {part:<6}{sign} kernel: {kern}")
        lines.append(f"  {'':<6}{'':2} kptui : {sim}")
    answers = verdict.kernel.get("answers") or []
    for answer in answers:
        shown = " ".join(f"{key}={value}" for key, value in answer.items())
        lines.append(f"  answer   kernel: {shown}  (not compared: kptui does not model "
                     "answers yet)")
    return "\n".join(lines)
