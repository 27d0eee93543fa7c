"""Scenario files: DESIGN.md's TOML format, validation with file and line, box building."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

import kptui.engine.iptables as _ipt

if not hasattr(_ipt, "Ruleset"):  # helper B's package not there yet: a stand-in, tests only
    _ipt.Ruleset = type("Ruleset", (), {})  # type: ignore[attr-defined]

from kptui.engine.errors import ParseError  # noqa: E402
from kptui.engine.scenario import load_scenario  # noqa: E402

DESIGN_EXAMPLE = '''\
name = "port-forward"
description = "DNAT 8080 on the WAN to an inside web server"
profile = "modern"

setup = """
ip route add default via 203.0.113.1 dev eth1
"""

iptables = """
*nat
:PREROUTING ACCEPT [0:0]
-A PREROUTING -i eth1 -p tcp --dport 8080 -j DNAT --to-destination 192.168.1.10:80
COMMIT
"""

[sysctl]
"net.ipv4.ip_forward" = 1
"net.ipv4.conf.all.rp_filter" = 0

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
flags = "S"

[[packets]]
iif = "local"
proto = "icmp"
src = "192.168.1.1"
dst = "192.168.1.10"
mark = 7
'''


@pytest.fixture
def restored(monkeypatch):
    calls = []
    monkeypatch.setattr(_ipt, "restore", lambda rs, text, *, file, first_line=1, noflush=False:
                        calls.append((text, file, first_line)), raising=False)
    return calls


def test_design_example_loads_and_builds(restored):
    sc = load_scenario(DESIGN_EXAMPLE, file="pf.toml")
    assert (sc.name, sc.profile, len(sc.packets)) == ("port-forward", "modern", 2)
    box = sc.build_box()
    assert list(box.interfaces) == ["lo", "eth0", "eth1"]
    assert box.forwarding("eth1")
    assert "default via 203.0.113.1 dev eth1" in box.show_routes("main")
    # the iptables text starts on line 10 of the file (the line after `iptables = """`)
    assert restored == [(sc.iptables, "pf.toml", 10)]
    assert sc.iptables.startswith("*nat\n")


def test_packet_defaults_and_build():
    sc = load_scenario(DESIGN_EXAMPLE, file="pf.toml")
    first, second = sc.packets
    assert (first.origin, first.ttl, first.tos, first.mark, first.flags) == ("eth1", 64, 0, 0, "S")
    p = first.build()
    assert p.meta.iif == "eth1" and p.ip.dst == IPv4Address("203.0.113.2") and p.dport == 8080
    assert p.ip.ttl == 64
    q = second.build()
    assert second.origin == "local" and q.meta.iif == "" and q.meta.mark == 7
    assert first.build() is not p  # a fresh packet every time


def _replace(old: str, new: str) -> str:
    assert old in DESIGN_EXAMPLE
    return DESIGN_EXAMPLE.replace(old, new, 1)


@pytest.mark.parametrize(("old", "new", "at", "needle"), [
    ('profile = "modern"', 'profile = "modern"\ncolour = "red"', 'colour = "red"',
     "unknown key 'colour'"),
    ('name = "eth0"', 'name = "eth0"\nmtu = 1400', "mtu = 1400", "unknown key 'mtu'"),
    ('flags = "S"', 'flags = "S"\nwindow = 5', "window = 5", "unknown key 'window'"),
    ('profile = "modern"', 'profile = "fancy"', 'profile = "fancy"', "profile must be one of"),
    ('iif = "eth1"', 'iif = "eth7"', 'iif = "eth7"', "iif 'eth7' is not a declared interface"),
    ("sport = 40000", "sport = 70000", "sport = 70000", "packets.sport must be in 0..65535"),
    ("sport = 40000", 'sport = "x"', 'sport = "x"', "packets.sport must be a integer"),
    ("sport = 40000", "sport = 40000\ndf = 0", "df = 0", "packets.df must be a boolean"),
    ("sport = 40000", "sport = true", "sport = true", "packets.sport must be a integer"),
    ('dst = "203.0.113.2"', 'dst = "203.0.113"', 'dst = "203.0.113"', "not an IPv4 address"),
    ('flags = "S"', 'flags = "XYZ"', 'flags = "XYZ"', "bad tcp flags"),
    ('proto = "tcp"', 'proto = "sctp"', 'proto = "sctp"', "proto must be one of"),
    ("sport = 40000\n", "mark = 1\nsport = 40000\n", "mark = 1", "mark is only for local"),
    ("mark = 7", "mark = 7\nsport = 1", "sport = 1", "sport is only for tcp and udp"),
    ('"net.ipv4.conf.all.rp_filter" = 0', '"net.ipv4.conf.all.rp_filter" = "0"',
     '"net.ipv4.conf.all.rp_filter" = "0"', "must be an integer"),
    ('addresses = ["192.168.1.1/24"]', 'addresses = ["192.168.1.1/33"]',
     'addresses = ["192.168.1.1/33"]', "bad address"),
    ('name = "eth1"', 'name = "eth0"\n', None, "declared twice"),
])
def test_validation_errors_name_file_and_line(old, new, at, needle):
    text = _replace(old, new)
    lines = text.splitlines()
    # the duplicate name: the second `name = "eth0"` line
    line = (lines.index(at) + 1 if at else
            [i + 1 for i, x in enumerate(lines) if x == 'name = "eth0"'][1])
    with pytest.raises(ParseError) as exc:
        load_scenario(text, file="bad.toml")
    assert needle in exc.value.message
    assert (exc.value.file, exc.value.line) == ("bad.toml", line)


def test_toml_syntax_error_has_line_and_column():
    with pytest.raises(ParseError) as exc:
        load_scenario('name = "x"\nprofile = \n', file="s.toml")
    assert (exc.value.file, exc.value.line, exc.value.column) == ("s.toml", 2, 11)


def test_missing_required_packet_keys():
    with pytest.raises(ParseError, match="needs dst"):
        load_scenario('[[packets]]\niif = "local"\nproto = "udp"\nsrc = "1.1.1.1"\n', file="s")
    with pytest.raises(ParseError, match="needs dport"):
        load_scenario('[[packets]]\niif = "local"\nproto = "udp"\nsrc = "1.1.1.1"\n'
                      'dst = "2.2.2.2"\nsport = 1\n', file="s")


def test_historical_profiles_build_their_boxes():
    # tests/test_profiles_historical.py: what each one refuses
    for profile in ("classic-2.4", "ipchains"):
        sc = load_scenario(f'profile = "{profile}"\n', file="s.toml")
        assert sc.build_box() is not None


def test_setup_errors_point_at_the_real_file_line():
    text = 'name = "x"\nsetup = """\nip link set lo up\nip route add 1.2.3.0/24 dev eth9\n"""\n'
    with pytest.raises(ParseError) as exc:
        load_scenario(text, file="s.toml").build_box()
    assert (exc.value.line, exc.value.message) == (4, 'Cannot find device "eth9"')


def test_sysctl_errors_at_build_name_the_key_line():
    text = '[sysctl]\n"net.ipv4.ip_forward" = 1\n"net.ipv4.tcp_syncookies" = 1\n'
    with pytest.raises(ParseError) as exc:
        load_scenario(text, file="s.toml").build_box()
    assert exc.value.line == 3
    assert "unsupported yet: sysctl net.ipv4.tcp_syncookies" in str(exc.value)


def test_df_key_sets_the_dont_fragment_flag():
    # Linux TCP/UDP sockets send with DF (PMTU discovery); `df = false` clears it, so a
    # scenario can show fragmentation (path-forward-mtu, checked on kernel 6.18).
    default = load_scenario(_replace("", ""), file="t.toml").packets[0]
    assert default.build().ip.df is True
    spec = load_scenario(_replace("sport = 40000", "sport = 40000\ndf = false"),
                         file="t.toml").packets[0]
    assert spec.df is False and spec.build().ip.df is False


def test_lines_inside_multiline_strings_are_no_keys_or_headers():
    # An `iptables-save -c` dump starts its rule lines with "[pkts:bytes]" and a setup
    # string may hold "x = 1": neither is TOML structure, so the key after the string
    # and the packet's errors still name their own lines.
    text = ('iptables = """\n*filter\n:INPUT ACCEPT [0:0]\n[3:180] -A INPUT -j ACCEPT\n'
            'profile = "x"\nCOMMIT\n"""\nprofile = "fancy"\n'
            '[[packets]]\niif = "local"\nproto = "udp"\nsrc = "1.1.1.1"\n'
            'dst = "2.2.2.2"\nsport = 1\ndport = 99999\n')
    with pytest.raises(ParseError) as exc:
        load_scenario(text, file="s.toml")
    assert "profile must be one of" in exc.value.message
    assert exc.value.line == 8
    with pytest.raises(ParseError) as exc:
        load_scenario(text.replace('"fancy"', '"modern"'), file="s.toml")
    assert "packets.dport must be in 0..65535" in exc.value.message
    assert exc.value.line == 15


WIPED = '''
name = "wipe"
setup = """
iptables -A INPUT -p tcp --dport 22 -j ACCEPT
iptables -t nat -A POSTROUTING -o eth1 -j MASQUERADE
"""
iptables = """
*filter
:INPUT DROP [0:0]
COMMIT
"""
'''


def test_a_setup_iptables_line_a_restore_of_its_table_wipes_is_warned_about():
    # Linux 6.18, iptables-nft 1.8.9, in a fresh netns: `iptables -A INPUT ...` and
    # `iptables -t nat -A POSTROUTING ...`, then `iptables-restore` of a *filter table:
    # iptables-save shows filter INPUT with policy DROP and no rule, the nat rule kept
    sc = load_scenario(WIPED, file="wipe.toml")
    box = sc.build_box()
    assert box.ruleset.tables["filter"].chains["INPUT"].rules == []
    assert len(box.ruleset.tables["nat"].chains["POSTROUTING"].rules) == 1
    assert len(sc.notes) == 1
    assert "setup line 4" in sc.notes[0] and "wiped" in sc.notes[0]  # the -A INPUT line
    assert "restores the filter table" in sc.notes[0]


def test_the_readme_documents_every_scenario_key_and_packet_field():
    from pathlib import Path

    from kptui.engine.scenario import PACKET_KEYS, TOP_KEYS

    readme = (Path(__file__).parent.parent / "README.md").read_text("utf-8")
    section = readme.split("### The scenario format", 1)[1].split("\n### ", 1)[0]
    for key in [*TOP_KEYS, *PACKET_KEYS]:  # a table's key as TOML writes it: [key], [[key]]
        assert any(f"`{k}`" in section for k in (key, f"[{key}]", f"[[{key}]]")), key
