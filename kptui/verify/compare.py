"""Compare the kernel's answer for a packet with kptui's, and print them side by side.

Pure (no I/O): the tests that run everywhere use it on recorded kernel answers.
What is compared, and the only normalisation applied, is listed in
kptui/verify/__init__.py's docstring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

COMPARED = ("fate", "out", "trace", "answers")
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


def stack_answers(kernel: dict[str, Any]) -> bool:
    """True when the kernel's answers are its local stack's, which are not compared.

    A packet delivered to the box is answered by whatever socket (or lack of one)
    receives it: verify's box has none, so the kernel sends a RST for TCP, a port
    unreachable for UDP, an echo reply for a ping. kptui models no sockets: its
    `deliver` means "to a local socket", so these answers have no counterpart.
    """
    return kernel.get("fate", {}).get("action") == "deliver"


def normal(result: dict[str, Any], *, answers: bool = True) -> dict[str, Any]:
    """The compared parts of one packet's result, in comparable form.

    ``answers``: every recorded field of every answer, in order (the IP ID is not
    recorded); False when the local stack's answers are not compared (stack_answers):
    a -j TEE copy (`kind` "tee") is the box's own copy, not the stack's, and still is.
    """
    fate = result.get("fate", {})
    out = dict(result.get("out", {}))
    if fate.get("action") != "transmit":  # the trace prints no TCP options (verify docs)
        out.pop("tcp_options", None)
    return {
        "fate": {k: fate[k] for k in FATE_KEYS if fate.get(k)},
        "out": out,
        "trace": list(result.get("trace", [])),
        "answers": [dict(a) for a in result.get("answers", [])
                    if answers or a.get("kind") == "tee"],
        "qos": [dict(q) for q in result.get("qos", [])],
    }


def compare(index: int, kernel: dict[str, Any], kptui: dict[str, Any]) -> Verdict:
    compared = not stack_answers(kernel)
    k, s = normal(kernel, answers=compared), normal(kptui, answers=compared)
    fate = kptui.get("fate", {})
    # kptui could not walk it: never equal; but a reply_to packet neither side sent (its
    # original never got through in kptui's walk) is compared as any other fate
    if fate.get("action") == "error" and fate.get("by") != "reply_to":
        s["fate"]["message"] = kptui["fate"].get("message", "")
    parts = COMPARED + (("qos",) if "qos" in kernel else ())  # tc scenarios (verify/tc.py)
    differs = [part for part in parts if k[part] != s[part]]
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
        "answers": ("; ".join(_answer_text(a) for a in k["answers"]) or "(none)",
                    "; ".join(_answer_text(a) for a in s["answers"]) or "(none)"),
    }
    if "qos" in verdict.kernel:
        rows["qos"] = ("; ".join(_qos_text(q) for q in k["qos"]) or "(none)",
                       "; ".join(_qos_text(q) for q in s["qos"]) or "(none)")
    for part in rows:
        sign = "!=" if part in verdict.differs else "  "
        kern, sim = rows[part]
        lines.append(f"  {part:<7}{sign} kernel: {kern}")
        lines.append(f"  {'':<7}{'':2} kptui : {sim}")
    if stack_answers(verdict.kernel):
        for answer in verdict.kernel.get("answers") or []:
            if answer.get("kind") == "tee":
                continue
            lines.append(f"  answer   kernel: {_answer_text(answer)}  (not compared: the "
                         "local stack's answer; no socket listens in verify's box)")
    return "\n".join(lines)


def _answer_text(answer: dict[str, Any]) -> str:
    return " ".join(f"{key}={value}" for key, value in answer.items())


def _qos_text(entry: dict[str, Any]) -> str:
    return f"{entry.get('dev')} {entry.get('node')} +{entry.get('packets')}p " \
           f"+{entry.get('drops')}d"
