"""Setup lines (ip link/addr/route/rule, tc qdisc/class/filter, sysctl, modprobe imq),
mutated: the project's own error or success, never anything else; and the numbers in
them read as the real tools read them.

Corpus: the setup strings of every kernel-checked and shipped scenario
(tests/kernel/scenarios, kptui/scenarios), each run on a box with that scenario's
interfaces (so later tc and route lines reach deep code), plus single lines on a box
that already has links, addresses and an htb tree.

Expected readings were checked on this machine inside a throwaway network namespace
with iproute2 6.1.0 (`ip -V`, `tc -V`), procps-ng 4.0.2 sysctl, kernel 6.18, e.g.
`ip -n X link set d0 mtu 01000; ip -n X link show d0` -> "mtu 512".

The long run: ``KPTUI_FUZZ_EXAMPLES=5000 python3 -m pytest tests/test_fuzz_setup.py -m fuzz``.
"""

from __future__ import annotations

import tomllib
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path

import pytest
from fuzzing import fuzz, fuzz_settings, mutated, own_error_or_success
from hypothesis import given
from hypothesis import strategies as st

from kptui.engine.box import Box
from kptui.engine.errors import KptuiError
from kptui.engine.profile_check import split_setup
from kptui.engine.setup import apply_setup, split_commands

ROOT = Path(__file__).resolve().parent.parent
SKIPPED = ("iptables", "ipchains")  # their own parsers have their own fuzz tests


def _scenarios() -> list[tuple[str, list[tuple[str, list[str]]], str]]:
    """(profile, interfaces, setup without iptables/ipchains lines) of every scenario."""
    out = []
    for path in sorted([*ROOT.glob("tests/kernel/scenarios/*.toml"),
                        *ROOT.glob("kptui/scenarios/*.toml")]):
        data = tomllib.loads(path.read_text("utf-8"))
        lines = [full.strip() for _s, _e, full in split_commands(data.get("setup", ""), 1)
                 if not full.split()[0].startswith(SKIPPED)]
        if not lines:
            continue
        ifaces = [(i["name"], list(i.get("addresses", []))) for i in data.get("interfaces", [])]
        # a table the scenario names, as a pseudo-interface entry make_box understands
        ifaces += [(f"table:{name}", [str(number)]) for name, number
                   in data.get("rt_tables", {}).items()]
        out.append((data.get("profile", "linux-6.18"), ifaces, "\n".join(lines)))
    return out


