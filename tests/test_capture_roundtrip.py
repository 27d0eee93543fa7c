"""`kptui capture` on real boxes: build a box in namespaces, capture it, verify the capture.

Each round trip (tests/kernel/capture_roundtrips.py) builds a box on this machine's
kernel (tests/kernel/capture_boxes.py), runs `kptui capture -o FILE` inside its
namespace, appends packets and runs `kptui verify FILE`: the captured scenario, rebuilt
in fresh namespaces, must get the kernel's answers from kptui for every packet. The
expected values are the kernel's own (verify compares); the tests here add what the
captured text itself must say. Root and the verify tools are needed; under CI=true a
missing one fails instead of skipping (as in tests/test_verify_live.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "kernel"))
import capture_boxes  # noqa: E402 - tests/kernel is not a package
from capture_roundtrips import BOXES, PREPARE  # noqa: E402

TOOLS = ("ip", "nft", "iptables-restore", "xtables-monitor", "sysctl", "stdbuf", "tc",
         "conntrack", "ipset")


def _live_or_skip() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    why = "not root" if os.geteuid() != 0 else f"missing {', '.join(missing)}" if missing else ""
    if why:
        message = f"capture round trips impossible here: {why}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def _leftovers() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines()
            if line.startswith((f"kpc{os.getpid()}", f"kpv{os.getpid()}"))]


def test_there_are_at_least_ten_round_trips():
    assert len(BOXES) >= 10
    assert len({b.name for b in BOXES}) == len(BOXES)


@pytest.mark.parametrize("box", BOXES, ids=[b.name for b in BOXES])
def test_captured_box_agrees_with_its_kernel(box: capture_boxes.Box, tmp_path: Path):
    _live_or_skip()
    done = capture_boxes.round_trip(box, tmp_path, prepare=PREPARE.get(box.name))
    assert done.capture_status == 0, done.capture_err
    for text in box.expect:
        assert text in done.scenario, f"{text!r} not in the capture:\n{done.scenario}"
    assert done.verify_status == 0, done.verify_out
    assert "kernel and kptui agree" in done.verify_out
    assert _leftovers() == []


def _dumps_from_the_one_liner(lab, ns: str, where: Path) -> None:  # noqa: ANN001
    from kptui.capture.dumps import ONE_LINER

    subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", ONE_LINER], cwd=where,
                   capture_output=True, text=True, check=False)


def test_from_dir_of_the_readme_one_liner_is_the_live_capture(tmp_path: Path):
    # The dumps the README's one-liner writes on "another machine" (here: the box's
    # namespace) give the same scenario as the live capture, but for the clock and the
    # title (dumps do not say when or where they were made).
    _live_or_skip()
    box = next(b for b in BOXES if b.name == "tc-shaping")
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    with capture_boxes.Lab(f"kpc{os.getpid()}") as lab:
        ns = capture_boxes.build(lab, box)
        capture_boxes.capture(ns, tmp_path / "live.toml")
        _dumps_from_the_one_liner(lab, ns, dumps)
    done = subprocess.run([sys.executable, "-m", "kptui", "capture", "--from", str(dumps),
                           "-o", str(tmp_path / "dir.toml")], capture_output=True, text=True,
                          cwd=capture_boxes.PROJECT)
    assert done.returncode == 0, done.stderr

    def body(path: Path) -> list[str]:
        return [line for line in path.read_text().splitlines()
                if not line.startswith(("# Captured", "#  - ", "# What", "name =",
                                        "description =", "clock ="))]

    assert body(tmp_path / "dir.toml") == body(tmp_path / "live.toml")
    assert "sysctl(s) in the dump are not read" in (tmp_path / "dir.toml").read_text()
    assert _leftovers() == []


def test_trace_live_send_answers_for_this_box_and_writes_nothing(tmp_path: Path):
    # The "done when": inside a namespace, one command prints the fate and the
    # deciding rule, and no file is written.
    _live_or_skip()
    box = capture_boxes.Box(
        name="trace-live", interfaces=("veth0",),
        commands="ip addr add 10.0.0.1/24 dev veth0\n",
        iptables="*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 22 -j DROP\nCOMMIT\n",
        packets="")
    with capture_boxes.Lab(f"kpc{os.getpid()}") as lab:
        ns = capture_boxes.build(lab, box)
        done = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "kptui", "trace", "--live",
             "--send", "tcp 10.0.0.2:40000 > 10.0.0.1:22 iif veth0 flags S"],
            capture_output=True, text=True, cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(capture_boxes.PROJECT)})
    assert done.returncode == 0, done.stderr
    assert "=> drop (by filter:INPUT:rule:1)" in done.stdout
    assert list(tmp_path.iterdir()) == []
    assert _leftovers() == []


def test_vm_boxes_bridge_vlan_dummy_and_fw_matchall_filters(tmp_path: Path):
    # vlan and dummy devices, cls_fw and cls_matchall need modules this machine's kernel
    # lacks: these round trips run on Debian's stock kernel in qemu
    # (tests/kernel/vmkernel.py), one boot, about 80 s.
    _live_or_skip()
    import vmkernel
    from capture_roundtrips import VM_BOXES

    missing = vmkernel.missing_tools()
    why = f"missing {', '.join(missing)}" if missing else ""
    run = None
    if not why:
        try:
            run = vmkernel.run_in_vm([sys.executable, "tests/kernel/capture_boxes.py",
                                      *(b.name for b in VM_BOXES)])
        except (vmkernel.VmUnavailable, subprocess.CalledProcessError) as exc:
            why = str(exc)
    if run is None:
        message = f"the VM round trips are impossible here: {why}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    for box in VM_BOXES:
        assert f"== round trip {box.name}: ok" in run.stdout, run.stdout + run.stderr
    assert run.status == 0
