"""The historical profiles: classic-2.4 (the seed diagram) and ipchains (Linux 2.2).

No kernel on this machine runs them, so each expected result quotes the documentation
or source of its time. The sources, by the short names the tests use:

- KPTD: the seed Kernel Packet Traveling Diagram, https://www.docum.org/docum.org/kptd/
  (full copy: http://blog.chinaunix.net/uid-1728743-id-24202.html).
- PF-HOWTO, NAT-HOWTO, HACKING-HOWTO: Rusty Russell's Linux 2.4 Packet Filtering, NAT
  and netfilter Hacking HOWTOs, https://www.netfilter.org/documentation/HOWTO/
  (packet-filtering-HOWTO-10.html, NAT-HOWTO-3.html, netfilter-hacking-HOWTO-3.html).
- LINUX-2.4.0: the 2.4.0 source, GitHub Robin329/Linux-2.4.0 @ b787e46f
  (include/linux/netfilter_ipv4.h, net/sched/sch_ingress.c, net/ipv4/netfilter/*).
- IMQ-2.4: linuximq's 2.4 patches, GitHub imq/linuximq kernel/v2.4/linux-2.4.26-imq.diff
  @ b8bc6034; LARTC 9.7 "The Intermediate queueing device (IMQ)",
  http://lartc.org/howto/lartc.imq.html.
- IPCHAINS-HOWTO: Rusty Russell, v1.0.8 (July 2000),
  http://tldp.docs.sk/howto/linux-ipchains/IPCHAINS-HOWTO.html (section numbers of v1.0.8;
  the 1999 edition numbers 4.1.4.x as 4.1.3.x).
- IPCHAINS-1.3.9: the ipchains tool's ipchains.c and libipfwc, GitHub rhuitl/uClinux
  user/ipchains/ipchains.c @ f6de607e (its error messages, word for word).
- LINUX-2.2.1: GitHub linas/i370-linux-2.2.1 @ 8089b4c6, net/ipv4/ip_input.c and
  ip_forward.c; ip_fw.c as kept in LINUX-2.4.0 net/ipv4/netfilter/ipchains_core.c.
- IP-MASQ-HOWTO: David Ranch, 7.40 "IPCHAINS rulesets on 2.4.x kernels",
  http://en.tldp.org/HOWTO/IP-Masquerade-HOWTO/ipchains-on-2.4.x.html.
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
    # KPTD: "IPTABLES PREROUTING | conntrack | mangle <- MARK WRITE | IMQ | nat <- DEST
    # REWRITE", then "QOS INGRESS", then "INPUT ROUTING + PDBB".
    # LINUX-2.4.0 netfilter_ipv4.h: "NF_IP_PRI_CONNTRACK = -200, NF_IP_PRI_MANGLE = -150,
    # NF_IP_PRI_NAT_DST = -100" (no RAW: the raw table came with 2.6); sch_ingress.c:
    # "/* after ipt_filter */ ... NF_IP_PRE_ROUTING, NF_IP_PRI_FILTER + 1"; IMQ-2.4:
    # "NF_IP_PRE_ROUTING, NF_IP_PRI_MANGLE + 1".
    assert ids(CLASSIC_24.prerouting) == [
        "conntrack:PREROUTING", "mangle:PREROUTING", "imq:PREROUTING", "nat:PREROUTING",
        "tc:ingress", "routing:input"]


def test_classic_other_hooks_follow_the_seed_diagram():
    # KPTD: "IPTABLES INPUT | mangle | filter", "IPTABLES FORWARD | mangle | filter",
    # "IPTABLES OUTPUT | conntrack | mangle | nat | filter" after "OUTPUT ROUTING", and
    # "IPTABLES POSTROUTING | mangle | nat <- SOURCE REWRITE | IMQ" then "QOS EGRESS".
    # HACKING-HOWTO 3.2: "The mangle table hooks into all five netfilter hooks. (please
    # note this changed with kernel 2.4.18 ...)". NAT-HOWTO 3: "Source NAT is always done
    # post-routing"; "Destination NAT is always done before routing". SNAT in INPUT came
    # later: "Kernels prior to 2.6.36-rc1 don't have the ability to SNAT in the INPUT
    # chain" (iptables' libxt_SNAT.man).
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
    # LARTC 9.7: "imq registers itself with NF_IP_PRI_MANGLE + 1 priority which means
    # packets enter the imq device directly after the mangle PREROUTING chain has been
    # passed", and "For egress imq uses NF_IP_PRI_LAST": after nat's SNAT (priority 100),
    # so imq1 sees the masqueraded source and imq0 a reply not yet de-masqueraded.
    # HACKING-HOWTO 3.2, nat: "only the first packet of a new connection will traverse
    # the table: the result of this traversal is then applied to all future packets".
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
    # IMQ-2.4 imq_nf_queue: "if (!(dev->flags & IFF_UP)) { skb->imq_flags = 0;
    # nf_reinject(skb, info, NF_ACCEPT);" - unshaped; LARTC's example ends with
    # "ip link set imq0 up".
    sc = scenario("classic-2.4", iptables=IMQ_MANGLE.format(n=1))
    (res,) = results(sc)
    (imq,) = imq_events(res)
    assert (imq.device, imq.verdict) == ("imq1", "passed") and "down" in imq.detail
    assert res.fate.action == "transmit"


def test_imq_beyond_the_modules_devices_drops():
    # IMQ-2.4 imq.c: "static unsigned int numdevs = 2;" (MODULE_PARM numdevs); after
    # "numdevs--" imq_nf_queue has "if (index > numdevs) return -1;", and 2.4's nf_queue
    # frees a packet its queue handler refuses. `modprobe imq numdevs=4` makes imq0..imq3.
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
    # LARTC 9.7's example: "tc qdisc add dev imq0 root handle 1: htb default 20", "iptables
    # -t mangle -A PREROUTING -i eth0 -j IMQ --todev 0", "ip link set imq0 up".
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


def test_a_forwarded_packet_meets_only_forward_in_2_4_but_all_three_chains_in_2_2():
    # PF-HOWTO 10: "the INPUT and OUTPUT chains now only get locally-destined and
    # locally-generated packets. They used to see all incoming and all outgoing packets
    # respectively." The same lockdown of input and output passes a forwarded packet on
    # 2.4 and stops it on 2.2 (IPCHAINS-HOWTO 4.1, see test_ipchains_paths).
    classic = scenario("classic-2.4", iptables="*filter\n:INPUT DROP [0:0]\n"
                       ":FORWARD ACCEPT [0:0]\n:OUTPUT DROP [0:0]\nCOMMIT\n")
    (res,) = results(classic)
    assert res.fate.action == "transmit"
    assert not [s for s in stages_entered(res) if s in ("filter:INPUT", "filter:OUTPUT")]
    old = scenario("ipchains", setup="ipchains -P output DENY\n")
    (res,) = results(old)
    assert res.fate.action == "drop" and res.fate.by == "ipchains:output:policy"


def test_classic_dnat_before_routing_and_for_local_packets_in_output():
    # NAT-HOWTO 3: "Destination NAT is always done before routing, when the packet first
    # comes off the wire"; KPTD: OUTPUT's "nat <- DEST REWRITE DNAT or REDIRECT" for
    # locally generated packets. A DNAT to an inside host makes the packet for "this
    # machine" a forwarded one; in OUTPUT the local packet's destination changes too.
    nat = ("*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
           "-A PREROUTING -i eth1 -p tcp --dport 22 -j DNAT --to-destination 192.168.1.10\n"
           "-A OUTPUT -p udp --dport 53 -j DNAT --to-destination 192.168.1.53\n"
           "COMMIT\n")
    local = ('[[packets]]\niif = "local"\nproto = "udp"\nsrc = "203.0.113.2"\n'
             'dst = "198.51.100.7"\nsport = 1024\ndport = 53\n')
    forwarded, from_box = results(scenario("classic-2.4", iptables=nat,
                                           packets=IN_SYN + local))
    assert forwarded.fate.action == "transmit" and forwarded.fate.iface == "eth0"
    order = stages_entered(forwarded)
    assert order.index("nat:PREROUTING") < order.index("routing:input")
    assert str(from_box.packet.ip.dst) == "192.168.1.53"
    assert from_box.fate.action == "transmit" and from_box.fate.iface == "eth0"


def test_classic_nat_table_alone_means_connection_tracking():
    # In 2.4 the nat module holds ip_conntrack (LINUX-2.4.0 ip_nat_standalone.c:
    # "__MOD_INC_USE_COUNT(ip_conntrack_module);"), whose hooks track every packet
    # ("Connection tracking may drop packets, but never alters them, so make it the first
    # hook", ip_conntrack_standalone.c): an empty nat table still gives a connection its
    # conntrack entry. A modern kernel tracks only for a namespace with a user.
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
    # KERNEL-NOTES 2: "IMQ was an out-of-tree netfilter target and was never merged.";
    # iproute2's ifb-README: "IFB is intended to replace IMQ."
    sc = scenario("modern", iptables="*mangle\n:PREROUTING ACCEPT [0:0]\n"
                  "-A PREROUTING -j IMQ --todev 0\nCOMMIT\n")
    with pytest.raises(ParseError, match="unsupported in profile modern: the IMQ target"):
        sc.build_box()


# -- ipchains: Linux 2.2 --------------------------------------------------------------

def test_ipchains_paths():
    # IPCHAINS-HOWTO 4.1: "When a packet comes in ... the kernel uses the input chain to
    # decide its fate. If it survives that step, then the kernel decides where to send
    # the packet next (this is called routing). If it is destined for another machine, it
    # consults the forward chain. Finally, just before a packet is to go out, the kernel
    # consults the output chain." Local processes "send packets (which go through the
    # Routing Decision step, then traverse the output chain)".
    assert ids(IPCHAINS.prerouting) == ["ipchains:input", "masq:demasq", "routing:input"]
    assert ids(IPCHAINS.forward) == ["forward", "ipchains:forward"]
    assert ids(IPCHAINS.local_out) == ["routing:output"]
    assert ids(IPCHAINS.postrouting) == ["ipchains:output", "tc:egress", "transmit"]
    assert get_profile("ipchains") is IPCHAINS


def test_forwarded_packet_traverses_input_forward_and_output_and_is_masqueraded():
    # LINUX-2.2.1 ip_forward.c: call_fw_firewall (forward chain), then "If this fragment
    # needs masquerading, make it so" (ip_fw_masquerade), then call_out_firewall: the
    # output chain sees the masqueraded source, from port 61000 up (ip_masq.h:
    # "#define PORT_MASQ_BEGIN 61000").
    sc = load_scenario((SCENARIOS / "ipchains.toml").read_text(), file="ipchains.toml")
    out, reply, ssh, netbios = results(sc)
    assert out.to_json()["trace"] == ["ipchains:input:policy:ACCEPT",
                                      "ipchains:forward:rule:1",
                                      "ipchains:output:policy:ACCEPT"]
    assert out.fate.action == "transmit" and out.fate.iface == "eth1"
    assert (str(out.packet.ip.src), out.packet.sport) == ("203.0.113.2", 61000)
    assert out.packet.ip.ttl == 63
    # LINUX-2.2.1 ip_local_deliver: ip_fw_demasquerade, then ip_route_input again and
    # ip_forward, which skips call_fw_firewall for IPSKB_MASQUERADED packets. HOWTO 4.1:
    # "If the packet is a reply to a previously masqueraded packet, it is demasqueraded,
    # and skips straight to the output chain."
    assert reply.to_json()["trace"] == ["ipchains:input:rule:1",
                                        "ipchains:input:policy:ACCEPT",
                                        "ipchains:output:policy:ACCEPT"]
    assert (str(reply.packet.ip.dst), reply.packet.dport) == ("192.168.1.10", 40000)
    assert reply.fate.action == "transmit" and reply.fate.iface == "eth0"
    # LINUX-2.2.1 ip_rcv: "if (fwres==FW_REJECT) icmp_send(skb, ICMP_DEST_UNREACH,
    # ICMP_PORT_UNREACH, 0);"; -y matches connection-opening packets (HOWTO 4.1.4.5).
    assert ssh.fate.action == "reject" and ssh.fate.by == "ipchains:inwall:rule:1"
    (answer,) = ssh.to_json()["answers"]
    assert (answer["icmp_type"], answer["icmp_code"]) == (3, 3)
    # HOWTO 4.1.5.1: "DENY drops the packet as if it had never been received"; 4.1.5.2's
    # log line: "Packet log: input DENY eth0 PROTO=17 192.168.2.1:53 192.168.1.1:1025
    # L=34 S=0x00 I=18 F=0x0000 T=254"; ip_fw.c dump_packet appends "(#N)", the rule.
    assert netbios.fate.action == "drop" and netbios.to_json()["answers"] == []
    (log,) = [ev for ev in netbios.events if type(ev).__name__ == "LogLine"]
    assert log.line.startswith("Packet log: input DENY eth1 PROTO=17 198.51.100.9:137 "
                               "203.0.113.2:137 ")


def test_forward_chain_reject_answers_host_unreachable():
    # LINUX-2.2.1 ip_forward: "case FW_REJECT: icmp_send(skb, ICMP_DEST_UNREACH,
    # ICMP_HOST_UNREACH, 0);"
    sc = scenario("ipchains", setup="ipchains -A forward -p tcp -d 0/0 80 -j REJECT\n")
    (res,) = results(sc)
    assert res.fate.action == "reject" and res.fate.by == "ipchains:forward:rule:1"
    (answer,) = res.to_json()["answers"]
    assert (answer["icmp_type"], answer["icmp_code"]) == (3, 1)


def test_syn_flag_y_and_its_inversion():
    # HOWTO 4.1.4.5: SYN packets are "packets with the SYN flag set, and the FIN and ACK
    # flags cleared"; "this flag can be inverted by preceding it with a `!'". The kernel
    # tests something else, and the kernel is what filters: ip_fw.c ip_fw_check,
    # "if(tcp->syn && !(tcp->ack || tcp->rst)) tcpsyn=1;" - FIN is not looked at.
    rs = IpchainsRuleset()
    apply_ipchains(rs, "ipchains -A input -p tcp -y -j DENY", file="t", line=1)
    apply_ipchains(rs, "ipchains -A input -p tcp ! -y -j ACCEPT", file="t", line=2)
    from kptui.engine.packet import Packet

    def tcp(flags: str):
        return Packet.build(proto="tcp", src="1.1.1.1", dst="2.2.2.2", sport=1, dport=2,
                            flags=flags)

    first, second = rs.chains["input"].rules
    assert first.test(tcp("S"), "eth0") is None and first.test(tcp("SA"), "eth0") is not None
    assert first.test(tcp("SR"), "eth0") is not None
    assert first.test(tcp("SF"), "eth0") is None  # FIN is not tested by ip_fw_check
    assert second.test(tcp("SA"), "eth0") is None and second.test(tcp("S"), "eth0") is not None


def test_inversion_masks_ports_and_wildcard_interfaces():
    # HOWTO 4.1.4.1: "such as `199.95.207.0/24' or `199.95.207.0/255.255.255.0'"; 4.1.4.2:
    # "`-s ! localhost' matches any packet not coming from localhost"; 4.1.4.3.1: a range
    # "`6000:6010'... If the upper bound is omitted, it defaults to 65535"; 4.1.4.4: "to
    # specify a rule which matches all PPP interfaces, the -i ppp+ option would be used".
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
    # HOWTO 4.1.5.1: "RETURN which is identical to falling off the end of the chain
    # immediately"; 4.1.5.11: "if a packet falls off the end of a user-defined chain,
    # traversal resumes at the previous chain", and a built-in chain's policy decides.
    sc = scenario("ipchains", setup="ipchains -N sub\nipchains -A sub -p tcp -j RETURN\n"
                  "ipchains -A sub -j DENY\nipchains -A forward -j sub\n"
                  "ipchains -P forward REJECT\n")
    (res,) = results(sc)
    assert res.to_json()["trace"] == ["ipchains:input:policy:ACCEPT", "ipchains:forward:rule:1",
                                      "ipchains:sub:rule:1", "ipchains:forward:policy:REJECT"]
    assert res.fate.action == "reject"


# IPCHAINS-1.3.9's messages, word for word (ipchains.c exit_error, libipfwc strerror)
@pytest.mark.parametrize(("command", "message"), [
    ("ipchains -A input -j MASQ", "masquerading not allowed for input and output chains"),
    ("ipchains -A forward -p tcp -j REDIRECT 3128",
     "redirect not allowed for output and forward chains"),
    ("ipchains -A input -p icmp -j REDIRECT 3128", "redirecting only allowed with TCP or UDP"),
    ("ipchains -N averylongname", "chain name `averylongname' too long (must be under 8 "
                                  "chars)"),
    ("ipchains -P input MASQ", "`-P MASQ' only valid for `forward' chain."),
    ("ipchains -P input RETURN", "Invalid policy `RETURN' for -P"),
    ("ipchains -A nosuch -j DENY", "No chain by that name"),
    ("ipchains -A input -j nosuch", "No target by that name"),
    ("ipchains -A input -p all -s 0/0 80 -j DENY", "no ports allowed without specific "
                                                     "protocol"),
    ("ipchains -A input -p 47 -s 0/0 80 -j DENY", "can only specify ports for icmp, tcp or "
                                                   "udp"),
    ("ipchains -A input -p udp -y -j DENY", "-y only allowed with TCP protocol"),
    ("ipchains -A input -b -j DENY", "unsupported yet: ipchains option -b"),
])
def test_ipchains_refuses_what_ipchains_refuses(command, message):
    sc_text = scenario("ipchains").text.replace("dev eth1\n", f"dev eth1\n{command}\n", 1)
    with pytest.raises(ParseError) as exc:
        load_scenario(sc_text, file="t.toml").build_box()
    assert message in str(exc.value) and exc.value.line == 4


def test_iptables_and_ipchains_cannot_be_mixed():
    # IP-MASQ-HOWTO 7.40: "Once the IPCHAINS module is loaded, you CANNOT use any
    # IPTABLES commands or modules since the code conflicts."; PF-HOWTO 8: ipchains.o
    # and ipfwadm.o "are incompatible with ip_tables.o!"
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
    # LINUX-2.2.1 ip_rcv: "if (fwres==FW_REDIRECT && (IPCB(skb)->redirport = rport) !=
    # 0) return ip_local_deliver(skb);" - a transparent proxy, the header unchanged.
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


def test_local_to_local_goes_out_through_output_and_back_in_through_input_on_lo():
    # IPCHAINS-HOWTO 4.1: "If packets from a local process are destined for a local
    # process, they will go through the output chain with interface set to `lo', then
    # return through the input chain with interface also `lo'."
    sc = scenario("ipchains", setup="ipchains -A input -i lo -p udp -j DENY\n",
                  packets='[[packets]]\niif = "local"\nproto = "udp"\nsrc = "192.168.1.1"\n'
                          'dst = "192.168.1.1"\nsport = 1\ndport = 2\n')
    (res,) = results(sc)
    assert res.to_json()["trace"] == ["ipchains:output:policy:ACCEPT", "ipchains:input:rule:1"]
    assert res.fate.action == "drop"


# -- the diagram and the TUI ----------------------------------------------------------

@pytest.mark.parametrize(("profile", "labels", "absent"), [
    # the seed's 2.4 boxes; no raw table in 2.4, and the seed does not draw the confirm
    ("classic-2.4", ["IPTABLES PREROUTING", "IPTABLES POSTROUTING", "IMQ", "INGRESS"],
     ["raw", "ct confirm"]),
    ("ipchains", ["IPCHAINS input", "IPCHAINS forward", "IPCHAINS output", "demasq"],
     ["mangle", "INGRESS"]),
])
def test_each_profile_draws_its_own_picture(profile, labels, absent):
    from kptui.widgets.diagram import HOOK_TITLES
    from kptui.widgets.diagram_layout import lay_out

    grid = lay_out(get_profile(profile), "wide", titles=HOOK_TITLES.get(profile)).grid
    text = "\n".join("".join(ch for ch, _ in row) for row in grid.rows)
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
