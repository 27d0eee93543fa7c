"""-m hashlimit (libxt_hashlimit 1.8.9, revision 3; xt_hashlimit.c): a token bucket per key.

The kernel keeps one table per ``--hashlimit-name`` in the netns, shared by
every rule naming it and configured by the rule that created it (the first of
the ruleset here): its mode (which of srcip, srcport, dstip, dstport make the
key), masks, rate, burst and expiry decide the buckets of all those rules. Each
rule's own mode decides only how it spends: ``--hashlimit-upto`` matches while
the bucket has credit, ``--hashlimit-above`` (or ``! --hashlimit-upto``) when
it has not, byte rates charge per 16-byte chunk of the packet, and
``--hashlimit-rate-match`` compares the rate of the last interval instead.

hashlimit_mt_common, as the kernel runs it, in jiffies (HZ 250) of the box's
clock: a new key gets a full bucket (``--hashlimit-burst`` packets' worth; in
byte mode one second's worth, refilled ``--hashlimit-burst`` times); a known key
gains credit for the jiffies since its last packet, up to the cap; the packet
costs one packet's worth (or its chunks). Credit is counted in the kernel's
units (user2credits, CREDITS_PER_JIFFY for HZ 250), so rounding is the kernel's.

An entry the kernel's garbage collector would free (``--hashlimit-htable-expire``
ms after its last packet) is gone here from that moment on; the kernel frees
it at its next collection, up to ``--hashlimit-htable-gcinterval`` ms later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kptui.engine.errors import UnsupportedError
from kptui.engine.iptables.ext._kernel import (
    HZ,
    U32,
    U64,
    check_proc_name,
    jiffies,
    kernel_refuses,
    msecs_to_jiffies,
    shared,
    truncate,
)
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch, plen, strtoul_prefix

# xt_hashlimit.h cfg.mode bits
HASH_DIP, HASH_DPT, HASH_SIP, HASH_SPT = 1, 2, 4, 8
INVERT, BYTES, RATE_MATCH = 0x10, 0x20, 0x40
_MODES = {"dstip": HASH_DIP, "srcip": HASH_SIP, "srcport": HASH_SPT, "dstport": HASH_DPT}
_MODE_ORDER = (("srcip", HASH_SIP), ("srcport", HASH_SPT), ("dstip", HASH_DIP),
               ("dstport", HASH_DPT))

SCALE = 1_000_000  # XT_HASHLIMIT_SCALE_v2
BURST_MAX = 1_000_000
BYTE_SHIFT = 4
BYTE_EXPIRE, BYTE_EXPIRE_BURST = 15, 60  # seconds
GCINTERVAL = 1000  # ms
NAME_SIZE = 255  # NAME_MAX
HASHLIMIT_MAX_SIZE = 1048576
DEFAULT_SIZE = 8192  # htable_create on a machine with more than 1 GiB of memory


def _pow2_below(x: int, bits: int) -> int:
    for shift in (1, 2, 4, 8, 16, 32)[:bits.bit_length() - 1]:
        x |= x >> shift
    return (x >> 1) + 1


CREDITS_PER_JIFFY = _pow2_below(U64 // (HZ * 60 * 60 * 24), 64)
CREDITS_PER_JIFFY_BYTES = _pow2_below(U32 // HZ, 32)
_RATES = (("day", SCALE * 86400), ("hour", SCALE * 3600), ("min", SCALE * 60),
          ("sec", SCALE))
_UNITS = (("m", 1024 * 1024), ("k", 1024), ("", 1))
_RATE_UNITS = (("second", 1), ("minute", 60), ("hour", 3600), ("day", 86400))


def user2credits(user: int) -> int:
    """user2credits, revision 3 (u64 arithmetic)."""
    if SCALE >= HZ * CREDITS_PER_JIFFY:
        return user // (SCALE // (HZ * CREDITS_PER_JIFFY))
    return (user * (HZ * CREDITS_PER_JIFFY // SCALE)) & U64


def user2credits_byte(user: int) -> int:
    return ((user & U32) * HZ * CREDITS_PER_JIFFY_BYTES >> 32) & U32


def cost_to_bytes(cost: int) -> int:
    r = U32 // cost if cost else U32
    return ((r - 1) << BYTE_SHIFT) & U64


def bytes_to_cost(nbytes: int) -> int:
    r = (nbytes >> BYTE_SHIFT) & U32
    return U32 // (r + 1) if r != U32 else 0


def _atoll(text: str) -> int:
    """atoll: leading blanks, a sign and decimal digits (0 without any), as a u64."""
    body = text.lstrip(" \t\n\v\f\r")
    sign = -1 if body[:1] == "-" else 1
    if body[:1] in "+-" and body:
        body = body[1:]
    digits = ""
    for ch in body:
        if ch not in "0123456789":
            break
        digits += ch
    value, _ = strtoul_prefix(digits, 10) if digits else (0, "")
    value = min(value or 0, (1 << 63) - (sign > 0))  # strtoll saturates
    return (sign * value) & U64


def _factor(ch: str) -> int:
    return {"m": 1024 * 1024, "k": 1024}.get(ch, 1)


def parse_bytes(rate: str) -> int | None:
    """parse_bytes: ``N[k|m]b/s`` as a cost; None when it is not a byte rate."""
    at = rate.find("b/s")
    if at <= 0:
        return None
    r = _atoll(rate)
    if r == 0:
        return None
    cost = bytes_to_cost((r * _factor(rate[at - 1])) & U64)
    if cost == 0:
        raise BadValue(f'Rate too high "{rate}"')
    return cost


def parse_rate(rate: str) -> tuple[int, int] | None:
    """parse_rate: ``N[/second|minute|hour|day]`` (any prefix) as (average period, seconds
    of its unit); None when unreadable."""
    mult = 1
    _, slash, unit = rate.partition("/")
    if slash:
        if not unit:
            return None
        hits = [m for name, m in _RATE_UNITS if name.startswith(unit.lower())]
        if not hits:
            return None
        mult = hits[0]
    r = _atoll(rate)
    if not r:
        return None
    avg = SCALE * mult // r
    if avg == 0:
        raise BadValue(f'Rate too fast "{rate}"')
    return avg, mult


def rate_text(period: int) -> tuple[str, int]:
    """print_rate: the text and the expiry it implies (ms)."""
    if period == 0:
        return "inf", 0
    i = 1
    while i < len(_RATES):
        mult = _RATES[i][1]
        if period > mult or mult // period < mult % period:
            break
        i += 1
    name, mult = _RATES[i - 1]
    return f"{mult // period}/{name}", mult // SCALE * 1000


def bytes_text(avg: int, burst: int) -> tuple[str, int]:
    """print_bytes with the --hashlimit- prefix: the text and the expiry it implies (ms)."""
    r = cost_to_bytes(avg)
    i = 0
    while i < len(_UNITS) - 1:
        unit, thresh = _UNITS[i]
        if r >= thresh and bytes_to_cost(r & ~(thresh - 1)) == avg:
            break
        i += 1
    text = f"{r // _UNITS[i][1]}{_UNITS[i][0]}b/s"
    if burst == 0:
        return text, BYTE_EXPIRE * 1000
    r *= burst
    i = 0
    while i < len(_UNITS) - 1 and r < _UNITS[i][1]:
        i += 1
    return (f"{text} --hashlimit-burst {r // _UNITS[i][1]}{_UNITS[i][0]}b",
            BYTE_EXPIRE_BURST * 1000)


@dataclass
class Cfg:
    """struct hashlimit_cfg3, as hashlimit_mt4_init and the options leave it."""

    mode: int = 0
    avg: int = 0
    burst: int = 5
    size: int = 0
    max: int = 0
    gc_interval: int = GCINTERVAL
    expire: int = 0
    srcmask: int = 32
    dstmask: int = 32
    interval: int = 0


@dataclass(slots=True, eq=False)
class Bucket:
    """struct dsthash_ent's rateinfo."""

    expires: int
    prev: int
    credit: int = 0
    credit_cap: int = 0
    cost: int = 0
    interval: int = 0
    prev_window: int = 0
    current_rate: int = 0
    rate: int = 0
    burst: int = 0


