"""What each profile's kernel has: scenario content a profile cannot run is an error.

A historical profile never guesses at a feature its kernel did not have: the raw
table in classic-2.4, `-m statistic`, `--ctstate UNTRACKED`, or iptables in a 2.2
box are refused with ``unsupported in profile NAME: ...``, naming file and line.

Kernel facts relied on:
- classic-2.4: the tables of Linux 2.4 are filter, nat (PREROUTING, OUTPUT,
  POSTROUTING) and mangle (all five hooks since 2.4.18); raw, security and the nat
  INPUT chain came with 2.6. The matches and targets are those of Linux 2.4's
  net/ipv4/netfilter (ipt_*.c), plus the IMQ target of the seed diagram.
- ipchains and iptables exclude each other: "Once the IPCHAINS module is loaded,
  you CANNOT use any IPTABLES commands or modules since the code conflicts"
  (IP-Masquerade-HOWTO, 7.40 "IPCHAINS rulesets on 2.4.x kernels").
- modern: IMQ was never merged (KERNEL-NOTES 2); ipchains left the kernel with 2.6.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from kptui.engine.errors import ParseError
from kptui.engine.iptables.targets import IMQ_MAX_DEVS
from kptui.engine.numbers import scan_uint

MIX_ERROR = ("iptables and ipchains cannot be mixed in one scenario: on a 2.4 kernel the "
             "ipchains and ip_tables modules exclude each other (\"Once the IPCHAINS module "
             "is loaded, you CANNOT use any IPTABLES commands or modules\", "
             "IP-Masquerade-HOWTO 7.40)")

IMQ_DEFAULT_DEVS = 2  # imq.c: module parameter numdevs, imq0 and imq1 unless given

CLASSIC_TABLES = {"filter": "", "nat": "", "mangle": "",
                  "raw": "the raw table (Linux 2.6)",
                  "security": "the security table (Linux 2.6.25)"}
CLASSIC_MATCHES = frozenset({"tcp", "udp", "icmp", "mac", "limit", "multiport", "tos",
                             "mark", "state", "conntrack", "length", "ttl", "pkttype",
                             "dscp", "ecn", "ah", "esp", "helper", "owner", "tcpmss",
                             "unclean"})
CLASSIC_TARGETS = frozenset({"ACCEPT", "DROP", "RETURN", "QUEUE", "LOG", "REJECT", "MARK",
                             "TOS", "DSCP", "ECN", "DNAT", "SNAT", "MASQUERADE", "REDIRECT",
                             "TCPMSS", "ULOG", "MIRROR", "IMQ"})
# ipt_conntrack.c (2.4): the options and values of revision 0
CLASSIC_CONNTRACK_OPTIONS = frozenset({"--ctstate", "--ctproto", "--ctorigsrc", "--ctorigdst",
                                       "--ctreplsrc", "--ctrepldst", "--ctstatus",
                                       "--ctexpire"})
CLASSIC_CTSTATES = frozenset({"INVALID", "ESTABLISHED", "NEW", "RELATED", "SNAT", "DNAT"})
CLASSIC_CTSTATUS = frozenset({"NONE", "EXPECTED", "SEEN_REPLY", "ASSURED"})


class ProfileError(ParseError):
    """Content the chosen profile's kernel does not have."""


def unsupported(profile: str, what: str, *, file: str, line: int = 0,
                token: str = "") -> ProfileError:
    return ProfileError(f"unsupported in profile {profile}: {what}", file=file, line=line,
                        token=token)


class SplitSetup(NamedTuple):
    """The setup text as the profile's box runs it, and what the profile takes out."""

    setup: str  # the rest, line numbers kept (taken lines are blank)
    chains: list[tuple[int, str]]  # [(line, ipchains command)]
    imq_devs: int  # classic-2.4: imq0 .. imq(N-1) exist (0 in the other profiles)


def split_setup(setup: str, profile: str, *, file: str, first_line: int) -> SplitSetup:
    """Take out the lines only a historical profile runs.

    ipchains lines are for the ipchains profile only, and it takes no iptables lines.
    ``modprobe imq [numdevs=N]`` (classic-2.4 only) sets how many imq devices the
    module makes: imq.c's ``numdevs`` parameter, 2 unless given, at most 16.
    """
    kept: list[str] = []
    chains: list[tuple[int, str]] = []
    imq_devs = IMQ_DEFAULT_DEVS if profile == "classic-2.4" else 0
    taken = False
    for n, raw in enumerate(setup.splitlines()):
        words, line = raw.split("#", 1)[0].split(), first_line + n
        word = words[0] if words else ""
        if words[:2] == ["modprobe", "imq"]:
            imq_devs = _modprobe_imq(words[2:], profile, file=file, line=line)
            kept.append("")
            taken = True
            continue
        if word == "ipchains":
            if profile == "modern":
                raise unsupported(profile, "ipchains (Linux 2.2; kernels since 2.6 no longer "
                                  "have it): use profile = \"ipchains\"", file=file,
                                  line=line, token="ipchains")
            if profile != "ipchains":
                raise ParseError(MIX_ERROR, file=file, line=line, token="ipchains")
            chains.append((line, raw))
            kept.append("")
            taken = True
            continue
        if profile == "ipchains" and word.startswith("iptables"):
            raise ParseError(MIX_ERROR, file=file, line=line, token=word)
        kept.append(raw)
    if not taken:
        return SplitSetup(setup, chains, imq_devs)
    rest = "\n".join(kept) + ("\n" if setup.endswith("\n") else "")
    return SplitSetup(rest, chains, imq_devs)


