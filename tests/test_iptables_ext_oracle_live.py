"""The recorded answers of the real iptables (tests/data/iptables-extensions/oracle.jsonl)
are still what iptables-nft does on this machine: recorded again in a network namespace
and compared line by line."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "kernel"))
import iptables_ext_oracle as oracle  # noqa: E402

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("iptables-nft") or not shutil.which("ip"),
    reason="needs root, iptables-nft and ip (network namespaces)")


def test_the_recorded_oracle_is_what_iptables_does_here():
    recorded = [json.loads(ln) for ln in oracle.ORACLE.read_text("utf-8").splitlines()]
    now = oracle.record_all()
    # the same iptables and kernel series (a point release changes no extension)
    assert now[0]["iptables"] == recorded[0]["iptables"], "another iptables: record it again"
    assert now[0]["kernel"].split(".")[:2] == recorded[0]["kernel"].split(".")[:2]
    changed = [(old, new) for old, new in zip(recorded[1:], now[1:], strict=True) if old != new]
    assert not changed, changed[:5]
