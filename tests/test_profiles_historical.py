"""The historical profiles: classic-2.4 (the seed diagram) and ipchains (Linux 2.2).

No kernel on this machine runs them, so each expected result cites the documentation
of its time (quoted in the comments):
- the seed Kernel Packet Traveling Diagram (LARTC list, copied at docum.org/kptd and
  the linuximq wiki),
- the IPCHAINS-HOWTO (Rusty Russell, v1.0.8) and Linux 2.2's own net/ipv4/ip_input.c
  and ip_forward.c (ip_rcv, ip_local_deliver, ip_forward),
- the IP-Masquerade-HOWTO 7.40 for ipchains and iptables excluding each other.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kptui.engine.errors import ParseError
from kptui.engine.ipchains import IpchainsRuleset, apply_ipchains
from kptui.engine.profile import CLASSIC_24, IPCHAINS, get_profile
from kptui.engine.run import run_scenario
from kptui.engine.scenario import load_scenario
from kptui.engine.walk_historical import ImqPass

SCENARIOS = Path(__file__).parent.parent / "kptui" / "scenarios"

BOX = """
[sysctl]
"net.ipv4.ip_forward" = 1

[[interfaces]]
name = "eth0"
addresses = ["192.168.1.1/24"]

[[interfaces]]
name = "eth1"
addresses = ["203.0.113.2/24"]
"""

OUT_SYN = """
[[packets]]
iif = "eth0"
proto = "tcp"
src = "192.168.1.10"
dst = "198.51.100.7"
sport = 40000
dport = 80
"""

IN_SYN = """
[[packets]]
iif = "eth1"
proto = "tcp"
src = "198.51.100.9"
dst = "203.0.113.2"
sport = 5555
dport = 22
"""


def scenario(profile: str, *, setup: str = "", iptables: str = "", packets: str = OUT_SYN):
    text = f'profile = "{profile}"\nsetup = """\nip route add default via 203.0.113.1 dev eth1\n'
    text += setup + '"""\n'
    if iptables:
        text += f'iptables = """\n{iptables}"""\n'
    return load_scenario(text + BOX + packets, file="t.toml")


def results(sc):
    return list(run_scenario(sc))


def stages_entered(result) -> list[str]:
    return [ev.stage for ev in result.events if type(ev).__name__ == "StageEnter"]


def ids(stages):
    return [s.id for s in stages]


# -- classic-2.4: the seed diagram ------------------------------------------------------

def test_classic_prerouting_is_the_seed_diagrams_column():
    # Seed diagram: "IPTABLES PREROUTING | conntrack | mangle <- MARK WRITE | IMQ |
    # nat <- DEST REWRITE", then "QOS INGRESS", then "INPUT ROUTING + PDBB".
    # No raw table: it came with Linux 2.6.
    assert ids(CLASSIC_24.prerouting) == [
        "conntrack:PREROUTING", "mangle:PREROUTING", "imq:PREROUTING", "nat:PREROUTING",
        "tc:ingress", "routing:input"]


def test_classic_other_hooks_follow_the_seed_diagram():
    # Seed diagram: "IPTABLES INPUT | mangle | filter", "IPTABLES FORWARD | mangle |
    # filter", "IPTABLES OUTPUT | conntrack | mangle | nat | filter" after "OUTPUT
    # ROUTING", and "IPTABLES POSTROUTING | mangle | nat <- SOURCE REWRITE | IMQ" then
    # "QOS EGRESS". Mangle is in all five hooks (2.4.18 added INPUT, FORWARD, POSTROUTING).
    drawn = [s.id for s in CLASSIC_24.stages() if s.id not in CLASSIC_24.hidden]
    assert ids(CLASSIC_24.local_in)[:2] == ["mangle:INPUT", "filter:INPUT"]
    assert ids(CLASSIC_24.forward) == ["forward", "mangle:FORWARD", "filter:FORWARD"]
    assert ids(CLASSIC_24.local_out) == ["routing:output", "conntrack:OUTPUT", "mangle:OUTPUT",
                                         "nat:OUTPUT", "filter:OUTPUT"]
    assert [s for s in ids(CLASSIC_24.postrouting) if s in drawn] == [
        "mangle:POSTROUTING", "nat:POSTROUTING", "imq:POSTROUTING", "tc:egress", "transmit"]
    assert not any(s.startswith(("raw:", "security:")) for s in drawn)
    assert "nat:INPUT" not in drawn
    assert sum(s.startswith("mangle:") for s in drawn) == 5


