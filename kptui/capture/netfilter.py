"""The netfilter side of a capture: iptables, native nftables, ipset, conntrack entries.

- iptables: `iptables-nft-save` text, verbatim (kptui reads iptables-save text). When
  only the legacy backend has rules (`iptables-legacy-save`), that text is used and a
  note says so; when both have rules, kptui walks the nf_tables one and the legacy
  rules are kept as comments with a note (one ruleset is walked, never both).
- nftables: every table of `nft list ruleset` that is not one of iptables-nft's own
  (``ip`` tables that iptables-nft-save printed) is kept verbatim for the scenario's
  ``nftables`` key, which kptui does not simulate yet (a note names each table).
- ipset: `ipset save` text, verbatim (the scenario's ``ipset`` key).
- conntrack: `conntrack -L` (or /proc/net/nf_conntrack) lines for the scenario's
  ``conntrack`` key, each checked with kptui.engine.ct_entries; an entry kptui cannot
  load (IPv6, another protocol, a zone, a helper, offloaded) is kept as a comment with
  its reason, garbage is an error naming the dump's line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kptui.capture.dumps import Dump
from kptui.engine.errors import ParseError
from kptui.engine.nftables_text import split_tables

CONNTRACK_SUMMARY = "conntrack v"  # the summary line, when stderr went to the same file


@dataclass(slots=True)
class Netfilter:
    iptables: str = ""
    nftables: str = ""
    ipset: str = ""
    conntrack: str = ""
    comments: list[str] = field(default_factory=list)  # kept at the end of the file
    notes: list[str] = field(default_factory=list)


def has_rules(text: str) -> bool:
    """Whether an iptables-save text has a rule, a user chain or a non-ACCEPT policy."""
    for line in text.splitlines():
        words = line.split()
        if line.startswith("-A") or (line.startswith(":") and len(words) > 1
                                     and words[1] != "ACCEPT"):
            return True  # a rule, or a user chain (policy "-") or a DROP policy
    return False


def iptables_tables(text: str) -> set[str]:
    return {line[1:].strip() for line in text.splitlines() if line.startswith("*")}


def read(nft_save: Dump | None, legacy: Dump | None, nft: Dump | None, ipset: Dump | None,
         conntrack: Dump | None) -> Netfilter:
    out = Netfilter()
    nft_text = nft_save.text if nft_save is not None else ""
    legacy_text = legacy.text if legacy is not None else ""
    if has_rules(legacy_text) and not has_rules(nft_text):
        out.iptables = legacy_text
        out.notes.append(f"iptables: the rules are the legacy backend's "
                         f"({legacy.file if legacy else ''}); kptui walks them as "
                         "iptables, kptui verify loads them with iptables-nft")
    else:
        out.iptables = nft_text
        if has_rules(legacy_text):
            out.notes.append("iptables: the legacy backend has rules too: unsupported yet "
                             "(kptui walks the nf_tables ruleset only); the legacy rules "
                             "are kept as comments at the end of the file")
            out.comments += ["# iptables-legacy-save (not simulated):"] + [
                f"#   {line}" for line in legacy_text.splitlines()]
    if nft is not None and nft.text.strip():
        own = iptables_tables(nft_text)
        native = [t for t in split_tables(nft.text, file=nft.file)
                  if not (t.family == "ip" and t.name in own)]
        out.nftables = "\n".join(t.text for t in native) + ("\n" if native else "")
    if ipset is not None:
        out.ipset = ipset.text
    if conntrack is not None:
        out.conntrack = _conntrack(conntrack, out)
    return out


def _conntrack(dump: Dump, out: Netfilter) -> str:
    from kptui.engine.ct_entries import parse_entries

    kept: list[str] = []
    skipped = 0
    for number, raw in enumerate(dump.text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(CONNTRACK_SUMMARY):
            continue
        try:
            parse_entries(line, file=dump.file, first_line=number)
        except ParseError as err:
            if "unsupported yet" not in err.message:
                raise
            reason = err.message.removeprefix("conntrack: ")
            kept.append(f"# {reason}: {line}")
            skipped += 1
            continue
        kept.append(line)
    if skipped:
        out.notes.append(f"conntrack: {skipped} entr{'y' if skipped == 1 else 'ies'} kptui "
                         "cannot load (each commented with its reason in the conntrack text)")
    return "\n".join(kept) + ("\n" if kept else "")


__all__ = ["Netfilter", "read", "has_rules"]
