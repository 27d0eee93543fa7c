"""The packet model: fields, checksums and wire bytes.

Wire vectors were captured on kernel 6.18 in a netns (two namespaces joined by a
veth pair with tx checksum offload off, read with an AF_PACKET socket), so the
checksums in them are the kernel's own.
"""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kptui.engine.errors import FieldError, KptuiError, UnsupportedError
from kptui.engine.packet import (
    FIELDS,
    TCP_ACK,
    TCP_CWR,
    TCP_ECE,
    TCP_FIN,
    TCP_PSH,
    TCP_RST,
    TCP_SYN,
    TCP_URG,
    FieldSpec,
    ICMPHeader,
    IPv4Header,
    Meta,
    Packet,
    TCPHeader,
    UDPHeader,
    format_tcp_flags,
    parse_tcp_flags,
)

# Captured on kernel 6.18 in a netns: UDP "kptui" from an unconnected socket to a closed port.
UDP_TO_CLOSED = bytes.fromhex(
    "450000211f144000401106f00a6300010a6300029c400009000d05dc6b70747569"
)
# Captured on kernel 6.18 in a netns: the kernel's port unreachable for UDP_TO_CLOSED.
PORT_UNREACH = bytes.fromhex(
    "45c0003d7b6300004001e9d40a6300020a630001030311e400000000"
    "450000211f144000401106f00a6300010a6300029c400009000d05dc6b70747569"
)
# Captured on kernel 6.18 in a netns: connect() SYN with MSS, SACK-permitted, timestamps, wscale.
TCP_SYN_OPTS = bytes.fromhex(
    "4500003c575e40004006ce950a6300010a6300029c4b1f90891eb9c600000000a002faf0ba830000"
    "020405b40402080acb70b38e000000000103030a"
)
# Captured on kernel 6.18 in a netns: PSH+ACK carrying "GET /\r\n" (an odd-length payload).
TCP_PSH_DATA = bytes.fromhex(
    "4500003b576040004006ce940a6300010a6300029c4b1f90891eb9c737eab1a58018003f60be0000"
    "0101080acb70b38f80004523474554202f0d0a"
)
# Captured on kernel 6.18 in a netns: the kernel's RST+ACK for a SYN to a closed port.
TCP_RST_ACK = bytes.fromhex(
    "4500002800004000400626080a6300020a63000100519c4c00000000bc80d295501400006f540000"
)
# Captured on kernel 6.18 in a netns: ping socket echo request and the kernel's echo reply.
ECHO_REQUEST = bytes.fromhex(
    "4500002034bd40004001f1570a6300010a630002080015f80336000170696e67"
)
ECHO_REPLY = bytes.fromhex(
    "450000207bc900004001ea4b0a6300020a63000100001df80336000170696e67"
)
CAPTURED = [UDP_TO_CLOSED, PORT_UNREACH, TCP_SYN_OPTS, TCP_PSH_DATA, TCP_RST_ACK,
            ECHO_REQUEST, ECHO_REPLY]


def tcp_pkt() -> Packet:
    return Packet.build("tcp", src="198.51.100.7", dst="203.0.113.2", sport=40000, dport=8080)


def udp_pkt() -> Packet:
    return Packet.build("udp", src="10.99.0.1", dst="10.99.0.2", sport=40000, dport=9)


def icmp_pkt() -> Packet:
    return Packet.build("icmp", src="10.99.0.1", dst="10.99.0.2", icmp_id=822)


def unreach_pkt() -> Packet:
    return Packet.from_bytes(PORT_UNREACH)


def reason(exc: pytest.ExceptionInfo) -> str:
    return str(exc.value)


# ---------------------------------------------------------------------------
# The real kernel's bytes


@pytest.mark.parametrize("data", CAPTURED)
def test_captured_packets_round_trip_byte_for_byte(data: bytes) -> None:
    # captured on kernel 6.18 in a netns: our checksums must equal the kernel's
    assert Packet.from_bytes(data).to_bytes() == data


def test_captured_udp_fields() -> None:
    p = Packet.from_bytes(UDP_TO_CLOSED)
    assert p.ip.src == IPv4Address("10.99.0.1") and p.ip.dst == IPv4Address("10.99.0.2")
    assert (p.proto_name, p.sport, p.dport, p.payload) == ("udp", 40000, 9, b"kptui")
    assert (p.ip.ttl, p.ip.tos, p.ip.id, p.ip.df, p.ip.mf) == (64, 0, 0x1F14, True, False)
    assert p.length == 33 and p.get("ip.len") == 33
    assert p.get("ip.checksum") == 0x06F0


