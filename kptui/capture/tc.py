"""tc qdiscs, classes and filters (`tc -j`) as the `tc` setup lines kptui reads.

Per device, in an order the kernel and kptui both accept: the root qdisc, its classes
(parents before children), the qdiscs attached to classes, ingress/clsact, then the
filters of each parent in the order listed, each with its priority and handle as the
kernel gave them. Qdiscs with handle 0: are the kernel's defaults (noqueue on a veth,
pfifo_fast/mq/fq_codel on a real NIC): not written; when one queues (anything but
noqueue) a note says kptui models no queue there.

iproute2 6.1 prints qdiscs and filters as JSON but htb classes only as text (`tc -d
class show`), which is read word by word. Rates are bytes per second in the JSON (tc
writes `rate NNNbit` back), a tbf's limit is given back as the latency tc printed
(tc and kptui both compute the limit from it, rate * latency + burst).

Modelled (kptui.engine.tc_setup): pfifo, bfifo, pfifo_fast, prio, htb, tbf, sfq and
fq_codel qdiscs, ingress and clsact, u32 filters on their priority's hash table, fw,
matchall and basic filters, with classid/flowid and mirred and gact actions (the JSON
of each checked against iproute2 6.1: fw's on Debian's kernel in qemu). Anything else
(other qdiscs, u32 hash tables and links, ematches, police, whose rate and burst tc -j
does not print, other actions) is written as a comment with a named note: capture does
not guess at what it cannot read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from kptui.capture.dumps import Dump
from kptui.capture.jsondump import Fields, Obj, entries
from kptui.engine.errors import ParseError

QDISCS = ("pfifo", "bfifo", "pfifo_fast", "prio", "htb", "tbf", "sfq", "fq_codel")
INGRESS = ("ingress", "clsact")
INGRESS_PARENT, EGRESS_PARENT = "ffff:fff2", "ffff:fff3"  # clsact's (TC_H_MIN_INGRESS...)


@dataclass(slots=True)
class Tc:
    setup: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    parents: dict[str, list[str]] = field(default_factory=dict)  # dev -> filter parents


@dataclass(slots=True)
class _Qdisc:
    dev: str
    kind: str
    handle: str
    parent: str  # "root", "ingress" or a class id
    line: str  # the tc line, "" when it is not written


def qdiscs(dump: Dump, devices: list[str], out: Tc) -> dict[str, list[_Qdisc]]:
    """The qdisc lines per device; the parents filters may hang on (``out.parents``)."""
    found: dict[str, list[_Qdisc]] = {}
    for line, obj in entries(dump, "the output of `tc -j qdisc show`"):
        f = Fields(dump, line, obj, "qdisc")
        dev, kind, handle = f.text("dev"), f.text("kind"), f.text("handle")
        f = Fields(dump, line, obj, f"qdisc {kind} {handle} on {dev}")
        if dev not in devices:
            out.notes.append(f"{f.what}: its device is not captured: not written")
            continue
        if handle == "0:" and obj.get("root"):
            if kind not in ("noqueue",):
                out.notes.append(f"{f.what}: the kernel's default qdisc; kptui models no "
                                 "queue there")
            continue
        if kind in INGRESS:  # filters: ingress's block, or clsact's two (fff2 in, fff3 out)
            q = _Qdisc(dev, kind, "ffff:", "ingress", f"tc qdisc add dev {dev} {kind}")
            out.parents.setdefault(dev, []).extend(
                ["ffff:"] if kind == "ingress" else [INGRESS_PARENT, EGRESS_PARENT])
        else:
            where = "root" if obj.get("root") else f"parent {f.text('parent')}"
            opts = _options(f, kind, f.sub(_sub(f, "options"), "options"), out)
            text = f"tc qdisc add dev {dev} {where} handle {handle} {kind}" + \
                (f" {opts}" if opts else "")
            if opts is None:
                out.notes.append(f"{f.what}: unsupported yet (qdisc {kind}): written as a "
                                 "comment, and what hangs below it is not captured")
                text = f"# unsupported yet: {text.rstrip()}"
            q = _Qdisc(dev, kind, handle, where, text)
            if opts is not None:
                out.parents.setdefault(dev, []).append(handle)
        found.setdefault(dev, []).append(q)
    return found


def _sub(f: Fields, key: str) -> Obj:
    value = f.obj.get(key, {})
    if not isinstance(value, Obj):
        raise f.error(f'"{key}" must be an object')
    return value


def _options(f: Fields, kind: str, o: Fields, out: Tc) -> str | None:
    """The tc words for a qdisc's options (JSON as iproute2 6.1 prints it); None: not
    modelled."""
    if kind not in QDISCS:
        return None
    if kind in ("pfifo", "bfifo"):
        return f"limit {o.number('limit')}" if o.has("limit") else ""
    if kind in ("sfq", "fq_codel"):
        return f"limit {o.number('limit')}" if o.has("limit") else ""
    if kind == "pfifo_fast":
        return ""
    if kind == "prio":
        priomap = o.obj.get("priomap", [])
        if not isinstance(priomap, list) or not all(isinstance(p, int) for p in priomap):
            raise o.error('"priomap" must be a list of numbers')
        return f"bands {o.number('bands', 3)} priomap {' '.join(map(str, priomap))}"
    if kind == "htb":
        words = [f"default {o.text('default', '0')}" if isinstance(o.obj.get('default', '0'),
                                                                       str)
                 else f"default {o.number('default'):x}"]
        if o.has("r2q"):
            words.append(f"r2q {o.number('r2q')}")
        if o.has("direct_qlen"):
            words.append(f"direct_qlen {o.number('direct_qlen')}")
        return " ".join(words)
    # tbf: rate in bytes per second, burst in bytes ("10Kb/1" with -d), lat in microseconds
    for key in ("peakrate", "overhead"):
        if o.has(key) and o.obj[key]:
            out.notes.append(f"{f.what}: {key} is not modelled")
            return None
    burst = o.obj.get("burst")
    burst_text = burst.split("/")[0] if isinstance(burst, str) else str(o.number("burst"))
    if not o.has("lat"):
        raise o.error('"lat" is missing (tc prints it when the limit covers the burst)')
    return f"rate {o.number('rate', hi=2**64 - 1) * 8}bit burst {burst_text} " \
        f"latency {o.number('lat', hi=2**64 - 1)}us"


# -- classes (text: `tc -d class show dev DEV`) -----------------------------------------------

HTB_SKIP = {"linklayer": "ethernet", "mpu": "0b", "level": None, "overhead": "0"}


def classes(dev: str, dump: Dump, root: str, out: Tc) -> list[str]:
    """The `tc class add` lines of an htb's classes, parents first."""
    rows: list[tuple[str, str, str]] = []  # classid, parent, line
    for number, raw in enumerate(dump.text.splitlines(), 1):
        words = raw.split()
        if not words:
            continue
        if words[0] in ("[", "[]"):
            continue  # an empty JSON listing
        if words[0] != "class" or len(words) < 4:
            raise ParseError("expected `class KIND CLASSID ...`, as `tc -d class show` "
                             "prints a class", file=dump.file, line=number, token=raw[:40])
        kind, classid, rest = words[1], words[2], words[3:]
        if kind != "htb":
            out.notes.append(f"class {kind} {classid} on {dev}: unsupported yet (only htb "
                             "classes are configured in kptui): not written")
            continue
        if rest[0] == "root":
            parent, rest = root, rest[1:]
        elif rest[0] == "parent" and len(rest) > 1:
            parent, rest = rest[1], rest[2:]
        else:
            raise ParseError("expected `root` or `parent P` after the class id",
                             file=dump.file, line=number, token=rest[0])
        opts: list[str] = []
        i = 0
        while i < len(rest):
            word = rest[i]
            value = rest[i + 1] if i + 1 < len(rest) else ""
            if word == "leaf":
                i += 2
                continue
            if word in HTB_SKIP:
                keep = HTB_SKIP[word]
                if keep is not None and value != keep:
                    out.notes.append(f"class htb {classid} on {dev}: {word} {value} is not "
                                     "modelled: left out")
                i += 2
                continue
            if word in ("rate", "ceil", "prio", "quantum"):
                opts += [word, value]
            elif word in ("burst", "cburst"):
                opts += [word, value.split("/")[0]]
            else:
                raise ParseError(f"an htb class word kptui does not know: {word}",
                                 file=dump.file, line=number, token=word)
            i += 2
        rows.append((classid, parent, f"tc class add dev {dev} parent {parent} classid "
                                      f"{classid} htb {' '.join(opts)}"))
    done: set[str] = {root}
    lines: list[str] = []
    while rows:  # parents first
        ready = [r for r in rows if r[1] in done] or rows[:1]
        for r in ready:
            lines.append(r[2])
            done.add(r[0])
            rows.remove(r)
            out.parents.setdefault(dev, []).append(r[0])
    return lines