def test_classic_masquerade_and_its_reply_through_imq():
    # LARTC's IMQ use (seed diagram, docum.org's IMQ notes): "-j IMQ --todev 0" in mangle
    # PREROUTING sends a packet through imq0 after mangle, before nat; in POSTROUTING the
    # IMQ box comes after nat ("SOURCE REWRITE"), so imq1 sees the masqueraded source.
    sc = load_scenario((SCENARIOS / "classic-2.4.toml").read_text(), file="classic-2.4.toml")
    out, reply, stranger = results(sc)
    assert out.fate.action == "transmit" and out.fate.iface == "eth1"
    assert str(out.packet.ip.src) == "203.0.113.2"
    imq = [ev for ev in out.events if isinstance(ev, ImqPass)]
    assert [ev.device for ev in imq] == ["imq1"]
    order = stages_entered(out)
    assert order.index("nat:POSTROUTING") < order.index("imq:POSTROUTING")
    # the reply: conntrack, mangle, IMQ (imq0), then nat de-masquerades it
    assert reply.fate.action == "transmit" and reply.fate.iface == "eth0"
    assert str(reply.packet.ip.dst) == "192.168.1.10"
    order = stages_entered(reply)
    assert order.index("mangle:PREROUTING") < order.index("imq:PREROUTING") \
        < order.index("nat:PREROUTING")
    assert [ev.device for ev in reply.events if isinstance(ev, ImqPass)] == ["imq0"]
    assert stranger.fate.action == "drop" and stranger.fate.by == "filter:INPUT:policy"


IMQ_MANGLE = "*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j IMQ --todev {n}\nCOMMIT\n"


def imq_events(res) -> list[ImqPass]:
    return [ev for ev in res.events if isinstance(ev, ImqPass)]


def test_imq_device_down_hands_the_packet_back():
    # linuximq imq.c imq_nf_queue: a device that is not up hands the packet straight back.
    sc = scenario("classic-2.4", iptables=IMQ_MANGLE.format(n=1))
    (res,) = results(sc)
    (imq,) = imq_events(res)
    assert (imq.device, imq.verdict) == ("imq1", "passed") and "down" in imq.detail
    assert res.fate.action == "transmit"


def test_imq_beyond_the_modules_devices_drops():
    # linuximq imq.c: numdevs (default 2) devices; imq_nf_queue fails for a higher index
    # and nf_queue drops the packet. `modprobe imq numdevs=4` makes imq0..imq3.
    sc = scenario("classic-2.4", iptables=IMQ_MANGLE.format(n=3))
    (res,) = results(sc)
    (imq,) = imq_events(res)
    assert (imq.device, imq.verdict) == ("imq3", "dropped")
    assert res.fate.action == "drop" and res.fate.stage == "imq:PREROUTING"
    more = scenario("classic-2.4", setup="modprobe imq numdevs=4\nip link set imq3 up\n",
                    iptables=IMQ_MANGLE.format(n=3))
    (res,) = results(more)
    assert [ev.verdict for ev in imq_events(res)] == ["passed"]
    assert res.fate.action == "transmit"


IMQ_HTB = """ip link set imq0 up
tc qdisc add dev imq0 root handle 1: htb default 20
tc class add dev imq0 parent 1: classid 1:1 htb rate 1mbit
tc class add dev imq0 parent 1:1 classid 1:10 htb rate 500kbit ceil 1mbit
tc class add dev imq0 parent 1:1 classid 1:20 htb rate 500kbit ceil 1mbit
tc qdisc add dev imq0 parent 1:20 handle 20: bfifo limit 10
tc filter add dev imq0 parent 1: protocol ip u32 match ip dport 80 0xffff flowid 1:10
"""


