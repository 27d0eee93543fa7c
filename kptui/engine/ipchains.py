"""ipchains (Linux 2.2): the rule model, the `ipchains` command parser and chain traversal.

The syntax and meaning follow the IPCHAINS-HOWTO (Rusty Russell, v1.0.8, July 2000,
http://tldp.docs.sk/howto/linux-ipchains/IPCHAINS-HOWTO.html) section 4, the error
messages ipchains 1.3.9's ipchains.c and libipfwc (word for word), and the kernel's
ip_fw.c (as kept in Linux 2.4.0's net/ipv4/netfilter/ipchains_core.c, "heavily based
on the code on the old ip_fw.c"): three built-in chains (input, forward, output)
with policies ACCEPT, DENY, REJECT (MASQ for forward), user chains of up to 8
characters, targets ACCEPT, DENY, REJECT, MASQ, REDIRECT [port], RETURN or a
user chain. Inversion is written after the option (`-s ! 10.0.0.1`, `-p ! tcp`,
`-i ! eth0`, a port `! 80`) or, for -y and -f, before it (`! -y`).

Traversal yields the same event types as iptables (table "ipchains"), so the
debugger, breakpoints (`chain ipchains:input`) and the trace work unchanged.
"""

from __future__ import annotations

import shlex
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from kptui.engine.errors import ParseError
from kptui.engine.events import (
    ChainEnter,
    ChainReturn,
    Event,
    FieldChange,
    LogLine,
    PolicyApplied,
    RuleEval,
    TargetApplied,
)
from kptui.engine.iptables.model import Chain, Counters
from kptui.engine.numbers import scan_uint

TABLE = "ipchains"
BUILTIN = ("input", "forward", "output")
VERDICTS = ("ACCEPT", "DENY", "REJECT", "MASQ", "REDIRECT", "RETURN")
POLICIES = ("ACCEPT", "DENY", "REJECT", "MASQ")
MAX_CHAIN_NAME = 8  # IP_FW_MAX_LABEL_LENGTH; HOWTO 4.1.5.5: "can be up to 8 characters long"
PROTOS = {"all": 0, "icmp": 1, "tcp": 6, "udp": 17}
SERVICES = {"ftp-data": 20, "ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "domain": 53,
            "www": 80, "http": 80, "pop3": 110, "auth": 113, "nntp": 119, "https": 443}
# IPCHAINS-HOWTO 4.1.4.3.2 (Specifying ICMP Type and Code): the type goes where the
# source port would, the code where the destination port would.
ICMP_NAMES = {"echo-reply": 0, "pong": 0, "destination-unreachable": 3, "source-quench": 4,
              "redirect": 5, "echo-request": 8, "ping": 8, "router-advertisement": 9,
              "router-solicitation": 10, "time-exceeded": 11, "parameter-problem": 12,
              "timestamp-request": 13, "timestamp-reply": 14, "address-mask-request": 17,
              "address-mask-reply": 18}
TCP_SYN, TCP_RST, TCP_ACK = 2, 4, 16