SCENARIOS = _scenarios()
# Lines of the existing tests and edges the tools take, for the single-line corpus.
EXTRA_LINES = (
    "ip link set eth0 mtu 1400", "ip link set dev eth1 down", "ip link set eth2 up mtu 9000",
    "ip link add ifb0 type ifb", "ip addr add 10.9.0.1/24 dev eth0",
    "ip addr del 192.0.2.1/24 dev eth0", "ip route add 10.8.0.0/16 via 192.0.2.254 metric 5",
    "ip route add 10.7.0.0/16 dev eth1 table 100 proto static scope link",
    "ip route replace default via 198.51.100.254 dev eth1 metric 0x10",
    "ip route add 10.6.0.0/16 nexthop via 192.0.2.254 weight 2 nexthop via 198.51.100.254",
    "ip route del 203.0.113.0/24 dev eth2", "ip rule add fwmark 0x10/0xff lookup 100 pref 100",
    "ip rule add tos 0x10 table 100 priority 101", "ip rule add ipproto tcp dport 80-90 table 5",
    "ip rule add sport 1024 goto 32766 pref 5", "ip rule add suppress_prefixlength 0 table main",
    "ip rule add from 192.0.2.0/24 suppress_ifgroup 1 lookup 100", "ip rule del pref 32766",
    "sysctl -w net.ipv4.ip_forward=1", "sysctl -w net.ipv4.conf.all.rp_filter=2",
    "sysctl net.ipv4.ip_default_ttl", "sysctl -w net.ipv4.conf.eth0.accept_redirects=0",
    "tc qdisc replace dev eth0 root tbf rate 1mbit burst 10k latency 50ms",
    "tc qdisc replace dev eth0 root tbf rate 1mbit burst 10k/8 limit 30k mtu 1600/8",
    "tc qdisc add dev eth2 root pfifo limit 100", "tc qdisc add dev eth2 root bfifo limit 10kb",
    "tc qdisc add dev eth2 root sfq limit 127", "tc qdisc add dev eth2 root fq_codel limit 1000",
    "tc qdisc add dev eth2 root handle 2: prio bands 4 priomap 1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1",
    "tc class change dev eth1 parent 1: classid 1:10 htb rate 2mbit ceil 3mbit burst 15k "
    "cburst 1600 prio 1 quantum 1500",
    "tc filter add dev eth1 parent 1: protocol ip prio 5 u32 match u32 0x11 0xff at 8 "
    "flowid 1:20", "tc filter add dev eth1 parent 1: protocol ip prio 6 handle 0x10/0xff fw "
    "classid 1:10",
    "tc filter add dev eth1 parent 1: protocol ip prio 7 u32 match ip dport 80 0xffff "
    "police rate 1mbit burst 10k drop flowid 1:10",
    "tc filter add dev eth0 parent ffff: protocol ip u32 match u32 0 0 at 0 action mirred "
    "egress redirect dev eth2",
)
# The single-line box: three links with addresses, an htb tree on eth1, ingress on eth0.
BASE_SETUP = """\
tc qdisc add dev eth1 root handle 1: htb default 20
tc class add dev eth1 parent 1: classid 1:1 htb rate 10mbit
tc class add dev eth1 parent 1:1 classid 1:10 htb rate 5mbit ceil 10mbit
tc class add dev eth1 parent 1:1 classid 1:20 htb rate 1mbit
tc qdisc add dev eth0 handle ffff: ingress
ip route add default via 198.51.100.254 dev eth1
"""
BASE_IFACES = [("eth0", ["192.0.2.1/24"]), ("eth1", ["198.51.100.1/24"]),
               ("eth2", ["203.0.113.1/24"])]
SINGLE_LINES = sorted({line for _p, _i, setup in SCENARIOS for line in setup.splitlines()}
                      | set(EXTRA_LINES))
SETUP_WORDS = ("dev", "eth0", "eth1", "mtu", "metric", "table", "proto", "scope", "via",
               "weight", "nexthop", "pref", "fwmark", "tos", "ipproto", "sport", "dport",
               "rate", "ceil", "burst", "cburst", "latency", "limit", "prio", "quantum",
               "default", "bands", "priomap", "handle", "classid", "flowid", "match", "at",
               "u32", "0xffff", "1e999", "1e999bit", "4g", "10k/3", "0x10kbit", "-1mbit",
               "010ms", "1:10", "ffff:", "1:", "root", "-w", "net.ipv4.ip_forward=010",
               "numdevs=010", "1.5k", "4294967295", "10-abc")


def make_box(ifaces: list[tuple[str, list[str]]], setup: str = "") -> Box:
    """A box as kptui.engine.scenario builds one: links up with their addresses first."""
    box = Box()
    for name, addresses in ifaces:
        if name.startswith("table:"):
            box.routes.name_table(name.removeprefix("table:"), int(addresses[0]))
            continue
        box.add_link(name)
        box.set_link(name, up=True)
        for addr in addresses:
            box.add_address(name, IPv4Interface(addr))
    if setup:
        apply_setup(box, setup, file="base", first_line=1)
    return box


def run_setup(profile: str, ifaces: list[tuple[str, list[str]]], text: str) -> None:
    """What Scenario._build does with setup lines: modprobe/ipchains taken out first."""
    rest, _chains, imq_devs = split_setup(text, profile, file="f", first_line=1)
    box = make_box(ifaces)
    for n in range(imq_devs):
        box.add_imq(f"imq{n}")
    apply_setup(box, rest, file="f", first_line=1)


