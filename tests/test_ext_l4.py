"""The l4 extensions: sctp, dccp, esp, ah, ipcomp, ecn/ECN, realm, u32, string, bpf,
tcpmss/TCPMSS and TCPOPTSTRIP.

Every saved line and refusal below is what iptables-nft 1.8.9 printed on this
machine (Linux 6.18) for the same rule, unless a comment cites kernel source;
the simulated matches and the ECN target are also checked end to end against the
kernel by tests/kernel/scenarios/ext-{ecn,tcpmss,u32,string}.toml (TCPMSS and
TCPOPTSTRIP: tests/test_ext_tcpmss_targets.py).
"""

from __future__ import annotations

import json
import random

import pytest
from ext_rules import refusal, saved

from kptui.engine.errors import UnsupportedError
from kptui.engine.events import FieldChange, RuleEval
from kptui.engine.iptables import MatchContext, Ruleset, apply_command, run_chain
from kptui.engine.iptables.ext.bpf import check_classic, parse_bytecode
from kptui.engine.iptables.ext.tcpmss import find_mss
from kptui.engine.packet import Packet
from kptui.engine.run import run_scenario
from kptui.engine.scenario import load_scenario

# -- parse and print (each expectation: iptables-save 1.8.9 on this machine) ----------

@pytest.mark.parametrize("rule,line", [
    # sctp: flags kept in bit order; the flag list of I_DATA is filed under its table
    # index (15), so iptables-save prints no flags for it
    ("-p sctp -m sctp --chunk-types any DATA:BE,ABORT:t,INIT",
     "-p sctp -m sctp --chunk-types any DATA:BE,INIT,ABORT:t"),
    ("-p sctp -m sctp --chunk-types any I_DATA:iu", "-p sctp -m sctp --chunk-types any I_DATA"),
    ("-p sctp -m sctp --chunk-types only none", "-p sctp -m sctp --chunk-types only NONE"),
    ("-p sctp -m sctp --chunk-types any DATA,DATA:B", "-p sctp -m sctp --chunk-types any DATA:B"),
    ("-p sctp -m sctp ! --sport 0:65535 --dport :6",
     "-p sctp -m sctp ! --sport 0:65535 --dport 0:6"),
    ("-p sctp -m sctp --sport amqp", "-p sctp -m sctp --sport 5672"),
    # dccp: INVALID stands for types 10-15 and ends the list
    ("-p dccp -m dccp --dccp-types invalid,request",
     "-p dccp -m dccp --dccp-types REQUEST,INVALID"),
    ("-p dccp -m dccp ! --dccp-option 0x10 --dport 5 --sport 4",
     "-p dccp -m dccp --sport 4 --dport 5 ! --dccp-option 16"),
    ("-p dccp -m dccp --sport 5:4", "-p dccp -m dccp --sport 5:4"),
    # esp/ah/ipcomp: the full range prints as nothing, even inverted; ipcomp has no
    # .init, so its range is 0:0 until given
    ("-p esp -m esp ! --espspi 0:4294967295", "-p esp -m esp"),
    ("-p ah -m ah --ahspi 0x10:010", "-p ah -m ah --ahspi 16:8"),
    ("-p ipcomp -m ipcomp", "-p ipcomp -m ipcomp --ipcompspi 0"),
    ("-p ipcomp -m ipcomp ! --ipcompspi 1:5 --compres",
     "-p ipcomp -m ipcomp ! --ipcompspi 1:5 --compres"),
    # realm: /etc/iproute2/rt_realms names 0 "cosmos"
    ("-m realm --realm 0", "-m realm --realm cosmos"),
    ("-m realm --realm 010/0x10", "-m realm --realm 0x8/0x10"),
    # ecn
    ("-p tcp -m ecn --ecn-tcp-cwr ! --ecn-ip-ect 0x2",
     "-p tcp -m ecn --ecn-tcp-cwr ! --ecn-ip-ect 2"),
    # u32: every number in hex
    ("-m u32 --u32 ' 6 & 0xFF = 1 , 6:17 && 0=5'", '-m u32 --u32 "0x6&0xff=0x1,0x6:0x11&&0x0=0x5"'),
    # string: quoted with \\ escapes, or hex when a byte is not printable
    ("-m string --algo kmp --string 'a\"b\\c'", '-m string --string "a\\"b\\\\c" --algo kmp'),
    ("-m string --algo bm --hex-string '|41 42 |'", '-m string --string "AB" --algo bm'),
    ("-m string --algo bm --hex-string '|0a|b|'", '-m string --hex-string "|0a62|" --algo bm'),
    ("-m string --algo bm --string é", '-m string --hex-string "|c3a9|" --algo bm'),
    ("-m string --algo bm --string abc --icase --from 3 --to 100",
     '-m string --string "abc" --algo bm --from 3 --to 100 --icase'),
    # bpf: the bytecode as glibc's sscanf reads it (%hu wraps, %u of -1 is 4294967295)
    ("-m bpf --bytecode '65537,6 0 0 0'", '-m bpf --bytecode "1,6 0 0 0"'),
    ("-m bpf --bytecode '1, 6  0 0 -1'", '-m bpf --bytecode "1,6 0 0 4294967295"'),
    ("-m bpf --bytecode '1,6 0 0 010'", '-m bpf --bytecode "1,6 0 0 10"'),
    # tcpmss
    ("-p tcp -m tcpmss ! --mss 0x10:010", None),
])
def test_saved_as_iptables_save_prints_it(rule, line):
    if line is None:
        assert "tcpmss: invalid range given" in refusal(rule)
    else:
        assert saved(rule) == f"-A INPUT {line}"