@dataclass(slots=True)
class IpcRule:
    """One ipchains rule; ``text`` is how `ipchains-save` would print its options."""

    proto: int = 0
    proto_inv: bool = False
    src: tuple[int, int, bool] | None = None  # (address, mask, inverted)
    dst: tuple[int, int, bool] | None = None
    sports: tuple[int, int, bool] | None = None  # (low, high, inverted); ICMP: type
    dports: tuple[int, int, bool] | None = None  # ICMP: code
    iface: tuple[str, bool] | None = None
    syn: bool | None = None  # -y: True, ! -y: False
    frag: bool | None = None  # -f: True (non-first fragments), ! -f: False
    target: str = ""  # "", a verdict, or a user chain
    redirect_port: int = 0
    log: bool = False
    mark: int | None = None
    text: str = ""
    file: str = ""
    line: int = 0
    counters: Counters = field(default_factory=Counters)

    def test(self, pkt: Any, iface: str) -> str | None:
        """None when the rule matches ``pkt`` seen on ``iface``, else why not."""
        ip = pkt.ip
        if self.proto and (ip.proto == self.proto) == self.proto_inv:
            return f"protocol {pkt.proto_name}"
        for name, spec, addr in (("source", self.src, ip.src), ("destination", self.dst,
                                                                 ip.dst)):
            if spec is not None:
                net, mask, inv = spec
                if ((int(addr) & mask) == net) == inv:
                    return f"{name} {addr}"
        if self.iface is not None:
            name, inv = self.iface
            hit = iface.startswith(name[:-1]) if name.endswith("+") else iface == name
            if hit == inv:
                return f"interface {iface or '(none)'}"
        if self.frag is not None and bool(ip.frag_offset) != self.frag:
            return "fragment" if not self.frag else "not a fragment"
        if self.sports or self.dports or self.syn is not None:
            if ip.frag_offset:  # a non-first fragment has no ports or flags to look at
                return "a non-first fragment has no ports"
            sport, dport = _ports(pkt)
            for name, spec, value in (("source port", self.sports, sport),
                                      ("destination port", self.dports, dport)):
                if spec is not None:
                    lo, hi, inv = spec
                    if value is None or (lo <= value <= hi) == inv:
                        return f"{name} {value}"
            if self.syn is not None:
                flags = pkt.l4.flags if ip.proto == 6 else 0
                # ip_fw_check: "if(tcp->syn && !(tcp->ack || tcp->rst)) tcpsyn=1;" (the
                # HOWTO and man page say ACK and FIN; the kernel tests ACK and RST)
                syn = bool(flags & TCP_SYN) and not flags & (TCP_ACK | TCP_RST)
                if syn != self.syn:
                    return "not a SYN-only TCP packet" if self.syn else "a SYN-only TCP packet"
        return None


def _ports(pkt: Any) -> tuple[int | None, int | None]:
    if pkt.ip.proto == 1 and pkt.l4 is not None:
        return pkt.l4.type, pkt.l4.code
    return pkt.sport, pkt.dport


@dataclass
class IpchainsRuleset:
    """The kernel's chains: built-ins first (policy ACCEPT at boot), then user chains."""

    chains: dict[str, Chain] = field(default_factory=lambda: {
        name: Chain(name, True, "ACCEPT", present=True) for name in BUILTIN})

    @property
    def present(self) -> bool:
        return True


class IpchainsError(ParseError):
    """A command the real ipchains would refuse."""


def apply_ipchains(rs: IpchainsRuleset, line_text: str, *, file: str, line: int) -> None:
    """Apply one `ipchains ...` command line to ``rs`` (ParseError when it is refused)."""
    try:
        words = shlex.split(line_text, comments=True)
    except ValueError as err:
        raise IpchainsError(f"ipchains: {err}", file=file, line=line) from None
    if not words or words[0] != "ipchains":
        raise IpchainsError("not an ipchains command", file=file, line=line)
    _Command(rs, words[1:], file, line, line_text).run()


