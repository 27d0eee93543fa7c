"""Record what the real iptables does with every IPv4 line of its own extension tests.

The ``extensions/*.t`` files of iptables 1.8.9 (vendored in
tests/data/iptables-extensions/, see its README) say for each rule whether
iptables accepts it and how iptables-save prints it. Their own runner,
iptables-test.py, only checks that the expected text is a *substring* of the
save output, and a line that needs a kernel module this machine lacks fails
there for reasons of the kernel, not of iptables. So kptui's test compares
against what the real tool did, recorded here: for each line and each chain
of its ``:CHAIN`` header, the exit status, the message, and the exact
``-A`` line(s) iptables-save printed for it.

    sudo python3 tests/kernel/iptables_ext_oracle.py            # re-record
    sudo python3 tests/kernel/iptables_ext_oracle.py --check    # compare, exit 1 on a change

It runs iptables-test.py's steps (``iptables -A CHAIN [-t TABLE] RULE`` through
a shell, then iptables-save, then ``-D``), one fresh network namespace per
file, so nothing outside the namespaces is touched.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data" / "iptables-extensions"
ORACLE = DATA / "oracle.jsonl"
NETNS = "kptui-ext-oracle"


def test_lines(path: Path) -> list[dict]:
    """The test lines of one .t file, as iptables-test.py reads them (1.8.9).

    Each item: kind "rule" (with chains, table, rule, save, result) or "cmd"
    (an @/% line: an external command run as is, iptables ones in the netns).
    """
    out: list[dict] = []
    table, chains = "", []
    for lineno, line in enumerate(path.read_text("utf-8").split("\n"), start=1):
        if not line.strip() or line[0] == "#":
            continue
        if line[0] == ":":
            chains = line.rstrip()[1:].split(",")
            continue
        if line[0] in "@%":
            out.append({"kind": "cmd", "line": lineno, "cmd": line.rstrip()[1:]})
            continue
        if line[0] == "*":
            table = line.rstrip()[1:]
            continue
        item = line.split(";")
        res = item[2].rstrip()
        if len(item) > 3:  # a result scoped to one variant: this is the nft one
            variant = item[3].rstrip()
            alt = item[4].rstrip() if len(item) > 4 else None
            if variant != "NFT":
                res = alt if alt is not None else {"OK": "FAIL", "FAIL": "OK",
                                                    "NOMATCH": "OK"}[res]
        out.append({"kind": "rule", "line": lineno, "table": table, "chains": chains,
                    "rule": item[0], "save": item[0] if item[1] == "=" else item[1],
                    "result": res})
    return out


def _sh(cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", NETNS, "sh", "-c", cmd],
                          capture_output=True, text=True, check=False)


def _saved(table: str) -> list[str]:
    got = _sh(f"iptables-save -t {table or 'filter'}")
    return [ln for ln in got.stdout.split("\n") if ln.startswith("-A ")]


def record_file(path: Path) -> list[dict]:
    records: list[dict] = []
    subprocess.run(["ip", "netns", "del", NETNS], capture_output=True, check=False)
    subprocess.run(["ip", "netns", "add", NETNS], check=True)
    try:
        for item in test_lines(path):
            if item["kind"] == "cmd":
                cmd = item["cmd"]
                if cmd.startswith("iptables "):
                    cmd = "iptables-nft " + cmd.removeprefix("iptables ")
                got = _sh(cmd)
                records.append({"file": path.name, "line": item["line"], "cmd": item["cmd"],
                                "rc": got.returncode})
                continue
            for chain in item["chains"]:
                where = f"{chain} -t {item['table']}" if item["table"] else chain
                before = _saved(item["table"])
                got = _sh(f"iptables-nft -A {where} {item['rule']}")
                after = _saved(item["table"]) if got.returncode == 0 else before
                new = [ln for ln in after if ln not in before]
                records.append({
                    "file": path.name, "line": item["line"], "table": item["table"] or "filter",
                    "chain": chain, "rule": item["rule"], "t_save": item["save"],
                    "t_result": item["result"], "rc": got.returncode,
                    "error": got.stderr.strip().split("\n")[0] if got.returncode else "",
                    "saved": new})
                if got.returncode == 0:
                    _sh(f"iptables-nft -D {where} {item['rule']}")
    finally:
        subprocess.run(["ip", "netns", "del", NETNS], capture_output=True, check=False)
    return records


def record_all() -> list[dict]:
    version = subprocess.run(["iptables", "--version"], capture_output=True, text=True,
                             check=True).stdout.strip()
    head = {"iptables": version, "kernel": os.uname().release}
    records: list[dict] = [head]
    for path in sorted(DATA.glob("*.t")):
        records.extend(record_file(path))
    return records


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the recorded oracle")
    args = ap.parse_args()
    records = record_all()
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if args.check:
        old = ORACLE.read_text("utf-8").split("\n")
        new = text.split("\n")
        changed = [(o, n) for o, n in zip(old[1:], new[1:], strict=False) if o != n]
        for o, n in changed[:20]:
            print(f"- {o}\n+ {n}")
        return 1 if changed or len(old) != len(new) else 0
    ORACLE.write_text(text, "utf-8")
    print(f"{len(records) - 1} records in {ORACLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
