"""The cases of iptables' own extension tests, with the real tool's answer for each.

Read by tests/test_iptables_extensions.py and by ``python3 tests/iptables_ext_cases.py``
(a per-extension table of what kptui gets right, for working on it). The
expected answer of each case is what iptables-nft 1.8.9 did with it on Linux
6.18 (tests/data/iptables-extensions/oracle.jsonl, recorded by
tests/kernel/iptables_ext_oracle.py), except where that kernel lacks the module
(the tool accepted the line and the kernel refused to load it): there the test
file's own expectation is the answer, since kptui models a kernel that has it.
"""

from __future__ import annotations

import json
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from kptui.engine.errors import KptuiError
from kptui.engine.iptables import Ruleset, apply_command, restore, to_save

DATA = Path(__file__).resolve().parent / "data" / "iptables-extensions"
PREFIX = "iptables v1.8.9 (nf_tables): "
# What this machine's kernel says when it lacks a module that iptables itself accepts.
MISSING_MODULE = ("not supported, missing kernel module?",
                  "RULE_APPEND failed (No such file or directory)")


@dataclass(frozen=True)
class Case:
    file: str
    line: int
    table: str
    chain: str
    rule: str
    accept: bool
    saved: str  # the -A line iptables-save prints, when accepted
    error: str  # iptables' message, when refused
    setup: tuple[str, ...]  # iptables commands of the file (%/@ lines) run before it

    @property
    def key(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def extension(self) -> str:
        return self.file.removesuffix(".t")


def load_cases() -> list[Case]:
    records = [json.loads(ln) for ln in (DATA / "oracle.jsonl").read_text("utf-8").splitlines()]
    cases: list[Case] = []
    setup: dict[str, list[str]] = {}
    for r in records[1:]:
        if "cmd" in r:
            if r["cmd"].startswith("iptables ") and r["rc"] == 0:
                setup.setdefault(r["file"], []).append(r["cmd"])
            continue
        kernel_lacks = r["rc"] != 0 and any(m in r["error"] for m in MISSING_MODULE)
        if kernel_lacks:
            accept, saved = r["t_result"] == "OK", f"-A {r['chain']} {r['t_save']}"
        else:
            accept = r["rc"] == 0
            saved = r["saved"][0] if accept else ""
        cases.append(Case(r["file"], r["line"], r["table"], r["chain"], r["rule"], accept,
                          saved, r["error"].removeprefix(PREFIX),
                          tuple(setup.get(r["file"], ()))))
    return cases


def exceptions() -> dict[str, str]:
    """file:line -> why kptui differs there (tests/data/iptables-extensions/exceptions.toml)."""
    return tomllib.loads((DATA / "exceptions.toml").read_text("utf-8"))


@dataclass(frozen=True)
class Outcome:
    ok: bool
    got: str  # kptui's saved line or its error
    worded: bool = False  # refused, in iptables' words (see ``worded``)


def worded(case: Case, message: str) -> bool:
    """kptui's refusal says what iptables said: its first line, or for the kernel's
    refusal (``RULE_APPEND failed (Invalid argument)``) the kernel's reason."""
    said = case.error.removeprefix("Warning: ")  # a kernel lacking the module: the refusal
    if "RULE_APPEND failed (" in said:
        said = said.split("RULE_APPEND failed (", 1)[1].split(")", 1)[0]
    return bool(said) and said in message


def run_case(case: Case) -> Outcome:
    """kptui given the same command line, then its iptables-save line for the rule,
    which must also read back (restore) to itself."""
    rs = Ruleset()
    where = f"-t {case.table} " if case.table != "filter" else ""
    try:
        for n, cmd in enumerate(case.setup):
            apply_command(rs, cmd, file="setup", line=n + 1)
        before = _rules(rs, case.table)
        apply_command(rs, f"iptables {where}-A {case.chain} {case.rule}", file=case.file,
                      line=case.line)
    except KptuiError as err:
        return Outcome(not case.accept, f"refused: {err}", worded(case, str(err)))
    new = [ln for ln in _rules(rs, case.table) if ln not in before]
    got = new[0] if len(new) == 1 else repr(new)
    if not case.accept:
        return Outcome(False, f"accepted: {got}")
    if got != case.saved:
        return Outcome(False, got)
    text = to_save(rs)
    back = Ruleset()
    try:
        restore(back, text, file="saved")
    except KptuiError as err:
        return Outcome(False, f"its save does not restore: {err}")
    again = to_save(back)
    return Outcome(again == text, got if again == text else f"restores as {again!r}")


def _rules(rs: Ruleset, table: str) -> list[str]:
    text = to_save(rs)
    start = text.find(f"*{table}\n")
    if start < 0:
        return []
    body = text[start:text.index("COMMIT", start)]
    return [ln for ln in body.split("\n") if ln.startswith("-A ")]


def report() -> None:
    """Per extension: cases right / all and refusals worded as iptables words them.

    ``-v`` lists the wrong cases, ``-w`` the refusals in other words, ``-e a,b``
    only the extensions named (``-e sctp,DNAT``)."""
    cases = load_cases()
    by_ext: dict[str, list[tuple[Case, Outcome]]] = {}
    for case in cases:
        by_ext.setdefault(case.extension, []).append((case, run_case(case)))
    total = sum(o.ok for v in by_ext.values() for _, o in v)
    refused = [(c, o) for v in by_ext.values() for c, o in v if not c.accept and o.ok]
    names = sys.argv[sys.argv.index("-e") + 1].split(",") if "-e" in sys.argv else None
    for ext, results in sorted(by_ext.items()):
        if names and not any(ext.endswith("_" + n) or ext == n for n in names):
            continue
        good = sum(o.ok for _, o in results)
        words = [(c, o) for c, o in results if not c.accept and o.ok]
        print(f"{ext:24} {good:4}/{len(results)}   refusals in iptables' words "
              f"{sum(o.worded for _, o in words)}/{len(words)}")
        for case, o in results:
            if "-v" in sys.argv and not o.ok:
                want = case.saved if case.accept else f"refused: {case.error}"
                print(f"    {case.key} {case.chain}: {case.rule}\n      want {want}\n"
                      f"      got  {o.got}")
            if "-w" in sys.argv and o.ok and not case.accept and not o.worded:
                print(f"    {case.key}: {case.rule}\n      iptables: {case.error}\n"
                      f"      kptui:    {o.got}")
    print(f"{'all':24} {total:4}/{len(cases)}   refusals in iptables' words "
          f"{sum(o.worded for _, o in refused)}/{len(refused)}")


def write_exceptions() -> None:
    """Rewrite exceptions.toml: drop the cases now right, keep the reasons of the rest,
    and list new differences as not done yet (for a person to give each its reason)."""
    old = exceptions()
    wrong: dict[str, str] = {}
    for case in load_cases():
        if not run_case(case).ok and case.key not in wrong:
            wrong[case.key] = old.get(case.key, f"not done yet (issue 14): {case.rule[:70]}")
    head = [ln for ln in (DATA / "exceptions.toml").read_text("utf-8").splitlines()
            if ln.startswith("#")]
    body = [f"{json.dumps(k)} = {json.dumps(v)}" for k, v in wrong.items()]
    (DATA / "exceptions.toml").write_text("\n".join(head + body) + "\n", "utf-8")
    print(f"{len(wrong)} exceptions ({len(old)} before)")


if __name__ == "__main__":
    if "--write-exceptions" in sys.argv:
        write_exceptions()
    else:
        report()
