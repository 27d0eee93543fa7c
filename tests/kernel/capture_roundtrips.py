"""The boxes of the capture round trips (tests/test_capture_roundtrip.py).

Each is a real box a user might point `kptui capture` at; its packets are asked of the
captured scenario by `kptui verify`, against the same kernel. Expected answers are the
kernel's, so they are not written here: verify compares.
"""

from __future__ import annotations

import socket
import time

from capture_boxes import Box

NAT_ROUTER = Box(
    name="nat-router",
    interfaces=("eth0", "eth1"),
    commands="""
ip addr add 192.168.1.1/24 dev eth0
ip addr add 203.0.113.2/24 dev eth1
ip route add default via 203.0.113.1
sysctl -qw net.ipv4.ip_forward=1
""",
    iptables="""
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i eth1 -p tcp --dport 8080 -j DNAT --to-destination 192.168.1.10:80
-A POSTROUTING -o eth1 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -i eth0 -o eth1 -j ACCEPT
-A FORWARD -i eth1 -d 192.168.1.10/32 -p tcp --dport 80 -j ACCEPT
COMMIT
""",
    packets="""
[[packets]]
iif = "eth1"
proto = "tcp"
src = "198.51.100.7"
dst = "203.0.113.2"
sport = 40000
dport = 8080

[[packets]]
reply_to = 0

[[packets]]
iif = "eth0"
proto = "tcp"
src = "192.168.1.10"
dst = "198.51.100.7"
sport = 5000
dport = 443

[[packets]]
iif = "eth1"
proto = "tcp"
src = "198.51.100.9"
dst = "192.168.1.10"
sport = 40001
dport = 22
""",
    expect=('"net.ipv4.ip_forward" = 1', "ip route add default via 203.0.113.1 dev eth1",
            "-j MASQUERADE"),
)

POLICY_FWMARK = Box(
    name="policy-fwmark",
    interfaces=("eth0", "eth1", "eth2"),
    commands="""
ip addr add 10.0.0.1/24 dev eth0
ip addr add 198.51.100.2/24 dev eth1
ip addr add 203.0.113.2/24 dev eth2
ip route add default via 198.51.100.1
ip route add default via 203.0.113.1 dev eth2 table 100
ip route add 10.0.0.0/24 dev eth0 table 100
ip rule add fwmark 0x1/0xff lookup 100 priority 1000
ip rule add from 10.0.0.128/25 lookup 100 priority 1100
sysctl -qw net.ipv4.ip_forward=1
""",
    iptables="""
*mangle
:PREROUTING ACCEPT [0:0]
-A PREROUTING -i eth0 -p tcp --dport 80 -j MARK --set-mark 0x1
COMMIT
""",
    packets="""
[[packets]]
iif = "eth0"
proto = "tcp"
src = "10.0.0.5"
dst = "192.0.2.80"
sport = 40000
dport = 80

[[packets]]
iif = "eth0"
proto = "tcp"
src = "10.0.0.5"
dst = "192.0.2.80"
sport = 40000
dport = 443

[[packets]]
iif = "eth0"
proto = "udp"
src = "10.0.0.200"
dst = "192.0.2.53"
sport = 5353
dport = 53
""",
    expect=("ip rule add priority 1000 from all fwmark 0x1/0xff lookup 100",
            "ip route add default via 203.0.113.1 dev eth2 table 100"),
)