@pytest.mark.parametrize("table,chain,rule,line", [
    # ECN: --ecn-tcp-remove assigns the operation, so an earlier --ecn-ip-ect is lost
    ("mangle", "PREROUTING", "-p tcp -j ECN --ecn-ip-ect 1 --ecn-tcp-remove",
     "-p tcp -j ECN --ecn-tcp-remove"),
    ("mangle", "PREROUTING", "-p tcp -j ECN --ecn-tcp-remove --ecn-ip-ect 1",
     "-p tcp -j ECN --ecn-tcp-ece 0 --ecn-tcp-cwr 0 --ecn-ip-ect 1"),
    ("mangle", "PREROUTING", "-p tcp -j ECN --ecn-tcp-cwr 0 --ecn-tcp-ece 0",
     "-p tcp -j ECN --ecn-tcp-remove"),
    # TCPMSS: both options write the same field, the last one wins; no table limit
    ("mangle", "FORWARD", "-p tcp -j TCPMSS --set-mss 42 --clamp-mss-to-pmtu",
     "-p tcp -j TCPMSS --clamp-mss-to-pmtu"),
    ("filter", "FORWARD", "-p tcp -j TCPMSS --set-mss 5", "-p tcp -j TCPMSS --set-mss 5"),
    ("mangle", "PREROUTING", "-p tcp -j TCPOPTSTRIP --strip-options mss,wscale,8,md5,255",
     "-p tcp -j TCPOPTSTRIP --strip-options 2,3,8,19,255"),
])
def test_targets_saved_as_iptables_save_prints_them(table, chain, rule, line):
    assert saved(rule, table, chain) == f"-A {chain} {line}"