def test_captured_tcp_syn_fields() -> None:
    p = Packet.from_bytes(TCP_SYN_OPTS)
    assert isinstance(p.l4, TCPHeader)
    assert (p.l4.sport, p.l4.dport, p.l4.seq, p.l4.ack) == (40011, 8080, 0x891EB9C6, 0)
    assert p.l4.flags == TCP_SYN and p.l4.window == 64240
    assert p.l4.options[:4] == bytes.fromhex("020405b4")  # MSS 1460
    assert p.summary() == "tcp 10.99.0.1:40011 -> 10.99.0.2:8080 [S] ttl 64"


def test_captured_rst_ack_fields() -> None:
    p = Packet.from_bytes(TCP_RST_ACK)
    assert p.get("tcp.flags") == TCP_RST | TCP_ACK and p.get("tcp.window") == 0
    assert p.ip.id == 0 and p.ip.df


def test_captured_port_unreachable_quotes_the_udp_datagram() -> None:
    p = unreach_pkt()
    assert (p.get("icmp.type"), p.get("icmp.code")) == (3, 3)
    assert p.ip.tos == 0xC0 and not p.ip.df  # kernel ICMP errors: DSCP CS6, no DF
    inner = p.l4.inner
    assert isinstance(inner, Packet) and isinstance(inner.l4, UDPHeader)
    assert p.get("icmp.inner.ip.src") == IPv4Address("10.99.0.1")
    assert p.get("icmp.inner.udp.dport") == 9 and inner.payload == b"kptui"
    assert p.summary() == ("icmp 10.99.0.2 -> 10.99.0.1 port-unreachable "
                           "for (udp 10.99.0.1:40000 -> 10.99.0.2:9) ttl 64 tos 0xc0")


def test_built_port_unreachable_equals_the_kernels() -> None:
    # Linux quotes the whole offending datagram (it fits in 576 bytes): checked on kernel 6.18
    offending = Packet.from_bytes(UDP_TO_CLOSED)
    p = Packet.build("icmp", src="10.99.0.2", dst="10.99.0.1", icmp_type=3, icmp_code=3,
                     tos=0xC0, ident=0x7B63)
    p.l4.inner = offending.copy()
    assert p.to_bytes() == PORT_UNREACH


def test_built_udp_equals_the_kernels() -> None:
    p = Packet.build("udp", src="10.99.0.1", dst="10.99.0.2", sport=40000, dport=9,
                     ident=0x1F14)
    p.payload = b"kptui"
    assert p.to_bytes() == UDP_TO_CLOSED


def test_built_echo_request_equals_the_ping_sockets() -> None:
    p = Packet.build("icmp", src="10.99.0.1", dst="10.99.0.2", icmp_id=0x336, ident=0x34BD)
    p.l4.seq = 1
    p.payload = b"ping"
    assert p.to_bytes() == ECHO_REQUEST


def test_editing_quoted_header_updates_checksum_incrementally() -> None:
    p = unreach_pkt()
    p.set_text("icmp.inner.udp.dport", "53")
    back = Packet.from_bytes(p.to_bytes())  # outer checksums verified on parse
    assert back.get("icmp.inner.udp.dport") == 53
    # the quoted UDP checksum is what the sender would have computed for port 53
    resent = Packet.from_bytes(UDP_TO_CLOSED)
    resent.l4.dport = 53
    assert back.l4.inner.to_bytes() == resent.to_bytes()


def test_quote_is_truncated_like_linux_icmp_send() -> None:
    # net/ipv4/icmp.c: the error is at most 576 bytes, so 548 bytes of the datagram are quoted
    big = Packet.build("udp", src="10.0.0.1", dst="10.0.0.2", sport=1, dport=2, length=1400)
    p = Packet.build("icmp", src="10.0.0.2", dst="10.0.0.1", icmp_type=3, icmp_code=3)
    p.l4.inner = big
    data = p.to_bytes()
    assert len(data) == 576
    back = Packet.from_bytes(data)
    assert back.get("icmp.inner.ip.len") == 1400 and back.to_bytes() == data
    back.set("icmp.inner.udp.sport", 7)
    assert Packet.from_bytes(back.to_bytes()).get("icmp.inner.udp.sport") == 7


