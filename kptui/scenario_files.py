"""How kptui reads the files a scenario names (``iptables_file``).

The engine reads no file (load_scenario takes a ``read_file``): the CLI, the TUI's
loader and a session replay pass this one, so a scenario's files are read the same
way wherever it is opened.
"""

from __future__ import annotations

from pathlib import Path


def read_text_file(path: str) -> str:
    """A file a scenario names, as UTF-8 text: load_scenario's ``read_file``."""
    return Path(path).read_text("utf-8")