@st.composite
def mutated_setup(draw: st.DrawFn) -> tuple[str, list[tuple[str, list[str]]], str]:
    """One scenario's setup with one to three of its lines mutated."""
    profile, ifaces, setup = draw(st.sampled_from(SCENARIOS))
    lines = setup.splitlines()
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        lines[i] = draw(mutated([lines[i]], extra_words=SETUP_WORDS))
    return profile, ifaces, "\n".join(lines)


def test_corpus_is_valid() -> None:
    """Every corpus setup runs cleanly unmutated (else the fuzz would start from errors)."""
    assert len(SCENARIOS) > 50
    for profile, ifaces, setup in SCENARIOS:
        run_setup(profile, ifaces, setup)
    for line in EXTRA_LINES:
        apply_setup(make_box(BASE_IFACES, BASE_SETUP), line, file="f", first_line=1)


@fuzz
@fuzz_settings(250)
@given(mutated_setup())
def test_setup_scripts_never_crash(case: tuple[str, list[tuple[str, list[str]]], str]) -> None:
    own_error_or_success(run_setup, *case)


@fuzz
@fuzz_settings(400)
@given(mutated(SINGLE_LINES, extra_words=SETUP_WORDS))
def test_setup_lines_never_crash(line: str) -> None:
    box = make_box(BASE_IFACES, BASE_SETUP)
    own_error_or_success(apply_setup, box, line, file="f", first_line=1)


@fuzz
@fuzz_settings(150)
@given(mutated(["modprobe imq numdevs=4", "modprobe imq", "modprobe imq numdevs=16"],
               extra_words=("numdevs=", "numdevs=010", "numdevs=0x4", "numdevs=+2", "imq")))
def test_modprobe_lines_never_crash(line: str) -> None:
    own_error_or_success(split_setup, line + "\nip link set imq0 up\n", "classic-2.4",
                         file="f", first_line=1)


# -- regression cases: crashes the fuzzer or issue 13 found, and numbers read like the tool --

def _apply(line: str) -> Box:
    box = make_box(BASE_IFACES, BASE_SETUP)
    apply_setup(box, line, file="f", first_line=1)
    return box


