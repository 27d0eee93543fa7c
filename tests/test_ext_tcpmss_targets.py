"""-j TCPMSS and -j TCPOPTSTRIP, simulated, and the packet field they change: tcp.options.

Expected values come from the kernel source (net/netfilter/xt_TCPMSS.c
tcpmss_mangle_packet, xt_TCPOPTSTRIP.c tcpoptstrip_mangle_packet: cited in each
comment) or from the real run of Linux 6.18 on this machine recorded in
tests/kernel/scenarios/ext-TCPMSS.kernel.jsonl and ext-TCPOPTSTRIP.kernel.jsonl
("kernel run: packet N"), which `kptui verify` compares with kptui packet by packet.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from kptui.engine import expr
from kptui.engine.debugger import Debugger
from kptui.engine.errors import FieldError, KptuiError, ParseError
from kptui.engine.events import FieldChange, TargetApplied
from kptui.engine.packet import FIELDS, Packet
from kptui.engine.run import run_scenario
from kptui.engine.scenario import load_scenario
from kptui.engine.tcpopts import format_options, parse_options
from kptui.sessions import format as fmt
from kptui.sessions.replay import record, replay
from kptui.verify.compare import compare
from kptui.verify.wire import ip_out, tcp_options_text

SCENARIOS = Path(__file__).parent / "kernel" / "scenarios"
LINUX_SYN = "mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7"  # what Linux 6.18 sends

# -- the text form ------------------------------------------------------------------------


@pytest.mark.parametrize("text,wire,canonical", [
    (LINUX_SYN, "020405b40402080a000000010000000001030307", LINUX_SYN),
    ("none", "", ""), ("", "", ""),
    ("NOP, nop,SACKOK,  mss 0x10", "0101040202040010", "nop,nop,sackOK,mss 16"),
    ("opt 2 0x05b4", "020405b4", "mss 1460"),  # an MSS option, however it is written
    ("nop,nop,sack 1:2 3:4", "0101051200000001000000020000000300000004", None),
    ("opt 30 0x0102", "1e040102", None), ("opt 254,nop,nop", "fe020101", None),
    ("bytes 0x02080000", "02080000", None),  # a length past the end: no option
    ("eol,eol,eol,eol", "00000000", None),
])
def test_options_text_reads_and_writes_the_bytes(text, wire, canonical):
    data = parse_options(text)
    assert data.hex() == wire
    assert format_options(data) == (text if canonical is None else canonical)


@pytest.mark.parametrize("text,why", [
    ("mss 1460,wscale 7", "7 bytes; TCP options fill whole 4-byte words (the header length "
                          "counts words): add 1 nop"),
    ("nop," * 40 + "mss 1", "more than 40 bytes"),
    ("opt 254 0x" + "00" * 40, "more than 40 bytes; a TCP header holds at most 40 bytes"),
    ("mss", "'mss': mss takes one number"), ("mss 70000", "mss: 70000 is out of range"),
    ("mss 1460,,nop", "an empty item"), ("TS 1 2", "write TS val N ecr N"),
    ("opt 1", "kind 1 is one byte, write nop"), ("bytes 0x1", "even number of hex digits"),
    ("foo", "'foo' is not a TCP option"), ("mss \u0661\u0662", "is not a number"),
    ("sack 1", "a sack block is LEFT:RIGHT"), ("x" * 5000, "far more than"),
])
def test_bad_options_text_is_refused_with_the_reason(text, why):
    with pytest.raises(FieldError, match="^tcp.options: ") as err:
        parse_options(text)
    assert why in str(err.value)


def test_every_byte_string_has_one_text_that_gives_it_back():
    rng = random.Random(14)
    for _ in range(3000):
        n = rng.choice((0, 4, 8, 12, 20, 40))
        data = bytes(rng.choice((0, 1, 2, 3, 4, 5, 8, 30, rng.randrange(256)))
                     if rng.random() < 0.5 else rng.randrange(12) for _ in range(n))
        text = format_options(data)
        assert parse_options(text) == data
        # verify reads the kernel's bytes with its own code: the two must agree
        assert tcp_options_text(data) == text


# -- the field ----------------------------------------------------------------------------


def syn(**kw) -> Packet:
    return Packet.build("tcp", src="192.0.2.10", dst="198.51.100.7", sport=40000, dport=80,
                        **kw)


def test_tcp_options_is_an_editable_field_and_the_header_follows_it():
    pkt = syn(tcp_options=LINUX_SYN)
    assert pkt.get("tcp.options") == LINUX_SYN
    assert pkt.length == 60
    assert pkt.set_text("tcp.options", "none") == (LINUX_SYN, "")
    assert pkt.length == 40
    assert FIELDS["tcp.options"].format("") == "none"
    old, new = pkt.set_text("tcp.options", "MSS 1400")
    assert (old, new) == ("", "mss 1400")
    data = pkt.to_bytes()
    assert data[32] >> 4 == 6 and data[40:44] == b"\x02\x04\x05\x78"  # doff 6, the option
    assert Packet.from_bytes(data).get("tcp.options") == "mss 1400"
    with pytest.raises(FieldError, match="tcp.options: 44 bytes; a TCP header holds at most"):
        pkt.set("tcp.options", bytes(44))
    assert pkt.out_dict()["tcp_options"] == "mss 1400"
    assert "tcp_options" not in syn().out_dict()  # only when there are options
    with pytest.raises(FieldError, match="tcp.options: packet is udp, not tcp"):
        Packet.build("udp", src="192.0.2.10", dst="198.51.100.7", sport=1, dport=2
                     ).get("tcp.options")


def test_a_condition_compares_options_as_their_canonical_text():
    cond = expr.compile('tcp.options == "MSS 1460, sackok,ts val 1 ecr 0,NOP,wscale 7"')
    assert cond.evaluate(syn(tcp_options=LINUX_SYN))
    assert not cond.evaluate(syn())


def test_a_quoted_packets_options_change_only_in_place():
    # an ICMP error read from the wire: its quote has a fixed declared length
    inner = syn(tcp_options="mss 1460")
    err = Packet.build("icmp", src="198.51.100.1", dst="192.0.2.10", icmp_type=3,
                       icmp_code=4)
    err.l4.inner = inner
    pkt = Packet.from_bytes(err.to_bytes())
    assert pkt.get("icmp.inner.tcp.options") == "mss 1460"
    assert pkt.set_text("icmp.inner.tcp.options", "mss 536")[1] == "mss 536"
    with pytest.raises(FieldError, match="^icmp.inner.tcp.options: .*only be rewritten in "
                                         "place \\(4 bytes\\)"):
        pkt.set_text("icmp.inner.tcp.options", "none")


def test_an_options_edit_is_journalled_and_replays():
    # edited at mangle FORWARD, then lowered by the rule there
    text = SCENARIO.format(rules=mss_rule("--set-mss 1000"),
                           packets=PACKET.format(dport=80, extra=""))
    dbg = Debugger.for_scenario(load_scenario(text, file="t.toml"))
    dbg.add_breakpoint("hook FORWARD")
    dbg.cont()
    dbg.edit("tcp.options", "mss 1200,nop,nop,sackOK")
    assert dbg.packet.length == 48
    while dbg.cont().reason != "end" and dbg.state != "finished":
        pass
    session = fmt.decode(fmt.encode(record(dbg, text, "t.toml")), file="s.kpt")
    assert {"op": "edit", "path": "tcp.options", "text": "mss 1200,nop,nop,sackOK"} \
        .items() <= next(e for e in session.journal if e["op"] == "edit").items()
    again = replay(session)
    assert again.divergence == ""
    assert again.debugger.packet.get("tcp.options") == "mss 1000,nop,nop,sackOK"


# -- scenarios ----------------------------------------------------------------------------

SCENARIO = """
name = "t"
setup = "ip link set dev eth1 mtu 1400"
iptables = \"\"\"
{rules}
\"\"\"
[sysctl]
"net.ipv4.ip_forward" = 1
[[interfaces]]
name = "eth0"
addresses = ["192.0.2.1/24"]
[[interfaces]]
name = "eth1"
addresses = ["198.51.100.1/24"]
{packets}
"""
PACKET = """
[[packets]]
iif = "eth0"
proto = "tcp"
src = "192.0.2.10"
dst = "198.51.100.7"
sport = 40000
dport = {dport}
{extra}
"""


def walk(rules: str, *, dport: int = 80, extra: str = "", **kw):
    """The walk of one forwarded packet: (its --json line, its events)."""
    if kw:
        extra += "\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in kw.items())
    text = SCENARIO.format(rules=rules, packets=PACKET.format(dport=dport, extra=extra))
    (result,) = run_scenario(load_scenario(text, file="t.toml"))
    return result.to_json(with_events=False), result.events


def mss_rule(target: str, chain: str = "FORWARD", match: str = "--tcp-flags SYN,RST SYN") -> str:
    return f"*mangle\n-A {chain} -p tcp -m tcp {match} -j TCPMSS {target}\nCOMMIT"


def test_tcp_options_packet_key_is_checked_like_the_others():
    bad = SCENARIO.format(rules="", packets=PACKET.format(
        dport=80, extra='tcp_options = "mss 1460,wscale 7"'))
    with pytest.raises(ParseError) as err:
        load_scenario(bad, file="t.toml")
    line = bad.splitlines().index('tcp_options = "mss 1460,wscale 7"') + 1
    assert str(err.value).startswith(f"t.toml:{line}: packets.tcp_options: 7 bytes")
    assert "(at 'mss 1460,wscale 7')" in str(err.value)
    udp = PACKET.format(dport=80, extra='tcp_options = "mss 1460"').replace('"tcp"', '"udp"')
    with pytest.raises(ParseError, match="tcp_options is only for tcp packets"):
        load_scenario(SCENARIO.format(rules="", packets=udp), file="t.toml")
    with pytest.raises(ParseError, match="packets.tcp_options must be a string"):
        load_scenario(SCENARIO.format(rules="", packets=PACKET.format(
            dport=80, extra="tcp_options = 1460")), file="t.toml")


def test_set_mss_lowers_the_option_and_says_so_as_a_field_change():
    # kernel run: ext-TCPMSS packet 0
    out, events = walk(mss_rule("--set-mss 1400"), tcp_options=LINUX_SYN)
    assert out["out"]["tcp_options"] == LINUX_SYN.replace("1460", "1400")
    change = next(e for e in events if isinstance(e, FieldChange) and e.path == "tcp.options")
    assert (change.path, change.old, change.new, change.by) == (
        "tcp.options", LINUX_SYN, LINUX_SYN.replace("1460", "1400"), "mangle:FORWARD:rule:1")
    applied = next(e for e in events if isinstance(e, TargetApplied))
    assert applied.verdict == "CONTINUE" and "MSS 1460 -> 1400" in applied.detail


def test_set_mss_never_raises_an_mss():
    # "Never increase MSS, even when setting it"; kernel run: ext-TCPMSS packet 1
    out, events = walk(mss_rule("--set-mss 1400"), tcp_options="mss 1200,nop,nop,sackOK")
    assert out["out"]["tcp_options"] == "mss 1200,nop,nop,sackOK"
    assert not [e for e in events if isinstance(e, FieldChange) and e.path == "tcp.options"]


@pytest.mark.parametrize("target,before,after", [
    # kernel run: ext-TCPMSS packets 2, 3, 4, 8 (an MSS of length 3 is no MSS option)
    ("--set-mss 1400", "", "mss 536"),
    ("--set-mss 1400", "nop,nop,sackOK", "mss 536,nop,nop,sackOK"),
    ("--set-mss 500", "", "mss 500"),
    ("--set-mss 1400", "opt 2 0x05,nop", "mss 536,opt 2 0x05,nop"),
])
def test_a_syn_without_mss_gets_one_first_at_most_536(target, before, after):
    extra = f'tcp_options = "{before}"' if before else ""
    out, events = walk(mss_rule(target), extra=extra)
    assert out["out"].get("tcp_options") == after
    changes = {e.path: (e.old, e.new) for e in events if isinstance(e, FieldChange)}
    grow = 40 + len(parse_options(before))
    assert changes["ip.len"] == (grow, grow + 4)  # tcpmss_tg4: tot_len += 4


def test_no_option_is_added_with_data_after_the_header_or_a_full_header():
    # "There is data after the header so the option can't be added"; "doff has 4 bits";
    # kernel run: ext-TCPMSS packets 5, 6, 7
    out, _ = walk(mss_rule("--set-mss 1400"), length=100)
    assert "tcp_options" not in out["out"]
    out, _ = walk(mss_rule("--set-mss 1400"), length=100, tcp_options="mss 1460")
    assert out["out"]["tcp_options"] == "mss 1400"  # found first: changed in place
    full = "opt 254 0x" + "00" * 38
    out, _ = walk(mss_rule("--set-mss 1400"), tcp_options=full)
    assert out["out"]["tcp_options"] == full


def test_only_the_rules_match_makes_it_syn_only():
    # nft_compat skips tcpmss_tg4_check's "Only works on TCP SYN packets" (iptables-nft
    # 1.8.9 accepts -p tcp -j TCPMSS on this machine); kernel run: ext-TCPMSS packets 9-11
    out, _ = walk(mss_rule("--set-mss 1400"), flags="A", tcp_options="mss 1460")
    assert out["out"]["tcp_options"] == "mss 1460"  # --tcp-flags SYN,RST SYN misses
    out, _ = walk(mss_rule("--set-mss 1000", match="--dport 80"), flags="A",
                  tcp_options="nop,nop,nop,nop,mss 1460")
    assert out["out"]["tcp_options"] == "nop,nop,nop,nop,mss 1000"
    out, _ = walk(mss_rule("--set-mss 1000", match="--dport 80"), flags="A")
    assert out["out"]["tcp_options"] == "mss 536"


@pytest.mark.parametrize("iif,src,dst,before,after", [
    # min(dst_mtu, tcpmss_reverse_mtu) - 40 with eth1 at MTU 1400; kernel run:
    # ext-TCPMSS packets 12 (out by eth1), 13 (back by eth1), 14 (added: 536), 15 (kept)
    ("eth0", "192.0.2.10", "198.51.100.7", LINUX_SYN, LINUX_SYN.replace("1460", "1360")),
    ("eth1", "198.51.100.7", "192.0.2.10", "mss 1460", "mss 1360"),
    ("eth0", "192.0.2.10", "198.51.100.7", "", "mss 536"),
    ("eth0", "192.0.2.10", "198.51.100.7", "mss 1300", "mss 1300"),
])
def test_clamp_mss_to_pmtu_takes_the_smaller_mtu_of_both_routes(iif, src, dst, before, after):
    packet = PACKET.format(dport=443, extra=f'tcp_options = "{before}"' if before else "")
    packet = packet.replace('"eth0"', f'"{iif}"').replace("192.0.2.10", "SRC")
    packet = packet.replace("198.51.100.7", dst).replace("SRC", src)
    text = SCENARIO.format(rules=mss_rule("--clamp-mss-to-pmtu", "POSTROUTING"), packets=packet)
    (result,) = run_scenario(load_scenario(text, file="t.toml"))
    assert result.to_json(with_events=False)["out"].get("tcp_options") == after


def test_clamp_of_the_boxs_own_packet_uses_lo_for_the_route_back():
    # the route back to a local source is lo (65536, IP_MAX_MTU 65520: ipv4_mtu); kernel
    # run: ext-TCPMSS packet 16
    packet = PACKET.format(dport=8443, extra=f'tcp_options = "{LINUX_SYN}"')
    packet = packet.replace('"eth0"', '"local"').replace("192.0.2.10", "198.51.100.1")
    text = SCENARIO.format(rules=mss_rule("--clamp-mss-to-pmtu", "OUTPUT"), packets=packet)
    (result,) = run_scenario(load_scenario(text, file="t.toml"))
    assert result.to_json(with_events=False)["out"]["tcp_options"].startswith("mss 1360,")


def test_clamp_is_refused_outside_forward_output_postrouting():
    # tcpmss_tg4_check: "path-MTU clamping only supported in FORWARD, OUTPUT and
    # POSTROUTING hooks" (Invalid argument, checked with iptables-nft 1.8.9)
    with pytest.raises(KptuiError, match="not allowed in mangle PREROUTING"):
        walk(mss_rule("--clamp-mss-to-pmtu", "PREROUTING"))
    # in a user chain the kernel checks no hook (nft_compat: hook_mask 0 for non-base
    # chains), and the rule is taken; reached from PREROUTING, the packet has no route:
    # kptui stops instead of guessing
    rules = ("*mangle\n:X - [0:0]\n-A PREROUTING -j X\n"
             "-A X -p tcp -j TCPMSS --clamp-mss-to-pmtu\nCOMMIT")
    out, _ = walk(rules)
    assert out["fate"]["action"] == "error"
    assert "unsupported yet: -j TCPMSS --clamp-mss-to-pmtu in PREROUTING" in \
        out["fate"]["message"]


# -- TCPOPTSTRIP --------------------------------------------------------------------------


def strip(options: str, before: str, **kw) -> str | None:
    arg = f" --strip-options {options}" if options else ""
    rules = f"*mangle\n-A PREROUTING -p tcp -j TCPOPTSTRIP{arg}\nCOMMIT"
    out, _ = walk(rules, extra=f'tcp_options = "{before}"' if before else "", **kw)
    assert out["fate"]["action"] == "transmit"
    return out["out"].get("tcp_options")


@pytest.mark.parametrize("options,before,after", [
    # memset(opt + i, TCPOPT_NOP, optl); kernel run: ext-TCPOPTSTRIP packets 0-8
    ("mss", LINUX_SYN, "nop,nop,nop,nop,sackOK,TS val 1 ecr 0,nop,wscale 7"),
    ("mss", "", None),
    ("sack-permitted,timestamp", LINUX_SYN, "mss 1460" + ",nop" * 13 + ",wscale 7"),
    ("wscale,sack", "nop,nop,sack 1000:2000,nop,wscale 7", ",".join(["nop"] * 16)),
    ("30,254", "mss 1460,eol,opt 30 0x0102,opt 254,nop,nop,nop,nop,nop",
     "mss 1460,eol" + ",nop" * 11),  # the walk goes on past an eol
    # "if (i + optl > tcp_hdrlen) break": an option running past the header ends the walk
    ("mss", "nop,mss 1460,bytes 0x020a00", "nop,nop,nop,nop,nop,bytes 0x020a00"),
    ("mss", "nop,nop,bytes 0x1e0a020405b4", "nop,nop,bytes 0x1e0a020405b4"),
    # optlen(): a length byte of 0 counts as 1, so the MSS after it is found
    ("mss", "bytes 0x0800020405b40101", "bytes 0x0800010101010101"),
    ("", LINUX_SYN, LINUX_SYN),
])
def test_tcpoptstrip_turns_the_listed_options_into_nops(options, before, after):
    assert strip(options, before) == after


def test_tcpoptstrip_is_not_syn_only():
    # kernel run: ext-TCPOPTSTRIP packet 9
    assert strip("mss", "mss 1460", flags="A") == "nop,nop,nop,nop"


# -- verify ------------------------------------------------------------------------------


def test_verify_reads_the_options_from_the_wire():
    data = syn(tcp_options=LINUX_SYN).to_bytes()
    assert ip_out(data)["tcp_options"] == LINUX_SYN
    assert "tcp_options" not in ip_out(syn().to_bytes())


def test_verify_compares_options_of_transmitted_packets_only():
    # a delivered or dropped packet's out comes from the trace, which prints no options
    base = {"fate": {"action": "deliver", "iface": "eth0"}, "trace": [], "answers": [],
            "out": {"src": "192.0.2.10", "tcp_options": "mss 1460"}}
    kptui = json.loads(json.dumps(base))
    kptui["out"]["tcp_options"] = "mss 1400"
    assert compare(0, base, kptui).agrees
    base["fate"]["action"] = kptui["fate"]["action"] = "transmit"
    assert compare(0, base, kptui).differs == ["out"]


@pytest.mark.parametrize("name", ["ext-TCPMSS", "ext-TCPOPTSTRIP"])
def test_the_recorded_kernel_answers_have_the_options(name):
    rows = [json.loads(line) for line in
            (SCENARIOS / f"{name}.kernel.jsonl").read_text().splitlines()]
    assert rows[0]["out"]["tcp_options"] == {
        "ext-TCPMSS": LINUX_SYN.replace("1460", "1400"),
        "ext-TCPOPTSTRIP": "nop,nop,nop,nop,sackOK,TS val 1 ecr 0,nop,wscale 7"}[name]
