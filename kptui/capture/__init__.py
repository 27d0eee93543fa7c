"""`kptui capture`: a scenario of a real box, live or from dumps made on another machine.

This package does I/O (it runs ip, tc, iptables-save, nft, ipset, conntrack, reads
/proc/sys) and kptui.engine never imports it. It turns iproute2's JSON and the other
tools' text into the scenario format (DESIGN.md, README), module by module:

- dumps: what is read, from where (commands here, or files in a directory), and the
  gaps (a dump that is not there is a note, not a crash);
- links: interfaces, addresses, kinds; sysctls: the ones the engine reads;
- routes: every table and rule, reconciled with the routes the addresses make;
- tc: qdiscs, classes, filters; netfilter: iptables, native nftables, ipset, conntrack.

Everything the box has that kptui does not model is named in a note (in the file, as
comments at the top, and on stderr), never dropped silently. The text is then loaded
with kptui's own scenario loader and its routes compared with the capture, so what
``capture`` writes is a scenario kptui reads as the box was; a difference is a note.
"""

from __future__ import annotations

import json
import re
import socket
from dataclasses import dataclass, field

from kptui.capture import dumps as dumps_mod
from kptui.capture import links, netfilter, routes, sysctls, tc
from kptui.capture.dumps import Dumps
from kptui.engine.errors import KptuiError

__all__ = ["Capture", "capture", "capture_live", "capture_dir", "write"]


@dataclass(slots=True)
class Capture:
    """The scenario text, the notes in it, and whether kptui loads it."""

    text: str
    notes: list[str] = field(default_factory=list)
    error: str = ""  # the loader's refusal, when the written scenario does not load


def capture_live(*, check: bool = True) -> Capture:
    """This box (its current network namespace), now. ``check=False`` leaves out loading
    the result (the caller loads it anyway: --live)."""
    from kptui.realclock import now_clock

    clock = now_clock()
    dumps = dumps_mod.live()
    return capture(dumps, clock=clock, title=_live_title(), live=True, check=check)


def capture_dir(path: str) -> Capture:
    """The box whose dumps are in ``path`` (see dumps.ONE_LINER)."""
    return capture(dumps_mod.from_dir(path), clock="", title=f"dumps in {path}", live=False)


def _live_title() -> str:
    status, out, _err = dumps_mod.run(("ip", "netns", "identify"))
    netns = out.strip() if status == 0 else ""
    host = socket.gethostname()
    return f"{host} (network namespace {netns})" if netns else host


def capture(d: Dumps, *, clock: str, title: str, live: bool, check: bool = True) -> Capture:
    notes: list[str] = list(d.gaps)
    link, addr = d.get("link"), d.get("addr")
    if link is None or addr is None:
        raise KptuiError("capture needs the interfaces and addresses (ip -j link, ip -j addr)")
    lk = links.read(link, addr)
    notes += lk.notes
    # sysctls
    if live:
        raw = sysctls.read_live(lk.devices)
        total = 0
    elif d.get("sysctl") is not None:
        raw = sysctls.read_text(d.items["sysctl"])
        total = len(set(raw) - set(sysctls.wanted(lk.devices)))
    else:
        raw, total = {}, 0
    sy = sysctls.plan(raw, lk.devices, lk.made, file=d.items["sysctl"].file
                      if "sysctl" in d.items else "sysctl", total=total,
                      bridged="bridge" in lk.kinds.values())
    notes += sy.notes
    # the box before its routes: interfaces, addresses, links made by setup lines
    box = _load(_render(title, clock, lk, [], {}, setup=lk.setup)).build_box()
    rt = routes.read(d.get("route"), d.get("rule"), d.get("rt_tables"), box)
    notes += rt.notes
    # tc
    tcs = tc.Tc()
    tc_lines: list[str] = []
    if d.get("tc_qdisc") is not None:
        qd = tc.qdiscs(d.items["tc_qdisc"], lk.devices, tcs)
        if live:
            dumps_mod.live_classes(d, sorted(qd))
        for dev, found in qd.items():
            root = next((q for q in found if q.parent == "root"), None)
            tc_lines += [q.line for q in found if q.parent == "root"]
            if root is not None and root.kind == "htb" and dev in d.classes:
                tc_lines += tc.classes(dev, d.classes[dev], root.handle, tcs)
            tc_lines += [q.line for q in found if q.parent not in ("root",)]
        if live:
            dumps_mod.live_filters(d, tcs.parents)
        for dev, parents in tcs.parents.items():
            for parent in parents:
                if (dev, parent) in d.filters:
                    tc_lines += tc.filters(dev, parent, d.filters[(dev, parent)], tcs)
        notes += tcs.notes
    nf = netfilter.read(d.get("iptables"), d.get("iptables_legacy"), d.get("nft"),
                        d.get("ipset"), d.get("conntrack"))
    notes += nf.notes
    if nf.nftables.strip():
        from kptui.engine.nftables_text import notes as nft_notes
        from kptui.engine.nftables_text import split_tables

        notes += nft_notes(split_tables(nf.nftables, file="nftables"))
    if not clock:
        notes.append("no clock: the dumps do not say when they were made; a walk that "
                     "reaches -m time stops until the scenario gets a `clock`")
    setup = lk.setup + sy.setup + rt.setup + tc_lines
    text = _render(title, clock, lk, notes, rt.rt_tables, setup=setup, sysctl=sy.values,
                   nf=nf)
    result = Capture(text, notes)
    if not check:
        return result
    try:
        built = _load(text).build_box()
    except KptuiError as err:
        result.error = str(err)
        return result
    if d.get("route") is not None:
        diff = routes.differences(built, rt)
        if diff:
            result.notes += [f"self-check: {line}" for line in diff]
            result.text = _render(title, clock, lk, result.notes, rt.rt_tables,
                                  setup=setup, sysctl=sy.values, nf=nf)
    return result