@pytest.mark.parametrize("table,chain,rule,words", [
    ("filter", "INPUT", "-p sctp -m sctp --chunk-types some DATA",
     'Match type has to be one of "ALL", "ANY" or "ONLY"'),
    ("filter", "INPUT", "-p sctp -m sctp --chunk-types any data:x",
     "Invalid flags for chunk type 0"),
    ("filter", "INPUT", "-p sctp -m sctp --chunk-types any -x", "--chunk-types requires two args"),
    ("filter", "INPUT", "-p sctp -m sctp --sport 5 --source-port 6",
     "Only one `--source-port' allowed"),
    ("filter", "INPUT", "-p sctp -m sctp --sport http", "invalid port/service `http' specified"),
    # dccp: the error names the first entry of the option's id
    ("filter", "INPUT", "-p dccp -m dccp --sport 1:2:3",
     'dccp: Too many components for option "--source-port" (max: 2)'),
    ("filter", "INPUT", "-p dccp -m dccp --sport 5 --source-port 6",
     'dccp: option "--source-port" can only be used once.'),
    ("filter", "INPUT", "-m dccp --dport 5", "Invalid argument"),
    ("filter", "INPUT", "-m realm --realm 5x",
     'realm: could not map name 5x to an integer value for option "--realm".'),
    ("filter", "INPUT", "-m realm --realm 5/x",
     'realm: bad integer value for option "--realm", or out of range.'),
    ("mangle", "PREROUTING", "-m realm --realm 1", "Invalid argument"),
    ("mangle", "PREROUTING", "-p tcp -j TCPOPTSTRIP --strip-options 2,mss",
     'Option "mss" already specified'),
    ("filter", "INPUT", "-p tcp -j TCPOPTSTRIP", "Invalid argument"),
    ("mangle", "PREROUTING", "-p tcp -j ECN --ecn-tcp-cwr 1 --ecn-tcp-remove",
     'ECN: option "--ecn-tcp-remove" cannot be used together with "--ecn-tcp-cwr".'),
    ("mangle", "PREROUTING", "-j ECN --ecn-tcp-cwr 1", "Invalid argument"),
    ("mangle", "INPUT", "-p tcp -j TCPMSS --clamp-mss-to-pmtu", "Invalid argument"),
    ("mangle", "FORWARD", "-p tcp -j TCPMSS --set-mss 65516",
     'TCPMSS: bad value for option "--set-mss", or out of range (0-65515).'),
    ("filter", "INPUT", "-p udp -m ecn --ecn-tcp-ece", "Invalid argument"),
    # u32: u32_parse's words and positions
    ("filter", "INPUT", "-m u32 --u32 0=1&", "u32: at char 4: a second '&' was expected"),
    ("filter", "INPUT", "-m u32 --u32 0x=1", "u32: at char 1: operator expected"),
    ("filter", "INPUT", "-m u32 --u32 0=-1", "u32: at char 2: not a number or out of range"),
    ("filter", "INPUT", "-m u32 --u32 1&2&3&4&5&6&7&8&9&10&11=1",
     "u32: at char 23: too many operators"),
    ("filter", "INPUT", "-m u32 --u32 " + "&&".join(["0=1"] * 11),
     'u32: at char 53: too many "&&"s'),
    # this kernel refuses shifts of 32 or more (u32_mt_checkentry, 6.18.40+)
    ("filter", "INPUT", "-m u32 --u32 0>>32=1", "Invalid argument"),
    # string: x6_fcheck before the mandatory --algo; the kernel's refusals
    ("filter", "INPUT", "-m string --string x",
     'string: option "--algo" must be specified'),
    ("filter", "INPUT", "-m string --algo bm",
     "STRING match: You must specify `--string' or `--hex-string'"),
    ("filter", "INPUT", "-m string --algo wrong --string abc", "No such file or directory"),
    ("filter", "INPUT", "-m string --algo bm --hex-string '|'", "Invalid argument"),
    ("filter", "INPUT", "-m string --algo bm --string x --from 10 --to 5", "Invalid argument"),
    ("filter", "INPUT", "-m string --algo fsm --string abc", "Invalid argument"),
    ("filter", "INPUT", "-m string --algo bm --hex-string 'a|4g|'", "Invalid hex char 'g'"),
    ("filter", "INPUT", "-m string --algo bm --hex-string '|41\\|'",
     "Cannot include literals in hex data"),
    # bpf: libxt_bpf's words; the kernel's classic BPF checker
    ("filter", "INPUT", "-m bpf --bytecode '2,6 0 0 0'",
     "bpf: parsed program length is less than the encoded length parameter"),
    ("filter", "INPUT", "-m bpf --bytecode '1,0x6 0 0 0'", "bpf: error at instr 0"),
    ("filter", "INPUT", "-m bpf", "bpf: one of --bytecode or --pinned is required"),
    ("filter", "INPUT", "-m bpf --bytecode '1,7 0 0 0'", "Invalid argument"),
])
def test_refused_in_iptables_words(table, chain, rule, words):
    assert words in refusal(rule, table, chain)