CONNTRACK_FLOWS = Box(
    name="conntrack-flows",
    interfaces=("eth0", "eth1"),
    commands="""
ip addr add 192.168.1.1/24 dev eth0
ip addr add 203.0.113.2/24 dev eth1
ip route add default via 203.0.113.1
sysctl -qw net.ipv4.ip_forward=1
conntrack -I -p tcp -s 192.168.1.10 -d 198.51.100.7 --sport 40000 --dport 443 --state ESTABLISHED -u SEEN_REPLY,ASSURED -t 3600 --src-nat 203.0.113.2:41000
conntrack -I -p tcp -s 198.51.100.8 -d 203.0.113.2 --sport 50000 --dport 2222 --state ESTABLISHED -u SEEN_REPLY,ASSURED -t 3600 --dst-nat 192.168.1.20:22
conntrack -I -p udp -s 192.168.1.11 -d 198.51.100.53 --sport 5353 --dport 53 -u SEEN_REPLY -t 120 --src-nat 203.0.113.2:5353
conntrack -I -p tcp -s 192.168.1.12 -d 198.51.100.7 --sport 40002 --dport 80 --state SYN_SENT -t 100 --src-nat 203.0.113.2:40002
""",  # noqa: E501
    iptables="""
*nat
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o eth1 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
COMMIT
""",
    packets="""
# the reply of the masqueraded https connection: de-SNAT to 192.168.1.10:40000
[[packets]]
iif = "eth1"
proto = "tcp"
src = "198.51.100.7"
dst = "203.0.113.2"
sport = 443
dport = 41000
flags = "A"

# its client, mid-stream
[[packets]]
iif = "eth0"
proto = "tcp"
src = "192.168.1.10"
dst = "198.51.100.7"
sport = 40000
dport = 443
flags = "A"

# the port-forwarded ssh connection: DNAT to 192.168.1.20:22 without a nat rule
[[packets]]
iif = "eth1"
proto = "tcp"
src = "198.51.100.8"
dst = "203.0.113.2"
sport = 50000
dport = 2222
flags = "A"

# the dns answer of the udp flow
[[packets]]
iif = "eth1"
proto = "udp"
src = "198.51.100.53"
dst = "203.0.113.2"
sport = 53
dport = 5353

# the SYN-ACK of the unreplied connection: ESTABLISHED by the SYN_SENT entry
[[packets]]
iif = "eth1"
proto = "tcp"
src = "198.51.100.7"
dst = "203.0.113.2"
sport = 80
dport = 40002
flags = "SA"

# no entry: NEW, dropped by the policy
[[packets]]
iif = "eth1"
proto = "tcp"
src = "198.51.100.9"
dst = "192.168.1.10"
sport = 40001
dport = 22
""",
    expect=("conntrack = '''", "ESTABLISHED src=192.168.1.10 dst=198.51.100.7"),
)

TC_SHAPING = Box(
    name="tc-shaping",
    interfaces=("eth0", "eth1"),
    commands="""
ip addr add 10.0.0.1/24 dev eth0
ip addr add 10.1.0.1/24 dev eth1
sysctl -qw net.ipv4.ip_forward=1
tc qdisc add dev eth1 root handle 1: htb default 20
tc class add dev eth1 parent 1: classid 1:1 htb rate 10mbit
tc class add dev eth1 parent 1:1 classid 1:10 htb rate 5mbit ceil 10mbit prio 1
tc class add dev eth1 parent 1:1 classid 1:20 htb rate 1mbit ceil 2mbit prio 2
tc qdisc add dev eth1 parent 1:10 handle 10: pfifo limit 10
tc qdisc add dev eth1 parent 1:20 handle 20: bfifo limit 20000
tc filter add dev eth1 parent 1: protocol ip prio 1 u32 match ip dport 22 0xffff flowid 1:10
tc filter add dev eth1 parent 1: protocol ip prio 2 u32 match ip src 10.0.0.7/32 flowid 1:20
tc qdisc add dev eth0 root handle 5: tbf rate 1mbit burst 5k latency 50ms
""",
    packets="""
[[packets]]
iif = "eth0"
proto = "tcp"
src = "10.0.0.5"
dst = "10.1.0.9"
sport = 40000
dport = 22

[[packets]]
iif = "eth0"
proto = "udp"
src = "10.0.0.7"
dst = "10.1.0.9"
sport = 5000
dport = 5001

[[packets]]
iif = "eth1"
proto = "udp"
src = "10.1.0.9"
dst = "10.0.0.5"
sport = 5001
dport = 5000
""",
    expect=("tc qdisc add dev eth1 root handle 1: htb", "tc class add dev eth1 parent 1:1 "
            "classid 1:10 htb", "tbf rate 1000000bit"),
)

IPSET_BLOCK = Box(
    name="ipset-block",
    interfaces=("eth0", "eth1"),
    commands="""
ip addr add 192.0.2.1/24 dev eth0
ip addr add 198.51.100.1/24 dev eth1
sysctl -qw net.ipv4.ip_forward=1
""",
    ipset="""
create blocked hash:net family inet hashsize 1024 maxelem 65536
add blocked 203.0.113.0/24
add blocked 198.51.100.77
create allowed hash:ip,port family inet
add allowed 192.0.2.10,tcp:22
""",
    iptables="""
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m set --match-set blocked src -j DROP
-A FORWARD -m set --match-set blocked src -j DROP
-A FORWARD -m set --match-set allowed dst,dst -j ACCEPT
-A FORWARD -p tcp --dport 22 -j REJECT --reject-with tcp-reset
COMMIT
""",
    packets="""
[[packets]]
iif = "eth1"
proto = "tcp"
src = "198.51.100.77"
dst = "192.0.2.10"
sport = 40000
dport = 22

[[packets]]
iif = "eth1"
proto = "tcp"
src = "198.51.100.78"
dst = "192.0.2.10"
sport = 40000
dport = 22

[[packets]]
iif = "eth1"
proto = "tcp"
src = "198.51.100.78"
dst = "192.0.2.11"
sport = 40000
dport = 22

[[packets]]
iif = "eth1"
proto = "icmp"
icmp_type = 8
src = "198.51.100.77"
dst = "198.51.100.1"
""",
    expect=("ipset = '''", "create blocked hash:net"),
)

