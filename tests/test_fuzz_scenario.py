"""Whole scenarios, mutated: loading, building the box and tracing every packet.

What `kptui trace FILE` does with any file must end in its output or in one
message naming the file (exit 2): the project's own error, never anything
else. The corpus is every scenario kptui ships or checks against the kernel
(tests/kernel/scenarios, kptui/scenarios, sessions/); each case mutates one
to four lines of one of them, word by word (see tests/fuzzing.py).

The long run, for a night: ``KPTUI_FUZZ_EXAMPLES=100000 python3 -m pytest
tests/test_fuzz_scenario.py -m fuzz -x``.
"""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path

import pytest
from fuzzing import TRICKY_WORDS, fuzz, fuzz_settings, mutated, own_error_or_success
from hypothesis import given
from hypothesis import strategies as st

from kptui import report
from kptui.engine.errors import KptuiError, ParseError
from kptui.engine.run import run_scenario
from kptui.engine.scenario import MAX_NESTING, load_scenario

ROOT = Path(__file__).resolve().parent.parent
CORPUS_FILES = sorted([*ROOT.glob("tests/kernel/scenarios/*.toml"),
                       *ROOT.glob("kptui/scenarios/*.toml"), *ROOT.glob("sessions/*.toml")])
CORPUS = [p.read_text("utf-8") for p in CORPUS_FILES]
# Words of the scenario format itself, so mutations also make keys and headers wrong.
SCENARIO_WORDS = ("[[packets]]", "[[interfaces]]", "[sysctl]", "iif", "=", '"local"', "proto",
                  "reply_to", "repeat", "time", "inner", "{", "}", "[", "]", '"""', "'''",
                  "table", "dev", "-A", "-j", "COMMIT", "*filter", "*nat", "-t", "--dport")


PARSED = [tomllib.loads(text) for text in CORPUS]
# Values a mutated key may get instead of its own: wrong types and edges of ranges,
# copied at each draw (a later mutation may change a table placed in the scenario).
ODD_VALUES = st.sampled_from([-1, 0, 1, 255, 256, 65535, 65536, 2**32, 2**64, 10**60, 1.5,
                              float("inf"), float("nan"), True, "", "8\u00b2", "010", "local",
                              [], ["x"], {}, {"a": 1}]).map(copy.deepcopy)


@st.composite
def mutated_lines(draw: st.DrawFn) -> str:
    """One corpus scenario with one to four of its lines mutated (TOML syntax included)."""
    lines = draw(st.sampled_from(CORPUS)).split("\n")
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        lines[i] = draw(mutated([lines[i]], extra_words=SCENARIO_WORDS))
    return "\n".join(lines)