def test_quote_of_only_eight_bytes_refuses_missing_tcp_fields() -> None:
    # RFC 792 routers quote the IP header and 8 bytes: ports and seq only
    tcp = Packet.from_bytes(TCP_SYN_OPTS).to_bytes()[:28]
    outer = Packet.build("icmp", src="192.0.2.1", dst="10.99.0.1", icmp_type=11).to_bytes()
    data = bytearray(outer[:20] + bytes(8) + tcp)
    data[2:4] = len(data).to_bytes(2, "big")
    p = Packet.from_bytes(Packet.from_bytes(_fix(bytes(data))).to_bytes())
    assert p.get("icmp.inner.tcp.dport") == 8080 and p.get("icmp.inner.tcp.seq") == 0x891EB9C6
    with pytest.raises(FieldError) as e:
        p.get("icmp.inner.tcp.flags")
    assert "only 8 bytes of the tcp header were quoted" in reason(e)


def _fix(data: bytes) -> bytes:
    """Fill in the outer IP and ICMP checksums of a hand-assembled ICMP error."""
    from kptui.engine.packet import internet_checksum

    b = bytearray(data)
    b[20:28] = bytes([11, 0, 0, 0, 0, 0, 0, 0])
    b[22:24] = internet_checksum(bytes(b[20:])).to_bytes(2, "big")
    b[10:12] = b"\0\0"
    b[10:12] = internet_checksum(bytes(b[:20])).to_bytes(2, "big")
    return bytes(b)


# ---------------------------------------------------------------------------
# Checksum rules


def test_udp_checksum_zero_is_sent_as_ffff() -> None:
    # RFC 768 / net/ipv4/udp.c: a computed 0 goes out as 0xffff. Search a payload that sums so.
    base = udp_pkt()
    for n in range(0x10000):
        base.payload = n.to_bytes(2, "big")
        data = base.to_bytes()
        if data[26:28] == b"\xff\xff":
            break
    else:
        pytest.fail("no payload gives a zero checksum")
    assert Packet.from_bytes(data).to_bytes() == data


def test_udp_without_checksum_is_kept() -> None:
    data = bytearray(UDP_TO_CLOSED)
    data[26:28] = b"\0\0"  # RFC 768: no checksum
    p = Packet.from_bytes(bytes(data))
    assert p.l4.no_checksum and p.to_bytes() == bytes(data)


@pytest.mark.parametrize(("offset", "what"), [(10, "ip.checksum"), (26, "udp.checksum")])
def test_bad_checksums_are_refused(offset: int, what: str) -> None:
    data = bytearray(UDP_TO_CLOSED)
    data[offset] ^= 0x01
    with pytest.raises(FieldError) as e:
        Packet.from_bytes(bytes(data))
    assert reason(e).startswith(what) and "wrong" in reason(e)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "too short for an IPv4 header"),
        (UDP_TO_CLOSED[:19], "too short for an IPv4 header"),
        (UDP_TO_CLOSED[:30], "header says 33 bytes but 30 were given"),
        (UDP_TO_CLOSED + b"\0", "header says 33 bytes but 34 were given"),
        (b"\x55" + UDP_TO_CLOSED[1:], "version 5"),
        (b"\x44" + UDP_TO_CLOSED[1:], "less than the minimum 20"),
        (b"\x46" + UDP_TO_CLOSED[1:], "ip.checksum"),
    ],
)
def test_garbage_is_refused_with_a_reason(data: bytes, words: str) -> None:
    with pytest.raises(FieldError) as e:
        Packet.from_bytes(data)
    assert words in reason(e)


def test_truncated_l4_headers_are_refused() -> None:
    p = tcp_pkt()
    data = bytearray(p.to_bytes()[:30])
    data[2:4] = (30).to_bytes(2, "big")
    data[10:12] = b"\0\0"
    from kptui.engine.packet import internet_checksum

    data[10:12] = internet_checksum(bytes(data[:20])).to_bytes(2, "big")
    with pytest.raises(FieldError) as e:
        Packet.from_bytes(bytes(data))
    assert "too short for a tcp header" in reason(e)


def test_ipv6_is_unsupported_not_garbage() -> None:
    with pytest.raises(UnsupportedError):
        Packet.from_bytes(b"\x60" + bytes(39))


# ---------------------------------------------------------------------------
# Round trips (hypothesis)

addrs = st.integers(0, 2**32 - 1).map(IPv4Address)
opts = st.integers(0, 10).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n))
payloads = st.binary(max_size=64)