@dataclass(eq=False)
class HashTable:
    """struct xt_hashlimit_htable: the creating rule's configuration and the buckets."""

    name: str
    cfg: Cfg
    max: int
    buckets: dict[tuple[int, int, int, int], Bucket] = field(default_factory=dict)

    def collect(self, now: int) -> None:
        """htable_selective_cleanup: buckets whose time is up are freed."""
        gone = [k for k, b in self.buckets.items() if now >= b.expires]
        for k in gone:
            del self.buckets[k]

    def new_bucket(self, now: int) -> Bucket:
        """rateinfo_init (revision 3)."""
        cfg = self.cfg
        b = Bucket(expires=now + msecs_to_jiffies(cfg.expire), prev=now)
        if cfg.mode & RATE_MATCH:
            if cfg.mode & BYTES:
                r = U32 // (cfg.avg & U32) if cfg.avg & U32 else U32
                b.rate = ((r - 1) << BYTE_SHIFT) & U64
                b.burst = cfg.burst * b.rate if cfg.burst else b.rate
            else:
                b.rate = SCALE // cfg.avg
                b.burst = cfg.burst + b.rate
            b.interval = cfg.interval
        elif cfg.mode & BYTES:
            b.credit = CREDITS_PER_JIFFY_BYTES * HZ
            b.cost = user2credits_byte(cfg.avg)
            b.credit_cap = cfg.burst
        else:
            b.credit = user2credits((cfg.avg * cfg.burst) & U64)
            b.cost = user2credits(cfg.avg)
            b.credit_cap = b.credit
        return b

    def recalc(self, b: Bucket, now: int) -> None:
        """rateinfo_recalc (revision 3), in the table's mode."""
        delta = now - b.prev
        if delta == 0:
            return
        mode = self.cfg.mode
        if mode & RATE_MATCH:
            interval = b.interval * HZ
            if delta < interval:
                return
            b.prev = now
            b.prev_window = 1 if b.current_rate * interval > delta * b.rate else 0
            b.current_rate = 0
            return
        b.prev = now
        if mode & BYTES:
            b.credit = (b.credit + CREDITS_PER_JIFFY_BYTES * delta) & U64
            cap = CREDITS_PER_JIFFY_BYTES * HZ
        else:
            b.credit = (b.credit + delta * CREDITS_PER_JIFFY) & U64
            cap = b.credit_cap
        b.credit = min(b.credit, cap)


