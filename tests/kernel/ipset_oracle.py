"""Record what the real ipset answers to the command lines of tests/data/ipset/cases.txt.

Each group of lines (groups are separated by blank lines) runs in a fresh network
namespace, one line after another, as `ipset LINE`; for each line the answer is
kept: whether it succeeded and the first line ipset printed to stderr, without its
"ipset vX.Y: " prefix. The result is tests/data/ipset/oracle.jsonl, whose first line
names the ipset and kernel versions; tests/test_ipset_commands.py checks kptui's ipset
against it and tests/test_ipset_oracle_live.py records it again and compares.

    python3 tests/kernel/ipset_oracle.py     # root; writes oracle.jsonl
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data" / "ipset"
CASES = DATA / "cases.txt"
ORACLE = DATA / "oracle.jsonl"
NETNS = "kptui-ipset-oracle"
_PREFIX = re.compile(r"^ipset v[0-9.]+: ")


def groups(path: Path = CASES) -> list[list[tuple[int, str]]]:
    """The groups of (line number, command) of the cases file."""
    out: list[list[tuple[int, str]]] = [[]]
    for number, raw in enumerate(path.read_text("utf-8").splitlines(), 1):
        line = raw.strip()
        if line.startswith("#"):
            continue
        if not line:
            if out[-1]:
                out.append([])
            continue
        out[-1].append((number, line))
    return [g for g in out if g]


def answer(stderr: str) -> str:
    first = stderr.strip().splitlines()[0] if stderr.strip() else ""
    return _PREFIX.sub("", first)


def record_group(group: list[tuple[int, str]]) -> list[dict]:
    subprocess.run(["ip", "netns", "del", NETNS], capture_output=True)
    subprocess.run(["ip", "netns", "add", NETNS], check=True)
    rows = []
    try:
        for number, line in group:
            p = subprocess.run(["ip", "netns", "exec", NETNS, "ipset", *shlex.split(line)],
                               capture_output=True, text=True)
            rows.append({"line": number, "command": line, "ok": p.returncode == 0,
                         "message": answer(p.stderr)})
    finally:
        subprocess.run(["ip", "netns", "del", NETNS], capture_output=True)
    return rows


def version() -> str:
    p = subprocess.run(["ipset", "version"], capture_output=True, text=True)
    return p.stdout.split(",")[0].strip()


def record_all() -> list[dict]:
    rows: list[dict] = [{"ipset": version(), "kernel": platform.release()}]
    for group in groups():
        rows += record_group(group)
    return rows


def main() -> int:
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    rows = record_all()
    tmp = ORACLE.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    os.replace(tmp, ORACLE)
    print(f"{len(rows) - 1} lines recorded in {ORACLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