@st.composite
def packets(draw: st.DrawFn, inner: bool = True) -> Packet:
    proto = draw(st.sampled_from(["tcp", "udp", "icmp", "icmp-error", 47]))
    ip = IPv4Header(draw(addrs), draw(addrs), 0, draw(st.integers(0, 255)),
                    draw(st.integers(0, 255)), draw(st.integers(0, 0xFFFF)), draw(st.booleans()),
                    False, 0, draw(opts))
    l4: TCPHeader | UDPHeader | ICMPHeader | None
    u16 = st.integers(0, 0xFFFF)
    if proto == "tcp":
        ip.proto = 6
        l4 = TCPHeader(draw(u16), draw(u16), draw(st.integers(0, 2**32 - 1)),
                       draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 255)), draw(u16),
                       draw(u16), draw(opts))
    elif proto == "udp":
        ip.proto = 17
        l4 = UDPHeader(draw(u16), draw(u16))
    elif proto == "icmp" or (proto == "icmp-error" and not inner):
        ip.proto = 1
        l4 = ICMPHeader(draw(st.sampled_from([0, 8, 13, 14])), 0, draw(u16), draw(u16))
    elif proto == "icmp-error":
        ip.proto = 1
        l4 = ICMPHeader(draw(st.sampled_from([3, 4, 5, 11, 12])), draw(st.integers(0, 15)),
                        0, draw(u16), draw(packets(inner=False)))
        return Packet(ip, l4, b"")
    else:
        ip.proto = 47
        l4 = None
    return Packet(ip, l4, draw(payloads))


@settings(max_examples=300)
@given(packets())
def test_packet_bytes_packet_round_trip(p: Packet) -> None:
    data = p.to_bytes()
    back = Packet.from_bytes(data)
    assert back == p
    assert back.to_bytes() == data


@settings(max_examples=200)
@given(packets(), st.integers(0, 8191), st.booleans())
def test_fragments_round_trip_as_bytes(p: Packet, offset: int, mf: bool) -> None:
    # a first fragment (MF) or a later one: bytes -> packet -> the same bytes
    p.ip.mf, p.ip.frag_offset = mf, offset
    data = p.to_bytes()
    assert Packet.from_bytes(data).to_bytes() == data


@settings(max_examples=200)
@given(packets(inner=False), st.integers(8, 600))
def test_quotes_of_any_length_round_trip(inner: Packet, cut: int) -> None:
    full = inner.to_bytes()
    ihl = 20 + len(inner.ip.options)
    quote = full[: ihl + cut] if inner.l4 is not None else full
    outer = bytearray(bytes(20) + bytes([3, 1, 0, 0, 0, 0, 0, 0]) + quote)
    outer[0], outer[8], outer[9] = 0x45, 64, 1
    outer[2:4] = len(outer).to_bytes(2, "big")
    from kptui.engine.packet import internet_checksum

    outer[22:24] = internet_checksum(bytes(outer[20:])).to_bytes(2, "big")
    outer[10:12] = internet_checksum(bytes(outer[:20])).to_bytes(2, "big")
    assert Packet.from_bytes(bytes(outer)).to_bytes() == bytes(outer)


# ---------------------------------------------------------------------------
# Fields: get / set / set_text


