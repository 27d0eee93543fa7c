"""A scenario's ``nftables`` text: native nftables tables, kept verbatim, not simulated yet.

``kptui capture`` puts every nftables table that is not one of iptables-nft's (those are
the ``iptables`` text) here, as `nft list ruleset` prints it, so nothing of the box is
dropped. kptui does not walk these rules yet: loading a scenario with them gives a note
naming each table (``notes``), and ``kptui verify`` loads them into the kernel's box with
`nft -f`, so a disagreement they cause shows. This module only splits the text into its
tables (``table FAMILY NAME { ... }`` at the top level, braces balanced outside quoted
strings and comments) and refuses text that is not that, naming the line.
"""

from __future__ import annotations

from dataclasses import dataclass

from kptui.engine.errors import ParseError

FAMILIES = ("ip", "ip6", "inet", "arp", "bridge", "netdev")


@dataclass(frozen=True, slots=True)
class NftTable:
    family: str
    name: str
    line: int  # where its `table` line is
    text: str  # the whole block, `table ... {` to its closing brace

    @property
    def title(self) -> str:
        return f"table {self.family} {self.name}"


def split_tables(text: str, *, file: str, first_line: int = 1) -> list[NftTable]:
    """The top-level tables of ``text``; anything else at the top level is a ParseError."""
    tables: list[NftTable] = []
    depth = 0
    start = 0
    head: tuple[str, str, int] = ("", "", 0)
    block: list[str] = []
    for offset, raw in enumerate(text.splitlines()):
        line = first_line + offset
        body = _code(raw)
        if depth == 0:
            words = body.split()
            if not words:
                continue
            if words[0] != "table":
                raise ParseError("nftables: expected `table FAMILY NAME {` at the top level "
                                 "(the text `nft list ruleset` prints)", file=file, line=line,
                                 token=words[0])
            if len(words) < 4 or words[1] not in FAMILIES or words[3] != "{":
                raise ParseError(f"nftables: expected `table FAMILY NAME {{` with FAMILY one "
                                 f"of {', '.join(FAMILIES)}", file=file, line=line,
                                 token=raw.strip())
            head, start, block = (words[1], words[2], line), line, []
        block.append(raw)
        depth += body.count("{") - body.count("}")
        if depth < 0:
            raise ParseError("nftables: a `}` closes nothing", file=file, line=line, token="}")
        if depth == 0:
            tables.append(NftTable(head[0], head[1], start, "\n".join(block)))
    if depth:
        raise ParseError(f"nftables: {head[0]} {head[1]}: the table's `{{` is never closed",
                         file=file, line=head[2], token=f"table {head[0]} {head[1]}")
    return tables


def _code(line: str) -> str:
    """The line without its quoted strings and its `#` comment (braces there do not count)."""
    out, quoted = [], False
    for c in line:
        if c == '"':
            quoted = not quoted
        elif not quoted:
            if c == "#":
                break
            out.append(c)
    return "".join(out)


def notes(tables: list[NftTable]) -> list[str]:
    """The note a scenario with native tables gives when it is loaded."""
    if not tables:
        return []
    names = ", ".join(t.title for t in tables)
    return [f"unsupported yet: native nftables {names}: kept verbatim in the scenario's "
            "nftables text but not simulated (its rules do not run in kptui's walk)"]


__all__ = ["NftTable", "split_tables", "notes"]
