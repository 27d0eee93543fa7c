"""The `tc` lines of a scenario's setup: qdiscs, classes and filters into ``box.tc``.

Parsed as iproute2 6.1's tc reads them (tc(8), tc-htb(8), tc-tbf(8),
tc-prio(8), tc-u32(8), tc-fw(8), tc-police(8), tc-mirred(8)); what the
kernel refuses is refused with its message; what kptui does not model is
"unsupported yet". The model itself, and what it means for a packet, is
kptui.engine.qos.
"""

from __future__ import annotations

import math
from typing import Any

from kptui.engine.box import Box
from kptui.engine.errors import UnsupportedError
from kptui.engine.numbers import (
    U32,
    NumberError,
    parse_float,
    parse_uint,
    split_float,
    split_uint,
)
from kptui.engine.setup import Cmd, Tok, _match, _need, parse_addr

# -- tc (iproute2 6.1 tc: qdisc, class, filter) ------------------------------------------------

TC_OBJECTS = ("qdisc", "class", "filter")
TC_VERBS = {"add": "add", "replace": "replace", "change": "change", "del": "delete",
            "delete": "delete", "show": "show", "list": "show", "ls": "show", "link": "change"}
# get_rate64 (tc/tc_util.c): bits per second; case-insensitive
RATE_UNITS = {"bit": 1, "kibit": 1024, "kbit": 1000, "mibit": 1024**2, "mbit": 1000**2,
              "gibit": 1024**3, "gbit": 1000**3, "tibit": 1024**4, "tbit": 1000**4,
              "bps": 8, "kibps": 8 * 1024, "kbps": 8000, "mibps": 8 * 1024**2,
              "mbps": 8 * 1000**2, "gibps": 8 * 1024**3, "gbps": 8 * 1000**3}
# get_size (tc/tc_util.c): bytes
SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2,
              "g": 1024**3, "gb": 1024**3, "kbit": 1024 / 8, "mbit": 1024**2 / 8,
              "gbit": 1024**3 / 8}
# get_time: seconds
TIME_UNITS = {"": 1e-6, "s": 1, "sec": 1, "secs": 1, "ms": 1e-3, "msec": 1e-3, "msecs": 1e-3,
              "us": 1e-6, "usec": 1e-6, "usecs": 1e-6}
U32_IP_FIELDS = {  # tc-u32(8) `match ip ...`: offset in the IP header and width in bytes
    "tos": (1, 1), "dsfield": (1, 1), "protocol": (9, 1), "sport": (20, 2), "dport": (22, 2),
    "icmp_type": (20, 1), "icmp_code": (21, 1),
}
# Qdiscs tc knows and kptui does not model (yet).
UNSUPPORTED_QDISCS = ("noqueue", "mq", "netem", "cake", "fq", "hfsc", "drr", "qfq", "cbq",
                      "red", "codel", "pie", "multiq", "mqprio", "ets", "skbprio", "choke",
                      "sfb", "gred", "teql", "taprio", "etf", "cbs", "hhf", "plug")
HTB_DEFAULT_BURST = 1600  # q_htb.c: rate / get_hz() + mtu (1600), ~1600 bytes


_BLANKS = " \t\n\v\f\r"  # what strtod skips (C isspace)


def _unit_number(cmd: Cmd, tok: Tok, units: dict[str, float], what: str,
                 text: str | None = None) -> float:
    """strtod then a unit, as get_rate64/get_size/get_time read it: blanks, a sign,
    decimal digits with a point and an exponent, or 0x hex ("0x10kbit" is 16kbit, "010"
    is 10; checked with tc, iproute2 6.1), then a unit (ASCII, any case). A result that
    is not finite (``1e999``) is refused. ``text``: the part of the token to read."""
    body = (tok.text if text is None else text).lstrip(_BLANKS)
    negative = body.startswith("-")
    if body[:1] in ("+", "-"):
        body = body[1:]
    hex_digits, hex_rest = split_uint(body[2:], 16) if body[:2] in ("0x", "0X") else ("", "")
    try:
        if hex_digits:
            value, rest = parse_uint(hex_digits, 0, 2**128, base=16) * 1.0, hex_rest
        else:
            number, rest = split_float(body)
            value = parse_float(number, what=what)
    except NumberError:
        raise cmd.error(f'Illegal "{what}"', tok) from None
    scale = units.get(rest.lower()) if rest.isascii() else None
    if scale is None or not math.isfinite(value * scale):
        raise cmd.error(f'Illegal "{what}"', tok)
    return -value * scale if negative else value * scale


def tc_rate(cmd: Cmd, tok: Tok) -> float:
    """A tc rate in bytes per second (get_rate64: a u64 of bytes per second; tc wraps
    a negative or too large rate, kptui refuses it)."""
    rate = _unit_number(cmd, tok, RATE_UNITS | {"": 1}, "rate") / 8
    if not 0 < rate < 2**64:
        raise cmd.error('Illegal "rate"', tok)
    return rate


