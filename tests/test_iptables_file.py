"""`iptables_file = "rules.v4"`: a scenario's ruleset in a file of its own (issue 16).

What a user has is an iptables-save dump next to the scenario; the key names it,
relative to the scenario's directory. It must give exactly the box the same rules
inline give, and an error in it must name that file, its line and the token (the
line iptables-restore FILE reports as `line N failed`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kptui.cli import load, main
from kptui.engine.errors import ParseError
from kptui.engine.iptables import to_save
from kptui.engine.scenario import load_scenario

RULES = """\
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i eth1 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 192.168.1.10:80
-A POSTROUTING -o eth1 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -d 192.168.1.10/32 -p tcp -m comment --comment "web server" -m tcp --dport 80 -j ACCEPT
COMMIT
"""

HEAD = """\
name = "port-forward"
setup = '''
ip route add default via 203.0.113.1 dev eth1
'''
"""

TAIL = """
[sysctl]
"net.ipv4.ip_forward" = 1

[[interfaces]]
name = "eth0"
addresses = ["192.168.1.1/24"]

[[interfaces]]
name = "eth1"
addresses = ["203.0.113.2/24"]

[[packets]]
iif = "eth1"
proto = "tcp"
src = "198.51.100.7"
dst = "203.0.113.2"
sport = 40000
dport = 8080
"""


def inline() -> str:
    return HEAD + f"iptables = '''\n{RULES}'''\n" + TAIL


def external(name: str = "rules.v4") -> str:
    return HEAD + f'iptables_file = "{name}"\n' + TAIL


@pytest.fixture
def scenario_dir(tmp_path: Path) -> Path:
    where = tmp_path / "box"
    where.mkdir()
    (where / "rules.v4").write_text(RULES)
    (where / "port-forward.toml").write_text(external())
    (where / "inline.toml").write_text(inline())
    return where


def test_the_file_is_read_relative_to_the_scenario(scenario_dir: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # not the scenario's directory
    scenario = load("box/port-forward.toml")
    assert scenario.iptables == RULES
    assert scenario.iptables_file == "rules.v4"
    assert scenario.iptables_path == "box/rules.v4"
    assert to_save(scenario.build_box().ruleset) == to_save(load("box/inline.toml")
                                                            .build_box().ruleset)


def test_trace_is_the_same_as_with_the_rules_inline(scenario_dir: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    for fmt in ("text", "json", "trace"):
        assert main(["trace", str(scenario_dir / "inline.toml"), "--format", fmt]) == 0
        want = capsys.readouterr().out
        assert main(["trace", str(scenario_dir / "port-forward.toml"), "--format", fmt]) == 0
        assert capsys.readouterr().out == want


def test_an_absolute_name(scenario_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.toml"
    other.write_text(external(str(scenario_dir / "rules.v4")))
    assert load(str(other)).iptables == RULES


def test_missing_file_names_the_scenario_line_and_the_path(scenario_dir: Path) -> None:
    path = scenario_dir / "missing.toml"
    path.write_text(external("nope.v4"))
    with pytest.raises(ParseError) as err:
        load(str(path))
    line = external("nope.v4").splitlines().index('iptables_file = "nope.v4"') + 1
    assert str(err.value) == (f"{path}:{line}: iptables_file 'nope.v4': "
                              f"{scenario_dir / 'nope.v4'}: no such file (at 'nope.v4')")


def test_a_directory_is_refused(scenario_dir: Path) -> None:
    path = scenario_dir / "dir.toml"
    path.write_text(external("."))
    with pytest.raises(ParseError, match="is a directory"):
        load(str(path))


def test_both_keys_are_an_error(scenario_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = inline().replace("[sysctl]", 'iptables_file = "rules.v4"\n\n[sysctl]')
    path = scenario_dir / "both.toml"
    path.write_text(text)
    line = text.splitlines().index('iptables_file = "rules.v4"') + 1
    assert main(["trace", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"kptui: error: {path}:{line}: iptables and iptables_file both give the ruleset: "
        "keep one (at 'iptables_file')\n")


def test_an_error_in_the_rules_names_that_file_line_and_token(scenario_dir: Path) -> None:
    bad = RULES.replace("--dport 80 ", "--dport 99999 ")
    (scenario_dir / "rules.v4").write_text(bad)
    line = bad.splitlines().index(next(x for x in bad.splitlines() if "99999" in x)) + 1
    column = bad.splitlines()[line - 1].index("99999") + 1
    with pytest.raises(ParseError) as err:
        load(str(scenario_dir / "port-forward.toml")).build_box()
    assert (err.value.file, err.value.line, err.value.column, err.value.token) == (
        str(scenario_dir / "rules.v4"), line, column, "99999")
    assert str(err.value).startswith(f"{scenario_dir / 'rules.v4'}:{line}:{column}: ")


def test_not_a_string(scenario_dir: Path) -> None:
    with pytest.raises(ParseError, match=r":5: iptables_file must be a string"):
        load_scenario(HEAD + "iptables_file = 4\n", file=str(scenario_dir / "x.toml"))


def test_empty_name(scenario_dir: Path) -> None:
    with pytest.raises(ParseError, match="iptables_file must name a file"):
        load_scenario(external(""), file=str(scenario_dir / "x.toml"),
                      read_file=lambda path: "")


def test_without_a_reader_the_engine_reads_nothing() -> None:
    """The engine does no I/O (DESIGN.md): a scenario given as text cannot name a file."""
    with pytest.raises(ParseError, match="cannot be read here"):
        load_scenario(external(), file="scenario.toml")


def test_the_reader_is_given_the_resolved_path() -> None:
    asked: list[str] = []

    def read(path: str) -> str:
        asked.append(path)
        return RULES

    scenario = load_scenario(external(), file="some/dir/scenario.toml", read_file=read)
    assert asked == ["some/dir/rules.v4"]
    assert scenario.read_file is read  # for loading an edited copy of the text again
    assert scenario.build_box().ruleset.chain_present("nat", "POSTROUTING")


def test_a_session_of_such_a_scenario_replays_with_the_rules_beside_it(
        scenario_dir: Path) -> None:
    from kptui.engine.debugger import Debugger
    from kptui.sessions.replay import record, replay

    path = scenario_dir / "port-forward.toml"
    dbg = Debugger.for_scenario(load(str(path)))
    while dbg.step().reason != "end":
        pass
    session = record(dbg, path.read_text(), str(path))
    again = replay(session)
    assert again.ok and again.debugger.events == dbg.events


async def test_the_tui_loads_the_rules_file_behind_its_loading_screen(scenario_dir: Path) -> None:
    import asyncio

    from kptui.app import KptApp
    from kptui.scenario_files import read_text_file
    from kptui.screens.debugger import DebuggerScreen

    path = scenario_dir / "port-forward.toml"
    app = KptApp(text=path.read_text(), name=str(path), read_file=read_text_file)
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(500):
            if isinstance(app.screen, DebuggerScreen):
                break
            await asyncio.sleep(0.01)
        await pilot.pause()
        assert isinstance(app.screen, DebuggerScreen)  # not an error exit: the file was read
        assert to_save(app.debugger.box.ruleset) == to_save(load(str(path)).build_box().ruleset)