@pytest.mark.parametrize("prog,ok", [
    # checked with iptables-nft 1.8.9 on Linux 6.18 (accepted / Invalid argument)
    ("4,48 0 0 9,21 0 1 6,6 0 0 1,6 0 0 0", True),
    ("3,52 0 0 0,6 0 0 0,6 0 0 0", False),  # DIV by constant 0
    ("2,100 0 0 32,6 0 0 0", False), ("2,100 0 0 31,6 0 0 0", True),  # LSH K
    ("2,96 0 0 0,22 0 0 0", False),  # reads scratch cell 0 before a write
    ("3,2 0 0 0,96 0 0 0,22 0 0 0", True), ("3,2 0 0 16,96 0 0 0,22 0 0 0", False),
    ("2,5 0 0 1,6 0 0 0", False), ("3,5 0 0 1,6 0 0 0,6 0 0 0", True),  # JA range
    ("2,32 0 0 4294963200,6 0 0 0", True),  # ancillary SKF_AD_PROTOCOL
    ("2,32 0 0 4294963264,6 0 0 0", False), ("2,32 0 0 4294963202,6 0 0 0", False),
    ("2,32 0 0 4293918720,6 0 0 0", True),  # SKF_NET_OFF
    ("3,21 2 0 0,6 0 0 0,6 0 0 0", False),  # jump past the end
    ("5,2 0 0 1,21 0 1 0,2 0 0 2,97 0 0 2,6 0 0 0", False),  # cell 2 unwritten on a path
    ("2,140 0 0 0,6 0 0 0", False), ("2,132 0 0 0,6 0 0 0", True),  # NEG|X / NEG
    ("1,14 0 0 0", False), ("1,22 0 0 0", True),  # RET X / RET A
])
def test_classic_bpf_checked_as_the_kernel_checks_it(prog, ok):
    assert check_classic(parse_bytecode(prog)) is ok


# -- simulation ---------------------------------------------------------------------

def ctx(**kw):
    base = dict(hook="INPUT", table="filter", iif="eth0", oif="",
                addrtype=lambda a, dev: "UNICAST", rng=random.Random(1), now=0.0)
    base.update(kw)
    return MatchContext(**base)


def build(proto="tcp", local=False, **kw):
    args = dict(src="192.0.2.7", dst="10.0.0.1")
    if proto != "icmp":
        args.update(sport=40000, dport=80)
    args.update(kw)
    pkt = Packet.build(proto, **args)
    pkt.meta.iif = "" if local else "eth0"
    return pkt


def walk(rule, pkt, table="filter", chain="INPUT"):
    rs = Ruleset()
    apply_command(rs, f"iptables -t {table} -A {chain} {rule}", file="t", line=1)
    events = list(run_chain(rs, table, chain, pkt, ctx(hook=chain, table=table),
                            stage=f"{table}:{chain}", hook=chain))
    return events


def matched(rule, pkt, **kw):
    (ev,) = [e for e in walk(rule, pkt, **kw) if isinstance(e, RuleEval)]
    return ev.matched