def _load(text: str):  # noqa: ANN202 - a Scenario
    from kptui.engine.scenario import load_scenario

    return load_scenario(text, file="<capture>")


# -- the TOML text --------------------------------------------------------------------------

def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


# What a TOML literal string cannot hold: control characters other than tab and newline.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


def _block(text: str) -> str:
    """A multi-line TOML string: literal when it can be (no escapes at all), else basic."""
    body = text if text.endswith("\n") else text + "\n"
    if "'''" not in body and not _CONTROL.search(body):
        return "'''\n" + body + "'''"
    escaped = body.replace("\\", "\\\\").replace('"', '\\"')
    escaped = _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", escaped)
    return '"""\n' + escaped + '"""'


def _render(title: str, clock: str, lk: links.Links, notes: list[str],
            rt_tables: dict[str, int], *, setup: list[str],
            sysctl: list[tuple[str, int]] | None = None,
            nf: netfilter.Netfilter | None = None) -> str:
    out = [f"# Captured by kptui capture: {title}" + (f", at {clock}" if clock else "")]
    if notes:
        out.append(f"# What kptui does not model here, or the dumps did not say "
                   f"({len(notes)} note{'s' if len(notes) != 1 else ''}):")
        out += [f"#  - {' '.join(n.splitlines())}" for n in notes]
    said = "A box as kptui capture read it" + (f" at {clock}" if clock else "")
    out += [f"name = {_string('captured: ' + title)}", f"description = {_string(said)}",
            'profile = "modern"']
    if clock:
        out.append(f"clock = {_string(clock)}")
    if rt_tables:
        pairs = ", ".join(f"{_string(k)} = {v}" for k, v in sorted(rt_tables.items()))
        out.append(f"rt_tables = {{ {pairs} }}")
    if setup:
        out.append(f"setup = {_block(chr(10).join(setup))}")
    if nf is not None:
        for key in ("iptables", "ipset", "conntrack", "nftables"):
            value = getattr(nf, key)
            if value.strip():
                out.append(f"{key} = {_block(value)}")
    if sysctl:
        out += ["", "[sysctl]"] + [f"{_string(k)} = {v}" for k, v in sysctl]
    for iface in lk.interfaces:
        out += ["", "[[interfaces]]"] + [f"# {c}" for c in iface.comments]
        out += [f"name = {_string(iface.name)}",
                f"addresses = [{', '.join(_string(a) for a in iface.addresses)}]"]
    out += ["", "# The packets to ask about (or give them on the command line: --send):",
            "# [[packets]]", '# iif = "eth0"', '# proto = "tcp"', '# src = "198.51.100.7"',
            '# dst = "192.0.2.1"', "# sport = 40000", "# dport = 22"]
    if nf is not None and nf.comments:
        out += [""] + nf.comments
    return "\n".join(out) + "\n"


def write(path: str, text: str) -> None:
    """Write the scenario atomically (a temporary file renamed over ``path``)."""
    from kptui.sessions.format import write_atomic

    write_atomic(path, text.encode("utf-8"))