BRIDGE = Box(
    name="bridge-box",
    interfaces=("eth0", "eth1", "eth2"),
    commands="""
ip link add br0 type bridge
ip link set eth0 master br0
ip link set eth2 master br0
ip link set br0 up
ip addr add 192.168.5.1/24 dev br0
ip addr add 10.0.0.1/24 dev eth1
ip route add default via 10.0.0.254
sysctl -qw net.ipv4.ip_forward=1
""",
    iptables="""
*filter
:FORWARD DROP [0:0]
-A FORWARD -i br0 -o eth1 -j ACCEPT
COMMIT
""",
    packets="""
[[packets]]
iif = "br0"
proto = "tcp"
src = "192.168.5.20"
dst = "198.51.100.7"
sport = 40000
dport = 443

[[packets]]
iif = "eth1"
proto = "tcp"
src = "198.51.100.7"
dst = "192.168.5.20"
sport = 443
dport = 40000
""",
    expect=("link br0: kind bridge is not modelled", "link eth0: a port of br0",
            'name = "br0"'),
)

ROUTE_VARIETY = Box(
    name="route-variety",
    interfaces=("eth0", "eth1", "eth2"),
    commands="""
ip addr add 10.0.0.1/24 dev eth0
ip addr add 10.1.0.1/24 dev eth1
ip addr add 10.2.0.1/24 dev eth2
ip route add default via 10.1.0.254
ip route add 172.16.0.0/16 via 10.2.0.254 metric 5
ip route add 172.16.0.0/16 via 10.1.0.254 metric 10 proto static
ip route add blackhole 192.0.2.0/24
ip route add unreachable 192.0.2.128/25 table 200
ip route add prohibit 198.51.100.0/24 table 200
ip route add throw 203.0.113.0/24 table 200
ip route add default via 10.2.0.254 table 200
ip route add 172.20.0.0/16 nexthop via 10.1.0.254 weight 1 nexthop via 10.2.0.254 weight 3
ip route add 172.30.0.0/16 dev eth2 src 10.2.0.1 scope link
ip rule add priority 100 iif eth0 to 192.0.2.128/25 lookup 200
ip rule add priority 200 iif eth0 ipproto udp dport 53 lookup 200
ip rule add priority 300 from 10.0.0.64/26 goto 400
ip rule add priority 400 iif eth0 to 198.51.100.0/24 lookup 200
ip rule add priority 500 from 10.0.0.66 prohibit
sysctl -qw net.ipv4.ip_forward=1
""",
    packets="""
[[packets]]
iif = "eth0"
proto = "tcp"
src = "10.0.0.5"
dst = "172.16.1.1"
sport = 40000
dport = 80

[[packets]]
iif = "eth0"
proto = "udp"
src = "10.0.0.5"
dst = "192.0.2.200"
sport = 4000
dport = 4000

[[packets]]
iif = "eth0"
proto = "udp"
src = "10.0.0.5"
dst = "8.8.8.8"
sport = 4000
dport = 53

[[packets]]
iif = "eth0"
proto = "tcp"
src = "10.0.0.70"
dst = "198.51.100.9"
sport = 40000
dport = 80

[[packets]]
iif = "eth0"
proto = "tcp"
src = "10.0.0.5"
dst = "192.0.2.9"
sport = 40000
dport = 80

[[packets]]
iif = "eth0"
proto = "udp"
src = "10.0.0.5"
dst = "203.0.113.9"
sport = 4000
dport = 53

[[packets]]
iif = "eth0"
proto = "tcp"
src = "10.0.0.66"
dst = "172.30.1.1"
sport = 40000
dport = 80

[[packets]]
iif = "local"
proto = "udp"
src = "10.2.0.1"
dst = "172.30.1.1"
sport = 4000
dport = 4000
""",
    expect=("ip route add 172.16.0.0/16 via 10.1.0.254 dev eth1 proto static metric 10",
            "ip rule add priority 300 from 10.0.0.64/26 goto 400"),
)