@pytest.mark.parametrize(("line", "token", "message"), [
    # issue 13: "mtu 1²" passed isdigit() and made int() raise
    ("ip link set eth0 mtu 1\u00b2", "1\u00b2", 'Invalid "mtu" value'),
    ("ip link set eth0 mtu \u0661\u0662", "\u0661\u0662", 'Invalid "mtu" value'),
    ("ip link set eth0 mtu " + "9" * 5000, "9" * 5000, 'Invalid "mtu" value'),
    ("ip link set eth0 mtu 2147483648", "2147483648", 'Invalid "mtu" value'),
    ("ip addr add 10.9.0.1/2\u00b2 dev eth0", "10.9.0.1/2\u00b2", "any valid prefix"),
    ("ip addr add 10.9.0.1/08 dev eth0", "10.9.0.1/08", "any valid prefix"),  # bad octal
    ("ip route add 10.8.0.0/16 dev eth0 metric \uff11", "\uff11", '"metric" value is invalid'),
    ("ip route add 10.8.0.0/16 dev eth0 metric 4294967296", "4294967296", '"metric"'),
    ("ip route add 10.8.0.0/16 dev eth0 table 1\u00b2", "1\u00b2", '"table" value is invalid'),
    ("ip route add 10.8.0.0/16 dev eth0 scope 256", "256", 'invalid "scope" value'),
    ("ip route add 10.8.0.0/16 nexthop dev eth0 weight 257", "257", '"weight" is invalid'),
    ("ip rule add pref -1 table 5", "-1", "preference value is invalid"),
    ("ip rule add tos 0x100 table 5", "0x100", "TOS value is invalid"),
    ("ip rule add ipproto 0x11 table 5", "0x11", 'Invalid "ipproto" value'),
    ("ip rule add fwmark 1/1\u00b2 table 5", "1\u00b2", "fwmask value is invalid"),
    ("ip rule add goto abc", "abc", "invalid target"),
    ("ip rule add sport \u0661 table 5", "\u0661", "invalid port range"),
    ("ip rule add sport 70000 table 5", "70000", "invalid port range"),
    ("ip rule add sport 0 table 5", "0", "Invalid sport range."),
    ("ip rule add dport 10-5 table 5", "10-5", "Invalid dport range."),
    ("ip rule add suppress_prefixlength 4294967295 table 5", "4294967295",
     "suppress_prefixlength value is invalid"),
    # issue 13: a huge burst overflowed to infinity and int(inf) raised
    ("tc qdisc replace dev eth2 root tbf rate 1mbit burst 1e999 latency 50ms", "1e999",
     'Illegal "burst"'),
    ("tc qdisc replace dev eth2 root tbf rate 1e999bit burst 10k latency 50ms", "1e999bit",
     'Illegal "rate"'),
    ("tc qdisc replace dev eth2 root tbf rate 1mbit burst 10k latency 1e999", "1e999",
     'Illegal "latency"'),
    ("tc qdisc replace dev eth2 root tbf rate 1mbit burst 4g latency 50ms", "4g",
     'Illegal "burst"'),
    ("tc qdisc replace dev eth2 root tbf rate 1mbit burst 10k/3 latency 50ms", "10k/3",
     'Illegal "burst"'),
    ("tc qdisc replace dev eth2 root tbf rate -1mbit burst 10k latency 50ms", "-1mbit",
     'Illegal "rate"'),
    ("tc qdisc replace dev eth2 root tbf rate 1mbit burst 10k latency -1ms", "-1ms",
     'Illegal "latency"'),
    ("tc qdisc replace dev eth2 root tbf rate 1mbit burst 1\u212a latency 1ms", "1\u212a",
     'Illegal "burst"'),  # KELVIN SIGN lowercases to "k": strcasecmp is ASCII only
    ("tc qdisc replace dev eth2 root tbf rate 100gbit burst 10k latency 4000s", "4000s",
     "over 32 bits"),
    ("tc qdisc add dev eth2 root pfifo limit -1", "-1", 'Illegal "limit"'),
    ("tc qdisc add dev eth2 root pfifo limit 4294967296", "4294967296", 'Illegal "limit"'),
    ("tc qdisc add dev eth2 root sfq limit 1\u00b2", "1\u00b2", 'Illegal "limit"'),
    ("tc qdisc add dev eth2 root prio bands 0x4", "0x4", 'Illegal "bands"'),
    ("tc qdisc add dev eth2 root prio bands 4 priomap 0x1", "0x1", 'Illegal "priomap"'),
    ("tc qdisc replace dev eth2 root htb direct_qlen 0x10", "0x10", 'Illegal "direct_qlen"'),
    ("tc class change dev eth1 parent 1:1 classid 1:10 htb rate 1mbit prio 0x1", "0x1",
     'Illegal "prio"'),
    ("tc class change dev eth1 parent 1:1 classid 1:10 htb rate 1mbit quantum 0x10", "0x10",
     'Illegal "quantum"'),
    ("tc filter add dev eth1 parent 1: prio 70000 u32 match u32 0 0 at 0 flowid 1:10",
     "70000", "invalid priority value"),
    ("tc filter add dev eth1 parent 1: prio 1\u00b2 u32 match u32 0 0 at 0 flowid 1:10",
     "1\u00b2", "invalid priority value"),
    ("tc filter add dev eth1 parent 1: prio 5 handle 08 fw classid 1:10", "08",
     'Illegal "handle"'),
    ("tc filter add dev eth1 parent 1: u32 match u32 1 ff at 1 flowid 1:10", "u32",
     'Illegal "match"'),
    ("tc filter add dev eth1 parent 1: u32 match u32 \u0661 0xff at 0 flowid 1:10", "\u0661",
     'Illegal "match"'),
    ("sysctl -w net.ipv4.ip_forward=1\u00b2", "net.ipv4.ip_forward=1\u00b2", "Invalid argument"),
    ("sysctl -w net.ipv4.ip_forward=+1", "net.ipv4.ip_forward=+1", "Invalid argument"),
    ("sysctl -w net.ipv4.ip_forward=08", "net.ipv4.ip_forward=08", "Invalid argument"),
    ("sysctl -w net.ipv4.ip_forward=2147483648", "net.ipv4.ip_forward=2147483648",
     "Invalid argument"),
    ("sysctl -w net.ipv4.ip_forward=" + "9" * 5000, "net.ipv4.ip_forward=" + "9" * 5000,
     "Invalid argument"),
])
def test_bad_numbers_are_own_errors_naming_the_token(line: str, token: str,
                                                     message: str) -> None:
    with pytest.raises(KptuiError) as exc:
        _apply(line)
    assert message in str(exc.value)
    assert getattr(exc.value, "token", token) == token, str(exc.value)


