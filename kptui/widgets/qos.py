"""The QoS panel: the box's tc setup with its counters and tokens, and this packet's tc events.

Rendered from engine state only (``box.tc``, the walk's Qos* events); the
words "what is modelled" repeat kptui.engine.qos's caveat so a user reading a
delay knows it is computed from tokens, not observed from a dequeue loop.
"""

from __future__ import annotations

from typing import Any

from textual.containers import VerticalScroll
from textual.widgets import Static

from kptui.engine.events import Note, QosAction, QosClassify, QosEnqueue, QosFilter
from kptui.engine.packet import format_classid

CAVEAT = ("modelled: each packet's verdict at enqueue (class, band, queue limit, policer) "
          "and the delay shaping imposes, computed from the tokens on the simulated clock; "
          "not modelled: the dequeue order of a backlog (band priority, htb prio/quantum "
          "between siblings), sfq/fq_codel fairness, the device's own speed.")
QOS_EVENTS = (QosFilter, QosAction, QosClassify, QosEnqueue)


def has_tc(box: Any) -> bool:
    """True when the box has any tc configuration (the panel is shown only then)."""
    state = getattr(box, "tc", None)
    return state is not None and any(state.configured(name) for name in state.devs)


def _stats(stats: Any) -> str:
    return f"{stats.packets}p {stats.drops} dropped"


def _qdisc_line(q: Any, now: float, indent: str) -> list[str]:
    qlen, backlog = q.backlog(now)
    opts = {k: v for k, v in q.opts.items() if k in ("default", "limit", "bands", "rate",
                                                        "burst")}
    text = " ".join(f"{k} {v:x}" if k == "default" else f"{k} {v:g}"
                    if isinstance(v, float) else f"{k} {v}" for k, v in opts.items())
    lines = [f"{indent}qdisc {q.name} {text}  [{_stats(q.stats)}, backlog {qlen}p/{backlog}b]"]
    if q.bucket is not None:
        lines.append(f"{indent}  tokens {q.bucket.at(now):.0f}/{q.bucket.size:g} bytes")
    if q.child is not None:
        lines += _qdisc_line(q.child, now, indent + "  ")
    return lines


def tc_lines(box: Any, now: float) -> list[str]:
    """Every device's qdiscs, classes (tokens, counters) and filters, as tc shows them."""
    state = box.tc
    out: list[str] = []
    for name, dev in sorted(state.devs.items()):
        if not state.configured(name):
            continue
        out.append(f"{name}" + (f" ({state.link_kinds[name]})" if name in state.link_kinds
                                else ""))
        if dev.root is not None:
            out += _qdisc_line(dev.root, now, "  ")
        for cl in sorted(dev.classes.values(), key=lambda c: c.classid):
            depth = len(dev.ancestors(cl))
            pad = "  " * (depth + 1)
            leaf = "leaf" if dev.is_leaf(cl) else "inner"
            out.append(f"{pad}class {format_classid(cl.classid)} ({leaf}) rate "
                       f"{cl.rate.rate * 8:g}bit ceil {cl.ceil.rate * 8:g}bit prio {cl.prio}  "
                       f"tokens {cl.rate.at(now):.0f}/{cl.rate.size:g} ctokens "
                       f"{cl.ceil.at(now):.0f}/{cl.ceil.size:g}  [{_stats(cl.stats)}]")
            if cl.leaf is not None and dev.is_leaf(cl):
                out += _qdisc_line(cl.leaf, now, pad + "  ")
        if dev.ingress is not None:
            out.append(f"  qdisc {dev.ingress.name}  [{_stats(dev.ingress.stats)}]")
        for block, filters in dev.filters.items():
            label = block if isinstance(block, str) else format_classid(block)
            for f in sorted(filters, key=lambda f: f.prio):
                out.append(f"  filter {label} prio {f.prio}: {f.text}")
    return out


def qos_text(box: Any, events: list[Any]) -> str:
    """The panel's text: this packet's tc events first, then the configuration."""
    if not has_tc(box):
        return "no tc configuration in this box: packets pass tc ingress and egress untouched."
    now = getattr(box, "clock", 0.0)
    mine = [e.describe() for e in events
            if isinstance(e, QOS_EVENTS) or (isinstance(e, Note) and e.stage.startswith("tc:"))]
    lines = ["this packet at tc:"] + ([f"  {t}" for t in mine] or ["  (not reached yet)"])
    lines += ["", f"tc on the box (clock {now:g} s):", *tc_lines(box, now), "", CAVEAT]
    return "\n".join(lines)


class QosPanel(VerticalScroll):
    """A scrollable text of qos_text()."""

    DEFAULT_CSS = """
    QosPanel { height: 1fr; }
    QosPanel > Static { padding: 0 1; }
    """

    def compose(self) -> Any:
        yield Static("", id="qos-text")

    def show(self, text: str) -> None:
        self.query_one("#qos-text", Static).update(text)
