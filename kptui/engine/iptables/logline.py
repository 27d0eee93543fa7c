"""The text the LOG target writes, as nf_log_syslog.c's dump_ipv4_packet builds it."""

from __future__ import annotations

from typing import Any

# ipt_LOG.h flags
LOG_TCPSEQ, LOG_TCPOPT, LOG_IPOPT, LOG_UID, LOG_MACDECODE = 0x01, 0x02, 0x04, 0x08, 0x20

_TCP_FLAG_WORDS = ((0x80, "CWR"), (0x40, "ECE"), (0x20, "URG"), (0x10, "ACK"), (0x08, "PSH"),
                   (0x04, "RST"), (0x02, "SYN"), (0x01, "FIN"))


def _hex_opts(data: bytes) -> str:
    return "OPT (" + "".join(f"{b:02X}" for b in data) + ") "


def dump_ipv4(pkt: Any, flags: int, inner: bool = False) -> str:
    """Everything from SRC= on; ``inner`` for the header quoted inside an ICMP error."""
    ip = pkt.ip
    s = f"SRC={ip.src} DST={ip.dst} "
    s += (f"LEN={pkt.length} TOS=0x{ip.tos & 0x1E:02X} PREC=0x{ip.tos & 0xE0:02X} "
          f"TTL={ip.ttl} ID={ip.id} ")
    if ip.df:
        s += "DF "
    if ip.mf:
        s += "MF "
    if ip.frag_offset:
        s += f"FRAG:{ip.frag_offset} "
    if flags & LOG_IPOPT and ip.options:
        s += _hex_opts(ip.options)
    l4 = pkt.l4
    frag = ip.frag_offset != 0
    if ip.proto == 6:
        s += "PROTO=TCP "
        if frag or l4 is None:
            return s
        s += f"SPT={l4.sport} DPT={l4.dport} "
        if flags & LOG_TCPSEQ:
            s += f"SEQ={l4.seq} ACK={l4.ack} "
        s += f"WINDOW={l4.window} RES=0x00 "
        s += "".join(w + " " for bit, w in _TCP_FLAG_WORDS if l4.flags & bit)
        s += f"URGP={l4.urgptr} "
        if flags & LOG_TCPOPT and l4.options:
            s += _hex_opts(l4.options)
    elif ip.proto == 17:
        s += "PROTO=UDP "
        if frag or l4 is None:
            return s
        s += f"SPT={l4.sport} DPT={l4.dport} LEN={8 + len(pkt.payload)} "
    elif ip.proto == 1:
        s += "PROTO=ICMP "
        if frag or l4 is None:
            return s
        s += f"TYPE={l4.type} CODE={l4.code} "
        if l4.type in (0, 8):
            s += f"ID={l4.id} SEQ={l4.seq} "
        elif l4.type in (3, 4, 11) and l4.inner is not None and not inner:
            s += "[" + dump_ipv4(l4.inner, flags, inner=True) + "] "
            if l4.type == 3 and l4.code == 4:
                s += f"MTU={l4.seq & 0xFFFF} "
    else:
        s += f"PROTO={ip.proto} "
    if not inner and pkt.meta.mark:
        s += f"MARK=0x{pkt.meta.mark:x} "
    return s


def log_line(pkt: Any, ctx: Any, prefix: str, flags: int) -> str:
    """The whole line (without the printk level), trailing space removed."""
    s = f"{prefix}IN={ctx.iif} OUT={ctx.oif} "
    if ctx.iif:
        macs = [m for m in (getattr(ctx, "dst_mac", None), ctx.src_mac) if m]
        s += "MAC=" + (":".join(macs) + ":08:00" if len(macs) == 2 else "") + " "
    return (s + dump_ipv4(pkt, flags)).rstrip()