GOOD = [
    # path, packet, text, parsed value
    ("ip.src", tcp_pkt, "192.0.2.9", IPv4Address("192.0.2.9")),
    ("ip.dst", tcp_pkt, " 192.0.2.10 ", IPv4Address("192.0.2.10")),
    ("ip.ttl", tcp_pkt, "255", 255),
    ("ip.ttl", tcp_pkt, "0x0", 0),
    ("ip.tos", tcp_pkt, "0x10", 0x10),
    ("ip.dscp", tcp_pkt, "46", 46),
    ("ip.ecn", tcp_pkt, "3", 3),
    ("ip.id", tcp_pkt, "0xffff", 0xFFFF),
    ("ip.df", tcp_pkt, "0", False),
    ("ip.mf", tcp_pkt, "yes", True),
    ("ip.frag_offset", tcp_pkt, "8191", 8191),
    ("ip.proto", tcp_pkt, "6", 6),
    ("tcp.sport", tcp_pkt, "65535", 65535),
    ("tcp.dport", tcp_pkt, "0x50", 80),
    ("tcp.seq", tcp_pkt, "4294967295", 2**32 - 1),
    ("tcp.ack", tcp_pkt, "1", 1),
    ("tcp.flags", tcp_pkt, "SYN,ACK", TCP_SYN | TCP_ACK),
    ("tcp.flags", tcp_pkt, "syn ack", TCP_SYN | TCP_ACK),
    ("tcp.flags", tcp_pkt, "SA", TCP_SYN | TCP_ACK),
    ("tcp.flags", tcp_pkt, "0x12", TCP_SYN | TCP_ACK),
    ("tcp.window", tcp_pkt, "0", 0),
    ("udp.sport", udp_pkt, "53", 53),
    ("udp.dport", udp_pkt, "123", 123),
    ("icmp.type", icmp_pkt, "0", 0),
    ("icmp.type", icmp_pkt, "echo-reply", 0),
    ("icmp.code", icmp_pkt, "5", 5),
    ("icmp.id", icmp_pkt, "7", 7),
    ("icmp.seq", icmp_pkt, "0x100", 256),
    ("icmp.inner.ip.ttl", unreach_pkt, "1", 1),
    ("icmp.inner.ip.dst", unreach_pkt, "10.99.0.3", IPv4Address("10.99.0.3")),
    ("icmp.inner.udp.sport", unreach_pkt, "1", 1),
    ("meta.iif", tcp_pkt, "eth0", "eth0"),
    ("meta.oif", tcp_pkt, "wg-office.1", "wg-office.1"),
    ("meta.mark", tcp_pkt, "0xffffffff", 0xFFFFFFFF),
    ("meta.ctmark", tcp_pkt, "42", 42),
    ("meta.priority", tcp_pkt, "6", 6),
    ("meta.classid", tcp_pkt, "1:10", 0x10010),
    ("meta.classid", tcp_pkt, "ffff:ffff", 0xFFFFFFFF),
]


@pytest.mark.parametrize(("path", "make", "text", "value"), GOOD)
def test_set_text_good_values(path: str, make, text: str, value) -> None:
    p = make()
    before = p.get(path)
    old, new = p.set_text(path, text)
    assert (old, new) == (before, value)
    assert p.get(path) == value
    # the value survives the wire, unless it is skb metadata (never on the wire)
    if not path.startswith("meta.") and not path.startswith("ip.mf") \
            and not path.startswith("ip.frag"):
        assert Packet.from_bytes(p.to_bytes()).get(path) == value


@pytest.mark.parametrize(("path", "make", "text", "value"), GOOD)
def test_set_typed_values_and_format(path: str, make, text: str, value) -> None:
    p = make()
    p.set(path, value)
    spec = FIELDS[path]
    assert spec.parse(spec.format(value)) == value