@st.composite
def mutated_values(draw: st.DrawFn) -> str:
    """One corpus scenario, valid TOML, with values changed: setup or iptables lines
    mutated, a packet's, an interface's or a sysctl's value replaced or mutated."""
    data = copy.deepcopy(draw(st.sampled_from(PARSED)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        key = draw(st.sampled_from(sorted(data)))
        value = data[key]
        if isinstance(value, str) and value.strip():
            lines = value.split("\n")
            i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            lines[i] = draw(mutated([lines[i]], extra_words=SCENARIO_WORDS))
            data[key] = "\n".join(lines)
            continue
        tables = value if isinstance(value, list) else [value] if isinstance(value, dict) \
            else []
        tables = [t for t in tables if isinstance(t, dict) and t]
        if not tables:
            data[key] = draw(ODD_VALUES)
            continue
        table = draw(st.sampled_from(tables))
        field = draw(st.sampled_from(sorted(table)))
        old = table[field]
        if isinstance(old, str) and draw(st.booleans()):
            table[field] = draw(mutated([old], extra_words=SCENARIO_WORDS))
        else:
            table[field] = draw(ODD_VALUES)
    return to_toml(data)


def to_toml(data: dict) -> str:
    """The scenario shape (top-level values, tables, arrays of tables) written as TOML."""
    out, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append(f"[{_key(key)}]\n" + "".join(f"{_key(k)} = {_value(v)}\n"
                                                       for k, v in value.items()))
        elif isinstance(value, list) and value and all(isinstance(t, dict) for t in value):
            tables.extend(f"[[{_key(key)}]]\n" + "".join(f"{_key(k)} = {_value(v)}\n"
                                                         for k, v in t.items()) for t in value)
        else:
            out.append(f"{_key(key)} = {_value(value)}\n")
    return "".join(out) + "\n".join(tables)


def _key(key: str) -> str:
    return json.dumps(key)


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value != value:
        return "nan"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        # JSON's escapes are TOML basic-string escapes; DEL must be escaped in TOML
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {value!r}")


def mutated_scenario() -> st.SearchStrategy[str]:
    """Mostly valid TOML with bad values (what reaches the engine), some broken TOML."""
    return st.one_of(mutated_lines(), mutated_values(), mutated_values(), mutated_values())


def trace(text: str) -> str:
    """What `kptui trace` does: load, build, walk every packet, render as JSON."""
    scenario = load_scenario(text, file="fuzz.toml")
    return report.as_json_lines(list(run_scenario(scenario)))


def test_the_toml_writer_writes_the_corpus_back():
    for data in PARSED:
        assert tomllib.loads(to_toml(data)) == data


def test_the_corpus_is_real():
    # the fuzzer mutates valid scenarios: each one loads and traces as it is
    assert len(CORPUS) > 100
    for path, text in zip(CORPUS_FILES, CORPUS, strict=True):
        assert trace(text), path


@fuzz
@fuzz_settings(150)
@given(mutated_scenario())
def test_any_scenario_traces_or_gives_one_message(text: str) -> None:
    outcome = own_error_or_success(trace, text)
    if isinstance(outcome, KptuiError):
        assert "\n" not in str(outcome).strip() or isinstance(outcome, ParseError)


# -- regressions: inputs that once ended in a traceback (issue 13) -------------------------

HEAD = '[[interfaces]]\nname = "eth0"\naddresses = ["192.0.2.1/24"]\n'
PACKET = '[[packets]]\niif = "eth0"\nproto = "udp"\nsrc = "192.0.2.9"\ndst = "192.0.2.1"\n'


@pytest.mark.parametrize(("text", "line", "says"), [
    ("name = " + "9" * 5000, 1, "more than 4300 digits"),
    ("x = " + "[" * 100_000 + "]" * 100_000, 1, f"nested more than {MAX_NESTING} deep"),
    ("x = " + "{a = " * 1000 + "1" + "}" * 1000, 1, f"nested more than {MAX_NESTING} deep"),
    (HEAD + PACKET + "sport = 1\ndport = " + "1" * 4400 + "\n", 10, "4300 digits"),
    ("rt_tables = '''\n\u0661\u0662 isp\n'''", 0, "needs a number"),
    ("rt_tables = '''\n010 isp\n'''\nsetup = 'ip route add 10.0.0.0/8 dev lo table isp'",
     0, None),  # 010 is table 10, as iproute2's sscanf("%d") reads rt_tables
    # a lone surrogate has no bytes a device name could hold (found by the 100,000-case run)
    ('[[interfaces]]\nname = "\ud800"\naddresses = ["192.0.2.1/24"]\n', 2,
     "is not a valid interface name"),
])
def test_bad_scenarios_name_the_line(text: str, line: int, says: str | None) -> None:
    try:
        load_scenario(text, file="bad.toml").build_box()
    except ParseError as err:
        assert says is not None and says in str(err), str(err)
        assert err.file == "bad.toml" and (err.line == line or not line)
    else:
        assert says is None


def test_nesting_inside_strings_is_not_counted():
    text = 'description = "' + "[" * 200 + '"\nsetup = """\n# ' + "{" * 200 + '\n"""\n'
    assert load_scenario(text, file="s.toml").description.startswith("[[[")


def test_tricky_words_are_in_the_mutations():
    # the mutation vocabulary holds each kind of token that broke a parser before
    assert {"8\u00b2", "\u0661\u0662", "\uff11\uff12", "010", "9" * 5000} <= set(TRICKY_WORDS)
