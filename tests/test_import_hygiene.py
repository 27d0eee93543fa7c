"""The engine and sessions stay pure: no UI libraries, no I/O modules of ours (DESIGN.md)."""

import subprocess
import sys

FORBIDDEN = ("textual", "rich", "kptui.screens", "kptui.widgets", "kptui.app", "kptui.verify")


def test_engine_imports_no_ui():
    code = (
        "import sys, pkgutil, importlib, kptui.engine as e\n"
        "for m in pkgutil.walk_packages(e.__path__, 'kptui.engine.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    bad = sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN or m.startswith(FORBIDDEN))
    assert bad == []
