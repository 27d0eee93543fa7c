"""ipset sets in a box and the rules naming them: -m set and -j SET parsed against the
box's sets, printed as iptables-save prints them, and the set commands a rule's
reference forbids. Every saved line and refusal here is what iptables-nft 1.8.9 and
ipset 7.17 printed on this machine (Linux 6.18) for the same commands; the packet
behaviour is checked against that kernel by tests/kernel/scenarios/ext-set-*.toml."""

from __future__ import annotations

import pytest

from kptui.engine.box import Box
from kptui.engine.errors import KptuiError, ParseError
from kptui.engine.iptables import to_save
from kptui.engine.scenario import load_scenario
from kptui.engine.setup import apply_setup

SETS = """
ipset create A hash:ip
ipset create N hash:net timeout 100 counters comment
ipset create P hash:ip,port
ipset create B bitmap:port range 1000-2000
"""


def box_with(lines: str) -> Box:
    box = Box()
    apply_setup(box, SETS + lines, file="t.toml")
    return box


def saved(rule: str, table: str = "filter", chain: str = "INPUT") -> str:
    box = box_with(f"iptables -t {table} -A {chain} {rule}\n")
    line = next(ln for ln in to_save(box.ruleset).splitlines() if ln.startswith(f"-A {chain} "))
    return line.removeprefix(f"-A {chain} ")


def refusal(rule: str, table: str = "filter", chain: str = "INPUT") -> str:
    with pytest.raises(KptuiError) as err:
        saved(rule, table, chain)
    return str(err.value)


@pytest.mark.parametrize("rule,line", [
    ("-m set --match-set A src", "-m set --match-set A src"),
    ("-m set ! --match-set N src,dst --return-nomatch ! --update-counters "
     "! --update-subcounters --packets-eq 3 ! --bytes-eq 4",
     "-m set ! --match-set N src,dst --return-nomatch ! --update-counters "
     "! --update-subcounters --packets-eq 3 ! --bytes-eq 4"),
    ("-m set --match-set P src,dst,src,dst,src,dst",
     "-m set --match-set P src,dst,src,dst,src,dst"),
    ("-m set --match-set B dst --packets-lt 3 --bytes-gt 5",
     "-m set --match-set B dst --packets-lt 3 --bytes-gt 5"),
    ("-j SET --add-set A src --exist --timeout 5", "-j SET --add-set A src --exist --timeout 5"),
    ("-j SET --del-set A src,dst", "-j SET --del-set A src,dst"),
    ("-j SET --add-set A src --del-set N dst", "-j SET --add-set A src --del-set N dst"),
    # the deprecated --set is saved as --match-set; parse_dirs reads three letters a word
    ("-m set --set A src", "-m set --match-set A src"),
    ("-m set --match-set A srcxyz", "-m set --match-set A src"),
])
def test_set_rules_print_as_iptables_save_prints_them(rule, line):
    assert saved(rule) == line


def test_a_set_the_box_lacks_is_refused_as_iptables_refuses_it():
    assert "Set nosuch doesn't exist." in refusal("-m set --match-set nosuch src")
    assert "Set nosuch doesn't exist." in refusal("-j SET --add-set nosuch src")


def test_map_set_outside_mangle_is_refused_by_the_kernel():
    # xt_set.c set_target_v3_checkentry: "--map-set only usable from mangle table"
    assert "mangle" in refusal("-j SET --map-set A src --map-mark", "filter", "FORWARD")
    assert saved("-j SET --map-set A src --map-mark", "mangle", "FORWARD") == \
        "-j SET --map-set A src --map-mark"


@pytest.mark.parametrize("command,message", [
    ("ipset destroy A", "ipset: Set cannot be destroyed: it is in use by a kernel component"),
    ("ipset rename A A2", "ipset: Set cannot be renamed: it is in use by another system"),
    ("ipset destroy", "ipset: Set cannot be destroyed: it is in use by a kernel component"),
])
def test_a_set_a_rule_names_can_be_neither_destroyed_nor_renamed(command, message):
    with pytest.raises(ParseError) as err:
        box_with(f"iptables -A INPUT -m set --match-set A src\n{command}\n")
    assert message in str(err.value)
    assert err.value.line == 7  # the ipset line, counted in the setup text


def test_once_the_rule_is_gone_the_set_can_go():
    box = box_with("iptables -A INPUT -m set --match-set A src\niptables -F INPUT\n"
                   "ipset destroy A\n")
    assert box.ipsets.get("A") is None


def test_swap_keeps_the_rule_text_and_changes_what_it_sees():
    box = box_with("ipset create A2 hash:ip\nipset add A2 10.0.0.1\n"
                   "iptables -A INPUT -m set --match-set A src\nipset swap A A2\n")
    assert "-A INPUT -m set --match-set A src" in to_save(box.ruleset)
    assert [s.name for s in box.ipsets.sets() if s.elems] == ["A"]


SCENARIO = """\
name = "t"
ipset = \"\"\"
create A hash:ip
add A 10.0.0.300
\"\"\"
"""


def test_a_bad_line_of_the_ipset_text_names_the_file_line_and_token():
    with pytest.raises(ParseError) as err:
        load_scenario(SCENARIO, file="s.toml").build_box()
    e = err.value
    assert (e.file, e.line, e.token) == ("s.toml", 4, "10.0.0.300")
    assert "cannot parse 10.0.0.300: resolving to IPv4 address failed" in str(e)


@pytest.mark.parametrize("line,message", [
    ("ipset create X hash:net,net", "unsupported yet: ipset type hash:net,net (not modelled)"),
    ("ipset create X hash:ip family inet6", "unsupported yet: ipset family inet6"),
    ("ipset list", "unsupported yet: ipset list"),
])
def test_what_kptui_does_not_model_is_named(line, message):
    with pytest.raises(ParseError) as err:
        box_with(line + "\n")
    assert message in str(err.value)