SYSCTLS = Box(
    name="sysctls",
    interfaces=("eth0", "eth1", "eth2"),
    commands="""
ip addr add 10.0.0.1/24 dev eth0
ip addr add 10.1.0.1/24 dev eth1
ip addr add 10.2.0.1/24 dev eth2
ip route add default via 10.1.0.254
sysctl -qw net.ipv4.ip_forward=1
sysctl -qw net.ipv4.conf.eth2.forwarding=0
sysctl -qw net.ipv4.conf.default.rp_filter=2
sysctl -qw net.ipv4.conf.eth1.rp_filter=1
sysctl -qw net.ipv4.conf.eth0.route_localnet=1
sysctl -qw net.ipv4.ip_default_ttl=100
sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0
""",
    iptables="""
*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate INVALID -j DROP
COMMIT
""",
    packets="""
# rp_filter 1 on eth1: 10.0.0.9 is reached through eth0
[[packets]]
iif = "eth1"
proto = "udp"
src = "10.0.0.9"
dst = "10.2.0.9"
sport = 4000
dport = 4000

# forwarding is off on eth2
[[packets]]
iif = "eth2"
proto = "udp"
src = "10.2.0.9"
dst = "10.0.0.9"
sport = 4000
dport = 4000

# forwarded normally
[[packets]]
iif = "eth0"
proto = "udp"
src = "10.0.0.9"
dst = "10.2.0.9"
sport = 4000
dport = 4000

# tcp_loose 0: a bare ACK is INVALID
[[packets]]
iif = "eth0"
proto = "tcp"
src = "10.0.0.9"
dst = "10.2.0.9"
sport = 40000
dport = 80
flags = "A"

# the box's own packet has ttl 100
[[packets]]
iif = "local"
proto = "udp"
src = "10.0.0.1"
dst = "10.0.0.9"
sport = 4000
dport = 4000
ttl = 100
""",
    expect=('"net.ipv4.conf.eth2.forwarding" = 0', '"net.ipv4.conf.eth1.rp_filter" = 1',
            '"net.ipv4.conf.default.rp_filter" = 2'),
)

ADDRESSES = Box(
    name="addresses-reconciled",
    interfaces=("eth0", "eth1"),
    commands="""
ip addr add 10.0.0.1/24 dev eth0
ip addr add 10.0.0.2/24 dev eth0
ip addr add 10.5.0.1/24 dev eth0 noprefixroute
ip addr add 10.1.0.1/24 dev eth1
ip route del 10.1.0.0/24 dev eth1
ip route add 10.1.0.0/24 dev eth1 metric 10 proto static
ip route add local 10.99.0.0/16 dev lo
ip route add 10.5.0.0/16 dev eth1 src 10.5.0.1
ip addr add 192.0.2.1/32 dev lo
sysctl -qw net.ipv4.ip_forward=1
""",
    packets="""
[[packets]]
iif = "eth0"
proto = "udp"
src = "10.0.0.9"
dst = "10.99.1.1"
sport = 4000
dport = 4000

[[packets]]
iif = "eth0"
proto = "udp"
src = "10.0.0.9"
dst = "10.1.0.9"
sport = 4000
dport = 4000

[[packets]]
iif = "eth1"
proto = "udp"
src = "10.1.0.9"
dst = "10.5.0.9"
sport = 4000
dport = 4000

[[packets]]
iif = "eth1"
proto = "udp"
src = "10.1.0.9"
dst = "192.0.2.1"
sport = 4000
dport = 4000
""",
    expect=("ip route del 10.5.0.0/24 dev eth0 proto kernel scope link src 10.5.0.1",
            '"10.0.0.1/24", "10.5.0.1/24", "10.0.0.2/24"',  # kernel order: primaries first
            "ip addr add 192.0.2.1/32 dev lo"),
)