def test_negative_mtu_reaches_the_kernel_check() -> None:
    """get_integer takes "-1"; the kernel refuses it (checked: ip link set d0 mtu -1)."""
    with pytest.raises(KptuiError, match="mtu less than device minimum"):
        _apply("ip link set eth0 mtu -1")


def test_numbers_read_as_iproute2_reads_them() -> None:
    """Each value checked with iproute2 6.1 in a network namespace (see module doc)."""
    box = _apply("ip link set eth0 mtu 01000")
    assert box.interfaces["eth0"].mtu == 512  # base 0: octal
    assert _apply("ip link set eth0 mtu 0x500").interfaces["eth0"].mtu == 1280
    assert _apply("ip link set eth0 mtu +1400").interfaces["eth0"].mtu == 1400
    box = _apply("ip addr add 10.9.0.1/010 dev eth2\nip addr add 10.10.0.1/0x10 dev eth2")
    assert [str(a) for a in box.interfaces["eth2"].addresses][1:] == ["10.9.0.1/8",
                                                                      "10.10.0.1/16"]
    box = _apply("ip route add 192.168.1.0/24 dev eth0 metric 0x10 table 010 proto 010 "
                 "scope 010")
    (route,) = [r for r in box.routes.routes("8") if r.prefix == IPv4Network("192.168.1.0/24")]
    assert (route.metric, route.proto, route.scope) == (16, 8, 8)  # "table 8 proto gated"
    box = _apply("ip route add 192.168.3.0/24 nexthop dev eth0 weight 010 "
                 "nexthop dev eth2 weight 0x10")
    (route,) = [r for r in box.routes.routes("main")
                if r.prefix == IPv4Network("192.168.3.0/24")]
    assert [n.weight for n in route.nexthops] == [8, 16]
    box = _apply("ip rule add pref 010 fwmark 010/0x10 table 010\n"
                 "ip rule add pref 32 tos 10 table 5\n"  # rtnl_dsfield_a2n: base 16
                 "ip rule add pref 37 ipproto 010 table 5\n"  # decimal: "ipproto-10"
                 "ip rule add pref 46 sport 10-abc dport +010 table 6\n"  # sscanf "%hu-%hu"
                 "ip rule add pref 41 suppress_prefixlength 010 table 5\n"
                 "ip rule add pref 42 goto 0100")
    rules = {r.pref: r for r in box.routes.rules}
    assert (rules[8].mark, rules[8].mask, rules[8].table) == (8, 0x10, "8")
    assert rules[32].tos == 0x10
    assert rules[37].ipproto == 10
    assert (rules[46].sport, rules[46].dport) == ((10, 10), (10, 10))
    assert rules[41].suppress_prefixlen == 8
    assert rules[42].target == 64


