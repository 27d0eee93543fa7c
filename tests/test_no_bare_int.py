"""No number is read from text except by kptui.engine.numbers (issue 13).

``int()`` reads Unicode digits (``int("١٢") == 12``), ``str.isdigit()`` passes
``"8²"`` that ``int()`` then refuses, and ``int(text, 0)`` refuses ``"010"``:
each of these once let bad input end in a traceback or be read wrongly. So
this test reads every module of kptui and refuses:

- ``.isdigit()``, ``.isdecimal()``, ``.isnumeric()`` anywhere;
- ``int(x, base)`` (a base only makes sense for text);
- ``int(x)`` and ``float(x)`` unless ``x`` is one of the non-text values
  listed in NOT_TEXT (IPv4 addresses, floats, scroll offsets...), named by
  the expression as ast.unparse writes it. A new conversion of text fails here: use
  kptui.engine.numbers instead, which follows the tools' bases.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

KPTUI = Path(__file__).resolve().parent.parent / "kptui"
EXEMPT = {"engine/numbers.py"}  # the one parser itself
# kptui verify reads the kernel's own output (xtables-monitor, tc -j, /proc/net/snmp),
# never a user's text: what a user gives it goes through the scenario parsers.
EXEMPT_DIRS = ("verify/",)
# int()/float() of these is of a number or an address, never of text.
NOT_TEXT = re.compile(
    r"""^(
        # IPv4Address / IPv4Network values: int() is the address as a number
        (addr|src|dst|gateway|old|tup\.src|rng\.(min|max)_addr|flow\.src|route\.prefix\.\w+
         |pkt\.ip\.(src|dst)|ip\.(src|dst)|inner\.ip\.(src|dst)|ip\.ip|addrs\[0\]\.ip|net(\.\w+)+|r\.prefix\.network_address
         |conn\.original\.src|IPv4Address\(\w+\)|self\.box\.sysctl\(.*\))
        # numbers already: scroll offsets, simulated clocks and timers, rates
        |self\.scroll_[xy]|event\.detail\.removeprefix\(.*\)\s*or\s*0
        |ct\.remaining\(ctx\.now\)|self\.remaining\(now\)\s*if\s*self\.confirmed\s*else\s*self\.timeout
        |getattr\(self\.box,\s*'clock',\s*0\.0\)|entry\.get\('time',\s*0\.0\)
        |rate\s*\*\s*latency\s*\+\s*burst
        |'inf'
    )$""", re.VERBOSE)
DIGIT_TESTS = {"isdigit", "isdecimal", "isnumeric"}


def conversions() -> list[str]:
    bad = []
    for path in sorted(KPTUI.rglob("*.py")):
        rel = path.relative_to(KPTUI).as_posix()
        if rel in EXEMPT or rel.startswith(EXEMPT_DIRS):
            continue
        source = path.read_text("utf-8")
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.Call):
                continue
            where = f"kptui/{rel}:{node.lineno}: {ast.unparse(node)}"
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in DIGIT_TESTS:
                bad.append(where)
            elif isinstance(func, ast.Name) and func.id in ("int", "float") and node.args:
                arg = ast.unparse(node.args[0])
                if len(node.args) > 1 or not NOT_TEXT.match(arg.strip()):
                    bad.append(where)
    return bad


def test_numbers_are_read_only_by_the_number_parser():
    assert conversions() == []


def test_the_check_sees_a_bare_int(tmp_path, monkeypatch):
    # the check itself can fail: a module with int(text) and isdigit() is reported
    (tmp_path / "engine").mkdir()
    (tmp_path / "engine" / "bad.py").write_text(
        "def f(text):\n    return int(text) if text.isdigit() else int(text, 0)\n")
    monkeypatch.setattr(__import__(__name__), "KPTUI", tmp_path)
    assert len(conversions()) == 3