INGRESS_IFB = Box(
    name="ingress-ifb",
    interfaces=("eth0", "eth1"),
    commands="""
ip addr add 192.0.2.1/24 dev eth0
ip addr add 198.51.100.1/24 dev eth1
sysctl -qw net.ipv4.ip_forward=1
ip link add ifb0 type ifb
ip link set ifb0 up
tc qdisc add dev ifb0 root handle 2: htb default 20
tc class add dev ifb0 parent 2: classid 2:10 htb rate 10mbit
tc class add dev ifb0 parent 2: classid 2:20 htb rate 10mbit
tc filter add dev ifb0 parent 2: protocol ip prio 1 u32 match ip src 192.0.2.10/32 flowid 2:10
tc qdisc add dev eth0 clsact
tc filter add dev eth0 ingress protocol ip prio 1 u32 match u32 0 0 at 0 action mirred egress redirect dev ifb0
""",  # noqa: E501
    packets="""
[[packets]]
iif = "eth0"
proto = "udp"
src = "192.0.2.10"
dst = "198.51.100.10"
sport = 1000
dport = 2000

[[packets]]
iif = "eth0"
proto = "udp"
src = "192.0.2.11"
dst = "198.51.100.10"
sport = 1000
dport = 2000
""",
    expect=("ip link add ifb0 type ifb", "tc qdisc add dev eth0 clsact",
            "action mirred egress redirect dev ifb0"),
)

NATIVE_NFT = Box(
    name="native-nftables",
    interfaces=("eth0",),
    commands="""
ip addr add 192.0.2.1/24 dev eth0
nft add table ip6 mine
nft add chain ip6 mine input { type filter hook input priority 0 ; policy accept ; }
nft add rule ip6 mine input tcp dport 22 counter accept
""",
    iptables="""
*filter
:INPUT ACCEPT [0:0]
-A INPUT -p tcp --dport 22 -j ACCEPT
-A INPUT -p tcp -j DROP
COMMIT
""",
    packets="""
[[packets]]
iif = "eth0"
proto = "tcp"
src = "192.0.2.9"
dst = "192.0.2.1"
sport = 40000
dport = 22

[[packets]]
iif = "eth0"
proto = "tcp"
src = "192.0.2.9"
dst = "192.0.2.1"
sport = 40000
dport = 23
""",
    expect=("nftables = '''", "table ip6 mine", "unsupported yet: native nftables table ip6 "
            "mine"),
)

REAL_TRAFFIC = Box(
    name="real-traffic",
    interfaces=("eth0", "eth1"),
    commands="""
ip addr add 192.168.1.1/24 dev eth0
ip addr add 203.0.113.2/24 dev eth1
sysctl -qw net.ipv4.ip_forward=1
""",
    iptables="""
*nat
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o eth1 -j MASQUERADE
COMMIT
*filter
:FORWARD DROP [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT
-A FORWARD -i eth0 -o eth1 -m conntrack --ctstate NEW -j ACCEPT
COMMIT
""",
    packets="",  # made by real_traffic(): the reply of the flow the capture saw
    expect=("conntrack = '''", "src=192.168.1.10 dst=203.0.113.9"),
)