def test_imq_shapes_with_the_devices_qdisc():
    # LARTC's IMQ example: an htb tree on imq0, packets sent there by the mangle table.
    # The qdisc classifies as on any device: dport 80 -> 1:10; the rest go to the default
    # class, whose 10-byte bfifo cannot take a 40-byte SYN: a drop counted on imq0.
    packets = OUT_SYN + OUT_SYN.replace("dport = 80", "dport = 22")
    sc = scenario("classic-2.4", setup=IMQ_HTB, iptables=IMQ_MANGLE.format(n=0),
                  packets=packets)
    web, ssh = results(sc)
    classified = [ev for ev in web.events if type(ev).__name__ == "QosClassify"]
    assert [(ev.dev, ev.target) for ev in classified][-1] == ("imq0", "1:10")
    assert [ev.verdict for ev in imq_events(web)] == ["passed"]
    assert web.fate.action == "transmit" and web.fate.iface == "eth1"
    assert [ev.verdict for ev in imq_events(ssh)] == ["dropped"]
    assert ssh.fate.action == "drop" and ssh.fate.stage == "imq:PREROUTING"
    assert ssh.fate.by == "qos:queue-full"
    box_tc = sc.build_box().tc
    assert box_tc.link_kinds == {"imq0": "imq", "imq1": "imq"}


def test_modprobe_imq_belongs_to_classic_2_4():
    with pytest.raises(ParseError, match="unsupported in profile modern: the imq module"):
        scenario("modern", setup="modprobe imq\n").build_box()
    with pytest.raises(ParseError, match="numdevs must be 1..16") as exc:
        scenario("classic-2.4", setup="modprobe imq numdevs=17\n").build_box()
    assert exc.value.line == 4


def test_classic_nat_table_alone_means_connection_tracking():
    # In 2.4 iptable_nat depends on ip_conntrack: loading the nat table tracks every
    # packet (an empty nat table still gives a connection its conntrack entry).
    sc = scenario("classic-2.4", iptables="*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n")
    (res,) = results(sc)
    assert any(type(ev).__name__ == "ConntrackLookup" for ev in res.events)
    modern = scenario("modern", iptables="*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n")
    (res,) = results(modern)
    assert not any(type(ev).__name__ == "ConntrackLookup" for ev in res.events)


@pytest.mark.parametrize(("iptables", "what", "line"), [
    ("*raw\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n", "the raw table", 6),
    ("*nat\n:INPUT ACCEPT [0:0]\nCOMMIT\n", "the nat INPUT chain", 7),
    ("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m statistic --mode nth --every 2 --packet 0 -j DROP\n"
     "COMMIT\n", "-m statistic", 8),
    ("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m conntrack --ctstate UNTRACKED -j DROP\n"
     "COMMIT\n", "--ctstate UNTRACKED", 8),
    ("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m conntrack --ctdir ORIGINAL -j DROP\n"
     "COMMIT\n", "-m conntrack --ctdir", 8),
    ("*raw\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -j CT --notrack\nCOMMIT\n", "the CT target", 8),
])
def test_classic_refuses_what_2_4_did_not_have(iptables, what, line):
    sc = scenario("classic-2.4", iptables=iptables)
    with pytest.raises(ParseError) as exc:
        sc.build_box()
    assert "unsupported in profile classic-2.4" in str(exc.value)
    assert what in str(exc.value)
    assert exc.value.line == line


def test_imq_is_refused_in_the_modern_profile():
    # KERNEL-NOTES 2: "IMQ was an out-of-tree netfilter target and was never merged."
    sc = scenario("modern", iptables="*mangle\n:PREROUTING ACCEPT [0:0]\n"
                  "-A PREROUTING -j IMQ --todev 0\nCOMMIT\n")
    with pytest.raises(ParseError, match="unsupported in profile modern: the IMQ target"):
        sc.build_box()


# -- ipchains: Linux 2.2 --------------------------------------------------------------