class _Command:
    def __init__(self, rs: IpchainsRuleset, words: list[str], file: str, line: int,
                 raw: str) -> None:
        self.rs, self.words, self.file, self.line, self.raw = rs, words, file, line, raw

    def err(self, message: str, token: str = "") -> IpchainsError:
        col = self.raw.find(token) + 1 if token and token in self.raw else 0
        return IpchainsError(f"ipchains: {message}", file=self.file, line=self.line,
                             column=col, token=token)

    def chain(self, name: str | None, *, user_ok: bool = True) -> Chain:
        if name is None:
            raise self.err("the command needs a chain name")
        ch = self.rs.chains.get(name)
        if ch is None:
            raise self.err("No chain by that name", name)
        return ch

    def run(self) -> None:
        words = self.words
        if not words:
            raise self.err("no command given")
        cmd, rest = words[0], words[1:]
        long = {"--append": "-A", "--insert": "-I", "--delete": "-D", "--flush": "-F",
                "--policy": "-P", "--new-chain": "-N", "--delete-chain": "-X",
                "--zero": "-Z", "--replace": "-R"}
        cmd = long.get(cmd, cmd)
        if cmd in ("-A", "-I", "-R"):
            ch = self.chain(rest[0] if rest else None)
            rest = rest[1:]
            pos = None
            # ipchains takes any next word not starting with - or ! as the rule number
            if cmd in ("-I", "-R") and rest and rest[0][:1] not in ("-", "!"):
                pos, word, rest = self.rule_number(rest[0]), rest[0], rest[1:]
                if not 1 <= pos <= len(ch.rules) + (1 if cmd == "-I" else 0):
                    raise self.err(f"rule number {pos} is out of range", word)
            if cmd == "-R" and pos is None:
                raise self.err("-R needs a rule number")
            rule = self.rule(rest, ch)
            if cmd == "-A":
                ch.rules.append(rule)
            elif cmd == "-I":
                ch.rules.insert((pos or 1) - 1, rule)
            else:
                ch.rules[(pos or 1) - 1] = rule
        elif cmd == "-D":
            ch = self.chain(rest[0] if rest else None)
            if len(rest) >= 2 and rest[1][:1] not in ("-", "!"):
                n = self.rule_number(rest[1])
                if len(rest) > 2:
                    raise self.err(f"unknown option or argument {rest[2]!r}", rest[2])
                if not 1 <= n <= len(ch.rules):
                    raise self.err(f"rule number {n} is out of range", rest[1])
                del ch.rules[n - 1]
            else:
                text = self.rule(rest[1:], ch).text
                for i, r in enumerate(ch.rules):
                    if r.text == text:
                        del ch.rules[i]
                        break
                else:
                    raise self.err("bad rule (does a matching rule exist in that chain?)")
        elif cmd in ("-F", "-Z"):
            chains = [self.chain(rest[0])] if rest else list(self.rs.chains.values())
            for ch in chains:
                if cmd == "-F":
                    ch.rules.clear()
                else:
                    for r in ch.rules:
                        r.counters = Counters()
        elif cmd == "-P":
            if len(rest) != 2:
                raise self.err("-P needs a chain and a policy")
            ch = self.chain(rest[0])
            if not ch.builtin:
                raise self.err("Can only set policy in built-in chains.", rest[0])
            if rest[1] == "MASQ" and ch.name != "forward":
                raise self.err("`-P MASQ' only valid for `forward' chain.", rest[1])
            if rest[1] not in POLICIES:
                raise self.err(f"Invalid policy `{rest[1]}' for -P", rest[1])
            ch.policy = rest[1]
        elif cmd == "-N":
            if len(rest) != 1:
                raise self.err("-N needs one chain name")
            name = rest[0]
            if len(name) > MAX_CHAIN_NAME:
                raise self.err(f"chain name `{name}' too long (must be under "
                               f"{MAX_CHAIN_NAME} chars)", name)
            if name in self.rs.chains or name in VERDICTS or name.startswith("-"):
                raise self.err("Chain already exists", name)
            self.rs.chains[name] = Chain(name, False, "-", present=True)
        elif cmd == "-X":
            names = [rest[0]] if rest else [n for n, c in self.rs.chains.items()
                                            if not c.builtin]
            for name in names:
                ch = self.chain(name)
                if ch.builtin:
                    raise self.err(f"can't delete built-in chain {name}", name)
                if ch.rules or any(r.target == name for c in self.rs.chains.values()
                                   for r in c.rules):
                    raise self.err("Chain is not empty", name)
                del self.rs.chains[name]
        else:
            raise self.err(f"unsupported yet: ipchains {cmd} (modelled: -A -I -R -D -F -Z "
                           "-P -N -X)", cmd)

    # -- numbers: ipchains 1.3.9's string_to_number is strtol(s, &end, 10) over the
    # whole word, so `010` is 10 and leading blanks and a `+` pass ----------------------

    def number(self, text: str, lo: int, hi: int) -> int | None:
        """string_to_number(text, lo, hi): base 10, the whole word; None when refused."""
        value = scan_uint(text, 10, strtoul=True)
        return value if value is not None and lo <= value <= hi else None

    def rule_number(self, text: str) -> int:
        """parse_rulenumber: string_to_number(rule, 1, INT_MAX)."""
        value = self.number(text, 1, 0x7FFFFFFF)
        if value is None:
            raise self.err(f"Invalid rule number `{text}'", text)
        return value

    # -- one rule ----------------------------------------------------------------------

    def rule(self, words: list[str], chain: Chain) -> IpcRule:
        r = IpcRule(file=self.file, line=self.line)
        port_words: dict[str, list[str]] = {}
        i, n = 0, len(words)
        prefix_inv = False

        def arg() -> str:
            if i + 1 >= n:
                raise self.err(f"option {words[i]} needs an argument", words[i])
            return words[i + 1]

        while i < n:
            w = words[i]
            if w == "!":
                prefix_inv = True
                i += 1
                continue
            if w in ("-p", "--protocol"):
                val, inv, used = self.inverted(words, i + 1)
                # parse_protocol: string_to_number(s, 0, 65535) first, then a name
                proto = self.number(val, 0, 65535)
                if proto is None:
                    proto = PROTOS.get(val.lower())
                if proto is None:
                    raise self.err(f"unknown protocol `{val}' specified", val)
                r.proto, r.proto_inv = proto, inv
                i += 1 + used
            elif w in ("-s", "--source", "--src", "-d", "--destination", "--dst"):
                val, inv, used = self.inverted(words, i + 1)
                spec = (*self.address(val), inv)
                i += 1 + used
                ports: list[str] = []
                while i < n and not words[i].startswith("-") and (
                        words[i] != "!" or (i + 1 < n and not words[i + 1].startswith("-"))):
                    ports.append(words[i])
                    i += 1
                    if ports[-1] != "!":
                        break
                if w.startswith("-s") or w.startswith("--s"):
                    r.src = spec
                    port_words["s"] = ports
                else:
                    r.dst = spec
                    port_words["d"] = ports
            elif w in ("-i", "--interface"):
                val, inv, used = self.inverted(words, i + 1)
                r.iface = (val, inv)
                i += 1 + used
            elif w in ("-j", "--jump"):
                r.target = arg()
                i += 2
                if r.target == "REDIRECT" and i < n and words[i][:1] not in ("-", "!"):
                    r.redirect_port = self.port(words[i])  # rport = argv[optind++]
                    i += 1
            elif w in ("-y", "--syn"):
                r.syn = not prefix_inv
                prefix_inv = False
                i += 1
            elif w in ("-f", "--fragment"):
                r.frag = not prefix_inv
                prefix_inv = False
                i += 1
            elif w in ("-l", "--log"):
                r.log = True
                i += 1
            elif w in ("-m", "--mark"):
                val = arg()
                if val[:1] in ("+", "-"):  # parse_mark: a relative mark, added by the kernel
                    raise self.err(f"unsupported yet: a relative mark (-m {val})", val)
                # parse_mark: strtoul(ptr, &end, 0) up to UINT_MAX (010 is 8, 0x10 is 16)
                mark = scan_uint(val, 0, strtoul=True)
                if mark is None or mark > 0xFFFFFFFF:
                    raise self.err(f"bad mark value {val!r}", val)
                r.mark = mark
                i += 2
            elif w in ("-v", "-n", "--verbose", "--numeric"):
                i += 1
            elif w in ("-b", "--bidirectional", "-t", "--TOS", "-o", "--output"):
                raise self.err(f"unsupported yet: ipchains option {w}", w)
            else:
                raise self.err(f"unknown option or argument {w!r}", w)
            if prefix_inv and w not in ("!",):
                raise self.err(f"! before {w}: write the inversion after the option "
                               f"({w} ! ...)", w)
        if prefix_inv:
            raise self.err("! must be followed by -y or -f")
        for side, ports in port_words.items():
            if ports:
                if r.proto == 0 or r.proto_inv:
                    raise self.err("no ports allowed without specific protocol", ports[-1])
                if r.proto not in (1, 6, 17):
                    raise self.err("can only specify ports for icmp, tcp or udp", ports[-1])
                inv = ports[0] == "!"
                lo, hi = self.port_range(ports[-1], r.proto, side)
                if side == "s":
                    r.sports = (lo, hi, inv)
                else:
                    r.dports = (lo, hi, inv)
        if r.syn is not None and (r.proto != 6 or r.proto_inv):
            raise self.err("-y only allowed with TCP protocol", "-y")
        self.check_target(r, chain)
        r.text = self.text(r, words)
        return r

    def inverted(self, words: list[str], i: int) -> tuple[str, bool, int]:
        if i < len(words) and words[i] == "!":
            if i + 1 >= len(words):
                raise self.err("! needs a value after it", "!")
            return words[i + 1], True, 2
        if i >= len(words):
            raise self.err(f"option {words[i - 1]} needs an argument", words[i - 1])
        return words[i], False, 1

    def dotted(self, text: str) -> int | None:
        """dotted_to_addr: four parts, each string_to_number(p, 0, 255) (010 is 10)."""
        parts = text.split(".")
        if len(parts) != 4:
            return None
        value = 0
        for part in parts:
            octet = self.number(part, 0, 255)
            if octet is None:
                return None
            value = value << 8 | octet
        return value

    def address(self, text: str) -> tuple[int, int]:
        addr, _, mask = text.partition("/")
        base = 0 if addr == "0" else self.dotted(addr)
        if not mask:
            bits: int | None = 0xFFFFFFFF
        elif "." in mask:
            bits = self.dotted(mask)
        else:  # parse_mask: string_to_number(mask, 0, 32)
            length = self.number(mask, 0, 32)
            bits = None if length is None else (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF
        if base is None or bits is None:
            raise self.err(f"bad address {text!r} (host names are not resolved: give "
                           "A.B.C.D[/mask])", text)
        return base & bits, bits

    def port(self, text: str) -> int:
        value = self.number(text, 0, 65535)  # parse_port: a number first, then a service
        if value is None:
            value = SERVICES.get(text)
        if value is None:
            raise self.err(f"bad port {text!r}", text)
        return value

    def port_range(self, text: str, proto: int, side: str) -> tuple[int, int]:
        if proto == 1:
            number = self.number(text, 0, 255)
            if side == "s" and text in ICMP_NAMES:
                value = ICMP_NAMES[text]
            elif number is not None:
                value = number
            else:
                raise self.err(f"bad ICMP {'type' if side == 's' else 'code'} {text!r}", text)
            return value, value
        lo, sep, hi = text.partition(":")
        if not sep:
            value = self.port(text)
            return value, value
        return (self.port(lo) if lo else 0), (self.port(hi) if hi else 65535)

    def check_target(self, r: IpcRule, chain: Chain) -> None:
        t = r.target
        if not t or t in ("ACCEPT", "DENY", "REJECT", "RETURN"):
            return
        if t == "MASQ":
            if chain.builtin and chain.name != "forward":
                raise self.err("masquerading not allowed for input and output chains", t)
            return
        if t == "REDIRECT":
            if chain.builtin and chain.name != "input":
                raise self.err("redirect not allowed for output and forward chains", t)
            if r.proto not in (6, 17) or r.proto_inv:
                raise self.err("redirecting only allowed with TCP or UDP", t)
            return
        if t in BUILTIN:
            raise self.err(f"can't jump to built-in chain {t}", t)
        if t not in self.rs.chains:
            raise self.err("No target by that name", t)

    def text(self, r: IpcRule, words: list[str]) -> str:
        """The rule's options as written, without -A CHAIN (canonical enough for -D)."""
        return " ".join(w for w in words if w not in ("-v", "-n", "--verbose", "--numeric"))


# -- traversal ------------------------------------------------------------------------


def log_line(chain: str, verdict: str, iface: str, pkt: Any, number: int) -> str:
    """ip_fw.c dump_packet's line: `Packet log: input DENY eth0 PROTO=17 a:sp b:dp L=.. ...`"""
    ip = pkt.ip
    sport, dport = _ports(pkt)
    frag = (0x4000 if ip.df else 0) | (0x2000 if ip.mf else 0) | ip.frag_offset
    text = (f"Packet log: {chain} {verdict} {iface or '-'} PROTO={ip.proto} "
            f"{ip.src}:{sport or 0} {ip.dst}:{dport or 0} L={pkt.length} S=0x{ip.tos:02X} "
            f"I={ip.id} F=0x{frag:04X} T={ip.ttl}")
    if ip.proto == 6 and pkt.l4 is not None and pkt.l4.flags & TCP_SYN:
        text += " SYN"
    return text + f" (#{number})"


def run_ipchain(rs: IpchainsRuleset, chain: str, pkt: Any, iface: str, *, stage: str,
                hook: str) -> Generator[Event, None, tuple[str, int, str]]:
    """ip_fw_check: walk ``chain``; returns (verdict, redirect port, decider)."""
    ev = {"stage": stage, "hook": hook, "table": TABLE}
    base = cur = rs.chains[chain]
    stack: list[tuple[Chain, int]] = []
    depth, k = 1, 0
    yield ChainEnter(depth=depth, chain=cur.name, via="hook", **ev)
    while True:
        if k < len(cur.rules):
            rule = cur.rules[k]
            k += 1
            reason = rule.test(pkt, iface)
            yield RuleEval(depth=depth, chain=cur.name, rule=k, matched=reason is None,
                           text=f"-A {cur.name} {rule.text}", reason=reason or "", **ev)
            if reason is not None:
                continue
            rule.counters.add(pkt.length)
            by = f"{TABLE}:{cur.name}:rule:{k}"
            if rule.mark is not None:
                old, new = pkt.set("meta.mark", rule.mark)
                if old != new:
                    yield FieldChange(depth=depth, path="meta.mark", old=old, new=new, by=by,
                                      stage=stage, hook=hook)
            target = rule.target
            if rule.log:
                shown = target if target in VERDICTS else (target or "-")
                yield LogLine(stage=stage, hook=hook, depth=depth, prefix="", level="info",
                              line=log_line(chain, shown, iface, pkt, k))
            if not target:
                continue
            if target in rs.chains:
                yield TargetApplied(depth=depth, chain=cur.name, rule=k, target=target,
                                    verdict="JUMP", **ev)
                stack.append((cur, k))
                cur, k = rs.chains[target], 0
                depth += 1
                yield ChainEnter(depth=depth, chain=cur.name, via="jump", **ev)
                continue
            detail = f"to local port {rule.redirect_port}" if target == "REDIRECT" else ""
            yield TargetApplied(depth=depth, chain=cur.name, rule=k, target=target,
                                verdict=target, detail=detail, **ev)
            if target != "RETURN":
                if target == "MASQ" and chain != "forward":
                    from kptui.engine.errors import KptuiError

                    raise KptuiError(f"ipchains: MASQ reached from the {chain} chain; "
                                     "it is only valid for packets in the forward chain")
                if target == "REDIRECT" and chain != "input":
                    from kptui.engine.errors import KptuiError

                    raise KptuiError(f"ipchains: REDIRECT reached from the {chain} chain; "
                                     "it is only valid for packets in the input chain")
                return target, rule.redirect_port, by
            if stack:
                yield ChainReturn(depth=depth, chain=cur.name, rule=k, explicit=True, **ev)
        elif not cur.builtin:
            yield ChainReturn(depth=depth, chain=cur.name, rule=len(cur.rules) + 1,
                              explicit=False, **ev)
        if stack:
            cur, k = stack.pop()
            depth -= 1
            continue
        base.counters.add(pkt.length)
        yield PolicyApplied(depth=1, chain=base.name, verdict=base.policy, **ev)
        return base.policy, 0, f"{TABLE}:{base.name}:policy"


def to_save(rs: IpchainsRuleset) -> str:
    """ipchains-save's shape: `:chain POLICY` lines, then `-A chain ...` lines."""
    out = [f":{c.name} {c.policy}" for c in rs.chains.values() if c.builtin]
    for c in rs.chains.values():
        out.extend(f"-A {c.name} {r.text}" for r in c.rules)
    return "\n".join(out) + "\n"


__all__ = ["IpcRule", "IpchainsRuleset", "apply_ipchains", "run_ipchain", "to_save"]