def _modprobe_imq(words: list[str], profile: str, *, file: str, line: int) -> int:
    """``modprobe imq [numdevs=N]``: the number of imq devices (imq.c module_param)."""
    if profile != "classic-2.4":
        raise unsupported(profile, "the imq module (the IMQ patch for 2.4/2.6, never merged; "
                          "today: an ifb device)", file=file, line=line, token="imq")
    numdevs = IMQ_DEFAULT_DEVS
    for word in words:
        key, _, value = word.partition("=")
        if key != "numdevs":
            raise unsupported(profile, f"modprobe imq option {word!r} (kptui models numdevs)",
                              file=file, line=line, token=word)
        # module_param int: kstrtoint base 0 ("numdevs=010" is 8, a "+" is taken)
        number = scan_uint(value.removeprefix("+"), 0)
        if number is None or not 1 <= number <= IMQ_MAX_DEVS:
            raise ParseError(f"imq: numdevs must be 1..{IMQ_MAX_DEVS} (IMQ_MAX_DEVS)",
                             file=file, line=line, token=word)
        numdevs = number
    return numdevs


def _text_line(text: str, pattern: str) -> int:
    rx = re.compile(pattern)
    return next((i + 1 for i, line in enumerate(text.splitlines()) if rx.search(line)), 0)


def check_ruleset(ruleset: Any, profile: str, *, file: str, text: str = "") -> None:
    """Refuse iptables content the profile's kernel does not have (first problem wins)."""
    if profile == "ipchains":
        if any(t.present for t in ruleset.tables.values()):
            line = _text_line(text, r"^\s*iptables\s*=") if text else 0
            raise ParseError(MIX_ERROR, file=file, line=line, token="iptables")
        return
    # modern refuses one target only: the other rules need no closer look (a kube-proxy
    # ruleset is 20,000 of them)
    only_imq = profile == "modern"
    if only_imq and not any(getattr(cls, "name", "") == "IMQ" for cls in {
            type(rule.target) for table in ruleset.tables.values()
            for chain in table.chains.values() for rule in chain.rules}):
        return  # (the targets' classes, a few dozen, are quicker to look at than rules)
    for table in ruleset.tables.values():
        for chain in table.chains.values():
            for rule in chain.rules:
                if only_imq and getattr(rule.target, "name", "") != "IMQ":
                    continue
                _check_rule(rule, profile, table.name, chain.name)
    if profile != "classic-2.4":
        return
    for name, table in ruleset.tables.items():
        if not table.present:
            continue
        what = CLASSIC_TABLES.get(name, f"the {name} table")
        if what:
            line = _text_line(text, rf"^\s*\*{name}\b|-t\s+{name}\b") if text else 0
            raise unsupported(profile, f"{what}; the seed diagram's kernel has filter, nat "
                              "and mangle only", file=file, line=line, token=name)
    if ruleset.chain_present("nat", "INPUT"):
        line = _text_line(text, r"^\s*:INPUT\b|-A\s+INPUT\b") if text else 0
        raise unsupported(profile, "the nat INPUT chain (Linux 2.6.36); 2.4's nat table "
                          "has PREROUTING, OUTPUT and POSTROUTING", file=file, line=line,
                          token="INPUT")


def _check_rule(rule: Any, profile: str, table: str, chain: str) -> None:
    where = {"file": rule.file, "line": rule.line}
    target = getattr(rule.target, "name", "")
    user_chain = type(rule.target).__name__ == "ChainTarget"
    if profile == "modern":
        if target == "IMQ" and not user_chain:
            raise unsupported(profile, "the IMQ target (an out-of-tree 2.4/2.6 patch, never "
                              "merged; today: tc mirred redirect to an ifb device)",
                              token="IMQ", **where)
        return
    if profile != "classic-2.4":
        return
    for match in rule.matches[1:]:
        name = getattr(match, "name", "")
        if name not in CLASSIC_MATCHES:
            raise unsupported(profile, f"-m {name} (not a match of Linux 2.4's netfilter)",
                              token=name, **where)
        if name == "conntrack":
            _check_conntrack(match, profile, where)
        if name == "state" and "UNTRACKED" in getattr(match, "states", ()):
            raise unsupported(profile, "--state UNTRACKED (the raw table's NOTRACK came "
                              "with Linux 2.6)", token="UNTRACKED", **where)
    if target and not user_chain and target not in CLASSIC_TARGETS:
        raise unsupported(profile, f"the {target} target (not a target of Linux 2.4's "
                          "netfilter)", token=target, **where)


def _check_conntrack(match: Any, profile: str, where: dict[str, Any]) -> None:
    values: dict[str, tuple[str, bool]] = getattr(match, "values", {})
    for opt, (value, _inv) in values.items():
        if opt not in CLASSIC_CONNTRACK_OPTIONS:
            raise unsupported(profile, f"-m conntrack {opt} (2.4's conntrack match has "
                              f"{', '.join(sorted(CLASSIC_CONNTRACK_OPTIONS))})", token=opt,
                              **where)
        allowed = {"--ctstate": CLASSIC_CTSTATES, "--ctstatus": CLASSIC_CTSTATUS}.get(opt)
        if allowed is not None:
            for word in value.split(","):
                if word.upper() not in allowed:
                    raise unsupported(profile, f"-m conntrack {opt} {word} (2.4 knows "
                                      f"{', '.join(sorted(allowed))})", token=word, **where)


__all__ = ["MIX_ERROR", "ProfileError", "SplitSetup", "check_ruleset", "split_setup"]