def test_ipchains_paths():
    # IPCHAINS-HOWTO 4.1 (How Packets Traverse The Filters): input chain, demasquerade,
    # routing decision, then the local process or the forward chain, then the output
    # chain; locally generated packets only meet the output chain.
    assert ids(IPCHAINS.prerouting) == ["ipchains:input", "masq:demasq", "routing:input"]
    assert ids(IPCHAINS.forward) == ["forward", "ipchains:forward"]
    assert ids(IPCHAINS.local_out) == ["routing:output"]
    assert ids(IPCHAINS.postrouting) == ["ipchains:output", "tc:egress", "transmit"]
    assert get_profile("ipchains") is IPCHAINS


def test_forwarded_packet_traverses_input_forward_and_output_and_is_masqueraded():
    # ip_forward (2.2): call_fw_firewall (forward chain), then "If this fragment needs
    # masquerading, make it so" (ip_fw_masquerade), then call_out_firewall: the output
    # chain sees the masqueraded source.
    sc = load_scenario((SCENARIOS / "ipchains.toml").read_text(), file="ipchains.toml")
    out, reply, ssh, netbios = results(sc)
    assert out.to_json()["trace"] == ["ipchains:input:policy:ACCEPT",
                                      "ipchains:forward:rule:1",
                                      "ipchains:output:policy:ACCEPT"]
    assert out.fate.action == "transmit" and out.fate.iface == "eth1"
    assert (str(out.packet.ip.src), out.packet.sport) == ("203.0.113.2", 61000)
    assert out.packet.ip.ttl == 63
    # ip_local_deliver (2.2): ip_fw_demasquerade, then ip_route_input again and
    # ip_forward, which skips call_fw_firewall for IPSKB_MASQUERADED packets; the
    # HOWTO: a reply is demasqueraded and goes straight to the output chain.
    assert reply.to_json()["trace"] == ["ipchains:input:rule:1",
                                        "ipchains:input:policy:ACCEPT",
                                        "ipchains:output:policy:ACCEPT"]
    assert (str(reply.packet.ip.dst), reply.packet.dport) == ("192.168.1.10", 40000)
    assert reply.fate.action == "transmit" and reply.fate.iface == "eth0"
    # ip_rcv (2.2): "if (fwres == FW_REJECT) icmp_send(skb, ICMP_DEST_UNREACH,
    # ICMP_PORT_UNREACH, 0)"; -y matches SYN-only packets (HOWTO 4.1.4.5).
    assert ssh.fate.action == "reject" and ssh.fate.by == "ipchains:inwall:rule:1"
    (answer,) = ssh.to_json()["answers"]
    assert (answer["icmp_type"], answer["icmp_code"]) == (3, 3)
    # DENY drops silently; -l logs ("Packet log: input DENY eth1 PROTO=17 ...")
    assert netbios.fate.action == "drop" and netbios.to_json()["answers"] == []
    (log,) = [ev for ev in netbios.events if type(ev).__name__ == "LogLine"]
    assert log.line.startswith("Packet log: input DENY eth1 PROTO=17 198.51.100.9:137 "
                               "203.0.113.2:137 ")


def test_forward_chain_reject_answers_host_unreachable():
    # ip_forward (2.2): "case FW_REJECT: icmp_send(skb, ICMP_DEST_UNREACH,
    # ICMP_HOST_UNREACH, 0);"
    sc = scenario("ipchains", setup="ipchains -A forward -p tcp -d 0/0 80 -j REJECT\n")
    (res,) = results(sc)
    assert res.fate.action == "reject" and res.fate.by == "ipchains:forward:rule:1"
    (answer,) = res.to_json()["answers"]
    assert (answer["icmp_type"], answer["icmp_code"]) == (3, 1)


