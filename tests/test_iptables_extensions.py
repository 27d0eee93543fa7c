"""iptables' own extension tests: kptui accepts, refuses and prints every IPv4 rule
line as iptables-nft 1.8.9 did on Linux 6.18 (see tests/iptables_ext_cases.py).

A case listed in tests/data/iptables-extensions/exceptions.toml is a known
difference, with its reason; the list is strict both ways (an exception that
now passes must be removed). ``python3 tests/iptables_ext_cases.py -v`` shows
every difference; the per-extension counts are printed at the end of the run.
"""

from __future__ import annotations

import pytest
from iptables_ext_cases import exceptions, load_cases, run_case

CASES = load_cases()
EXCEPTIONS = exceptions()
EXTENSIONS = sorted({c.extension for c in CASES})
TALLY: dict[str, tuple[int, int]] = {}  # extension -> (right, all), for the summary


def test_the_oracle_covers_every_test_file():
    # 87 IPv4 test files of iptables 1.8.9 (libipt_*, libxt_*, iptables.t), 2,013 cases
    assert len(EXTENSIONS) == 87 and len(CASES) == 2013


def test_every_exception_names_a_case():
    keys = {c.key for c in CASES}
    assert not [k for k in EXCEPTIONS if k not in keys]
    assert all(reason.strip() for reason in EXCEPTIONS.values())


@pytest.mark.parametrize("extension", EXTENSIONS)
def test_extension_lines_as_iptables_takes_them(extension: str) -> None:
    wrong, fixed = [], set()
    cases = [c for c in CASES if c.extension == extension]
    right = 0
    for case in cases:
        outcome = run_case(case)
        right += outcome.ok
        if case.key in EXCEPTIONS:
            if outcome.ok:
                fixed.add(case.key)
            continue
        if not outcome.ok:
            want = case.saved if case.accept else f"refused: {case.error}"
            wrong.append(f"{case.key} {case.chain}: {case.rule}\n  want {want}\n"
                         f"  got  {outcome.got}")
    TALLY[extension] = (right, len(cases))
    # a listed case passes only if every chain of it does
    still = {c.key for c in cases if c.key in EXCEPTIONS and not run_case(c).ok}
    assert not wrong, "\n".join(wrong)
    assert not (fixed - still), f"now right, remove from exceptions.toml: {sorted(fixed - still)}"
