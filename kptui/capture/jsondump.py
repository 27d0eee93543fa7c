"""JSON dumps (iproute2's `-j`) read with the line of each entry, and checked field by field.

iproute2 prints an array of objects; a mistake is reported at the entry's line (its
first byte) with the field and what was expected, as every kptui parser reports bad
input (kptui.engine.errors.ParseError: file, line, token). tc's u32 printer repeats the
key "match" inside one object, so objects keep every pair (``Obj.all``), not only the
last one as ``json.loads`` would.
"""

from __future__ import annotations

import json
from typing import Any

from kptui.capture.dumps import Dump
from kptui.engine.errors import ParseError
from kptui.engine.numbers import NumberError, parse_uint


class Obj(dict):
    """A JSON object that also remembers repeated keys, in order (``all(key)``)."""

    pairs: list[tuple[str, Any]]

    def all(self, key: str) -> list[Any]:  # noqa: A003
        return [v for k, v in self.pairs if k == key]


def _obj(pairs: list[tuple[str, Any]]) -> Obj:
    obj = Obj(pairs)
    obj.pairs = pairs
    return obj


_DECODER = json.JSONDecoder(object_pairs_hook=_obj)
_BLANK = " \t\r\n"


def entries(dump: Dump, expected: str) -> list[tuple[int, Obj]]:
    """(line, object) for each entry of the top-level array; an empty dump is []."""
    text = dump.text
    i = _skip(text, 0)
    if i == len(text):
        return []
    if text[i] != "[":
        raise _error(dump, i, f"not a JSON array: expected {expected}")
    out: list[tuple[int, Obj]] = []
    i = _skip(text, i + 1)
    if i < len(text) and text[i] == "]":
        return _end(dump, text, i + 1, out)
    while True:
        try:
            value, end = _DECODER.raw_decode(text, i)
        except json.JSONDecodeError as err:
            raise _error(dump, err.pos, f"not JSON ({err.msg}): expected {expected}") from None
        if not isinstance(value, Obj):
            raise _error(dump, i, f"an entry that is not a JSON object: expected {expected}")
        out.append((text.count("\n", 0, i) + 1, value))
        i = _skip(text, end)
        if i < len(text) and text[i] == ",":
            i = _skip(text, i + 1)
            continue
        if i < len(text) and text[i] == "]":
            return _end(dump, text, i + 1, out)
        raise _error(dump, i, f"expected `,` or `]` after an entry of {expected}")


def _end(dump: Dump, text: str, i: int, out: list[tuple[int, Obj]]) -> list[tuple[int, Obj]]:
    rest = _skip(text, i)
    if rest < len(text):
        raise _error(dump, rest, "text after the JSON array")
    return out


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _BLANK:
        i += 1
    return i


def _error(dump: Dump, pos: int, message: str) -> ParseError:
    line = dump.text.count("\n", 0, pos) + 1
    column = pos - (dump.text.rfind("\n", 0, pos) + 1) + 1
    return ParseError(f"{message} (byte offset {pos})", file=dump.file, line=line,
                      column=column, token=dump.text[pos:pos + 20].split("\n")[0])


class Fields:
    """The fields of one entry, each read with a check that names the entry's line."""

    def __init__(self, dump: Dump, line: int, obj: Obj, what: str) -> None:
        self.dump, self.line, self.obj, self.what = dump, line, obj, what

    def error(self, message: str, token: str = "") -> ParseError:
        return ParseError(f"{self.what}: {message}", file=self.dump.file, line=self.line,
                          token=token)

    def has(self, key: str) -> bool:
        return key in self.obj

    def text(self, key: str, default: str | None = None) -> str:
        value = self.obj.get(key, default)
        if value is None:
            raise self.error(f'"{key}" is missing')
        if not isinstance(value, str):
            raise self.error(f'"{key}" must be a string', json.dumps(value)[:40])
        return value

    def number(self, key: str, default: int | None = None, *, hi: int = 2**32 - 1,
               base: int = 0) -> int:
        """An integer field; iproute2 prints some as numbers, some (-N) as digit strings."""
        value = self.obj.get(key, default)
        if value is None:
            raise self.error(f'"{key}" is missing')
        if isinstance(value, bool):
            raise self.error(f'"{key}" must be a number', json.dumps(value))
        if isinstance(value, int):
            if not 0 <= value <= hi:
                raise self.error(f'"{key}" {value} is out of range 0..{hi}', str(value))
            return value
        if isinstance(value, str):
            try:
                return parse_uint(value, 0, hi, base=base, what=key)
            except NumberError as exc:
                raise self.error(str(exc), value) from None
        raise self.error(f'"{key}" must be a number', json.dumps(value)[:40])

    def strings(self, key: str) -> list[str]:
        value = self.obj.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(f'"{key}" must be a list of strings', json.dumps(value)[:40])
        return value

    def objects(self, key: str) -> list[Obj]:
        value = self.obj.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, Obj) for v in value):
            raise self.error(f'"{key}" must be a list of objects', json.dumps(value)[:40])
        return value

    def sub(self, obj: Obj, what: str) -> Fields:
        return Fields(self.dump, self.line, obj, f"{self.what}: {what}")


__all__ = ["Obj", "entries", "Fields"]