BAD = [
    ("ip.ttl", tcp_pkt, "300", "ip.ttl: 300 is out of range 0..255"),
    ("ip.ttl", tcp_pkt, "-1", "ip.ttl: '-1' is not a number"),
    ("ip.ttl", tcp_pkt, "ten", "ip.ttl: 'ten' is not a number"),
    ("ip.src", tcp_pkt, "10.0.0", "ip.src: '10.0.0' is not an IPv4 address"),
    ("ip.dst", tcp_pkt, "10.0.0.256", "ip.dst: '10.0.0.256' is not an IPv4 address"),
    ("ip.tos", tcp_pkt, "256", "ip.tos: 256 is out of range 0..255"),
    ("ip.dscp", tcp_pkt, "64", "ip.dscp: 64 is out of range 0..63"),
    ("ip.ecn", tcp_pkt, "4", "ip.ecn: 4 is out of range 0..3"),
    ("ip.id", tcp_pkt, "65536", "ip.id: 65536 is out of range 0..65535"),
    ("ip.df", tcp_pkt, "maybe", "ip.df: 'maybe' is not a yes/no value"),
    ("ip.frag_offset", tcp_pkt, "8192", "ip.frag_offset: 8192 is out of range 0..8191"),
    ("ip.proto", tcp_pkt, "17", "ip.proto: changing tcp to udp needs a different transport"),
    ("ip.proto", tcp_pkt, "256", "ip.proto: 256 is out of range 0..255"),
    ("ip.len", tcp_pkt, "40", "ip.len is read-only"),
    ("ip.checksum", tcp_pkt, "0", "ip.checksum is read-only"),
    ("tcp.sport", tcp_pkt, "65536", "tcp.sport: 65536 is out of range 0..65535"),
    ("tcp.dport", udp_pkt, "80", "tcp.dport: packet is udp, not tcp"),
    ("tcp.seq", tcp_pkt, "0x100000000", "tcp.seq: 0x100000000 is out of range 0..0xffffffff"),
    ("tcp.flags", tcp_pkt, "SYN,FOO", "tcp.flags: 'FOO' is not a flag"),
    ("tcp.flags", tcp_pkt, "0x100", "tcp.flags: 0x100 is out of range 0..255"),
    ("tcp.window", tcp_pkt, "70000", "tcp.window: 70000 is out of range 0..65535"),
    ("udp.sport", tcp_pkt, "53", "udp.sport: packet is tcp, not udp"),
    ("udp.dport", udp_pkt, "x", "udp.dport: 'x' is not a number"),
    ("icmp.type", tcp_pkt, "8", "icmp.type: packet is tcp, not icmp"),
    ("icmp.type", unreach_pkt, "8", "icmp.type: echo-request is not an error type"),
    ("icmp.code", icmp_pkt, "256", "icmp.code: 256 is out of range 0..255"),
    ("icmp.id", unreach_pkt, "1", "icmp.id: icmp type 3 (port-unreachable) has no id"),
    ("icmp.seq", unreach_pkt, "1", "icmp.seq: icmp type 3 (port-unreachable) has no id"),
    ("icmp.inner.ip.ttl", icmp_pkt, "1", "icmp.inner.ip.ttl: this icmp message quotes no packet"),
    ("icmp.inner.tcp.dport", unreach_pkt, "1", "icmp.inner.tcp.dport: packet is udp, not tcp"),
    ("icmp.inner.ip.ttl", unreach_pkt, "256", "icmp.inner.ip.ttl: 256 is out of range 0..255"),
    ("meta.iif", tcp_pkt, "a-very-long-interface", "meta.iif: 'a-very-long-interface' is longer"),
    ("meta.oif", tcp_pkt, "eth/0", "meta.oif: 'eth/0' is not a valid interface name"),
    ("meta.mark", tcp_pkt, "0x100000000", "meta.mark: 0x100000000 is out of range 0..0xffffffff"),
    ("meta.ctmark", tcp_pkt, "-5", "meta.ctmark: '-5' is not a number"),
    ("meta.ctstate", tcp_pkt, "NEW", "meta.ctstate is read-only"),
    ("meta.priority", tcp_pkt, "1.5", "meta.priority: '1.5' is not a number"),
    ("meta.classid", tcp_pkt, "1:10000", "meta.classid: '1:10000': major and minor"),
    ("meta.classid", tcp_pkt, "1:xyz", "meta.classid: '1:xyz' is not a tc class id"),
    ("tcp.dprot", tcp_pkt, "1", "tcp.dprot: no such field; did you mean tcp.dport?"),
]


@pytest.mark.parametrize(("path", "make", "text", "msg"), BAD)
def test_set_text_bad_values_say_why(path: str, make, text: str, msg: str) -> None:
    p = make()
    before = p.to_bytes(), p.meta
    with pytest.raises(FieldError) as e:
        p.set_text(path, text)
    assert reason(e).startswith(msg)
    assert isinstance(e.value, KptuiError)
    assert (p.to_bytes(), p.meta) == before  # nothing changed


@pytest.mark.parametrize(
    ("path", "value", "msg"),
    [
        ("ip.ttl", True, "ip.ttl: expected a number, got True"),
        ("ip.ttl", 1.5, "ip.ttl: expected a number, got 1.5"),
        ("ip.src", 3, "ip.src: expected an IPv4 address, got 3"),
        ("ip.df", 2, "ip.df: expected true or false, got 2"),
        ("meta.iif", 0, "meta.iif: expected an interface name"),
    ],
)
def test_set_rejects_wrong_types(path: str, value, msg: str) -> None:
    with pytest.raises(FieldError) as e:
        tcp_pkt().set(path, value)
    assert reason(e).startswith(msg)


def test_get_refuses_fields_of_other_protocols() -> None:
    with pytest.raises(FieldError) as e:
        udp_pkt().get("tcp.sport")
    assert reason(e) == "tcp.sport: packet is udp, not tcp"
    frag = Packet.from_bytes(_later_fragment())
    with pytest.raises(FieldError) as e:
        frag.get("udp.dport")
    assert "non-first fragment" in reason(e)


def _later_fragment() -> bytes:
    p = udp_pkt()
    p.ip.frag_offset = 10
    return p.to_bytes()


