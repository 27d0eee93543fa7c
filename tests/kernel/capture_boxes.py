"""Boxes built in network namespaces, captured with `kptui capture`, then verified.

Each ``Box`` is made on this machine's kernel: a namespace with one veth per interface
(its peer up, alone in a namespace of its own, so the link has carrier), the commands
run in it verbatim, an iptables-restore text and an ipset restore text. ``round_trip``
then runs `kptui capture -o FILE` inside that namespace, appends the box's packets to
the captured scenario and runs `kptui verify FILE`, which builds the *captured*
scenario in fresh namespaces and compares kptui with that same kernel. So a round trip
agrees when the capture wrote down what the kernel had, and kptui reads it as the
kernel does.

Used by tests/test_capture_roundtrip.py; by hand:

    python tests/kernel/capture_boxes.py NAME      # capture and verify one box, verbose
    python tests/kernel/vmkernel.py --run "$(python -c 'import sys; print(sys.executable)')" \
        tests/kernel/capture_boxes.py bridge-vlan  # one of VM_BOXES, on Debian's kernel

Each run ends with a line `== round trip NAME: ok` (or FAILED and why).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT))

from kptui.verify.netns import Lab  # noqa: E402


@dataclass(frozen=True)
class Box:
    name: str
    interfaces: tuple[str, ...]
    commands: str  # one command a line, run in the box namespace (after lo is up)
    packets: str  # [[packets]] tables appended to the captured scenario
    iptables: str = ""
    ipset: str = ""
    expect: tuple[str, ...] = ()  # text the captured scenario must contain


@dataclass
class RoundTrip:
    scenario: str  # the captured text, packets appended
    capture_status: int
    capture_err: str
    verify_status: int
    verify_out: str


def build(lab: Lab, box: Box) -> str:
    """Make the box; returns its namespace."""
    ns = lab.add("c")
    for n, iface in enumerate(box.interfaces):
        peer = lab.add(f"q{n}")
        lab.host(["ip", "link", "add", iface, "netns", ns, "type", "veth", "peer", "name",
                  f"kpcq{n}", "netns", peer])
        lab.run(peer, ["ip", "link", "set", f"kpcq{n}", "up"])
        lab.run(ns, ["ip", "link", "set", iface, "up"])
        lab.run(peer, ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])
    lab.run(ns, ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                 "net.ipv6.conf.default.disable_ipv6=1"])
    lab.run(ns, ["ip", "link", "set", "lo", "up"])
    if box.ipset.strip():
        lab.run(ns, ["ipset", "restore"], stdin=box.ipset)
    for line in box.commands.splitlines():
        argv = shlex.split(line, comments=True)
        if argv:
            lab.run(ns, argv)
    if box.iptables.strip():
        lab.run(ns, ["iptables-restore"], stdin=box.iptables)
    return ns


def capture(ns: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "kptui",
                           "capture", "-o", str(out)], capture_output=True, text=True,
                          cwd=PROJECT, check=False)


def verify(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kptui", "verify", str(path)],
                          capture_output=True, text=True, cwd=PROJECT, check=False)


def round_trip(box: Box, workdir: Path, *, prepare=None) -> RoundTrip:  # noqa: ANN001
    """Build, capture, verify. ``prepare(lab, ns)`` runs after the box is built (traffic
    that leaves state behind) and may return extra [[packets]] text."""
    path = workdir / f"{box.name}.toml"
    with Lab(f"kpc{os.getpid()}") as lab:
        ns = build(lab, box)
        extra = prepare(lab, ns) if prepare else ""
        done = capture(ns, path)
    text = path.read_text("utf-8") if path.exists() else ""
    if done.returncode != 0:
        return RoundTrip(text, done.returncode, done.stderr, -1, "")
    text += "\n" + box.packets + (extra or "")
    path.write_text(text, "utf-8")
    checked = verify(path)
    return RoundTrip(text, 0, done.stderr, checked.returncode, checked.stdout + checked.stderr)


def main(argv: list[str]) -> int:
    import tempfile

    from capture_roundtrips import BOXES, PREPARE, VM_BOXES  # noqa: PLC0415

    names = argv or [b.name for b in BOXES]
    status = 0
    with tempfile.TemporaryDirectory() as tmp:
        for box in BOXES + VM_BOXES:
            if box.name not in names:
                continue
            done = round_trip(box, Path(tmp), prepare=PREPARE.get(box.name))
            print(done.scenario)
            print(done.capture_err)
            print(done.verify_out)
            missing = [text for text in box.expect if text not in done.scenario]
            ok = done.capture_status == 0 and done.verify_status == 0 and not missing
            print(f"== round trip {box.name}: {'ok' if ok else 'FAILED'}"
                  + (f" (capture exit {done.capture_status})" if done.capture_status else "")
                  + (f" (verify exit {done.verify_status})" if done.verify_status else "")
                  + "".join(f" (not in the capture: {text!r})" for text in missing))
            status |= not ok
    return status


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    raise SystemExit(main(sys.argv[1:]))