@pytest.mark.parametrize("opts,mss", [
    # xt_tcpmss.c's loop: NOP/EOL step one byte, others by their length (0 counts 1)
    (b"\x02\x04\x05\xb4", 1460), (b"\x01\x01\x02\x04\x02\x18", 536),
    (b"\x03\x03\x07\x02\x04\x05\xb4\x00", 1460), (b"\x02\x05\x05\xb4", None),
    (b"\x00\x02\x04\x05\xb4", 1460),  # EOL does not stop the kernel's walk
    (b"\x08\x00\x02\x04\x01\x00", 256),  # a zero length steps one byte
    (b"\x02\x04\x05", None), (b"", None),
])
def test_tcpmss_finds_the_mss_option_as_the_kernel_walks_options(opts, mss):
    assert find_mss(opts) == mss


def test_tcpmss_match_on_a_syn_with_options():
    pkt = build()
    pkt.l4.options = b"\x02\x04\x05\xb4"  # MSS 1460
    assert matched("-p tcp -m tcpmss --mss 1400:1500", pkt)
    assert not matched("-p tcp -m tcpmss ! --mss 1460", pkt)
    pkt.l4.options = b""
    assert not matched("-p tcp -m tcpmss --mss 0:65535", pkt)  # no option: its `!`
    assert matched("-p tcp -m tcpmss ! --mss 0:65535", pkt)


def test_ecn_match_reads_the_codepoint_and_the_tcp_bits():
    pkt = build(flags="SE", tos=0x02)
    assert matched("-p tcp -m ecn --ecn-tcp-ece ! --ecn-tcp-cwr --ecn-ip-ect 2", pkt)
    assert not matched("-p tcp -m ecn --ecn-tcp-cwr", pkt)
    assert not matched("-m ecn ! --ecn-ip-ect 2", build("udp", tos=0x02))


def test_ecn_target_rewrites_tos_and_flags():
    pkt = build(flags="SEC", tos=0x03)
    events = walk("-p tcp -j ECN --ecn-tcp-remove --ecn-ip-ect 1", pkt, "mangle", "PREROUTING")
    changes = [(e.path, e.old, e.new) for e in events if isinstance(e, FieldChange)]
    assert changes == [("ip.tos", 3, 1), ("tcp.flags", 0xC2, 0x02)]


def test_ecn_on_a_non_first_fragment_is_not_guessed():
    pkt = build(flags="SE")
    pkt.ip.frag_offset, pkt.l4 = 10, None
    with pytest.raises(UnsupportedError, match="non-first fragment"):
        walk("-p tcp -m ecn --ecn-tcp-ece", pkt)


def test_u32_on_a_packet_the_box_sends_stops_where_linux_fills_bytes_in():
    pkt = build("udp", local=True)
    # the IP ID masked out: decided
    assert matched("-m u32 --u32 4&0x1FFF=0", pkt, chain="OUTPUT")
    # a later test that is false decides even when an earlier one cannot be decided
    assert not matched("-m u32 --u32 4=0&&16=0x01020304", pkt, chain="OUTPUT")
    with pytest.raises(UnsupportedError, match="IP ID"):
        walk("-m u32 --u32 4>>16=0", pkt, chain="OUTPUT")
    # a received packet's ID is the sender's: known
    assert matched("-m u32 --u32 4>>16=0", build("udp"))


def test_string_on_a_packet_the_box_sends():
    pkt = build("udp", local=True, dst="198.51.100.7")
    assert matched("-m string --algo bm --hex-string |c6336407|", pkt, chain="OUTPUT")
    assert not matched("-m string --algo kmp --hex-string |c6336408|", pkt, chain="OUTPUT")
    with pytest.raises(UnsupportedError, match="IP ID"):  # two bytes Linux picks
        walk("-m string --algo kmp --hex-string |ab|", pkt, chain="OUTPUT")


def test_string_icase_uses_the_kernels_toupper():
    pkt = build("udp", sport=0x6162, dport=0x63DF)  # "abc" then 0xdf (kernel: lower ß)
    assert matched("-m string --algo kmp --icase --hex-string |414243bf|", pkt)
    with pytest.raises(UnsupportedError, match="bad-character table"):
        walk("-m string --algo bm --icase --hex-string |bf41|", pkt)
    with pytest.raises(UnsupportedError, match="fsm"):
        walk("-m string --algo fsm --hex-string |0000040000000000|", pkt)