# -- filters (`tc -j filter show dev DEV parent P`) ----------------------------------------------

# iproute2 6.1's fw printer writes its handle and classid as text inside the JSON object
# (`"options":{handle 0x7 classid 1:20 }`, checked on Debian's 6.1 kernel in qemu): read
# that text as the fw filter's words before the JSON is parsed.
_FW_TEXT = re.compile(r'"options":\{((?:handle|classid) [^{}"]*?)\s*\}')
# The option keys each kind's JSON has when kptui models all of it (anything else, such
# as a police action folded into a u32 filter's options, is not modelled).
_STATE_KEYS = {"not_in_hw", "in_hw", "in_hw_count", "skip_sw", "skip_hw", "order",
               "key_ht", "bkt", "fh", "terminal"}
KNOWN = {"u32": {"match", "flowid", "classid", "actions"}, "matchall": {"handle", "flowid",
         "classid", "actions"}, "basic": {"handle", "flowid", "classid", "actions"},
         "fw": {"fw"}}


def filters(dev: str, parent: str, dump: Dump, out: Tc) -> list[str]:
    lines: list[str] = []
    roots: dict[int, str] = {}  # prio -> its u32 root hash table (the kernel's, per prio)
    text = _FW_TEXT.sub(lambda m: '"options":{"fw":' + json.dumps(m.group(1)) + "}",
                        dump.text)
    for line, obj in entries(Dump(dump.name, text, dump.file),
                             "the output of `tc -j filter show`"):
        f = Fields(dump, line, obj, f"filter on {dev} parent {parent}")
        options = obj.get("options")
        kind = f.text("kind")
        prio, proto = f.number("pref", hi=0xFFFF), f.text("protocol", "all")
        if not isinstance(options, Obj):
            continue  # a priority's header
        fh = str(options.get("fh", ""))
        if kind == "u32" and "::" not in fh:
            roots.setdefault(prio, fh.rstrip(":"))  # a hash table's header
            continue
        head = f"tc filter add dev {dev} parent {parent} protocol {proto} prio {prio}"
        o = f.sub(options, kind)
        extra = sorted(set(options) - _STATE_KEYS - KNOWN.get(kind, set()))
        body = None if extra else _filter(kind, o, roots.get(prio, "800"))
        if body is None:
            acts = [str(a.get("kind")) for a in options.get("actions", [])
                    if isinstance(a, Obj)] if isinstance(options.get("actions"), list) else []
            what = ", ".join(extra) if extra else \
                f"action {' '.join(acts)}" if acts and kind in KNOWN else \
                f"hash table {fh}" if kind == "u32" else "not read by kptui"
            out.notes.append(f"{f.what}: unsupported yet ({kind}: {what}): written as a "
                             "comment")
            lines.append(f"# unsupported yet: {head} {kind} {_json(options)}")
            continue
        lines.append(f"{head} {body}")
    return lines