def test_numbers_read_as_tc_reads_them() -> None:
    """Each value checked with tc (iproute2 6.1) in a network namespace: `tc -d qdisc
    show` etc. printed what the comments say."""
    box = _apply("tc qdisc replace dev eth2 root htb default 10 direct_qlen 010")
    root = box.tc.dev("eth2").root
    assert root.opts["default"] == 0x10  # "default 0x10"
    assert root.opts["direct"].opts["limit"] == 10  # "direct_qlen 10"
    box = _apply("tc qdisc replace dev eth2 root pfifo limit 1k")
    assert box.tc.dev("eth2").root.opts["limit"] == 1024  # "limit 1024p": get_size
    box = _apply("tc qdisc replace dev eth2 root bfifo limit 1.5")
    assert box.tc.dev("eth2").root.opts["limit"] == 1  # "limit 1b"
    box = _apply("tc qdisc replace dev eth2 root tbf rate 0x10kbit burst 0x10 limit 010")
    q = box.tc.dev("eth2").root
    assert (q.opts["rate"], q.opts["burst"], q.opts["limit"]) == (16000 / 8, 16, 10)
    box = _apply("tc qdisc replace dev eth2 root tbf rate 1MBIT burst 1.5k latency 010ms")
    q = box.tc.dev("eth2").root
    assert (q.opts["rate"], q.opts["burst"]) == (125000, 1536)
    assert q.opts["limit"] == int(125000 * 0.010 + 1536)  # "lat 10ms"
    box = _apply("tc class change dev eth1 parent 1:1 classid 1:10 htb rate 1mbit prio 010 "
                 "quantum 010")
    cl = box.tc.dev("eth1").classes[0x10010]
    assert (cl.prio, cl.quantum) == (7, 10)  # "prio 7 quantum 10": the kernel caps prio
    box = _apply("tc filter add dev eth1 parent 1: prio 010 protocol ip u32 "
                 "match u32 010 0xff at 010 flowid 1:10\n"
                 "tc filter add dev eth1 parent 1: prio 0x10 protocol ip u32 "
                 "match ip dport 010 10 flowid 1:10\n"
                 "tc filter add dev eth1 parent 1: prio 30 protocol ip handle 010/0x10 fw "
                 "flowid 1:10")
    filters = box.tc.dev("eth1").filters[0x10000]
    by_prio = {f.prio: f for f in filters}
    assert by_prio[8].keys == [(8, 8, 0xFF)]  # "match 00000008/000000ff at 8"
    assert by_prio[16].keys == [(20, 0, 0x10)]  # "match 00000000/00000010 at 20"
    assert (by_prio[30].handle, by_prio[30].mask) == (8, 0x10)


def test_u32_negative_offset_is_unsupported_not_a_crash() -> None:
    """tc takes `at -4` (get_integer); kptui does not model offsets before the header."""
    with pytest.raises(KptuiError, match="unsupported yet"):
        _apply("tc filter add dev eth1 parent 1: u32 match u32 1 0xff at -4 flowid 1:10")


def test_sysctl_values_read_as_the_kernel_reads_them() -> None:
    """proc_dointvec, checked with sysctl -w and /proc/sys on kernel 6.18: base 0, a
    minus sign, blanks around, the first of several numbers."""
    for text, value in (("010", 8), ("0x10", 16), (" 1", 1), ("1 ", 1), ("-1", -1),
                        ("1 2", 1), ("2147483647", 2147483647)):
        box = make_box(BASE_IFACES)
        box.set_sysctl("net.ipv4.conf.all.rp_filter", text)
        assert box.sysctl("net.ipv4.conf.all.rp_filter") == value, text
    box = _apply("sysctl -w net.ipv4.ip_default_ttl=0x40")
    assert box.sysctl("net.ipv4.ip_default_ttl") == 64


@pytest.mark.parametrize(("word", "numdevs"), [("numdevs=010", 8), ("numdevs=+2", 2),
                                                ("numdevs=0x4", 4)])
def test_modprobe_numdevs_base_0(word: str, numdevs: int) -> None:
    """module_param int: kstrtoint base 0 (kernel lib/kstrtox.c)."""
    assert split_setup(f"modprobe imq {word}\n", "classic-2.4", file="f",
                       first_line=1).imq_devs == numdevs


@pytest.mark.parametrize("word", ["numdevs=1\u00b2", "numdevs=\u0661", "numdevs=08",
                                  "numdevs=" + "9" * 5000, "numdevs=", "numdevs=17"])
def test_modprobe_bad_numdevs(word: str) -> None:
    with pytest.raises(KptuiError, match="numdevs must be 1..16"):
        split_setup(f"modprobe imq {word}\n", "classic-2.4", file="f", first_line=1)