def test_syn_flag_y_and_its_inversion():
    # IPCHAINS-HOWTO 4.1.4.5: -y matches packets with SYN set and ACK and FIN clear;
    # "! -y" the others.
    rs = IpchainsRuleset()
    apply_ipchains(rs, "ipchains -A input -p tcp -y -j DENY", file="t", line=1)
    apply_ipchains(rs, "ipchains -A input -p tcp ! -y -j ACCEPT", file="t", line=2)
    from kptui.engine.packet import Packet

    syn = Packet.build(proto="tcp", src="1.1.1.1", dst="2.2.2.2", sport=1, dport=2, flags="S")
    synack = Packet.build(proto="tcp", src="1.1.1.1", dst="2.2.2.2", sport=1, dport=2,
                          flags="SA")
    first, second = rs.chains["input"].rules
    assert first.test(syn, "eth0") is None and first.test(synack, "eth0") is not None
    assert second.test(synack, "eth0") is None and second.test(syn, "eth0") is not None


def test_inversion_masks_ports_and_wildcard_interfaces():
    # HOWTO 4.1.4.1/4.1.4.2/4.1.4.4: "-s 192.168.1.0/24", "! " after the option inverts,
    # a port range follows the address, and "-i ppp+" matches every ppp interface.
    rs = IpchainsRuleset()
    apply_ipchains(rs, "ipchains -A input -p udp -s ! 10.0.0.0/255.0.0.0 1024: -d 0/0 ! 53 "
                   "-i eth+ -j DENY", file="t", line=1)
    (rule,) = rs.chains["input"].rules
    from kptui.engine.packet import Packet

    def udp(src: str, sport: int, dport: int):
        return Packet.build(proto="udp", src=src, dst="2.2.2.2", sport=sport, dport=dport)

    assert rule.test(udp("1.2.3.4", 2000, 54), "eth1") is None
    assert rule.test(udp("10.1.2.3", 2000, 54), "eth1") is not None
    assert rule.test(udp("1.2.3.4", 1000, 54), "eth1") is not None
    assert rule.test(udp("1.2.3.4", 2000, 53), "eth1") is not None
    assert rule.test(udp("1.2.3.4", 2000, 54), "ppp0") is not None


def test_user_chain_return_and_policy():
    # HOWTO 4.1.5.1: "RETURN ... jump to the end of the chain"; falling off a user chain
    # returns to the caller; the built-in chain's policy decides at its end.
    sc = scenario("ipchains", setup="ipchains -N sub\nipchains -A sub -p tcp -j RETURN\n"
                  "ipchains -A sub -j DENY\nipchains -A forward -j sub\n"
                  "ipchains -P forward REJECT\n")
    (res,) = results(sc)
    assert res.to_json()["trace"] == ["ipchains:input:policy:ACCEPT", "ipchains:forward:rule:1",
                                      "ipchains:sub:rule:1", "ipchains:forward:policy:REJECT"]
    assert res.fate.action == "reject"


@pytest.mark.parametrize(("command", "message"), [
    ("ipchains -A input -j MASQ", "MASQ is only valid in the forward chain"),
    ("ipchains -A forward -p tcp -j REDIRECT 3128", "REDIRECT is only valid in the input"),
    ("ipchains -N averylongname", "longer than 8 characters"),
    ("ipchains -P input MASQ", "Bad policy name"),
    ("ipchains -A input -j nosuch", "No chain by that name"),
    ("ipchains -A input -p all -s 0/0 80 -j DENY", "can only specify ports"),
    ("ipchains -A input -b -j DENY", "unsupported yet: ipchains option -b"),
])
def test_ipchains_refuses_what_ipchains_refuses(command, message):
    sc_text = scenario("ipchains").text.replace("dev eth1\n", f"dev eth1\n{command}\n", 1)
    with pytest.raises(ParseError) as exc:
        load_scenario(sc_text, file="t.toml").build_box()
    assert message in str(exc.value) and exc.value.line == 4