def _maskl(addr: int, bits: int) -> int:
    return addr & (U32 << (32 - bits)) & U32 if bits else 0


class HashlimitMatch(XtMatch):
    name = "hashlimit"
    seen_in_option = True  # --hashlimit is seen as --hashlimit-upto
    entries = (
        Entry("hashlimit-upto", XT.STRING, invert=True, excl=("hashlimit-above",)),
        Entry("hashlimit-above", XT.STRING, invert=True, excl=("hashlimit-upto",)),
        Entry("hashlimit", XT.STRING, invert=True, excl=("hashlimit-above",)),
        Entry("hashlimit-srcmask", XT.STRING),
        Entry("hashlimit-dstmask", XT.STRING),
        Entry("hashlimit-burst", XT.STRING),
        Entry("hashlimit-htable-size", XT.UINT32),
        Entry("hashlimit-htable-max", XT.UINT32),
        Entry("hashlimit-htable-gcinterval", XT.UINT32),
        Entry("hashlimit-htable-expire", XT.UINT32),
        Entry("hashlimit-mode", XT.STRING),
        Entry("hashlimit-name", XT.STRING, mand=True, min=1),
        Entry("hashlimit-rate-match"),
        Entry("hashlimit-rate-interval", XT.STRING),
    )
    stateful = True
    state_attrs = ("shared",)

    def __init__(self) -> None:
        super().__init__()
        self.cfg = Cfg()
        self.table_name = ""
        self.mult = 0  # hashlimit_mt_udata: the seconds of the rate's unit
        self.shared: HashTable | None = None

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        # --hashlimit is the old name of --hashlimit-upto: the same option id, so the
        # once check and iptables' messages treat it as --hashlimit-upto
        if opt in ("--hashlimit", "--hashlimit-upto"):
            if self.seen & {"--hashlimit", "--hashlimit-upto"}:
                raise BadValue('hashlimit: option "--hashlimit-upto" can only be used once.')
            super().option("--hashlimit-upto", args, inv)
            self.seen = self.seen | {"--hashlimit-upto"}
            return
        super().option(opt, args, inv)

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        cfg = self.cfg
        if name in ("hashlimit-upto", "hashlimit-above"):
            if inv == (name == "hashlimit-upto"):
                cfg.mode |= INVERT
            cost = parse_bytes(value)
            if cost is not None:
                cfg.avg, self.mult = cost, BYTE_EXPIRE
                cfg.mode |= BYTES
            else:
                got = parse_rate(value)
                if got is None:
                    raise BadValue(f'hashlimit: Bad value for "--{name}" option: "{value}"')
                cfg.avg, self.mult = got
        elif name == "hashlimit-mode":
            for tok in value.replace("|", ",").split(","):
                if tok and tok not in _MODES:
                    raise BadValue(f'hashlimit: Bad value for "--hashlimit-mode" option: '
                                   f'"{value}"')
                cfg.mode |= _MODES.get(tok, 0)
        elif name in ("hashlimit-srcmask", "hashlimit-dstmask"):
            setattr(cfg, name[10:], plen(self.name, name, value)[0])
        elif name == "hashlimit-burst":
            cfg.burst = self._burst(value)
        elif name.startswith("hashlimit-htable-"):
            setattr(cfg, {"gcinterval": "gc_interval"}.get(name[17:], name[17:]), value)
        elif name == "hashlimit-name":
            self.table_name = truncate(value, NAME_SIZE)
        elif name == "hashlimit-rate-match":
            cfg.mode |= RATE_MATCH
        else:  # --hashlimit-rate-interval: atoi, > 0
            r = _atoll(value)
            if r == 0 or r >> 63 or r > 0x7FFFFFFF:
                raise BadValue(f'hashlimit: Bad value for "--hashlimit-rate-interval" '
                               f'option: "{value}"')
            cfg.interval = r

    @staticmethod
    def _burst(text: str) -> int:
        """parse_burst (revision 2 and 3): a number from 1, then an optional k or m."""
        bad = 'bad value for option "--hashlimit-burst", or out of range (1-1000000).'
        if text.lstrip(" \t\n\v\f\r").startswith("-"):
            raise BadValue(bad)
        v, rest = strtoul_prefix(text)
        if v is None or v < 1 or v > U64 or (rest == "" and v > BURST_MAX):
            raise BadValue(bad)
        return (v * _factor(rest[:1])) & U64

    def finish(self) -> None:
        super().finish()
        self.kernel_check()  # then the kernel's checkentry

    def check(self) -> None:
        """hashlimit_mt_check (x6_fcheck)."""
        cfg, given = self.cfg, self.seen
        if not given & {"--hashlimit-upto", "--hashlimit-above"}:
            raise BadValue("You have to specify --hashlimit")
        if "--hashlimit-htable-expire" not in given:
            cfg.expire = self.mult * 1000
        if cfg.mode & BYTES:
            burst = 0
            if "--hashlimit-burst" in given:
                unit = cost_to_bytes(cfg.avg)
                if cfg.burst < unit:
                    raise BadValue(f"burst cannot be smaller than {unit}b")
                burst = ((cfg.burst & U32) // unit + bool(cfg.burst % unit)) & U32
                if "--hashlimit-htable-expire" not in given:
                    cfg.expire = BYTE_EXPIRE_BURST * 1000
            cfg.burst = burst
        elif cfg.burst > BURST_MAX:
            raise BadValue('bad value for option "--hashlimit-burst", or out of range '
                           "(1-1000000).")
        if cfg.mode & RATE_MATCH:
            if not cfg.mode & BYTES:
                cfg.avg //= self.mult
            if cfg.interval == 0:
                cfg.interval = 1 if cfg.mode & BYTES else self.mult

    def kernel_check(self) -> None:
        """hashlimit_mt_check (kernel): what checkentry refuses."""
        cfg = self.cfg
        check_proc_name(self.name, self.table_name)
        if cfg.gc_interval == 0 or cfg.expire == 0:
            raise kernel_refuses("hashlimit: --hashlimit-htable-gcinterval and "
                                 "--hashlimit-htable-expire must not be 0")
        if cfg.srcmask > 32 or cfg.dstmask > 32:
            raise kernel_refuses("hashlimit: a mask that is not a prefix length (0-32)")
        if cfg.mode & RATE_MATCH:
            if cfg.avg == 0 or cfg.avg > U32:
                raise kernel_refuses("hashlimit: invalid rate", "Numerical result out of range")
            if cfg.interval == 0:
                raise kernel_refuses("hashlimit: invalid --hashlimit-rate-interval")
        elif cfg.mode & BYTES:
            if user2credits_byte(cfg.avg) == 0:
                raise kernel_refuses("hashlimit: byte rate too high")
        elif cfg.burst == 0 or user2credits((cfg.avg * cfg.burst) & U64) < \
                user2credits(cfg.avg):
            raise kernel_refuses("hashlimit: rate times burst overflows",
                                 "Numerical result out of range")

    def save(self) -> str:
        cfg = self.cfg
        out = ["--hashlimit-above" if cfg.mode & INVERT else "--hashlimit-upto"]
        if cfg.mode & BYTES:
            text, quantum = bytes_text(cfg.avg, cfg.burst)
            out.append(text)
        else:
            text, quantum = rate_text(cfg.avg)
            out += [text, f"--hashlimit-burst {cfg.burst}"]
        if cfg.mode & (HASH_SIP | HASH_SPT | HASH_DIP | HASH_DPT):
            out.append("--hashlimit-mode "
                       + ",".join(n for n, bit in _MODE_ORDER if cfg.mode & bit))
        out.append(f"--hashlimit-name {self.table_name}")
        if cfg.size:
            out.append(f"--hashlimit-htable-size {cfg.size}")
        if cfg.max:
            out.append(f"--hashlimit-htable-max {cfg.max}")
        if cfg.gc_interval != GCINTERVAL:
            out.append(f"--hashlimit-htable-gcinterval {cfg.gc_interval}")
        if cfg.expire != quantum:
            out.append(f"--hashlimit-htable-expire {cfg.expire}")
        if cfg.srcmask != 32:
            out.append(f"--hashlimit-srcmask {cfg.srcmask}")
        if cfg.dstmask != 32:
            out.append(f"--hashlimit-dstmask {cfg.dstmask}")
        if cfg.mode & RATE_MATCH:
            out.append("--hashlimit-rate-match")
            if cfg.interval != 1:
                out.append(f"--hashlimit-rate-interval {cfg.interval}")
        return " ".join(out)

    # -- simulation -------------------------------------------------------------------

    def shared_key(self) -> str:
        return self.table_name

    def _table(self, ctx: Any) -> HashTable:
        def make(peers: list[Any]) -> HashTable:
            cfg = peers[0].cfg  # htable_create: the first rule's configuration
            size = min(cfg.size, HASHLIMIT_MAX_SIZE) or DEFAULT_SIZE
            most = min(cfg.max, HASHLIMIT_MAX_SIZE)
            most = 8 * size if most == 0 else max(most, size)
            return HashTable(self.table_name, cfg, most)
        return shared(ctx, self, self.table_name, make)

    def _key(self, t: HashTable, pkt: Any) -> tuple[int, int, int, int]:
        """hashlimit_init_dst, with the table's mode and masks."""
        mode = t.cfg.mode
        src = _maskl(int(pkt.ip.src), t.cfg.srcmask) if mode & HASH_SIP else 0
        dst = _maskl(int(pkt.ip.dst), t.cfg.dstmask) if mode & HASH_DIP else 0
        sport = dport = 0
        if mode & (HASH_SPT | HASH_DPT):
            if pkt.ip.frag_offset:
                raise UnsupportedError("-m hashlimit with port modes on a non-first IP "
                                       "fragment (the kernel reads its data as ports)")
            if pkt.ip.proto in (6, 17) and pkt.l4 is not None:
                sport, dport = pkt.l4.sport, pkt.l4.dport
            elif pkt.ip.proto in (33, 50, 51, 132, 136):
                raise UnsupportedError(f"-m hashlimit ports of IP protocol {pkt.ip.proto}")
        return (src, dst, sport if mode & HASH_SPT else 0, dport if mode & HASH_DPT else 0)

    def test(self, pkt: Any, ctx: Any) -> str | None:
        t = self._table(ctx)
        now = jiffies(ctx.now)
        key = self._key(t, pkt)
        t.collect(now)
        b = t.buckets.get(key)
        if b is None:
            if len(t.buckets) >= t.max:
                raise UnsupportedError(f"-m hashlimit table {t.name} is full ({t.max} "
                                       "entries): the kernel drops the packet (hotdrop)")
            b = t.buckets[key] = t.new_bucket(now)
        else:
            b.expires = now + msecs_to_jiffies(t.cfg.expire)
            t.recalc(b, now)
        mode = self.cfg.mode
        under = self._spend(b, mode, pkt.length)
        if under != bool(mode & INVERT):
            return None
        what = f"hashlimit {self.table_name}: {self._key_text(t, key)}"
        return (f"{what} is over the limit" if not under
                else f"{what} is within the limit (--hashlimit-above)")

    @staticmethod
    def _spend(b: Bucket, mode: int, length: int) -> bool:
        """True when the packet is within the limit (and pays for it)."""
        if mode & RATE_MATCH:
            b.current_rate += length if mode & BYTES else 1
            return not b.prev_window and b.current_rate <= b.burst
        if mode & BYTES:  # hashlimit_byte_cost
            cost = ((length >> BYTE_SHIFT) + 1) * b.cost
            cost = min(cost, CREDITS_PER_JIFFY_BYTES * HZ)
            if b.credit < cost and b.credit_cap:
                b.credit_cap -= 1
                b.credit = CREDITS_PER_JIFFY_BYTES * HZ
            cost &= U32
        else:
            cost = b.cost
        if b.credit >= cost:
            b.credit -= cost
            return True
        return False

    @staticmethod
    def _key_text(t: HashTable, key: tuple[int, int, int, int]) -> str:
        from kptui.engine.iptables.values import ip_text

        mode = t.cfg.mode
        parts = []
        if mode & HASH_SIP:
            parts.append(f"src {ip_text(key[0])}/{t.cfg.srcmask}")
        if mode & HASH_SPT:
            parts.append(f"sport {key[2]}")
        if mode & HASH_DIP:
            parts.append(f"dst {ip_text(key[1])}/{t.cfg.dstmask}")
        if mode & HASH_DPT:
            parts.append(f"dport {key[3]}")
        return ", ".join(parts) or "the one bucket"


MATCHES = (HashlimitMatch,)