def tc_size(cmd: Cmd, tok: Tok, what: str, *, cell: bool = False) -> int:
    """A size in bytes as get_size reads it: strtod and a unit, the whole bytes kept,
    refused unless it fits 32 bits ("burst 4g" is refused, "1.5" is 1; checked with tc
    6.1). ``cell``: get_size_and_cell, which also takes ``/CELL``, a power of two."""
    size, slash, cell_text = tok.text.partition("/")
    value = _unit_number(cmd, tok, SIZE_UNITS, what, size)
    if not 0 <= value < 2**32 or slash and not cell:
        raise cmd.error(f'Illegal "{what}"', tok)
    if slash:
        try:
            cells = parse_uint(cell_text, 1, 2**30, base=0, strtoul=True)
        except NumberError:
            cells = 3
        if cells & (cells - 1):
            raise cmd.error(f'Illegal "{what}"', tok)
    return math.floor(value)  # the whole bytes, as get_size's cast to unsigned keeps


def tc_time(cmd: Cmd, tok: Tok, what: str) -> float:
    """A time in seconds as get_time reads it; tc keeps it in 32 bits of microseconds
    (and wraps a longer or negative one: kptui refuses it)."""
    seconds = _unit_number(cmd, tok, TIME_UNITS, what)
    if not 0 <= seconds * 1e6 < 2**32:
        raise cmd.error(f'Illegal "{what}"', tok)
    return seconds


def tc_handle(cmd: Cmd, tok: Tok, what: str) -> int:
    from kptui.engine.errors import FieldError
    from kptui.engine.packet import parse_classid

    try:
        return parse_classid(tok.text if ":" in tok.text or tok.text in ("root", "none")
                             else tok.text + ":") if what == "handle" \
            else parse_classid(tok.text)
    except FieldError:
        raise cmd.error(f'Illegal "{what}"', tok) from None


def cmd_tc(box: Box, cmd: Cmd) -> None:
    """`tc qdisc|class|filter add|replace|change|del ...` (tc(8), tc-htb(8), tc-u32(8),
    tc-tbf(8), tc-prio(8), tc-police(8), tc-mirred(8)); `show` changes nothing."""
    args = cmd.toks[1:]
    while args and args[0].text.startswith("-"):
        if args[0].text.lstrip("-") in ("s", "stats", "d", "details", "j", "json", "p",
                                        "pretty", "statistics"):
            args = args[1:]
            continue
        raise cmd.error(f"unsupported tc option {args[0].text!r}", args[0])
    if not args:
        raise cmd.error("tc: missing object (qdisc, class, filter)")
    obj = _match(args[0].text, TC_OBJECTS)
    if obj is None:
        if _match(args[0].text, ("actions", "monitor", "exec", "chain")):
            raise cmd.unsupported()
        raise cmd.error(f'Object "{args[0].text}" is unknown, try "tc help".', args[0])
    if len(args) < 2:
        return  # `tc qdisc` lists
    verb = TC_VERBS.get(args[1].text)
    if verb is None:
        raise cmd.error(f'Command "{args[1].text}" is unknown, try "tc {obj} help".', args[1])
    if verb == "show":
        return
    {"qdisc": tc_qdisc, "class": tc_class, "filter": tc_filter}[obj](box, cmd, verb, args[2:])


def _tc_dev(box: Box, cmd: Cmd, tok: Tok) -> str:
    if tok.text not in box.interfaces:
        raise cmd.error(f'Cannot find device "{tok.text}"', tok)
    return tok.text


# -- the words before a tc object's kind ------------------------------------------------------
# Each command's table: word -> (field, how to read its value). A reader takes the next
# token; a plain value sets the field from the word alone; UNSUPPORTED words are tc's
# but not modelled. The first word not in the table is the kind; the rest are its options.
UNSUPPORTED = object()
_TAKES_KIND = "kind"  # a head word that is its own kind as well (qdisc ingress / clsact)


def _read_head(cmd: Cmd, args: list[Tok], words: dict[str, Any]
               ) -> tuple[dict[str, Any], str, list[Tok]]:
    """Split `dev X parent P ... KIND OPTS` by a command's table of head words."""
    got: dict[str, Any] = {}
    i = 0
    while i < len(args):
        tok = args[i]
        spec = words.get(tok.text)
        if spec is None:
            return got, tok.text, args[i + 1:]
        if spec is UNSUPPORTED:
            raise cmd.unsupported()
        field, read = spec
        if callable(read):
            got[field] = read(cmd, _need(cmd, args, i + 1, tok.text))
            i += 2
            continue
        got[field] = read
        if field == _TAKES_KIND:
            return got, tok.text, args[i + 1:]
        i += 1
    return got, "", []


def _handle_reader(what: str) -> Any:
    return lambda cmd, tok: tc_handle(cmd, tok, what)


def _keep(_cmd: Cmd, tok: Tok) -> Tok:
    return tok