def test_dscp_and_ecn_share_the_tos_byte() -> None:
    p = tcp_pkt()
    p.set("ip.tos", 0x03)
    assert p.set("ip.dscp", 46) == (0, 46)
    assert p.ip.tos == 46 << 2 | 3 and p.get("ip.ecn") == 3
    p.set("ip.ecn", 0)
    assert p.ip.tos == 0xB8


def test_read_only_fields_follow_the_packet() -> None:
    p = tcp_pkt()
    assert p.get("ip.len") == 40
    p.payload = b"x" * 10
    assert p.get("ip.len") == 50
    assert p.get("ip.checksum") == int.from_bytes(p.to_bytes()[10:12], "big")


def test_every_field_has_a_complete_spec() -> None:
    types = {"ipv4", "u8", "u16", "u32", "bool", "tcpflags", "iface", "classid", "str",
             "tcpoptions"}
    contract = ("ip.src ip.dst ip.proto ip.ttl ip.tos ip.dscp ip.ecn ip.id ip.df ip.mf "
                "ip.frag_offset ip.len ip.checksum tcp.sport tcp.dport tcp.seq tcp.ack tcp.flags "
                "tcp.window tcp.options udp.sport udp.dport icmp.type icmp.code icmp.id icmp.seq "
                "meta.iif meta.oif meta.mark meta.ctmark meta.ctstate meta.priority "
                "meta.classid").split()
    assert set(contract) <= set(FIELDS)
    for path, spec in FIELDS.items():
        assert isinstance(spec, FieldSpec) and spec.path == path
        assert spec.type in types and spec.doc
    readonly = {p for p, s in FIELDS.items() if not s.editable}
    assert readonly == {"ip.len", "ip.checksum", "meta.ctstate", "icmp.inner.ip.len",
                        "icmp.inner.ip.checksum"}


# ---------------------------------------------------------------------------
# Flags and build


@pytest.mark.parametrize(
    ("text", "bits"),
    [("S", TCP_SYN), ("SA", TCP_SYN | TCP_ACK), ("SYN,ACK", TCP_SYN | TCP_ACK),
     ("syn ack", TCP_SYN | TCP_ACK), ("FPU", TCP_FIN | TCP_PSH | TCP_URG),
     ("NONE", 0), ("none", 0),
     # iptables-extensions(8) tcp: ALL is SYN,ACK,FIN,RST,URG,PSH
     ("ALL", TCP_FIN | TCP_SYN | TCP_RST | TCP_PSH | TCP_ACK | TCP_URG),
     ("ECE CWR", TCP_ECE | TCP_CWR), ("EC", TCP_ECE | TCP_CWR)],
)
def test_parse_tcp_flags(text: str, bits: int) -> None:
    assert parse_tcp_flags(text) == bits
    assert parse_tcp_flags(format_tcp_flags(bits)) == bits


def test_format_tcp_flags() -> None:
    assert format_tcp_flags(TCP_SYN | TCP_ACK) == "SA"
    assert format_tcp_flags(TCP_FIN | TCP_ACK) == "FA"
    assert format_tcp_flags(0) == "NONE"


def test_build_looks_like_a_linux_host() -> None:
    # checked on kernel 6.18 in a netns: TCP and UDP sockets send with DF (PMTU discovery),
    # the ping socket too; the kernel's own echo reply and errors go without DF
    assert tcp_pkt().ip.df and udp_pkt().ip.df and icmp_pkt().ip.df
    reply = Packet.build("icmp", src="10.0.0.2", dst="10.0.0.1", icmp_type=0)
    error = Packet.build("icmp", src="10.0.0.2", dst="10.0.0.1", icmp_type=3, icmp_code=1)
    assert not reply.ip.df and not error.ip.df
    p = tcp_pkt()
    assert (p.ip.ttl, p.ip.tos, p.ip.id, p.l4.flags, p.l4.window) == (64, 0, 0, TCP_SYN, 64240)
    assert p.length == 40 and p.payload == b""
    assert icmp_pkt().l4.type == 8 and icmp_pkt().length == 28
    assert udp_pkt().length == 28


def test_build_length_pads_with_zeros() -> None:
    p = Packet.build("udp", src="10.0.0.1", dst="10.0.0.2", sport=1, dport=2, length=100,
                     mark=5, iif="eth0")
    assert p.length == 100 and p.payload == bytes(72)
    assert (p.meta.mark, p.meta.iif) == (5, "eth0")
    assert len(p.to_bytes()) == 100