def real_traffic(lab, ns: str) -> str:  # noqa: ANN001 - a kptui.verify.netns.Lab
    """A real UDP flow through the box, both ways (a client in eth0's peer, a server in
    eth1's peer), so the kernel's own conntrack entry, with its masquerade binding, is
    in the table the capture reads; then the reply packet to ask about."""
    client, server = lab.names[1], lab.names[2]  # the peers of eth0 and eth1
    lab.run(client, ["ip", "addr", "add", "192.168.1.10/24", "dev", "kpcq0"])
    lab.run(client, ["ip", "route", "add", "default", "via", "192.168.1.1"])
    lab.run(server, ["ip", "addr", "add", "203.0.113.9/24", "dev", "kpcq1"])
    srv = lab.socket_in(server, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    cli = lab.socket_in(client, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    try:
        srv.bind(("203.0.113.9", 5001))
        srv.settimeout(3)
        cli.settimeout(3)
        cli.bind(("192.168.1.10", 5000))
        cli.sendto(b"ping", ("203.0.113.9", 5001))
        _data, peer = srv.recvfrom(100)
        srv.sendto(b"pong", peer)
        cli.recvfrom(100)
        time.sleep(0.1)
    finally:
        srv.close()
        cli.close()
    return f"""
# the server's next datagram, to the masqueraded port: de-SNAT to the client
[[packets]]
iif = "eth1"
proto = "udp"
src = "203.0.113.9"
dst = "203.0.113.2"
sport = 5001
dport = {peer[1]}

# the client's next one
[[packets]]
iif = "eth0"
proto = "udp"
src = "192.168.1.10"
dst = "203.0.113.9"
sport = 5000
dport = 5001
"""


BOXES = (NAT_ROUTER, POLICY_FWMARK, CONNTRACK_FLOWS, TC_SHAPING, IPSET_BLOCK, BRIDGE,
         ROUTE_VARIETY, SYSCTLS, ADDRESSES, INGRESS_IFB, NATIVE_NFT, REAL_TRAFFIC)
PREPARE = {"real-traffic": real_traffic}


# Boxes whose kinds this machine's kernel lacks (vlan, dummy): they run on Debian's
# stock kernel in qemu (tests/kernel/vmkernel.py), as the NAME.vm verify scenarios do.
BRIDGE_VLAN = Box(
    name="bridge-vlan",
    interfaces=("eth0", "eth1", "eth2"),
    commands="""
ip link add br0 type bridge
ip link set eth0 master br0
ip link set br0 up
ip addr add 192.168.5.1/24 dev br0
ip link add link eth1 name eth1.100 type vlan id 100
ip link set eth1.100 up
ip addr add 10.100.0.1/24 dev eth1.100
ip addr add 10.0.0.1/24 dev eth2
ip link add dummy0 type dummy
ip link set dummy0 up
ip addr add 172.16.99.1/32 dev dummy0
ip route add default via 10.0.0.254
ip route add 10.200.0.0/16 via 10.100.0.254
sysctl -qw net.ipv4.ip_forward=1
sysctl -qw net.ipv4.conf.eth1/100.rp_filter=1
""",
    iptables="""
*filter
:FORWARD DROP [0:0]
-A FORWARD -i br0 -o eth2 -j ACCEPT
-A FORWARD -i br0 -o eth1.100 -j ACCEPT
COMMIT
""",
    packets="""
[[packets]]
iif = "br0"
proto = "tcp"
src = "192.168.5.20"
dst = "198.51.100.7"
sport = 40000
dport = 443

[[packets]]
iif = "br0"
proto = "udp"
src = "192.168.5.20"
dst = "10.200.1.1"
sport = 4000
dport = 53

[[packets]]
iif = "eth1.100"
proto = "udp"
src = "10.9.9.9"
dst = "192.168.5.20"
sport = 53
dport = 4000

[[packets]]
iif = "eth2"
proto = "udp"
src = "198.51.100.7"
dst = "172.16.99.1"
sport = 53
dport = 4000
""",
    expect=("link eth1.100: kind vlan (vlan id 100 on eth1) is not modelled",
            "link br0: kind bridge is not modelled", "ip link add dummy0 type dummy",
            '"net.ipv4.conf.eth1/100.rp_filter" = 1'),
)
TC_FW_MATCHALL = Box(
    name="tc-fw-matchall",
    interfaces=("eth0", "eth1"),
    commands="""
ip addr add 10.0.0.1/24 dev eth0
ip addr add 10.1.0.1/24 dev eth1
sysctl -qw net.ipv4.ip_forward=1
tc qdisc add dev eth1 root handle 1: htb default 30
tc class add dev eth1 parent 1: classid 1:10 htb rate 5mbit
tc class add dev eth1 parent 1: classid 1:20 htb rate 5mbit
tc class add dev eth1 parent 1: classid 1:30 htb rate 5mbit
tc filter add dev eth1 parent 1: protocol ip prio 1 handle 7 fw classid 1:10
tc filter add dev eth1 parent 1: protocol ip prio 2 u32 match ip dport 80 0xffff flowid 1:30
tc filter add dev eth1 parent 1: protocol ip prio 3 matchall classid 1:20
""",
    iptables="""
*mangle
:FORWARD ACCEPT [0:0]
-A FORWARD -p udp --dport 53 -j MARK --set-mark 7
COMMIT
""",
    packets="""
[[packets]]
iif = "eth0"
proto = "udp"
src = "10.0.0.5"
dst = "10.1.0.9"
sport = 4000
dport = 53

[[packets]]
iif = "eth0"
proto = "tcp"
src = "10.0.0.5"
dst = "10.1.0.9"
sport = 40000
dport = 80

[[packets]]
iif = "eth0"
proto = "tcp"
src = "10.0.0.5"
dst = "10.1.0.9"
sport = 40000
dport = 443
""",
    expect=("prio 1 handle 0x7 fw classid 1:10", "prio 3 matchall flowid 1:20"),
)
VM_BOXES = (BRIDGE_VLAN, TC_FW_MATCHALL)