# -- parsed, not simulated: the walk stops, named ------------------------------------

BASE = """
name = "t"
iptables = \"\"\"
{rules}
\"\"\"
[[interfaces]]
name = "eth0"
addresses = ["192.0.2.1/24"]
[[packets]]
iif = "eth0"
proto = "tcp"
src = "192.0.2.10"
dst = "192.0.2.1"
sport = 40000
dport = 22
"""


@pytest.mark.parametrize("rules,message", [
    # an eBPF object is not run; of the ancillary loads only what the packet has is
    # known (net/core/filter.c: SKF_AD_OFF + 32 is the rxhash, + 36 the cpu)
    ("*filter\n-A INPUT -m bpf --object-pinned /sys/fs/bpf/p\nCOMMIT", "--object-pinned"),
    ('*filter\n-A INPUT -m bpf --bytecode "2,32 0 0 4294963232,22 0 0 0"\nCOMMIT',
     "SKF_AD_rxhash"),
    ('*filter\n-A INPUT -m bpf --bytecode "2,32 0 0 4294963236,22 0 0 0"\nCOMMIT',
     "SKF_AD_cpu"),
    ('*filter\n-A INPUT -m bpf --bytecode "2,48 0 0 4292870144,22 0 0 0"\nCOMMIT',
     "link-layer loads"),
])
def test_what_bpf_cannot_know_stops_the_walk_named(rules, message):
    (result,) = run_scenario(load_scenario(BASE.format(rules=rules), file="t.toml"))
    r = result.to_json(with_events=False)
    json.dumps(r)
    assert r["fate"]["action"] == "error"
    assert "unsupported yet: -m bpf" in r["fate"]["message"] and message in r["fate"]["message"]


@pytest.mark.parametrize("program,matched", [
    # run as net/core/filter.c's bpf_convert_filter does (ext-bpf.toml: the kernel agrees)
    ("4,48 0 0 9,21 0 1 6,6 0 0 1,6 0 0 0", True),  # ldb [9]; jeq #6: TCP
    ("2,32 0 0 1000,6 0 0 1", False),  # a load past the packet ends it with 0
    ("4,1 0 0 0,0 0 0 5,60 0 0 0,6 0 0 1", False),  # div by X = 0: returns 0
    ("3,0 0 0 7,148 0 0 4,22 0 0 0", True),  # 7 % 4 = 3: ret a
    ("3,0 0 0 1,100 0 0 31,22 0 0 0", True),  # 1 << 31: ret a (non-zero)
    ("3,0 0 0 0,132 0 0 0,22 0 0 0", False),  # neg 0 = 0
])
def test_bpf_programs_run_as_the_kernel_runs_them(program, matched):
    rules = f'*filter\n-A INPUT -m bpf --bytecode "{program}" -j DROP\nCOMMIT'
    (result,) = run_scenario(load_scenario(BASE.format(rules=rules), file="t.toml"))
    assert (result.to_json(with_events=False)["fate"]["action"] == "drop") is matched


@pytest.mark.parametrize("rule,name", [
    ("-p sctp -m sctp --dport 80", "sctp"), ("-p dccp -m dccp --dport 80", "dccp"),
    ("-p esp -m esp --espspi 1", "esp"), ("-p ah -m ah --ahspi 1", "ah"),
    ("-p ipcomp -m ipcomp --ipcompspi 1", "ipcomp"),
])
def test_protocol_matches_kptui_packets_never_reach(rule, name):
    # kptui's packets are TCP/UDP/ICMP: the rule's -p fails first and the walk goes on
    assert not matched(rule, build())
    rs = Ruleset()
    apply_command(rs, f"iptables -A INPUT {rule}", file="t", line=1)
    match = rs.tables["filter"].chains["INPUT"].rules[0].matches[1]
    with pytest.raises(UnsupportedError, match=f"-m {name} \\(parsed, not simulated\\)"):
        match.test(build(), ctx())
