"""Tokenizers for iptables-restore lines and shell command lines.

Both are hand-written single passes (shlex is several times slower, and a
20,000-rule ruleset must parse in well under a second). Every token keeps its
1-based column so errors can point at it.
"""

from __future__ import annotations

import re

from kptui.engine.errors import ParseError

Token = tuple[str, int]  # (text, 1-based column)


def restore_words(line: str) -> list[str] | None:
    """The words split_restore makes of ``line``, without their columns; None when the
    line has a backslash inside quotes or an unclosed quote (split_restore reads those).

    Working out columns is most of split_restore's time, and only an error message
    needs them (RuleParser asks for them then)."""
    if '"' not in line:
        return line.split()
    if "\\" in line:
        return None
    segs = line.split('"')
    if len(segs) == 3:  # one quoted word: a kube-proxy rule's comment
        return [*segs[0].split(), segs[1], *segs[2].split()]
    if not len(segs) & 1:
        return None
    words: list[str] = []
    quoted = False
    for seg in segs:  # even ones outside quotes, odd ones whole quoted words
        if quoted:
            words.append(seg)
        else:
            words += seg.split()
        quoted = not quoted
    return words


def split_restore(line: str, *, file: str, lineno: int) -> list[Token]:
    """Split a rule line the way iptables-restore's add_param_to_argv does.

    Whitespace separates; a double quote opens a quoted part in which a
    backslash escapes the next character; a closing quote ends the token.
    Single quotes are ordinary characters for iptables-restore.
    """
    if '"' not in line:
        out: list[Token] = []
        words = line.split()
        body = line.lstrip()
        if " ".join(words) == body.rstrip():  # single spaces: columns add up
            pos = len(line) - len(body) + 1
            for part in words:
                out.append((part, pos))
                pos += len(part) + 1
            return out
        pos = 0
        for part in words:
            pos = line.index(part, pos)
            out.append((part, pos + 1))
            pos += len(part)
        return out
    if "\\" not in line:
        segs = line.split('"')
        if len(segs) & 1:  # every quote closed
            return _split_balanced(segs)
    tokens: list[Token] = []
    for m in _RESTORE_TOKEN.finditer(line):
        if m.group(1) is not None:
            tokens.append((_UNESCAPE.sub(r"\1", m.group(1)), m.start() + 1))
        elif m.group(0).startswith('"'):
            raise ParseError("unterminated quoted string", file=file, line=lineno,
                             column=m.start() + 1, token=m.group(0))
        else:
            tokens.append((m.group(0), m.start() + 1))
    return tokens


def _split_balanced(segs: list[str]) -> list[Token]:
    """The fast path for a line without backslashes whose quotes are all closed.

    ``segs`` is the line split at its double quotes: even ones are outside
    quotes (whitespace-separated words), odd ones are whole quoted tokens. This
    gives the same tokens and columns as the regular expression below, which
    remains for escapes and unterminated quotes; most kube-proxy lines carry a
    quoted comment, and this path is about three times faster.
    """
    tokens: list[Token] = []
    pos = 1  # column of the segment's first character
    quoted = False
    for seg in segs:
        if quoted:
            tokens.append((seg, pos - 1))  # the column of its opening quote
        elif seg:
            words = seg.split()
            body = seg.lstrip()
            if " ".join(words) == body.rstrip():  # single spaces: columns add up
                p = pos + len(seg) - len(body)
                for word in words:
                    tokens.append((word, p))
                    p += len(word) + 1
            else:
                p = 0
                for word in words:
                    p = seg.index(word, p)
                    tokens.append((word, pos + p))
                    p += len(word)
        pos += len(seg) + 1
        quoted = not quoted
    return tokens


# A quoted part ends its token, as in iptables-restore; backslash escapes inside quotes.
_RESTORE_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|"[^\n]*$|[^\s"]+')
_UNESCAPE = re.compile(r"\\(.)")


def split_shell(line: str, *, file: str, lineno: int) -> list[Token]:
    """Split a command line as a POSIX shell would (quotes and backslashes, no expansion)."""
    if '"' not in line and "'" not in line and "\\" not in line:
        return split_restore(line, file=file, lineno=lineno)
    tokens: list[Token] = []
    buf: list[str] = []
    start = -1
    i = 0
    n = len(line)
    while i < n:
        c = line[i]
        if c in " \t\r\n":
            if start >= 0:
                tokens.append(("".join(buf), start + 1))
                buf, start = [], -1
            i += 1
            continue
        if start < 0:
            start = i
        if c == "'":
            j = line.find("'", i + 1)
            if j < 0:
                raise ParseError("unterminated single quote", file=file, line=lineno,
                                 column=i + 1, token=line[i:])
            buf.append(line[i + 1:j])
            i = j + 1
        elif c == '"':
            i += 1
            while i < n and line[i] != '"':
                if line[i] == "\\" and i + 1 < n and line[i + 1] in '"\\$`':
                    i += 1
                buf.append(line[i])
                i += 1
            if i >= n:
                raise ParseError("unterminated double quote", file=file, line=lineno,
                                 column=start + 1, token=line[start:])
            i += 1
        elif c == "\\" and i + 1 < n:
            buf.append(line[i + 1])
            i += 2
        else:
            buf.append(c)
            i += 1
    if start >= 0:
        tokens.append(("".join(buf), start + 1))
    return tokens