def _filter(kind: str, o: Fields, root: str) -> str | None:
    if kind == "u32":
        return _u32(o, root)
    if kind == "fw":  # "handle 0x7 classid 1:20" (see _FW_TEXT)
        words = o.text("fw").split()
        if len(words) != 4 or words[0] != "handle" or words[2] != "classid":
            return None
        return f"handle {words[1]} fw classid {words[3]}"
    if kind in ("matchall", "basic"):
        words = [kind, *_target(o)]
        tail = _actions(o)
        return None if tail is None else " ".join(words + tail)
    return None


def _target(o: Fields) -> list[str]:
    return [w for key in ("classid", "flowid") if key in o.obj for w in (key, o.text(key))]


def _actions(o: Fields) -> list[str] | None:
    words: list[str] = []
    for action in o.objects("actions"):
        text = _action(o.sub(action, "action"))
        if text is None:
            return None
        words += ["action", *text]
    return words


def _u32(o: Fields, root: str) -> str | None:
    """A u32 filter's words, when it sits in its priority's own hash table and has
    neither links nor hashing (tc-u32(8)'s simple form, what kptui models)."""
    fh = str(o.obj.get("fh", ""))
    if not fh.startswith(f"{root}::"):
        return None
    words: list[str] = ["u32"]
    for match in o.obj.all("match"):
        if not isinstance(match, Obj):
            raise o.error('"match" must be an object')
        m = o.sub(match, "match")
        if m.obj.get("offmask"):
            return None  # nexthdr+ offsets: not modelled
        value = m.number("value", hi=2**32 - 1, base=16)  # tc prints them in hex, bare
        mask = m.number("mask", hi=2**32 - 1, base=16)
        words += ["match", "u32", f"0x{value:08x}", f"0x{mask:08x}", "at",
                  str(m.number("off", hi=2**16))]
    words += _target(o)
    tail = _actions(o)
    return None if tail is None else " ".join(words + tail)


def _action(a: Fields) -> list[str] | None:
    """mirred and gact as tc-mirred(8)/tc-gact(8) words; None for anything else (police:
    iproute2 6.1's JSON has no rate nor burst for it)."""
    kind = a.text("kind")
    control = a.obj.get("control_action")
    ctype = control.get("type", "") if isinstance(control, Obj) else ""
    if kind == "mirred":
        return ["mirred", a.text("direction"), a.text("mirred_action"), "dev",
                a.text("to_dev")]
    prob = a.obj.get("prob")
    random = prob.get("random_type", "none") if isinstance(prob, Obj) else "none"
    if kind == "gact" and random == "none" and ctype in ("drop", "pass", "ok", "reclassify",
                                                          "continue", "pipe"):
        return [ctype]
    return None


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


__all__ = ["Tc", "qdiscs", "classes", "filters", "EGRESS_PARENT"]