def _filter_protocol(cmd: Cmd, tok: Tok) -> str:
    protocol = tok.text.lower()
    if protocol not in ("ip", "all", "ipv6", "arp", "802.1q", "802_1q", "0x0800"):
        raise cmd.error('Illegal "protocol"', tok)
    return "ip" if protocol == "0x0800" else protocol


def _filter_prio(cmd: Cmd, tok: Tok) -> int:
    """get_u32 base 0 ("prio 010" is 8; checked with tc 6.1); 0 lets the kernel pick."""
    try:
        return parse_uint(tok.text, 0, 0xFFFF, base=0, strtoul=True)
    except NumberError:
        raise cmd.error(f'Error: argument "{tok.text}" is wrong: invalid priority value',
                        tok) from None


def _head_words() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The head-word tables of tc qdisc, tc class and tc filter (tc_qdisc_modify,
    tc_class_modify, tc_filter_modify in iproute2's tc/)."""
    from kptui.engine.qos import TC_H_INGRESS, TC_H_ROOT

    common = {"dev": ("dev", _keep), "parent": ("parent", _handle_reader("parent")),
              "root": ("parent", TC_H_ROOT)}
    qdisc = {**common, "handle": ("handle", _handle_reader("handle")),
             "ingress": (_TAKES_KIND, TC_H_INGRESS), "clsact": (_TAKES_KIND, TC_H_INGRESS),
             **dict.fromkeys(("estimator", "stab", "ingress_block", "egress_block"),
                             UNSUPPORTED)}
    klass = {**common, "classid": ("classid", _handle_reader("classid")),
             "handle": ("classid", _handle_reader("classid"))}
    filt = {**common, "ingress": ("parent", 0xFFFFFFF2), "egress": ("parent", 0xFFFFFFF3),
            "protocol": ("protocol", _filter_protocol), "handle": ("handle", _keep),
            **dict.fromkeys(("prio", "pref", "priority", "preference"),
                            ("prio", _filter_prio)),
            **dict.fromkeys(("chain", "block", "estimator"), UNSUPPORTED)}
    return qdisc, klass, filt


QDISC_WORDS, CLASS_WORDS, FILTER_WORDS = _head_words()


def tc_qdisc(box: Box, cmd: Cmd, verb: str, args: list[Tok]) -> None:
    """tc_qdisc_modify: dev, handle, root|parent|ingress|clsact, then the kind's options."""
    from kptui.engine import qos

    head, kind, opts = _read_head(cmd, args, QDISC_WORDS)
    dev_tok: Tok | None = head.get("dev")
    handle: int | None = head.get("handle")
    parent: int | None = head.get(_TAKES_KIND, head.get("parent"))
    if kind in UNSUPPORTED_QDISCS:
        raise UnsupportedError(f"qdisc {kind}")
    if dev_tok is None:
        raise cmd.error('Not enough information: "dev" argument is required.')
    dev = _tc_dev(box, cmd, dev_tok)
    state = box.tc
    d = state.dev(dev)
    d.mtu = box.interfaces[dev].mtu
    if verb == "delete":
        _tc_qdisc_delete(cmd, d, parent, handle)
        return
    if parent is None:
        raise cmd.error('Error: Parent Qdisc doesn\'t exists.' if verb != "change" else
                        "Error: Specified qdisc not found.")
    if not kind:
        raise cmd.error("Error: Qdisc kind is missing")
    if kind in ("ingress", "clsact"):
        if opts:
            raise cmd.error(f'What is "{opts[0].text}"?', opts[0])
        if d.ingress is not None and verb == "add":
            raise cmd.error("Error: Exclusivity flag on, cannot modify.")
        d.ingress = qos.Qdisc(kind, qos.INGRESS_HANDLE, qos.TC_H_INGRESS)
        return
    q = _tc_new_qdisc(cmd, d, kind, opts)
    q.parent = parent
    if handle is not None and handle & 0xFFFF:
        raise cmd.error('Error: Invalid handle.')
    if parent == qos.TC_H_ROOT:
        old = d.root
        if old is not None and verb == "add":  # NLM_F_EXCL (checked on kernel 6.18)
            raise cmd.error("Error: Exclusivity flag on, cannot modify.")
        if old is not None and verb in ("replace", "change") and handle is None:
            handle = old.handle
        q.handle = handle if handle is not None else _tc_auto(d)
        _name_inner(q)
        if old is not None and old.handle == q.handle and old.kind != q.kind \
                and verb == "change":
            raise cmd.error("Error: Invalid qdisc name.")
        if old is None or old.handle != q.handle or old.kind != q.kind:
            d.classes.clear()
            d.filters = {k: v for k, v in d.filters.items()
                         if k in (qos.BLOCK_INGRESS, qos.BLOCK_EGRESS)}
        d.root = q
        return
    q.handle = handle if handle is not None else _tc_auto(d)
    _name_inner(q)
    _tc_attach_child(cmd, d, parent, q)


def _name_inner(q: Any) -> None:
    """Names for the queues a qdisc makes itself (shown in events and the QoS panel)."""
    from kptui.engine.packet import format_classid

    own = format_classid(q.handle)
    if q.child is not None and not q.child.handle:
        q.child.opts["of"] = f"child of tbf {own}"
    for n, band in enumerate(q.bands):
        band.opts["of"] = f"band {n} of prio {own}"
    if "direct" in q.opts:
        q.opts["direct"].opts["of"] = f"direct queue of htb {own}"


def _tc_auto(d: Any) -> int:
    handle = d.next_auto << 16
    d.next_auto += 1
    return handle


def _tc_attach_child(cmd: Cmd, d: Any, parent: int, q: Any) -> None:
    """A qdisc under a class: htb's leaf, tbf's 1:1, prio's bands N:1..N:bands."""
    if parent in d.classes:
        cl = d.classes[parent]
        if not d.is_leaf(cl):
            raise cmd.error("Error: Specified class not found.")  # inner htb classes
        cl.leaf = q
        return
    owner = d.qdisc(parent & 0xFFFF0000)
    if owner is not None and owner.kind == "tbf" and parent & 0xFFFF == 1:
        owner.child = q
        return
    if owner is not None and owner.kind == "prio" and 1 <= parent & 0xFFFF <= len(owner.bands):
        owner.bands[(parent & 0xFFFF) - 1] = q
        return
    raise cmd.error("Error: Failed to find specified qdisc." if owner is None else
                    "Error: Specified class not found.")


def _tc_qdisc_delete(cmd: Cmd, d: Any, parent: int | None, handle: int | None) -> None:
    from kptui.engine import qos

    if parent == qos.TC_H_INGRESS or handle == qos.INGRESS_HANDLE:
        if d.ingress is None:
            raise cmd.error("Error: Cannot find specified qdisc on specified device.")
        d.ingress = None
        d.filters.pop(qos.BLOCK_INGRESS, None)
        d.filters.pop(qos.BLOCK_EGRESS, None)
        return
    if parent == qos.TC_H_ROOT or (d.root is not None and handle == d.root.handle):
        if d.root is None:
            raise cmd.error("Error: Cannot delete qdisc with handle of zero.")
        d.root = None
        d.classes.clear()
        d.filters = {k: v for k, v in d.filters.items()
                     if k in (qos.BLOCK_INGRESS, qos.BLOCK_EGRESS)}
        return
    if parent is not None and parent in d.classes:
        d.classes[parent].leaf = None  # back to the default pfifo
        return
    raise cmd.error("Error: Cannot find specified qdisc on specified device.")


def _tc_opts(cmd: Cmd, opts: list[Tok], known: dict[str, int]) -> dict[str, Tok | list[Tok]]:
    """Keyword options: {word: value token} (`known` says how many values each takes)."""
    out: dict[str, Tok | list[Tok]] = {}
    i = 0
    while i < len(opts):
        word = opts[i].text
        if word not in known:
            raise cmd.error(f'What is "{word}"?', opts[i])
        n = known[word]
        if n == 0:
            out[word] = opts[i]
        elif n == 1:
            out[word] = _need(cmd, opts, i + 1, word)
        else:
            out[word] = opts[i + 1:i + 1 + n]
            if len(out[word]) < n:  # type: ignore[arg-type]
                raise cmd.error(f'Illegal "{word}"', opts[i])
        i += 1 + (n if n > 0 else 0)
    return out


def _tc_int(cmd: Cmd, tok: Tok, what: str, base: int) -> int:
    """get_u32/get_unsigned in the base tc reads that field in: 0 (0x hex, 0 octal) for
    sfq/fq_codel limit, fw handles, u32 values and offsets; 10 for prio bands and
    priomap, htb direct_qlen, class prio and quantum; 16 for htb default and u32 masks
    (each checked with tc, iproute2 6.1)."""
    try:
        return parse_uint(tok.text, 0, U32, base=base, strtoul=True)
    except NumberError:
        raise cmd.error(f'Illegal "{what}"', tok) from None


def _tc_new_qdisc(cmd: Cmd, d: Any, kind: str, opts: list[Tok]) -> Any:
    from kptui.engine import qos

    q = qos.Qdisc(kind, 0, 0)
    if kind in ("pfifo", "bfifo"):
        o = _tc_opts(cmd, opts, {"limit": 1})
        if "limit" in o:
            # get_size for both: "pfifo limit 1k" is 1024 packets (checked with tc 6.1)
            q.opts["limit"] = tc_size(cmd, o["limit"], "limit")  # type: ignore[arg-type]
        else:  # fifo_init: tx_queue_len packets, or that many MTU-sized frames
            q.opts["limit"] = max(d.txqueuelen, 1) * (
                d.mtu + qos.ETH_HLEN if kind == "bfifo" else 1)
    elif kind == "pfifo_fast":
        _tc_opts(cmd, opts, {})
        q.opts["limit"] = d.txqueuelen
    elif kind in ("sfq", "fq_codel"):
        known = {"limit": 1, "perturb": 1, "quantum": 1, "divisor": 1, "flows": 1,
                 "target": 1, "interval": 1, "ecn": 0, "noecn": 0, "memory_limit": 1,
                 "ce_threshold": 1, "depth": 1, "headdrop": 0, "redflowlimit": 1}
        o = _tc_opts(cmd, opts, known)
        default = 127 if kind == "sfq" else 10240
        q.opts["limit"] = _tc_int(cmd, o["limit"], "limit", 0) if "limit" in o else default  # type: ignore[arg-type]
    elif kind == "prio":
        bands, priomap = 3, list(qos.PRIO2BAND)
        i = 0
        while i < len(opts):
            if opts[i].text == "bands":
                bands = _tc_int(cmd, _need(cmd, opts, i + 1, "bands"), "bands", 10)
                i += 2
            elif opts[i].text == "priomap":
                i += 1
                priomap = []
                while i < len(opts) and len(priomap) < 16 and opts[i].text != "bands":
                    priomap.append(_tc_int(cmd, opts[i], "priomap", 10))
                    i += 1
                priomap += [priomap[-1] if priomap else 1] * (16 - len(priomap))
            else:
                raise cmd.error(f'What is "{opts[i].text}"?', opts[i])
        if not 2 <= bands <= 16:
            raise cmd.error("Error: Invalid number of bands.")
        if any(p >= bands for p in priomap):
            raise cmd.error("Error: priomap value out of range (more than the bands).")
        q.opts.update(bands=bands, priomap=tuple(priomap))
        q.bands = [qos.Qdisc("pfifo", 0, 0, {"limit": max(d.txqueuelen, 1)})
                   for _ in range(bands)]
    elif kind == "htb":
        o = _tc_opts(cmd, opts, {"default": 1, "r2q": 1, "direct_qlen": 1, "offload": 0})
        q.opts["default"] = _tc_int(cmd, o["default"], "default", 16) if "default" in o else 0  # type: ignore[arg-type]
        qlen = _tc_int(cmd, o["direct_qlen"], "direct_qlen", 10) if "direct_qlen" in o \
            else d.txqueuelen  # type: ignore[arg-type]
        q.opts["direct"] = qos.Qdisc("pfifo", 0, 0, {"limit": max(qlen, 2)})
    elif kind == "tbf":
        o = _tc_opts(cmd, opts, {"rate": 1, "burst": 1, "buffer": 1, "maxburst": 1,
                                 "limit": 1, "latency": 1, "mtu": 1, "minburst": 1,
                                 "peakrate": 1, "overhead": 1, "linklayer": 1})
        for word in ("peakrate", "overhead", "linklayer"):
            if word in o:
                raise UnsupportedError(f"tbf {word}")
        if "rate" not in o:
            raise cmd.error("tbf: the \"rate\" parameter is mandatory.")
        burst_tok = o.get("burst") or o.get("buffer") or o.get("maxburst")
        if burst_tok is None:
            raise cmd.error("tbf: the \"burst\" parameter is mandatory.")
        rate = tc_rate(cmd, o["rate"])  # type: ignore[arg-type]
        burst = tc_size(cmd, burst_tok, "burst", cell=True)  # type: ignore[arg-type]
        if "limit" in o:
            limit = tc_size(cmd, o["limit"], "limit")  # type: ignore[arg-type]
        elif "latency" in o:  # q_tbf.c: rate * latency + buffer
            latency = tc_time(cmd, o["latency"], "latency")  # type: ignore[arg-type]
            if rate * latency + burst >= 2**32:  # tc would wrap it in 32 bits
                raise cmd.error("tbf: the limit (rate * latency + burst) is over 32 bits",
                                o["latency"])  # type: ignore[arg-type]
            limit = int(rate * latency + burst)
        else:
            raise cmd.error("tbf: the \"limit\" or \"latency\" parameter is mandatory.")
        q.bucket = qos.Bucket(rate, burst, burst)
        q.opts.update(rate=rate, burst=burst, limit=limit, max_size=burst)
        q.child = qos.Qdisc("bfifo", 0, 0, {"limit": limit})
    else:
        raise cmd.error('Error: Specified qdisc kind is unknown.', Tok(kind, 1))
    return q


def tc_class(box: Box, cmd: Cmd, verb: str, args: list[Tok]) -> None:
    """`tc class add|change|replace|del dev X parent P classid C htb rate R ...`."""
    from kptui.engine import qos

    head, kind, opts = _read_head(cmd, args, CLASS_WORDS)
    if "dev" not in head:
        raise cmd.error('Not enough information: "dev" argument is required.')
    dev = _tc_dev(box, cmd, head["dev"])
    parent: int | None = head.get("parent")
    classid: int | None = head.get("classid")
    d = box.tc.dev(dev)
    root = d.root
    if verb == "delete":
        if classid not in d.classes:
            raise cmd.error("Error: Specified class not found.")
        if d.children(classid):
            raise cmd.error("RTNETLINK answers: Device or resource busy")
        del d.classes[classid]
        d.filters.pop(classid, None)
        return
    if root is None or root.kind != "htb":
        if root is not None and root.kind in ("tbf", "prio"):
            raise UnsupportedError(f"tc class {verb} on {root.kind} (its classes are fixed)")
        raise cmd.error("Error: Failed to find specified qdisc.")
    if classid is None:
        raise cmd.error("Error: Class id is missing (classid).")
    if kind != "htb":
        raise cmd.error(f"Error: Specified class kind {kind or '(none)'} is not htb's.")
    if parent == qos.TC_H_ROOT or parent is None:
        parent = root.handle if verb == "add" or classid not in d.classes \
            else d.classes[classid].parent
    if classid >> 16 != root.handle >> 16 or not classid & 0xFFFF:
        raise cmd.error("Error: Invalid classid: its major must be the qdisc's.")
    if parent != root.handle and parent not in d.classes:
        raise cmd.error("Error: Specified class not found.")
    o = _tc_opts(cmd, opts, {"rate": 1, "ceil": 1, "burst": 1, "cburst": 1, "prio": 1,
                             "quantum": 1, "mtu": 1, "mpu": 1, "overhead": 1, "buffer": 1,
                             "cbuffer": 1, "maxburst": 1, "minburst": 1, "linklayer": 1})
    for word in ("overhead", "linklayer", "mpu"):
        if word in o:
            raise UnsupportedError(f"htb class {word}")
    if "rate" not in o:
        raise cmd.error("htb: the \"rate\" parameter is mandatory.")
    rate = tc_rate(cmd, o["rate"])  # type: ignore[arg-type]
    ceil = tc_rate(cmd, o["ceil"]) if "ceil" in o else rate  # type: ignore[arg-type]
    burst_tok = o.get("burst") or o.get("buffer") or o.get("maxburst")
    cburst_tok = o.get("cburst") or o.get("cbuffer") or o.get("minburst")
    burst = tc_size(cmd, burst_tok, "burst", cell=True) if burst_tok else HTB_DEFAULT_BURST  # type: ignore[arg-type]
    cburst = tc_size(cmd, cburst_tok, "cburst", cell=True) if cburst_tok else HTB_DEFAULT_BURST  # type: ignore[arg-type]
    prio = _tc_int(cmd, o["prio"], "prio", 10) if "prio" in o else 0  # type: ignore[arg-type]
    # htb_change_class: a prio over TC_HTB_NUMPRIO - 1 becomes 7 (checked: tc class add
    # ... htb rate 1mbit prio 010 shows "prio 7", kernel 6.18)
    prio = min(prio, 7)
    quantum = _tc_int(cmd, o["quantum"], "quantum", 10) if "quantum" in o else 0  # type: ignore[arg-type]
    now = box.clock
    cl = d.classes.get(classid)
    if cl is not None and verb == "add":
        raise cmd.error("RTNETLINK answers: File exists")
    if cl is None and verb == "change":
        raise cmd.error("Error: Specified class not found.")
    new = qos.TcClass(classid, parent, qos.Bucket(rate, burst, burst, now),
                      qos.Bucket(ceil, cburst, cburst, now), prio=prio, quantum=quantum,
                      text=cmd.text)
    if cl is not None:
        new.leaf, new.stats, new.parent = cl.leaf, cl.stats, cl.parent
    else:
        new.leaf = qos.default_leaf(d, classid)
    if cl is None and parent in d.classes:
        d.classes[parent].leaf = None  # htb_change_class: the parent's qdisc is purged
    d.classes[classid] = new


def _tc_block(cmd: Cmd, d: Any, parent: int | None, tok: Tok | None) -> Any:
    from kptui.engine import qos

    if parent is None:
        if d.root is None:
            raise cmd.error("Error: Parent Qdisc doesn't exists.")
        return d.root.handle
    if parent == qos.TC_H_ROOT:
        if d.root is None:
            raise cmd.error("Error: Parent Qdisc doesn't exists.")
        return d.root.handle
    ing = d.ingress
    if parent in (qos.INGRESS_HANDLE, 0xFFFFFFF2, 0xFFFFFFF1) and ing is not None:
        return qos.BLOCK_INGRESS
    if parent == 0xFFFFFFF3 and ing is not None and ing.kind == "clsact":
        return qos.BLOCK_EGRESS
    if parent in (0xFFFFFFF2, 0xFFFFFFF3, qos.INGRESS_HANDLE):
        raise cmd.error("Error: Parent Qdisc doesn't exists.")
    q = d.qdisc(parent & 0xFFFF0000)
    if parent & 0xFFFF == 0:
        if q is None:
            raise cmd.error("Error: Parent Qdisc doesn't exists.")
        if q.kind not in ("htb", "prio"):
            raise UnsupportedError(f"filters on a {q.kind} qdisc")
        return parent
    if parent in d.classes:
        return parent
    raise cmd.error("Error: Specified class not found.")


def tc_filter(box: Box, cmd: Cmd, verb: str, args: list[Tok]) -> None:
    """`tc filter add dev X [parent P|root|ingress|egress] [protocol P] [prio N]
    [handle H] KIND ...`: u32, fw, matchall, basic with flowid/classid and actions."""
    from kptui.engine import qos

    head, kind, opts = _read_head(cmd, args, FILTER_WORDS)
    if "dev" not in head:
        raise cmd.error('Not enough information: "dev" argument is required.')
    dev = _tc_dev(box, cmd, head["dev"])
    parent: int | None = head.get("parent")
    # iproute2: no protocol given means ETH_P_ALL (checked: `protocol all`)
    protocol: str = head.get("protocol", "all")
    prio: int = head.get("prio", 0)
    handle_tok: Tok | None = head.get("handle")
    d = box.tc.dev(dev)
    block = _tc_block(cmd, d, parent, None)
    filters = d.filters.setdefault(block, [])
    if verb == "delete":
        if prio:
            d.filters[block] = [f for f in filters if f.prio != prio]
        else:
            d.filters[block] = []
        return
    if kind not in ("u32", "fw", "matchall", "basic"):
        if kind in ("flower", "bpf", "route", "flow", "cgroup", "tcindex", "rsvp"):
            raise UnsupportedError(f"tc filter {kind}")
        raise cmd.error(f"Unknown filter \"{kind}\", hence option \"{opts[0].text if opts else ''}"
                        "\" is unparsable")
    if not prio:  # tcf_auto_prio: 0xC000 for the first, else one less than the first one's
        prio = min((f.prio for f in filters), default=0xC001) - 1
    same = [f for f in filters if f.prio == prio]
    if same and (same[0].kind != kind or same[0].protocol != protocol):
        raise cmd.error("Error: Filter kind and protocol must match existing filters "
                        "with the same priority.")
    f = qos.Filter(block, prio, protocol, kind, text=cmd.text, line=cmd.line)
    if kind == "fw" and handle_tok is not None:
        mark, slash, mask = handle_tok.text.partition("/")
        f.handle = _tc_int(cmd, Tok(mark, handle_tok.column), "handle", 0)
        if slash:
            f.mask = _tc_int(cmd, Tok(mask, handle_tok.column), "mask", 0)
    elif kind == "u32":
        f.handle = sum(1 for g in filters if g.kind == "u32")
    _tc_filter_opts(cmd, f, opts, box)
    if kind == "fw" and not f.handle and (f.classid is not None or f.actions):
        raise cmd.error("Error: fw: a filter with a classid or actions needs a handle.")
    if verb in ("replace", "change") and handle_tok is not None:
        filters[:] = [g for g in filters if not (g.prio == prio and g.handle == f.handle)]
    filters.append(f)


def _tc_filter_opts(cmd: Cmd, f: Any, opts: list[Tok], box: Box) -> None:
    i = 0
    while i < len(opts):
        word = opts[i].text
        if word in ("flowid", "classid"):
            f.classid = tc_handle(cmd, _need(cmd, opts, i + 1, word), "classid")
            i += 2
        elif word == "match" and f.kind == "u32":
            i = _u32_match(cmd, f, opts, i + 1)
        elif word == "match":
            raise UnsupportedError(f"{f.kind} ematch")
        elif word == "police":
            i = _tc_police(cmd, f, opts, i + 1)
        elif word == "action":
            i = _tc_action(cmd, f, opts, i + 1, box)
        elif word in ("skip_sw", "skip_hw", "not_in_hw"):
            i += 1
        elif word in ("ht", "link", "hashkey", "divisor", "offset", "sample", "order",
                      "indev", "mask"):
            raise UnsupportedError(f"{f.kind} {word}")
        else:
            raise cmd.error(f'What is "{word}"?', opts[i])


def _u32_pack(cmd: Cmd, f: Any, key: int, mask: int, off: int, tok: Tok) -> None:
    """tc/f_u32.c pack_key: keys are 32-bit words at 4-byte offsets; keys at the same
    offset merge unless they clash."""
    key &= mask
    for n, (o, v, m) in enumerate(f.keys):
        if o == off:
            if (key ^ v) & m & mask:
                raise cmd.error("Illegal \"match\"", tok)
            f.keys[n] = (o, v | key, m | mask)
            return
    f.keys.append((off, key, mask))


def _u32_match(cmd: Cmd, f: Any, opts: list[Tok], i: int) -> int:
    """`match ip src|dst A[/len]`, `match ip sport|dport|tos|protocol V MASK`,
    `match u32|u16|u8 V MASK at OFF` (tc-u32(8))."""
    what = _need(cmd, opts, i, "match")
    if what.text in ("u32", "u16", "u8"):
        width = {"u32": 4, "u16": 2, "u8": 1}[what.text]
        val = _tc_int(cmd, _need(cmd, opts, i + 1, "value"), "match", 0)
        mask = _tc_int(cmd, _need(cmd, opts, i + 2, "mask"), "match", 16)
        if _need(cmd, opts, i + 3, "at").text != "at":
            raise cmd.error('Illegal "match"', opts[i + 3])
        off_tok = _need(cmd, opts, i + 4, "offset")
        if off_tok.text.lstrip(_BLANKS).startswith("-"):  # get_integer: tc takes it
            _tc_int(cmd, Tok(off_tok.text.lstrip(_BLANKS)[1:], off_tok.column), "offset", 0)
            raise UnsupportedError("u32 match at a negative offset")
        off = _tc_int(cmd, off_tok, "offset", 0)
        _u32_field(cmd, f, val, mask, off, width, what)
        return i + 5
    if what.text != "ip":
        raise UnsupportedError(f"u32 match {what.text}")
    field_tok = _need(cmd, opts, i + 1, "field")
    name = field_tok.text
    if name in ("src", "dst"):
        value = _need(cmd, opts, i + 2, name)
        net = parse_addr(value.text)
        if net is None:
            raise cmd.error('Illegal "match"', value)
        mask = int(net.network.netmask)
        _u32_pack(cmd, f, int(net.ip), mask, 12 if name == "src" else 16, value)
        return i + 3
    if name not in U32_IP_FIELDS:
        raise UnsupportedError(f"u32 match ip {name}")
    off, width = U32_IP_FIELDS[name]
    val = _tc_int(cmd, _need(cmd, opts, i + 2, name), "match", 0)
    mask = _tc_int(cmd, _need(cmd, opts, i + 3, "mask"), "match", 16)
    _u32_field(cmd, f, val, mask, off, width, field_tok)
    return i + 4


def _u32_field(cmd: Cmd, f: Any, val: int, mask: int, off: int, width: int, tok: Tok) -> None:
    limit = (1 << (8 * width)) - 1
    if val > limit or mask > limit or off % width:
        raise cmd.error('Illegal "match"', tok)
    shift = 8 * (4 - width - off % 4)
    _u32_pack(cmd, f, val << shift, mask << shift, off - off % 4, tok)


def _tc_control(word: str) -> str | None:
    from kptui.engine.qos import CONTROL_WORDS

    return CONTROL_WORDS.get(word)


def _tc_police(cmd: Cmd, f: Any, opts: list[Tok], i: int) -> int:
    """tc-police(8): rate, burst, mtu, conform-exceed EXCEED[/CONFORM] or a bare
    control word (the exceed action); the default exceed action is reclassify."""
    from kptui.engine import qos

    rate = burst = 0.0
    mtu = qos.POLICE_MTU
    exceed, conform = qos.RECLASSIFY, qos.OK
    while i < len(opts):
        word = opts[i].text
        if word == "rate":
            rate = tc_rate(cmd, _need(cmd, opts, i + 1, "rate"))
        elif word in ("burst", "buffer", "maxburst"):
            burst = tc_size(cmd, _need(cmd, opts, i + 1, "burst"), "burst", cell=True)
        elif word in ("mtu", "minburst"):
            mtu = tc_size(cmd, _need(cmd, opts, i + 1, "mtu"), "mtu", cell=True)
        elif word == "conform-exceed":
            tok = _need(cmd, opts, i + 1, "conform-exceed")
            ex, _slash, co = tok.text.partition("/")
            exc = _tc_control(ex)
            con = _tc_control(co) if co else qos.OK
            if exc is None or con is None:
                raise cmd.error('Illegal "conform-exceed"', tok)
            exceed, conform = exc, con
        elif word in ("index",):
            pass
        elif word in ("peakrate", "avrate", "pkts_rate", "pkts_burst", "overhead",
                      "linklayer"):
            raise UnsupportedError(f"police {word}")
        elif _tc_control(word) is not None:
            exceed = _tc_control(word)  # type: ignore[assignment]
            i += 1
            continue
        else:
            break
        i += 2
    if rate <= 0 or burst <= 0:
        raise cmd.error("police: rate and burst are required (tc-police(8))")
    f.actions.append(qos.Police(rate=rate, burst=burst, mtu=mtu, exceed=exceed,
                                conform=conform))
    return i


def _tc_action(cmd: Cmd, f: Any, opts: list[Tok], i: int, box: Box) -> int:
    from kptui.engine import qos

    kind = _need(cmd, opts, i, "action")
    if kind.text == "police":
        return _tc_police(cmd, f, opts, i + 1)
    if kind.text == "mirred":
        words = [t.text for t in opts[i + 1:i + 5]]
        if len(words) < 4 or words[0] not in ("egress", "ingress") or \
                words[1] not in ("redirect", "mirror") or words[2] != "dev":
            raise cmd.error('Illegal "mirred"', kind)
        if opts[i + 4].text not in box.interfaces:
            raise cmd.error(f'Cannot find device "{opts[i + 4].text}"', opts[i + 4])
        f.actions.append(qos.Mirred(words[0], words[1], words[3]))
        return i + 5
    if kind.text == "gact":
        i += 1
        kind = _need(cmd, opts, i, "action")
    control = _tc_control(kind.text)
    if control is None:
        raise UnsupportedError(f"tc action {kind.text}")
    f.actions.append(qos.Gact(control))
    return i + 1
