"""The scenario's conntrack entries, made in the kernel's box with `conntrack -I`.

kptui.engine.ct_entries reads a ``conntrack`` line as the entry `conntrack -I` makes
with the same tuples, TCP state, status (SEEN_REPLY, ASSURED), mark and timeout; this is
that command (conntrack-tools 1.4.7, checked on Linux 6.18). NAT is given as NAT, not as
a bare reply tuple: `--src-nat` with the reply's destination (and port) always, so the
kernel runs nf_nat_setup_info for the source manipulation and the null binding for the
destination one (ctnetlink_setup_nat), and `--dst-nat` with the reply's source when the
destination was translated: the entry then has SRC_NAT/DST_NAT as the tuples show and
both *_NAT_DONE bits, which is what kptui loads (an entry that went through a box's nat
hooks). What conntrack -I cannot make is refused by name: the packet and byte counters
(the kernel starts them at 0) and an ICMP entry whose id was translated.
"""

from __future__ import annotations

from kptui.engine.conntrack import PROTO_ICMP, TCP_STATES, Conn, Status
from kptui.engine.errors import KptuiError

PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp"}


def insert_argv(conn: Conn) -> list[str]:
    """The `conntrack -I` command that makes ``conn`` in a kernel's table."""
    o, r = conn.original, conn.reply
    argv = ["conntrack", "-I", "-p", PROTO_NAMES[conn.proto], "-s", str(o.src), "-d",
            str(o.dst)]
    if conn.proto == PROTO_ICMP:
        if r.sport != o.sport:
            raise KptuiError(f"conntrack entry {conn.summary()}: conntrack -I cannot make an "
                             "ICMP entry whose id is translated (unsupported yet in verify)")
        argv += ["--icmp-type", str(o.icmp_type), "--icmp-code", str(o.icmp_code),
                 "--icmp-id", str(o.sport)]
        src_nat, dst_nat = str(r.dst), str(r.src)
    else:
        argv += ["--sport", str(o.sport), "--dport", str(o.dport)]
        src_nat, dst_nat = f"{r.dst}:{r.dport}", f"{r.src}:{r.sport}"
    if conn.tcp is not None:
        argv += ["--state", TCP_STATES[conn.tcp.state]]
    argv += ["-t", str(int(conn.timeout))]
    status = [name for bit, name in ((Status.SEEN_REPLY, "SEEN_REPLY"),
                                     (Status.ASSURED, "ASSURED")) if conn.has(bit)]
    if status:
        argv += ["-u", ",".join(status)]
    if conn.mark:
        argv += ["-m", str(conn.mark)]
    if conn.has(Status.DST_NAT):
        argv += ["--dst-nat", dst_nat]
    argv += ["--src-nat", src_nat]
    return argv


def counters_kept(conn: Conn) -> bool:
    """Whether the entry has counters conntrack -I cannot give it."""
    return any(conn.acct)


__all__ = ["insert_argv", "counters_kept"]
