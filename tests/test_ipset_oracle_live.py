"""The recorded answers of the real ipset (tests/data/ipset/oracle.jsonl) are still what
ipset and the kernel answer on this machine: recorded again and compared line by line."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "kernel"))
import ipset_oracle as oracle  # noqa: E402

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ipset") or not shutil.which("ip"),
    reason="needs root, ipset and ip (network namespaces)")


def test_the_recorded_ipset_answers_are_what_ipset_does_here():
    recorded = [json.loads(ln) for ln in oracle.ORACLE.read_text("utf-8").splitlines()]
    now = oracle.record_all()
    assert now[0]["ipset"] == recorded[0]["ipset"], "another ipset: record it again"
    assert now[0]["kernel"].split(".")[:2] == recorded[0]["kernel"].split(".")[:2]
    changed = [(old, new) for old, new in zip(recorded[1:], now[1:], strict=True) if old != new]
    assert not changed, changed[:5]
