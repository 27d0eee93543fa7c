"""kptui's `ipset` answers every command line of tests/data/ipset/cases.txt as the real
ipset 7.17 on Linux 6.18 did (tests/data/ipset/oracle.jsonl, recorded by
tests/kernel/ipset_oracle.py): it succeeds where ipset succeeded and refuses where ipset
refused, with ipset's first line of words."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest
from fuzzing import fuzz, fuzz_settings, mutated, own_error_or_success
from hypothesis import given

sys.path.insert(0, str(Path(__file__).resolve().parent / "kernel"))
import ipset_oracle as oracle  # noqa: E402

from kptui.engine.box import Box  # noqa: E402
from kptui.engine.errors import UnsupportedError  # noqa: E402
from kptui.engine.ipset_setup import run_ipset  # noqa: E402
from kptui.engine.ipsets import IpsetError  # noqa: E402
from kptui.engine.setup import set_in_use  # noqa: E402

RECORDED = {row["line"]: row for row in
            (json.loads(ln) for ln in oracle.ORACLE.read_text("utf-8").splitlines()[1:])}


def kptui_answers(group: list[tuple[int, str]]) -> list[dict]:
    box = Box()
    rows = []
    for number, line in group:
        try:
            run_ipset(box.ipsets, shlex.split(line), in_use=lambda i: set_in_use(box, i))
            ok, message = True, ""
        except IpsetError as err:
            ok, message = False, str(err).splitlines()[0]
        except UnsupportedError as err:
            ok, message = False, f"unsupported yet: {err}"
        rows.append({"line": number, "command": line, "ok": ok, "message": message})
    return rows


@pytest.mark.parametrize("group", oracle.groups(), ids=lambda g: f"line{g[0][0]}")
def test_kptui_answers_each_ipset_line_as_ipset_does(group):
    got = kptui_answers(group)
    # a success is compared by itself: what ipset prints then ("Warning: X is in set Y.")
    # is not an answer kptui gives
    want = [dict(RECORDED[number], message="") if RECORDED[number]["ok"]
            else RECORDED[number] for number, _ in group]
    wrong = [(w, g) for w, g in zip(want, got, strict=True) if w != g]
    assert not wrong, "\n".join(f"line {w['line']} `{w['command']}`: ipset {w['ok']} "
                                f"{w['message']!r}, kptui {g['ok']} {g['message']!r}"
                                for w, g in wrong)


# -- bad input never escapes: mutated ipset lines end in kptui's own error or succeed ----

_ALL_LINES = [line for group in oracle.groups() for _n, line in group]
_IPSET_WORDS = ["hash:ip", "hash:net", "hash:ip,port", "list:set", "bitmap:port", "range",
                "timeout", "nomatch", "-exist", "1-70000", "10.0.0.0/0", "0x10/0xff", "::1",
                "icmp:255/255", "tcp:0-65535", "before", "after", "A", "B", "L"]


def _ipset_session(text: str) -> None:
    """Each line as a setup command on one box, then a packet test of every set."""
    from kptui.engine.setup import apply_setup

    box = Box()
    box.add_link("eth0")
    apply_setup(box, "\n".join(f"ipset {line}" for line in text.splitlines()), file="f")


@fuzz
@fuzz_settings(400)
@given(mutated(_ALL_LINES, extra_words=_IPSET_WORDS))
def test_mutated_ipset_lines_never_crash(line: str) -> None:
    own_error_or_success(_ipset_session, line)
