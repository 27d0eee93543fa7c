"""Connection tracking as the kernel does it (net/netfilter/nf_conntrack_*.c).

One ``ConntrackTable`` per box (``box.conntrack``). A walk calls
``table.lookup(pkt)`` at the conntrack hooks (PREROUTING, OUTPUT; priority
-200) and ``table.confirm(pkt)`` at the last hook (POSTROUTING or INPUT,
priority INT_MAX). Between the two the new entry is *unconfirmed*: it hangs
on the packet only, so a packet dropped on the way leaves nothing behind
(``__nf_conntrack_confirm``). The conntrack entry and its ctinfo travel with
the packet in ``pkt.meta.ct`` / ``pkt.meta.ctinfo`` (skb->_nfct).

What follows the kernel, function by function:

- tuples: ``nf_ct_get_tuple`` (ports; ICMP id/type/code), ``nf_ct_invert_tuple``
  (ICMP echo <-> echo reply, timestamp, info, address; other ICMP types have
  no inverse, so they never get an entry).
- ``nf_conntrack_in`` / ``resolve_normal_ct``: a hit on the REPLY tuple is
  ESTABLISHED_REPLY; on the ORIGINAL tuple ESTABLISHED once SEEN_REPLY, else
  RELATED if EXPECTED, else NEW; a miss creates an unconfirmed entry (NEW).
  SEEN_REPLY is set after the protocol tracker accepted the first reply.
  INVALID = the tracker refused: no entry is attached (the packet goes on).
  A packet that already carries an entry (looped back through lo) or is
  UNTRACKED (raw NOTRACK / CT --notrack) is not looked up again.
- ICMP errors: ``nf_conntrack_icmpv4_error`` / ``nf_conntrack_inet_error``:
  the embedded header is inverted and looked up; a hit makes the error
  RELATED (or RELATED_REPLY), provided the outer destination is the hit
  tuple's destination; no hit, or another destination, is INVALID. Only
  ECHO, TIMESTAMP, INFO_REQUEST and ADDRESS requests create entries
  (``nf_conntrack_icmp_packet``); an ICMP type above 18 is INVALID.
- UDP (``nf_conntrack_udp_packet``): unreplied timeout until a reply is
  seen; a packet more than 2 s after the first one of a connection that has
  seen a reply gets the stream timeout and sets ASSURED.
- TCP (``nf_conntrack_tcp_packet``): ``tcp_error``'s valid flag table,
  ``tcp_new`` (SYN starts SYN_SENT; anything else is a mid-stream pickup
  with ``nf_conntrack_tcp_loose`` = 1, refused with 0), the
  ``tcp_conntracks`` state table, ignored packets (sIG), SYN in
  TIME_WAIT/CLOSE reopening (the old entry is deleted and the lookup
  repeated), RST handling in CLOSE, ASSURED on SYN_RECV/ESTABLISHED ->
  ESTABLISHED after a reply, a RST as the only reply deleting the entry, and
  the timeout choice (CLOSE after RST, UNACK while data is unacknowledged,
  RETRANS after too many retransmissions). ``tcp_in_window`` is followed
  line by line (sequence, ack and window bounds, window scaling and SACK
  from the TCP options, ``nf_conntrack_tcp_be_liberal``).
  Not modelled: NAT sequence adjustment (no helpers rewrite payloads),
  SYN proxy, checksum validation (kptui's packets always have correct
  checksums), ``tcp_error``'s truncated-header check (headers are whole).
- Timeouts run on the box's simulated clock (``box.clock``, seconds) and use
  the kernel defaults or the ``net.netfilter.nf_conntrack_*timeout*``
  sysctls; an expired entry is gone for lookups and listings (collected by a heap of
  timers, kptui.engine.ct_timers, so a listing never looks at the live entries; an
  entry in the table is refreshed with ``ConntrackTable.refresh``). Seconds left
  (``Conn.remaining``, what ``--ctexpire`` and `conntrack -L` show) are 0 for
  an unconfirmed entry: its timeout is still relative, and nf_ct_expires()
  subtracts the jiffies stamp from it (checked on kernel 6.18; strictly this
  depends on the kernel's jiffies value). The kernel's listing, taken a moment
  after the packet, shows one second less than kptui's at the same instant.
- Accounting (nf_conn_acct, what -m connbytes reads; the kernel turns it on for
  connbytes rules): packets and bytes (skb->len) per direction, counted where the
  trackers call nf_ct_refresh_acct / nf_ct_kill_acct, so not for TCP packets the
  tracker ignores, a retransmitted first SYN, ICMP errors, or a packet that
  already carries its entry.
- NAT hooks: ``Conn.nat_initialized`` / ``set_nat_initialized`` are
  nf_nat_initialized (the SRC_NAT_DONE / DST_NAT_DONE bits); kptui.engine.nat's
  setup_info sets them when a NAT target or the null binding binds the
  connection, so later packets of the connection skip the nat chains.

Not modelled at all: helpers and expectations (FTP, ...; EXPECTED is never
set), zones, labels, ``nf_conntrack_max`` eviction, fragments (the kernel
reassembles them before conntrack: a fragment raises UnsupportedError) and
the protocols with their own trackers but no packet model in kptui (SCTP,
DCCP, GRE, UDP-Lite). NAT bindings are left to the NAT code, which reads
and sets ``Conn.status`` (SRC_NAT, DST_NAT, *_NAT_DONE), ``Conn.reply``
(``alter_reply``) and ``Conn.nat``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from enum import IntFlag
from ipaddress import IPv4Address
from operator import attrgetter
from typing import Any, Protocol

from kptui.engine.ct_timers import Timers
from kptui.engine.errors import UnsupportedError

ORIGINAL, REPLY = 0, 1
DIR_NAMES = ("ORIGINAL", "REPLY")

PROTO_TCP, PROTO_UDP, PROTO_ICMP = 6, 17, 1
# Protocols the kernel tracks with their own tuple rules that kptui has no header model for.
_OWN_TRACKERS = {33: "DCCP", 47: "GRE", 132: "SCTP", 136: "UDP-Lite"}
_PROTO_NAMES = {PROTO_TCP: "tcp", PROTO_UDP: "udp", PROTO_ICMP: "icmp"}


class Status(IntFlag):
    """enum ip_conntrack_status (include/uapi/linux/netfilter/nf_conntrack_common.h)."""

    NONE = 0
    EXPECTED = 1 << 0
    SEEN_REPLY = 1 << 1
    ASSURED = 1 << 2
    CONFIRMED = 1 << 3
    SRC_NAT = 1 << 4
    DST_NAT = 1 << 5
    SEQ_ADJUST = 1 << 6
    SRC_NAT_DONE = 1 << 7
    DST_NAT_DONE = 1 << 8
    DYING = 1 << 9


# enum ip_conntrack_info values; "INVALID" is kptui's name for "no entry attached".
CTINFO_VALUES = {"ESTABLISHED": 0, "RELATED": 1, "NEW": 2, "ESTABLISHED_REPLY": 3,
                 "RELATED_REPLY": 4, "UNTRACKED": 7}
# What -m state / --ctstate call each ctinfo (XT_STATE_BIT: ctinfo % IP_CT_IS_REPLY).
CTINFO_STATE = {"ESTABLISHED": "ESTABLISHED", "RELATED": "RELATED", "NEW": "NEW",
                "ESTABLISHED_REPLY": "ESTABLISHED", "RELATED_REPLY": "RELATED",
                "UNTRACKED": "UNTRACKED", "INVALID": "INVALID"}


class Clocked(Protocol):
    """What the table needs from its box: the simulated clock and the sysctls."""

    clock: float

    def sysctl(self, name: str) -> int: ...


# ----------------------------------------------------------------------------- tuples
# nf_conntrack_proto_icmp.c invmap: request <-> reply; other types cannot be inverted.
ICMP_INVERSE = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 17: 18, 18: 17}
ICMP_VALID_NEW = frozenset({8, 13, 15, 17})  # ECHO, TIMESTAMP, INFO_REQUEST, ADDRESS
ICMP_ERRORS = frozenset({3, 4, 5, 11, 12})  # icmp_is_err()
NR_ICMP_TYPES = 18


@dataclass(frozen=True, slots=True)
class CtTuple:
    """struct nf_conntrack_tuple for IPv4: addresses, protocol and the l4 part.

    TCP/UDP: ``sport``/``dport`` are the ports. ICMP: ``sport`` is the id and
    ``icmp_type``/``icmp_code`` the type and code (the kernel's dst.u.icmp).
    Other protocols: addresses only.
    """

    src: IPv4Address
    dst: IPv4Address
    proto: int
    sport: int = 0
    dport: int = 0
    icmp_type: int = 0
    icmp_code: int = 0

    def invert(self) -> CtTuple | None:
        """nf_ct_invert_tuple; None for an ICMP type without a reply type."""
        if self.proto == PROTO_ICMP:
            inverse = ICMP_INVERSE.get(self.icmp_type)
            if inverse is None:
                return None
            return CtTuple(self.dst, self.src, self.proto, self.sport, 0, inverse,
                           self.icmp_code)
        return CtTuple(self.dst, self.src, self.proto, self.dport, self.sport)

    def text(self) -> str:
        """As `conntrack -L` prints one direction."""
        base = f"src={self.src} dst={self.dst}"
        if self.proto in (PROTO_TCP, PROTO_UDP):
            return f"{base} sport={self.sport} dport={self.dport}"
        if self.proto == PROTO_ICMP:
            return f"{base} type={self.icmp_type} code={self.icmp_code} id={self.sport}"
        return base


def tuple_of(pkt: Any) -> CtTuple | None:
    """The packet's tuple (nf_ct_get_tuple), or None when its l4 header is missing."""
    ip, l4 = pkt.ip, pkt.l4
    proto = ip.proto
    if proto in (PROTO_TCP, PROTO_UDP):
        if l4 is None or not hasattr(l4, "sport") or (proto == PROTO_TCP
                                                      and not hasattr(l4, "flags")):
            return None
        return CtTuple(ip.src, ip.dst, proto, l4.sport, l4.dport)
    if proto == PROTO_ICMP:
        if l4 is None or not hasattr(l4, "code"):
            return None
        return CtTuple(ip.src, ip.dst, proto, l4.id, 0, l4.type, l4.code)
    return CtTuple(ip.src, ip.dst, proto)


# ----------------------------------------------------------------------------- TCP data
TCP_STATES = ("NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT",
              "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2")
sNO, sSS, sSR, sES, sFW, sCW, sLA, sTW, sCL, sS2 = range(10)
sIV, sIG = 10, 11  # TCP_CONNTRACK_MAX (invalid), TCP_CONNTRACK_IGNORE
SYN_SET, SYNACK_SET, FIN_SET, ACK_SET, RST_SET, NONE_SET = range(6)
INDEX_NAMES = ("SYN", "SYN+ACK", "FIN", "ACK", "RST", "no flag")
# nf_conntrack_proto_tcp.c tcp_conntracks[dir][index][old state]
TCP_CONNTRACKS: tuple[tuple[tuple[int, ...], ...], ...] = (
    (  # ORIGINAL   sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
        (sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2),  # syn
        (sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR),  # synack
        (sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV),  # fin
        (sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV),  # ack
        (sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL),  # rst
        (sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV),  # none
    ),
    (  # REPLY      sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
        (sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2),  # syn
        (sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR),  # synack
        (sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV),  # fin
        (sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG),  # ack
        (sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL),  # rst
        (sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV),  # none
    ),
)
TH_FIN, TH_SYN, TH_RST, TH_PSH, TH_ACK, TH_URG, TH_ECE, TH_CWR = (1, 2, 4, 8, 16, 32, 64, 128)
# tcp_valid_flags: the FIN/SYN/RST/ACK/URG combinations tcp_error accepts (PSH/ECE/CWR ignored)
TCP_VALID_FLAGS = frozenset({TH_SYN, TH_SYN | TH_URG, TH_SYN | TH_ACK, TH_RST, TH_RST | TH_ACK,
                             TH_FIN | TH_ACK, TH_FIN | TH_ACK | TH_URG, TH_ACK,
                             TH_ACK | TH_URG})
# struct ip_ct_tcp_state flags
F_WINDOW_SCALE, F_SACK_PERM, F_CLOSE_INIT, F_BE_LIBERAL = 0x01, 0x02, 0x04, 0x08
F_DATA_UNACKNOWLEDGED, F_MAXACK_SET, F_EXP_CHALLENGE_ACK, F_SIMULTANEOUS_OPEN = (
    0x10, 0x20, 0x40, 0x80)
TCP_MAX_WSCALE = 14
MAXACKWINCONST = 66000
U32 = 0xFFFFFFFF

# Timeout sysctls (net.netfilter.nf_conntrack_*) and the kernel defaults, in seconds.
TIMEOUT_DEFAULTS: dict[str, int] = {
    "tcp_timeout_syn_sent": 120, "tcp_timeout_syn_recv": 60,
    "tcp_timeout_established": 432000, "tcp_timeout_fin_wait": 120,
    "tcp_timeout_close_wait": 60, "tcp_timeout_last_ack": 30,
    "tcp_timeout_time_wait": 120, "tcp_timeout_close": 10,
    "tcp_timeout_max_retrans": 300, "tcp_timeout_unacknowledged": 300,
    "udp_timeout": 30, "udp_timeout_stream": 120, "icmp_timeout": 30,
    "generic_timeout": 600,
}
# Other conntrack sysctls kptui reads: name -> (default, (min, max)).
SWITCH_DEFAULTS: dict[str, tuple[int, tuple[int, int]]] = {
    "tcp_loose": (1, (0, 1)), "tcp_be_liberal": (0, (0, 1)),
    "tcp_ignore_invalid_rst": (0, (0, 1)), "tcp_max_retrans": (3, (0, 255)),
}
SYSCTL_PREFIX = "net.netfilter.nf_conntrack_"
# tcp state -> timeout sysctl (SYN_SENT2 has no sysctl: 2 minutes, tcp_timeouts[])
_TCP_TIMEOUT_KEYS = {sSS: "tcp_timeout_syn_sent", sSR: "tcp_timeout_syn_recv",
                     sES: "tcp_timeout_established", sFW: "tcp_timeout_fin_wait",
                     sCW: "tcp_timeout_close_wait", sLA: "tcp_timeout_last_ack",
                     sTW: "tcp_timeout_time_wait", sCL: "tcp_timeout_close"}
T_RETRANS, T_UNACK = "tcp_timeout_max_retrans", "tcp_timeout_unacknowledged"
UDP_STREAM_AFTER = 2.0  # seconds: nf_conntrack_udp_packet's stream_ts = 2 * HZ


def before(a: int, b: int) -> bool:
    """The kernel's before() on 32-bit sequence numbers."""
    return ((a - b) & U32) >= 0x80000000


def after(a: int, b: int) -> bool:
    return before(b, a)


@dataclass(slots=True)
class TcpSide:
    """struct ip_ct_tcp_state: what conntrack knows of one sender."""

    td_end: int = 0
    td_maxend: int = 0
    td_maxwin: int = 0
    td_maxack: int = 0
    td_scale: int = 0
    flags: int = 0


@dataclass(slots=True)
class TcpTrack:
    """struct ip_ct_tcp."""

    state: int = sNO
    seen: list[TcpSide] = field(default_factory=lambda: [TcpSide(), TcpSide()])
    last_index: int = NONE_SET
    last_dir: int = ORIGINAL
    last_seq: int = 0
    last_ack: int = 0
    last_end: int = 0
    last_win: int = 0
    last_wscale: int = 0
    last_flags: int = 0
    retrans: int = 0

    def copy(self) -> TcpTrack:
        """An independent copy (the TcpSides copied too)."""
        track = TcpTrack(*_TRACK_VALUES(self))
        track.seen = [TcpSide(*_SIDE_VALUES(side)) for side in self.seen]
        return track


def field_setter(names: tuple[str, ...]) -> Callable[[Any, tuple[Any, ...]], None]:
    """``set(obj, values)``: the attributes ``names`` (paths below ``obj``) from
    ``values``, in one unpacking assignment (ten times faster than setattr in a loop):
    table snapshots rewind thousands of entries with it."""
    targets = ", ".join(f"obj.{name}" for name in names)
    namespace: dict[str, Any] = {}
    exec(f"def set_fields(obj, values):\n    {targets}, = values\n", namespace)  # noqa: S102
    return namespace["set_fields"]


_SIDE_FIELDS = tuple(f.name for f in fields(TcpSide))
_TRACK_SCALARS = tuple(f.name for f in fields(TcpTrack) if f.name != "seen")
_SIDE_VALUES = attrgetter(*_SIDE_FIELDS)
_TRACK_VALUES = attrgetter(*(f.name for f in fields(TcpTrack)))
_TRACK_SCALAR_VALUES = attrgetter(*_TRACK_SCALARS)


def tcp_values(track: TcpTrack) -> tuple[Any, ...]:
    """A TcpTrack as one flat tuple of numbers: its fields, then both sides' fields."""
    original, reply = track.seen
    return _TRACK_SCALAR_VALUES(track) + _SIDE_VALUES(original) + _SIDE_VALUES(reply)


_SET_TCP = field_setter(_TRACK_SCALARS + tuple(f"seen[{i}].{name}" for i in (0, 1)
                                               for name in _SIDE_FIELDS))


def set_tcp_values(track: TcpTrack, values: tuple[Any, ...]) -> None:
    """Back to a ``tcp_values``, in place."""
    _SET_TCP(track, values)


# ----------------------------------------------------------------------------- entries
@dataclass(slots=True, eq=False)
class Conn:
    """struct nf_conn: one connection, both directions.

    ``expires`` is the absolute time on the box clock; ``timeout`` the last
    refresh's length (what an unconfirmed entry gets at confirm). ``nat`` is
    free for the NAT code (bindings per manipulation type).
    """

    original: CtTuple
    reply: CtTuple
    status: Status = Status.NONE
    mark: int = 0
    timeout: float = 0.0
    expires: float = 0.0
    tcp: TcpTrack | None = None
    udp_stream_ts: float = 0.0
    id: int = 0  # noqa: A003 - conntrack's entry id, in creation order
    nat: dict[str, Any] = field(default_factory=dict)
    # nf_conn_acct: packets, bytes of the ORIGINAL direction, then of the REPLY direction
    acct: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    labels: int = 0  # nf_conn_labels: bit N is label N (-m connlabel)

    @property
    def proto(self) -> int:
        return self.original.proto

    @property
    def confirmed(self) -> bool:
        return bool(self.status & Status.CONFIRMED)

    def tuple(self, direction: int) -> CtTuple:  # noqa: A003
        return self.original if direction == ORIGINAL else self.reply

    @property
    def proto_state(self) -> str:
        """The tracker's state as `conntrack -L` shows it (TCP only), else ''."""
        return TCP_STATES[self.tcp.state] if self.tcp is not None else ""

    def has(self, bit: Status) -> bool:
        return bool(self.status & bit)

    def remaining(self, now: float) -> float:
        """nf_ct_expires in seconds: 0 for an unconfirmed entry's relative timeout."""
        if not self.confirmed:
            return 0.0
        return max(0.0, self.expires - now)

    def refresh(self, now: float, seconds: float) -> None:
        """nf_ct_refresh: expires ``seconds`` from now (from confirm if unconfirmed).
        For an entry in a table, ConntrackTable.refresh (it moves the entry's timer)."""
        self.timeout = seconds
        self.expires = now + seconds

    def account(self, direction: int, length: int) -> None:
        """nf_ct_acct_update: one more packet of ``length`` bytes (skb->len) that way."""
        self.acct[2 * direction] += 1
        self.acct[2 * direction + 1] += length

    def line(self, now: float) -> str:
        """One line as `conntrack -L` prints it (conntrack-tools 1.4.7, checked here)."""
        name = _PROTO_NAMES.get(self.proto, "unknown")
        left = int(self.remaining(now) if self.confirmed else self.timeout)
        head = f"{name:<8} {self.proto} {left} "
        if self.proto_state:
            head += f"{self.proto_state} "
        text = head + self.original.text()
        if not self.has(Status.SEEN_REPLY):
            text += " [UNREPLIED]"
        text += " " + self.reply.text()
        if self.has(Status.ASSURED):
            text += " [ASSURED]"
        return f"{text} mark={self.mark} use=1"

    def summary(self) -> str:
        """Shorter than line(): protocol, tracker state and the original tuple."""
        name = _PROTO_NAMES.get(self.proto, str(self.proto))
        state = f" {self.proto_state}" if self.proto_state else ""
        return f"{name}{state} {self.original.text()}"

    # -- for NAT ----------------------------------------------------------------------

    def nat_initialized(self, manip: str) -> bool:
        """nf_nat_initialized: has this manipulation type ("SRC"/"DST") its binding?"""
        return self.has(Status.SRC_NAT_DONE if manip == "SRC" else Status.DST_NAT_DONE)

    def set_nat_initialized(self, manip: str) -> None:
        self.status |= Status.SRC_NAT_DONE if manip == "SRC" else Status.DST_NAT_DONE

    # -- for table snapshots ----------------------------------------------------------

    def state(self) -> tuple[Any, ...]:
        """Every field's value in one flat tuple (the mutable fields, MUTABLE_FIELDS, by
        value): what ``set_state`` gives back, any number of times. One object per
        entry, so that snapshotting a big table does not feed the garbage collector."""
        tcp = self.tcp
        nat = tuple(self.nat.items()) if self.nat else None
        head = _SCALAR_VALUES(self) + tuple(self.acct) + (nat,)
        return head if tcp is None else head + tcp_values(tcp)

    def set_state(self, state: tuple[Any, ...]) -> None:
        """Back to a ``state()``, in place: the entry, its TcpTrack, acct and nat are the
        same objects (a packet carrying this entry keeps carrying it)."""
        _SET_SCALARS(self, state[:_N_SCALARS])
        self.acct[:] = state[_N_SCALARS:_NAT_AT]
        nat = state[_NAT_AT]
        self.nat.clear()
        if nat is not None:
            self.nat.update(nat)
        if len(state) == _NAT_AT + 1:
            self.tcp = None
        else:
            if self.tcp is None:
                self.tcp = TcpTrack()
            set_tcp_values(self.tcp, state[_NAT_AT + 1:])


CONN_FIELDS = tuple(f.name for f in fields(Conn))
# The fields holding mutable objects, kept by value by Conn.state (the others hold
# immutable values: tuples, Status, numbers). A new mutable field of Conn goes here.
MUTABLE_FIELDS = ("tcp", "nat", "acct")
_SCALARS = tuple(name for name in CONN_FIELDS if name not in MUTABLE_FIELDS)
_SCALAR_VALUES = attrgetter(*_SCALARS)
_SET_SCALARS = field_setter(_SCALARS)
_N_SCALARS = len(_SCALARS)
_NAT_AT = _N_SCALARS + 4  # after the four acct counters


# ----------------------------------------------------------------------------- packets
def attach(meta: Any, conn: Conn | None, ctinfo: str) -> None:
    """nf_ct_set: the packet now carries ``conn`` with ``ctinfo`` (or none: INVALID)."""
    meta.ct = conn
    meta.ctinfo = ctinfo
    meta.ctstate = CTINFO_STATE.get(ctinfo, "")
    if conn is not None:
        meta.ctmark = conn.mark


def set_untracked(meta: Any) -> bool:
    """NOTRACK / CT --notrack (xt_ct_target): only for a packet without conntrack yet.

    Returns False when the packet already has an entry or is untracked
    ("Previously seen (loopback)? Ignore.").
    """
    if meta.ct is not None or meta.ctinfo == "UNTRACKED":
        return False
    attach(meta, None, "UNTRACKED")
    return True


def direction_of(ctinfo: str) -> int:
    """CTINFO2DIR."""
    return REPLY if ctinfo.endswith("_REPLY") else ORIGINAL


@dataclass(frozen=True, slots=True)
class Lookup:
    """What nf_conntrack_in decided for one packet.

    ``result``: new (entry created, unconfirmed), found, related, invalid,
    untracked, or kept (the packet already carried its entry: looped back).
    """

    result: str
    ctinfo: str
    conn: Conn | None = None
    direction: str = ""  # ORIGINAL | REPLY | ''
    why: str = ""

    @property
    def state(self) -> str:
        return CTINFO_STATE.get(self.ctinfo, "")


class _Verdict:
    ACCEPT, INVALID, REPEAT = "accept", "invalid", "repeat"


# ----------------------------------------------------------------------------- the table
def source_key(tup: CtTuple) -> tuple[int, IPv4Address, int]:
    """What nf_nat_core.c's same_src compares of an ORIGINAL tuple: the protocol, the
    source address and the source port (the ICMP id; 0 for other protocols)."""
    return (tup.proto, tup.src, tup.sport)


@dataclass(frozen=True, slots=True)
class TableState:
    """ConntrackTable.snapshot(): the entries (in creation order, each with its
    Conn.state), the tuple hash as it was, the timers and the next entry id."""

    conns: tuple[tuple[Any, ...], ...]  # (id, Conn, *Conn.state()) each
    by_tuple: dict[CtTuple, tuple[Conn, int]]
    timers: tuple[list[tuple[float, int]], dict[int, float]]
    next_id: int


class ConntrackTable:
    """The box's conntrack hash: confirmed entries, found by either tuple.

    Indexed as the kernel indexes them, so that no packet costs a walk over the
    table: ``_by_tuple`` is the conntrack hash (both tuples of every entry,
    nf_conntrack_hash), ``_by_source`` is NAT's nf_nat_bysource (entries by
    ``source_key`` of their ORIGINAL tuple, in creation order: walked newest first,
    as hlist_add_head leaves them), and ``_timers`` (kptui.engine.ct_timers) the
    entries' timeouts on the box's clock, so an expired entry is collected without
    looking at the live ones.
    """

    def __init__(self, box: Clocked) -> None:
        self.box = box
        self._by_tuple: dict[CtTuple, tuple[Conn, int]] = {}
        self._conns: dict[int, Conn] = {}  # by id, in creation order (`conntrack -L`)
        self._by_source: dict[tuple[int, IPv4Address, int], dict[int, Conn]] = {}
        self._timers = Timers()
        self._next_id = 1

    # -- clock and settings -----------------------------------------------------------

    @property
    def now(self) -> float:
        return float(getattr(self.box, "clock", 0.0))

    def setting(self, key: str) -> int:
        """A net.netfilter.nf_conntrack_<key> sysctl (kernel default when never set)."""
        return int(self.box.sysctl(SYSCTL_PREFIX + key))

    def timeout(self, key: str) -> int:
        return self.setting(key)

    def tcp_timeout(self, state: int) -> int:
        key = _TCP_TIMEOUT_KEYS.get(state)
        return self.timeout(key) if key else 120

    # -- the hash ---------------------------------------------------------------------

    def entries(self) -> list[Conn]:
        """Confirmed, unexpired entries in creation order (what `conntrack -L` lists)."""
        self._expire()
        return list(self._conns.values())

    def list_lines(self) -> list[str]:
        """`conntrack -L`'s lines (without its summary line on stderr)."""
        now = self.now
        return [conn.line(now) for conn in self.entries()]

    def find(self, tup: CtTuple) -> tuple[Conn, int] | None:
        """__nf_conntrack_find_get: a confirmed, unexpired entry and the direction hit."""
        hit = self._by_tuple.get(tup)
        if hit is None:
            return None
        conn = hit[0]
        if self.now >= conn.expires:  # nf_ct_is_expired: gone, collected on the way
            self.remove(conn)
            return None
        return hit

    def same_source(self, tup: CtTuple) -> list[Conn]:
        """nf_nat_bysource's bucket for ``tup``: the confirmed, unexpired entries whose
        ORIGINAL tuple has ``tup``'s source_key, newest first (find_appropriate_src)."""
        self._expire()
        bucket = self._by_source.get(source_key(tup))
        return list(reversed(bucket.values())) if bucket else []

    def insert(self, conn: Conn) -> None:
        """__nf_conntrack_confirm: into the hash, CONFIRMED, the timeout starts now."""
        conn.status |= Status.CONFIRMED
        conn.expires = self.now + conn.timeout
        if not conn.id:
            conn.id = self._next_id
            self._next_id += 1
        old = self._conns.get(conn.id)
        if old is not None and old is not conn:  # an id not from this table: replaced
            self._unindex_source(old)
        self._conns[conn.id] = conn
        self._by_source.setdefault(source_key(conn.original), {})[conn.id] = conn
        self._by_tuple[conn.original] = (conn, ORIGINAL)
        self._by_tuple[conn.reply] = (conn, REPLY)
        self._timers.arm(conn.id, conn.expires)

    def refresh(self, conn: Conn, seconds: float) -> None:
        """nf_ct_refresh of ``conn`` on this table's clock. Use this, not Conn.refresh,
        for an entry that may be in the table: an entry that expires earlier than
        before needs its timer moved."""
        conn.refresh(self.now, seconds)
        if self._conns.get(conn.id) is conn:
            self._timers.arm(conn.id, conn.expires)

    def remove(self, conn: Conn) -> None:
        """nf_ct_kill / nf_ct_delete: out of the hash, DYING."""
        conn.status |= Status.DYING
        gone = self._conns.pop(conn.id, None)
        if gone is None:
            return
        self._unindex_source(gone)
        self._timers.cancel(conn.id)
        for tup in (conn.original, conn.reply):
            if self._by_tuple.get(tup, (None,))[0] is conn:
                del self._by_tuple[tup]

    def _unindex_source(self, conn: Conn) -> None:
        key = source_key(conn.original)
        bucket = self._by_source.get(key)
        if bucket is not None and bucket.get(conn.id) is conn:
            del bucket[conn.id]
            if not bucket:
                del self._by_source[key]

    def _expire(self) -> None:
        """Collect every entry expired at the clock's now (the kernel's gc worker)."""
        conns = self._conns
        for key in self._timers.expired(self.now, lambda key: conns[key].expires):
            self.remove(conns[key])

    # -- checkpoints ------------------------------------------------------------------

    def held(self) -> Iterable[Conn]:
        """The entries in the table, expired or not (nothing is collected: looking must
        not change the state a snapshot is taken of)."""
        return self._conns.values()

    def snapshot(self) -> TableState:
        """All the table's state, O(entries): ``restore`` gives it back, any number of
        times. The box is not part of it (the table keeps its box)."""
        return TableState(tuple((key, conn) + conn.state() for key, conn in self._conns.items()),
                          dict(self._by_tuple), self._timers.state(), self._next_id)

    def restore(self, state: object) -> None:
        """Back to a ``snapshot()``. The entries are the same Conn objects, rewound in
        place: a packet that carried an entry at the snapshot still carries the
        table's entry. Entries made after the snapshot are no longer in the table."""
        assert isinstance(state, TableState)
        conns: dict[int, Conn] = {}
        by_source: dict[tuple[int, IPv4Address, int], dict[int, Conn]] = {}
        for record in state.conns:
            key, conn = record[0], record[1]
            conn.set_state(record[2:])
            conns[key] = conn
            by_source.setdefault(source_key(conn.original), {})[key] = conn
        self._conns = conns
        self._by_source = by_source
        self._by_tuple = dict(state.by_tuple)
        self._timers = Timers()
        self._timers.load(state.timers)
        self._next_id = state.next_id

    # -- nf_conntrack_in ------------------------------------------------------------------

    def lookup(self, pkt: Any) -> Lookup:
        """nf_conntrack_in for ``pkt``: updates the tracker state, attaches the entry."""
        meta = pkt.meta
        if meta.ctinfo == "UNTRACKED":
            return Lookup("untracked", "UNTRACKED",
                          why=("a -j TEE copy (nf_dup_ipv4 makes it untracked): "
                               "conntrack skips it" if meta.tee else
                               "marked NOTRACK in the raw table: conntrack skips it"))
        if meta.ct is not None:
            conn = meta.ct
            return Lookup("kept", meta.ctinfo, conn, DIR_NAMES[direction_of(meta.ctinfo)],
                          "the packet already carries its conntrack entry (it looped back "
                          "through lo, or is the box's answer, which gets the entry of the "
                          "packet it answers: nf_ct_attach): no second lookup")
        if pkt.ip.frag_offset or pkt.ip.mf:
            raise UnsupportedError("IP fragments with connection tracking (the kernel "
                                   "reassembles them before conntrack)")
        if pkt.ip.proto in _OWN_TRACKERS:
            raise UnsupportedError(f"connection tracking of {_OWN_TRACKERS[pkt.ip.proto]}")
        if pkt.ip.proto == PROTO_ICMP:
            icmp = self._icmp_error(pkt)
            if icmp is not None:
                if icmp.conn is None:
                    attach(meta, None, "INVALID")
                else:
                    attach(meta, icmp.conn, icmp.ctinfo)
                return icmp
        notes: list[str] = []
        for _attempt in range(3):
            outcome = self._resolve(pkt, notes)
            if outcome is not None:
                attach(meta, outcome.conn, outcome.ctinfo)
                return outcome
        raise AssertionError("conntrack lookup repeated too often")  # pragma: no cover

    def _resolve(self, pkt: Any, notes: list[str]) -> Lookup | None:
        """resolve_normal_ct + the protocol tracker; None means "look up again"."""
        tup = tuple_of(pkt)
        if tup is None:
            return Lookup("invalid", "INVALID", why="no complete transport header")
        hit = self.find(tup)
        created = hit is None
        if hit is None:
            reply = tup.invert()
            if reply is None:
                return Lookup("invalid", "INVALID",
                              why=f"ICMP type {tup.icmp_type} is neither a request nor an "
                                  "error: it cannot start a connection")
            conn = Conn(tup, reply)
            direction = ORIGINAL
            ctinfo = "NEW"
        else:
            conn, direction = hit
            if direction == REPLY:
                ctinfo = "ESTABLISHED_REPLY"
            elif conn.has(Status.SEEN_REPLY):
                ctinfo = "ESTABLISHED"
            elif conn.has(Status.EXPECTED):
                ctinfo = "RELATED"
            else:
                ctinfo = "NEW"
        verdict, why = self._l4_packet(conn, direction, pkt)
        if verdict == _Verdict.REPEAT:
            notes.append(why)
            return None
        why = "; ".join([*notes, why]) if notes else why
        if verdict == _Verdict.INVALID:
            return Lookup("invalid", "INVALID", why=why)
        if ctinfo == "ESTABLISHED_REPLY" and not conn.has(Status.SEEN_REPLY):
            conn.status |= Status.SEEN_REPLY
            why = "; ".join(filter(None, ["the first reply: SEEN_REPLY set", why]))
        return Lookup("new" if created else "found", ctinfo, conn, DIR_NAMES[direction], why)

    def _icmp_error(self, pkt: Any) -> Lookup | None:
        """nf_conntrack_icmpv4_error; None for ICMP that is tracked like any packet."""
        icmp = pkt.l4
        if icmp is None or not hasattr(icmp, "code"):
            return Lookup("invalid", "INVALID", why="short ICMP header")
        if icmp.type > NR_ICMP_TYPES:
            return Lookup("invalid", "INVALID", why=f"invalid ICMP type {icmp.type}")
        if icmp.type not in ICMP_ERRORS:
            return None
        inner = icmp.inner
        inner_tuple = tuple_of(inner) if inner is not None else None
        if inner_tuple is None:
            return Lookup("invalid", "INVALID",
                          why="the ICMP error quotes no complete IP and transport header")
        wanted = inner_tuple.invert()
        hit = self.find(wanted) if wanted is not None else None
        if hit is None:
            return Lookup("invalid", "INVALID",
                          why="the ICMP error's quoted packet belongs to no tracked connection")
        conn, direction = hit
        expected_dst = conn.tuple(direction).dst
        if pkt.ip.dst != expected_dst:
            return Lookup("invalid", "INVALID",
                          why=f"ICMP error to {pkt.ip.dst}, but the connection it quotes "
                              f"expects it at {expected_dst}")
        ctinfo = "RELATED_REPLY" if direction == REPLY else "RELATED"
        return Lookup("related", ctinfo, conn, DIR_NAMES[direction],
                      f"the quoted packet matches {conn.summary()} in the "
                      f"{DIR_NAMES[direction]} direction")

    # -- protocol trackers -------------------------------------------------------------

    def _l4_packet(self, conn: Conn, direction: int, pkt: Any) -> tuple[str, str]:
        proto = conn.proto
        if proto == PROTO_TCP:
            return self._tcp_packet(conn, direction, pkt)
        now = self.now
        if proto == PROTO_UDP:
            if not conn.confirmed:
                conn.udp_stream_ts = now + UDP_STREAM_AFTER
            if conn.has(Status.SEEN_REPLY):
                if now > conn.udp_stream_ts:
                    self._refresh_acct(conn, direction, pkt, "udp_timeout_stream")
                    if not conn.has(Status.ASSURED):
                        conn.status |= Status.ASSURED
                        return _Verdict.ACCEPT, "traffic both ways for over 2 s: ASSURED"
                else:
                    self._refresh_acct(conn, direction, pkt, "udp_timeout")
            else:
                self._refresh_acct(conn, direction, pkt, "udp_timeout")
            return _Verdict.ACCEPT, ""
        if proto == PROTO_ICMP:
            if conn.original.icmp_type not in ICMP_VALID_NEW:
                return _Verdict.INVALID, (f"ICMP type {conn.original.icmp_type} cannot start "
                                          "a connection (only echo, timestamp, info and "
                                          "address requests do)")
            self._refresh_acct(conn, direction, pkt, "icmp_timeout")
            return _Verdict.ACCEPT, ""
        self._refresh_acct(conn, direction, pkt, "generic_timeout")
        return _Verdict.ACCEPT, ""

    def _refresh_acct(self, conn: Conn, direction: int, pkt: Any, timeout: str) -> None:
        """nf_ct_refresh_acct: the timeout renewed, the packet counted."""
        self.refresh(conn, self.timeout(timeout))
        conn.account(direction, pkt.length)

    def _tcp_packet(self, conn: Conn, direction: int, pkt: Any) -> tuple[str, str]:
        """nf_conntrack_tcp_packet."""
        th = pkt.l4
        flags = th.flags
        if (flags & ~(TH_ECE | TH_CWR | TH_PSH) & 0x3F) not in TCP_VALID_FLAGS:
            return _Verdict.INVALID, "invalid TCP flag combination"
        if not conn.confirmed:
            refused = self._tcp_new(conn, pkt)
            if refused:
                return _Verdict.INVALID, refused
        tr = conn.tcp
        assert tr is not None
        old = tr.state
        index = tcp_index(flags)
        new = TCP_CONNTRACKS[direction][index][old]
        what = f"{INDEX_NAMES[index]} in the {DIR_NAMES[direction]} direction"
        skip_window = False

        if new == sSS and old >= sTW:
            if ((tr.seen[direction].flags | tr.seen[1 - direction].flags) & F_CLOSE_INIT
                    or (tr.last_dir == direction and tr.last_index == RST_SET)):
                self.remove(conn)
                return _Verdict.REPEAT, (f"SYN reopens the {TCP_STATES[old]} connection: "
                                         "the old entry is deleted and the lookup repeated")
            new = sIG
        if new == sIG:
            ignored = self._tcp_ignored(tr, direction, index, old, pkt)
            if ignored is not None:
                return ignored
            # a SYN/ACK answering a SYN conntrack had ignored: back in sync
            old, new = sSS, sSR
        if new == sIV:
            return _Verdict.INVALID, f"{what} is invalid in state {TCP_STATES[old]}"
        if new == sTW:
            if (old == sLA and index == ACK_SET and tr.last_dir != direction
                    and tr.last_index == SYN_SET and tr.last_flags & F_EXP_CHALLENGE_ACK):
                tr.last_flags &= ~F_EXP_CHALLENGE_ACK
                return _Verdict.ACCEPT, "challenge ACK ignored (state unchanged)"
        elif new == sS2:
            tr.last_flags |= F_SIMULTANEOUS_OPEN
        elif new == sSR:
            if (direction == REPLY and index == ACK_SET
                    and tr.last_flags & F_SIMULTANEOUS_OPEN):
                new = sES
        elif new == sCL and index == RST_SET:
            new, skip_window, refused = self._tcp_rst_in_close(conn, tr, direction, old, th)
            if refused:
                return _Verdict.INVALID, refused

        if not skip_window:
            res, why = self._tcp_in_window(conn, tr, direction, index, pkt)
            if res == "ignore":
                return _Verdict.ACCEPT, f"{why}: ignored, state stays {TCP_STATES[old]}"
            if res == "invalid":
                return _Verdict.INVALID, why
        # in_window:
        tr.last_index, tr.last_dir = index, direction
        tr.state = new
        if old != new and new == sFW:
            tr.seen[direction].flags |= F_CLOSE_INIT
        timeout = self._tcp_choose_timeout(tr, index, new)
        change = (f"tcp {TCP_STATES[old]} -> {TCP_STATES[new]}" if old != new
                  else f"tcp stays {TCP_STATES[new]}")
        if not conn.has(Status.SEEN_REPLY):
            if flags & TH_RST:
                conn.account(direction, pkt.length)  # nf_ct_kill_acct
                self.remove(conn)
                return _Verdict.ACCEPT, f"{change}; a RST as the only reply: entry deleted"
            if index == SYN_SET and old == sSS:
                return _Verdict.ACCEPT, "SYN retransmitted (timeout not renewed)"
            if new == sES and timeout > self.timeout(T_UNACK):
                timeout = self.timeout(T_UNACK)
        elif (not conn.has(Status.ASSURED) and old in (sSR, sES) and new == sES):
            conn.status |= Status.ASSURED
            change += "; ASSURED"
        self.refresh(conn, timeout)
        conn.account(direction, pkt.length)  # nf_ct_refresh_acct
        return _Verdict.ACCEPT, change

    def _tcp_new(self, conn: Conn, pkt: Any) -> str:
        """tcp_new: '' when the packet may start an entry, else why not."""
        th = pkt.l4
        index = tcp_index(th.flags)
        new = TCP_CONNTRACKS[ORIGINAL][index][sNO]
        if new >= sIV:
            return f"{INDEX_NAMES[index]} cannot start a connection"
        tr = TcpTrack()
        side = tr.seen[ORIGINAL]
        end = seg_end(th.seq, len(pkt.payload), th.flags)
        side.td_end = end
        side.td_maxwin = th.window or 1
        if new == sSS:
            side.td_maxend = end
            tcp_options(th.options, side)
        elif self.setting("tcp_loose") == 0:
            return ("not a SYN and nf_conntrack_tcp_loose is 0: mid-stream connections "
                    "are not picked up")
        else:
            side.td_maxend = (end + side.td_maxwin) & U32
            tr.seen[ORIGINAL].flags = tr.seen[REPLY].flags = F_SACK_PERM | F_BE_LIBERAL
        tr.last_index = NONE_SET
        conn.tcp = tr
        return ""

    def _tcp_ignored(self, tr: TcpTrack, direction: int, index: int, old: int,
                     pkt: Any) -> tuple[str, str] | None:
        """The sIG case: let the packet pass without changing state, remember it.

        None when the packet is a SYN/ACK answering a SYN that was ignored before:
        the caller then carries on as SYN_SENT -> SYN_RECV.
        """
        th = pkt.l4
        if (index == SYNACK_SET and tr.last_index == SYN_SET and tr.last_dir != direction
                and th.ack == tr.last_end):
            # a SYN/ACK answering a SYN we ignored: get back in sync (-> SYN_RECV)
            last = tr.seen[tr.last_dir]
            last.td_end = last.td_maxend = tr.last_end
            last.td_maxwin = tr.last_win or 1
            last.td_scale = tr.last_wscale
            tr.last_flags &= ~F_EXP_CHALLENGE_ACK
            last.flags = tr.last_flags
            side = tr.seen[direction]
            side.td_end = side.td_maxend = side.td_maxwin = side.td_maxack = 0
            side.td_scale = 0
            side.flags &= F_BE_LIBERAL
            return None
        tr.last_index = index
        tr.last_dir = direction
        tr.last_seq = th.seq
        tr.last_end = seg_end(th.seq, len(pkt.payload), th.flags)
        tr.last_win = th.window
        if index == SYN_SET and direction == ORIGINAL:
            seen = TcpSide()
            tr.last_flags = tr.last_wscale = 0
            tcp_options(th.options, seen)
            if seen.flags & F_WINDOW_SCALE:
                tr.last_flags |= F_WINDOW_SCALE
                tr.last_wscale = seen.td_scale
            if seen.flags & F_SACK_PERM:
                tr.last_flags |= F_SACK_PERM
            if old == sLA:
                tr.last_flags |= F_EXP_CHALLENGE_ACK
        if old == sSS and index == ACK_SET and direction == REPLY:
            tr.last_ack = th.ack
        return _Verdict.ACCEPT, (f"{INDEX_NAMES[index]} in the {DIR_NAMES[direction]} "
                                 f"direction ignored in state {TCP_STATES[old]} (the peers "
                                 "may know better): state unchanged")

    def _tcp_rst_in_close(self, conn: Conn, tr: TcpTrack, direction: int, old: int,
                          th: Any) -> tuple[int, bool, str]:
        """The RST checks of the TCP_CONNTRACK_CLOSE case: (new state, skip window, refusal)."""
        new = sCL
        if old in (sFW, sLA, sTW, sCL, sCW):  # tcp_can_early_drop
            return new, True, ""
        other = tr.seen[1 - direction]
        if other.flags & F_MAXACK_SET and tr.last_index != SYN_SET:
            seq = th.seq
            established = tr.state == sES and conn.has(Status.ASSURED)
            if seq == 0 and not established:
                return new, False, ""
            if before(seq, other.td_maxack) and not self.setting("tcp_ignore_invalid_rst"):
                return new, False, "RST with a sequence number below what was acknowledged"
            if not established or seq == other.td_maxack:
                return new, False, ""
            if tr.last_index == ACK_SET and tr.last_dir == direction and seq == tr.last_end:
                return new, False, ""
            new = old  # keep the state: a challenge ACK may follow
        if (((conn.has(Status.SEEN_REPLY) and tr.last_index == SYN_SET)
             or (not conn.has(Status.ASSURED) and tr.last_index == ACK_SET))
                and th.ack == tr.last_end):
            return new, True, ""
        if (old == sSS and tr.last_index == ACK_SET and tr.last_dir == REPLY
                and th.seq == tr.last_ack):
            return new, True, ""
        return new, False, ""

    def _tcp_choose_timeout(self, tr: TcpTrack, index: int, new: int) -> int:
        state_timeout = self.tcp_timeout(new)
        retrans, unack = self.timeout(T_RETRANS), self.timeout(T_UNACK)
        if tr.retrans >= self.setting("tcp_max_retrans") and state_timeout > retrans:
            return retrans
        if index == RST_SET:
            return self.tcp_timeout(sCL)
        if ((tr.seen[0].flags | tr.seen[1].flags) & F_DATA_UNACKNOWLEDGED
                and state_timeout > unack):
            return unack
        if tr.last_win == 0 and state_timeout > retrans:
            return retrans
        return state_timeout

    def _tcp_in_window(self, conn: Conn, tr: TcpTrack, direction: int, index: int,
                       pkt: Any) -> tuple[str, str]:
        """tcp_in_window: 'accept', 'ignore' or 'invalid', and why."""
        th = pkt.l4
        sender, receiver = tr.seen[direction], tr.seen[1 - direction]
        cur_state = tr.state
        syn, has_ack, rst = th.flags & TH_SYN, th.flags & TH_ACK, th.flags & TH_RST
        seq = th.seq
        ack = sack = th.ack
        win_raw = th.window
        win = win_raw
        end = seg_end(seq, len(pkt.payload), th.flags)
        if receiver.flags & F_SACK_PERM:
            sack = tcp_sack(th.options, sack)

        def refuse(result: str, why: str) -> tuple[str, str]:
            if sender.flags & F_BE_LIBERAL or self.setting("tcp_be_liberal"):
                return "accept", ""
            return result, why

        if sender.td_maxwin == 0:
            if syn:
                _init_sender(sender, receiver, th, end, win, direction)
                if not has_ack:
                    return "accept", ""
            else:
                sender.td_end = end
                swin = (win << sender.td_scale) & U32
                sender.td_maxwin = swin or 1
                sender.td_maxend = (end + sender.td_maxwin) & U32
                if receiver.td_maxwin == 0:
                    receiver.td_end = receiver.td_maxend = sack
                elif sack == (receiver.td_end + 1) & U32:
                    receiver.td_end = (receiver.td_end + 1) & U32
        elif syn and after(end, sender.td_end) and cur_state in (sSS, sSR):
            _init_sender(sender, receiver, th, end, win, direction)
            if direction == REPLY and not has_ack:
                return "accept", ""

        if not has_ack:
            ack = sack = receiver.td_end
        elif th.flags & (TH_ACK | TH_RST) == (TH_ACK | TH_RST) and ack == 0:
            ack = sack = receiver.td_end

        if rst and seq == 0 and cur_state == sSS:
            seq = end = sender.td_end

        maxackwin = max(sender.td_maxwin, MAXACKWINCONST)  # MAXACKWINDOW(sender)
        if not before(seq, (sender.td_maxend + 1) & U32):
            overshot = (end - sender.td_maxend + 1) & U32
            ack_ok = after(sack, (receiver.td_end - maxackwin - 1) & U32)
            in_recv_win = bool(receiver.td_maxwin) and after(
                end, (sender.td_end - receiver.td_maxwin - 1) & U32)
            if (in_recv_win and ack_ok and overshot <= receiver.td_maxwin
                    and before(sack, (receiver.td_end + 1) & U32)):
                sender.td_end = end
                sender.flags |= F_DATA_UNACKNOWLEDGED
                return refuse("ignore", f"{overshot} bytes more than the receiver's window")
            return refuse("invalid", f"SEQ {seq} is over the upper bound "
                                     f"{(sender.td_maxend + 1) & U32} (over the receiver's "
                                     "window)")
        if not before(sack, (receiver.td_end + 1) & U32):
            return refuse("invalid", f"ACK {sack} is over the upper bound "
                                     f"{(receiver.td_end + 1) & U32} (ACKed data not seen "
                                     "yet)")
        in_recv_win = not receiver.td_maxwin or after(
            end, (sender.td_end - receiver.td_maxwin - 1) & U32)
        if not in_recv_win:
            return refuse("ignore", "SEQ is under the lower bound (already ACKed data "
                                    "retransmitted)")
        if not after(sack, (receiver.td_end - maxackwin - 1) & U32):
            return refuse("ignore", "ACK under the lower bound (possibly overly delayed)")

        if not syn:
            win = (win << sender.td_scale) & U32
        swin = (win + (sack - ack)) & U32
        if sender.td_maxwin < swin:
            sender.td_maxwin = swin
        if after(end, sender.td_end):
            sender.td_end = end
            sender.flags |= F_DATA_UNACKNOWLEDGED
        if has_ack:
            if not sender.flags & F_MAXACK_SET:
                sender.td_maxack = ack
                sender.flags |= F_MAXACK_SET
            elif after(ack, sender.td_maxack):
                sender.td_maxack = ack
        if receiver.td_maxwin != 0 and after(end, sender.td_maxend):
            receiver.td_maxwin = (receiver.td_maxwin + end - sender.td_maxend) & U32
        if after((sack + win) & U32, (receiver.td_maxend - 1) & U32):
            receiver.td_maxend = (sack + win) & U32
            if win == 0:
                receiver.td_maxend = (receiver.td_maxend + 1) & U32
        if ack == receiver.td_end:
            receiver.flags &= ~F_DATA_UNACKNOWLEDGED
        if index == ACK_SET:
            key = (direction, seq, ack, end, win_raw)
            if (tr.last_dir, tr.last_seq, tr.last_ack, tr.last_end, tr.last_win) == key:
                tr.retrans += 1
            else:
                tr.last_dir, tr.last_seq, tr.last_ack, tr.last_end, tr.last_win = key
                tr.retrans = 0
        return "accept", ""

    # -- confirm -----------------------------------------------------------------------

    def confirm(self, pkt: Any) -> Conn | None:
        """nf_confirm at the last hook: insert the packet's new entry; None if nothing to do."""
        conn = pkt.meta.ct
        if conn is None or conn.confirmed or direction_of(pkt.meta.ctinfo) != ORIGINAL:
            return None
        if conn.has(Status.DYING):
            return None
        self.insert(conn)
        return conn


# ----------------------------------------------------------------------------- TCP helpers
def tcp_index(flags: int) -> int:
    """get_conntrack_index: RST > SYN (with/without ACK) > FIN > ACK > none."""
    if flags & TH_RST:
        return RST_SET
    if flags & TH_SYN:
        return SYNACK_SET if flags & TH_ACK else SYN_SET
    if flags & TH_FIN:
        return FIN_SET
    if flags & TH_ACK:
        return ACK_SET
    return NONE_SET


def seg_end(seq: int, payload_len: int, flags: int) -> int:
    """segment_seq_plus_len: SYN and FIN count as one byte each."""
    return (seq + payload_len + (1 if flags & TH_SYN else 0) + (1 if flags & TH_FIN else 0)) & U32


def _options(data: bytes) -> list[tuple[int, bytes]]:
    """(kind, value) of each TCP option, stopping where the kernel's parser stops."""
    out: list[tuple[int, bytes]] = []
    i = 0
    while i < len(data):
        kind = data[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(data):
            break
        size = data[i + 1]
        if size < 2 or i + size > len(data):
            break
        out.append((kind, data[i + 2:i + size]))
        i += size
    return out


def tcp_options(data: bytes, side: TcpSide) -> None:
    """tcp_options: window scale and SACK permitted of a SYN."""
    if not data:
        return
    side.td_scale = 0
    side.flags &= F_BE_LIBERAL
    for kind, value in _options(data):
        if kind == 4 and len(value) == 0:
            side.flags |= F_SACK_PERM
        elif kind == 3 and len(value) == 1:
            side.td_scale = min(value[0], TCP_MAX_WSCALE)
            side.flags |= F_WINDOW_SCALE


def tcp_sack(data: bytes, sack: int) -> int:
    """tcp_sack: the highest right edge of the SACK blocks, if above ``sack``."""
    for kind, value in _options(data):
        if kind == 5 and len(value) >= 8 and len(value) % 8 == 0:
            for i in range(0, len(value), 8):
                edge = int.from_bytes(value[i + 4:i + 8], "big")
                if after(edge, sack):
                    sack = edge
            return sack
    return sack


def _init_sender(sender: TcpSide, receiver: TcpSide, th: Any, end: int, win: int,
                 direction: int) -> None:
    """tcp_init_sender: a SYN/ACK, or a SYN of the reply direction."""
    sender.td_end = sender.td_maxend = end
    sender.td_maxwin = win or 1
    tcp_options(th.options, sender)
    if direction == REPLY and not (sender.flags & F_WINDOW_SCALE
                                   and receiver.flags & F_WINDOW_SCALE):
        sender.td_scale = receiver.td_scale = 0