@pytest.mark.parametrize(
    ("kwargs", "msg"),
    [
        ({"length": 39}, "length: 39 is shorter than the 40 bytes of headers"),
        ({"length": 70000}, "length: 70000 is more than"),
        ({"ttl": 256}, "ip.ttl: 256 is out of range 0..255"),
        ({"sport": 70000}, "tcp.sport: 70000 is out of range 0..65535"),
        ({"dport": None}, "dport: a tcp packet needs a dport"),
        ({"flags": "SX"}, "tcp flags: 'SX' is not a flag"),
        ({"src": "1.2.3"}, "src: '1.2.3' is not an IPv4 address"),
        ({"icmp_type": 8}, "icmp_type: a tcp packet has no icmp type"),
        ({"iif": "x" * 16}, "iif:"),
        ({"mark": -1}, "meta.mark: -0x1 is out of range"),
    ],
)
def test_build_refuses_bad_arguments(kwargs: dict, msg: str) -> None:
    args = {"src": "10.0.0.1", "dst": "10.0.0.2", "sport": 1000, "dport": 80} | kwargs
    with pytest.raises(FieldError) as e:
        Packet.build("tcp", **args)
    assert reason(e).startswith(msg)


def test_build_other_protocols() -> None:
    p = Packet.build(47, src="10.0.0.1", dst="10.0.0.2")
    assert p.proto_name == "47" and p.l4 is None and p.sport is None
    assert p.summary() == "proto 47 10.0.0.1 -> 10.0.0.2 ttl 64"
    with pytest.raises(FieldError) as e:
        Packet.build("sctp", src="10.0.0.1", dst="10.0.0.2")
    assert "not tcp, udp, icmp or a protocol number" in reason(e)
    with pytest.raises(FieldError) as e:
        Packet.build("icmp", src="10.0.0.1", dst="10.0.0.2", dport=1)
    assert reason(e) == "dport: icmp has no ports"


# ---------------------------------------------------------------------------
# Copy, summary, out_dict


def test_copy_is_independent() -> None:
    p = unreach_pkt()
    p.meta = Meta(iif="eth1", mark=1)
    c = p.copy()
    assert c == p and c.to_bytes() == p.to_bytes()
    c.set("ip.ttl", 1)
    c.set("icmp.inner.udp.dport", 99)
    c.set("meta.mark", 2)
    c.l4.code = 1
    assert p.ip.ttl == 64 and p.get("icmp.inner.udp.dport") == 9
    assert p.meta.mark == 1 and p.l4.code == 3
    assert p.to_bytes() == PORT_UNREACH


def test_summary_lines() -> None:
    assert tcp_pkt().summary() == "tcp 198.51.100.7:40000 -> 203.0.113.2:8080 [S] ttl 64"
    p = udp_pkt()
    p.set("meta.mark", 0x10)
    assert p.summary() == "udp 10.99.0.1:40000 -> 10.99.0.2:9 ttl 64 mark 0x10"
    assert Packet.from_bytes(ECHO_REQUEST).summary() == (
        "icmp 10.99.0.1 -> 10.99.0.2 echo-request id 822 seq 1 ttl 64")


def test_out_dict_shapes() -> None:
    p = tcp_pkt()
    p.set("meta.mark", 3)
    assert p.out_dict() == {"src": "198.51.100.7", "dst": "203.0.113.2", "proto": "tcp",
                            "sport": 40000, "dport": 8080, "flags": "S", "ttl": 64, "tos": 0,
                            "mark": 3}
    assert udp_pkt().out_dict() == {"src": "10.99.0.1", "dst": "10.99.0.2", "proto": "udp",
                                    "sport": 40000, "dport": 9, "ttl": 64, "tos": 0, "mark": 0}
    assert icmp_pkt().out_dict() == {"src": "10.99.0.1", "dst": "10.99.0.2", "proto": "icmp",
                                     "icmp_type": 8, "icmp_code": 0, "icmp_id": 822, "ttl": 64,
                                     "tos": 0, "mark": 0}
    err = unreach_pkt().out_dict()
    assert err["icmp_type"] == 3 and err["icmp_code"] == 3 and "icmp_id" not in err
    assert "sport" not in err


def test_meta_is_not_on_the_wire() -> None:
    p = tcp_pkt()
    data = p.to_bytes()
    p.set("meta.mark", 7)
    p.set_text("meta.classid", "1:10")
    p.set("meta.oif", "eth0")
    assert p.to_bytes() == data