def test_iptables_and_ipchains_cannot_be_mixed():
    # IP-Masquerade-HOWTO 7.40: "Once the IPCHAINS module is loaded, you CANNOT use any
    # IPTABLES commands or modules since the code conflicts."
    with pytest.raises(ParseError, match="cannot be mixed") as exc:
        scenario("ipchains", setup="iptables -A INPUT -j DROP\n").build_box()
    assert exc.value.line == 4
    with pytest.raises(ParseError, match="cannot be mixed"):
        scenario("ipchains", iptables="*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n").build_box()
    with pytest.raises(ParseError, match="cannot be mixed"):
        scenario("classic-2.4", setup="ipchains -A input -j DENY\n").build_box()
    with pytest.raises(ParseError, match="unsupported in profile modern: ipchains"):
        scenario("modern", setup="ipchains -A input -j DENY\n").build_box()


def test_redirect_delivers_locally():
    # ip_rcv (2.2): "if (fwres == FW_REDIRECT && (IPCB(skb)->redirport = rport) != 0)
    # return ip_local_deliver(skb);" - a transparent proxy, the header unchanged.
    sc = scenario("ipchains", setup="ipchains -A input -p tcp -d 0/0 80 -j REDIRECT 3128\n",
                  packets=OUT_SYN)
    (res,) = results(sc)
    assert res.fate.action == "deliver" and "3128" in res.fate.message
    assert str(res.packet.ip.dst) == "198.51.100.7"


def test_local_packets_only_meet_the_output_chain():
    sc = scenario("ipchains", setup="ipchains -A output -p udp -j DENY\n",
                  packets='[[packets]]\niif = "local"\nproto = "udp"\nsrc = "203.0.113.2"\n'
                          'dst = "198.51.100.7"\nsport = 1\ndport = 2\n')
    (res,) = results(sc)
    assert res.to_json()["trace"] == ["ipchains:output:rule:1"]
    assert res.fate.action == "drop"


# -- the diagram and the TUI ----------------------------------------------------------

@pytest.mark.parametrize(("profile", "labels", "absent"), [
    ("classic-2.4", ["IPTABLES PREROUTING", "IPTABLES POSTROUTING", "IMQ", "QOS INGRESS"],
     ["raw PREROUTING", "conntrack confirm"]),
    ("ipchains", ["IPCHAINS INPUT", "IPCHAINS FORWARD", "IPCHAINS OUTPUT", "demasquerade"],
     ["mangle", "QOS INGRESS"]),
])
def test_each_profile_draws_its_own_picture(profile, labels, absent):
    from kptui.widgets.diagram import layout

    lines, _boxes = layout(get_profile(profile), "wide")
    text = "\n".join("".join(seg[0] for seg in line) for line in lines)
    for label in labels:
        assert label in text
    for label in absent:
        assert label not in text


async def test_palette_command_switches_profile_and_redraws():
    from kptui.app import KptApp
    from kptui.engine.debugger import Debugger
    from kptui.screens.commands import commands
    from kptui.screens.debugger import DebuggerScreen
    from kptui.widgets import PacketDiagram

    sc = load_scenario((SCENARIOS / "classic-2.4.toml").read_text(), file="classic-2.4.toml")
    app = KptApp(sc, debugger=Debugger.for_scenario(sc), name=sc.name)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DebuggerScreen)
        titles = {title: cb for title, cb, _ in commands(screen)}
        assert "Profile: ipchains" in titles and "Profile: modern" in titles
        titles["Profile: modern"]()
        await pilot.pause()
        # classic-2.4's IMQ target does not exist in the modern kernel: refused, unchanged
        assert app.screen is screen and screen.debugger.profile == "classic-2.4"
        # a scenario without IMQ switches and redraws
        text = "".join(line for line in sc.text.splitlines(keepends=True)
                       if "imq" not in line.lower() or "[[packets]]" in line)
        screen.scenario = load_scenario(text, file="x.toml")
        dict((t, c) for t, c, _ in commands(screen))["Profile: modern"]()
        await pilot.pause()
        new = app.screen
        assert isinstance(new, DebuggerScreen) and new is not screen
        assert new.debugger.profile == "modern" and 'profile = "modern"' in new.scenario.text
        ids_drawn = {box.stage.id for box in new.query_one(PacketDiagram).boxes}
        assert "raw:PREROUTING" in ids_drawn and "imq:PREROUTING" not in ids_drawn
