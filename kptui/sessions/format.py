"""The session file: msgpack, versioned, checked field by field, saved atomically.

A session is event-sourced (DESIGN.md, "Session file"): the scenario text and
the journal of user actions are the truth; everything else is there to check a
replay against (the digest and one record per event) or to put the screen back
as it was (``view``). A file comes from strangers (bug reports, a class's
shared folder), so loading trusts nothing: the size is capped before reading,
msgpack is decoded with a limit on every length, without extension types or
object hooks, and then every field is checked for its type, size and shape.
Any problem is one ``SessionError`` naming the file and the field.

Schema, format 1 (a msgpack map; no other keys are allowed)::

    format         int       1 (FORMAT_VERSION); newer is refused, older migrated
    kptui_version  str       the kptui that wrote it (<= 64 chars), for messages
    scenario       map       {"text": str (the scenario TOML, <= MAX_SCENARIO_CHARS),
                              "file": str (its file name, <= 4096 chars)}
    breakpoints    array     the breakpoints at the end, each
                             {"id": int >= 1, "spec": str, "enabled": bool, "hits": int >= 0}
    journal        array     the user's actions in order (<= MAX_JOURNAL), each a map:
                               {"op": "seed", "value": int}          first, always
                               {"op": "step" | "step_over" | "step_out" | "cont"
                                      | "run_to_fate" | "next_packet" | "step_back"
                                      | "reverse_cont"}
                               {"op": "packet", "index": int}        a walk started
                               {"op": "edit", "path": str, "text": str, "at": int}
                               {"op": "break", "id": int, "spec": str}
                               {"op": "enable" | "disable" | "delete", "id": int}
                               {"op": "inject", <INJECT_FIELDS>: str ...}
                               {"op": "reply", "of": int}            reply to packet N
    view           map       the screen: {"tab", "pinned", "stage", "log_filter",
                             "focus", "mode"}: str each (<= 256 chars), all optional
    events         array     one [digest: bin(8), kind: str, text: str] per event of the
                             resulting stream (<= MAX_EVENTS): where a replay diverges
    digest         bin(32)   sha256 of the canonical event stream (see record.py)
    checksum       bin(32)   sha256 of the msgpack encoding of the map without this key,
                             in this key order: a flipped bit is caught even where the
                             result would still decode

Migrations: ``MIGRATIONS[n]`` turns a format-n map into a format n+1 map (each
checks its own input); loading runs them in order up to FORMAT_VERSION. Format
1 is the first, so the table is empty until format 2 exists.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from kptui.engine.debugger import INJECT_FIELDS
from kptui.engine.errors import KptuiError

FORMAT_VERSION = 1
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_SCENARIO_CHARS = 16 * 1024 * 1024
MAX_JOURNAL = 1_000_000
MAX_EVENTS = 1_000_000
MAX_BREAKPOINTS = 10_000
MAX_TEXT = 4096  # one event's text, a spec, an edit's value, a file name
MAX_KIND = 64  # an event record's kind
MAX_EVENT_TEXT = MAX_TEXT * 4  # an event record's line for people
MAX_WORD = 256  # view values, field paths, injected field values
EVENT_DIGEST_BYTES = 8
KEYS = ("format", "kptui_version", "scenario", "breakpoints", "journal", "view", "events",
        "digest", "checksum")
STEP_OPS = ("step", "step_over", "step_out", "cont", "run_to_fate", "next_packet",
            "step_back", "reverse_cont")
VIEW_KEYS = ("tab", "pinned", "stage", "log_filter", "focus", "mode")
MAX_INT = 2**63 - 1


class SessionError(KptuiError):
    """A session file that cannot be used: one line, naming the file and what is wrong."""


JournalEntry = dict[str, str | int]


@dataclass(slots=True)
class Session:
    """A decoded, checked session (format FORMAT_VERSION)."""

    scenario_text: str
    scenario_file: str
    journal: list[JournalEntry]
    events: list[tuple[bytes, str, str]]
    digest: bytes
    breakpoints: list[dict[str, Any]] = field(default_factory=list)
    view: dict[str, str] = field(default_factory=dict)
    kptui_version: str = ""
    format: int = FORMAT_VERSION


# -- encoding ----------------------------------------------------------------------------


def _body(session: Session) -> dict[str, Any]:
    """The map to pack. The journal and event lists are packed as they are (msgpack
    writes a tuple as the array a list is), not copied item by item."""
    return {
        "format": FORMAT_VERSION,
        "kptui_version": session.kptui_version,
        "scenario": {"text": session.scenario_text, "file": session.scenario_file},
        "breakpoints": [dict(bp) for bp in session.breakpoints],
        "journal": list(session.journal),
        "view": dict(session.view),
        "events": list(session.events),
        "digest": session.digest,
    }


def _checksum(body: dict[str, Any]) -> bytes:
    return hashlib.sha256(msgpack.packb(body, use_bin_type=True)).digest()


def seal(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` (a format FORMAT_VERSION map without its checksum) with its checksum:
    what a migration returns."""
    out = {k: body[k] for k in KEYS if k != "checksum"}
    out["checksum"] = _checksum(out)
    return out


def encode(session: Session) -> bytes:
    """The file's bytes. The result is checked like a loaded file, so what is saved
    always loads again (a value too big for the format is refused here, not later)."""
    body = _body(session)
    body["checksum"] = _checksum(body)
    data = msgpack.packb(body, use_bin_type=True)
    decode(data, file="<new session>")
    return data


# -- decoding ----------------------------------------------------------------------------


def decode(data: bytes, *, file: str) -> Session:
    """Check and decode a session file's bytes; SessionError says what is wrong."""
    if len(data) > MAX_FILE_BYTES:
        raise SessionError(f"{file}: {len(data):,} bytes, more than a session may hold "
                           f"({MAX_FILE_BYTES:,})")
    if not data:
        raise SessionError(f"{file}: empty file, not a kptui session")
    try:
        raw = msgpack.unpackb(
            data, raw=False, strict_map_key=True, use_list=True, max_ext_len=0,
            max_str_len=MAX_SCENARIO_CHARS * 4, max_bin_len=64,
            max_array_len=max(MAX_JOURNAL, MAX_EVENTS), max_map_len=64,
        )
    except msgpack.ExtraData as extra:
        if isinstance(extra.unpacked, dict) and "format" in extra.unpacked:
            raise SessionError(f"{file}: corrupt: bytes after the end of the session") from None
        raise SessionError(f"{file}: not a kptui session (a session is a msgpack map; is "
                           "this a scenario? open it without `replay`)") from None
    except msgpack.StackError:
        raise SessionError(f"{file}: not a kptui session (nested too deeply)") from None
    except (ValueError, msgpack.UnpackException, UnicodeDecodeError, RecursionError,
            TypeError, OverflowError) as err:
        raise SessionError(f"{file}: not a kptui session or damaged ({_why(err)})") from None
    if not isinstance(raw, dict) or "format" not in raw:
        raise SessionError(f"{file}: not a kptui session (no format version)")
    version = raw["format"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise SessionError(f"{file}: not a kptui session (format is not a version number)")
    if version > FORMAT_VERSION:
        made_by = raw.get("kptui_version")
        by = f" by kptui {made_by}" if isinstance(made_by, str) and len(made_by) < 64 else ""
        raise SessionError(f"{file}: session format {version} (written{by}) is newer than "
                           f"this kptui reads (up to {FORMAT_VERSION}): upgrade kptui")
    if version < FORMAT_VERSION:
        raw = migrate(raw, version, file=file)
    return _check(raw, file=file)


def _why(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    if "incomplete input" in text:
        return "truncated"
    return text[:120]


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def migrate(raw: dict[str, Any], version: int, *, file: str) -> dict[str, Any]:
    """Run the migrations from ``version`` up to FORMAT_VERSION, in order."""
    for step in range(version, FORMAT_VERSION):
        fn = MIGRATIONS.get(step)
        if fn is None:
            raise SessionError(f"{file}: session format {version} is too old for this kptui "
                               f"(it reads formats {min(MIGRATIONS, default=FORMAT_VERSION)}"
                               f" to {FORMAT_VERSION})")
        try:
            raw = fn(raw)
        except SessionError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise SessionError(f"{file}: cannot read this format {step} session: "
                               f"{_why(err)}") from None
        if not isinstance(raw, dict) or raw.get("format") != step + 1:
            raise SessionError(f"{file}: migration from format {step} went wrong (a kptui "
                               "bug)")
    return raw


def _check(raw: dict[str, Any], *, file: str) -> Session:
    check = _Checker(file)
    check.keys(raw, "session", KEYS)
    checksum = check.bin(raw["checksum"], "checksum", 32)
    body = {k: raw[k] for k in KEYS if k != "checksum"}
    if list(raw) != list(KEYS) or _checksum(body) != checksum:
        raise SessionError(f"{file}: corrupt: the checksum does not match the contents "
                           "(damaged in transfer or edited by hand)")
    version = check.str(raw["kptui_version"], "kptui_version", 64)
    scenario = raw["scenario"]
    check.keys(scenario, "scenario", ("text", "file"))
    text = check.str(scenario["text"], "scenario.text", MAX_SCENARIO_CHARS)
    name = check.str(scenario["file"], "scenario.file", MAX_TEXT)
    bps = [check.breakpoint(bp, f"breakpoints[{i}]")
           for i, bp in enumerate(check.array(raw["breakpoints"], "breakpoints",
                                              MAX_BREAKPOINTS))]
    journal = check.journal(check.array(raw["journal"], "journal", MAX_JOURNAL))
    view = raw["view"]
    check.keys(view, "view", VIEW_KEYS, optional=True)
    view = {k: check.str(v, f"view.{k}", MAX_WORD) for k, v in view.items()}
    events = check.events(check.array(raw["events"], "events", MAX_EVENTS))
    digest = check.bin(raw["digest"], "digest", 32)
    return Session(scenario_text=text, scenario_file=name, journal=journal, events=events,
                   digest=digest, breakpoints=bps, view=view, kptui_version=version)


class _Checker:
    """Type, size and shape checks; each failure is a SessionError naming the field."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, where: str, what: str) -> SessionError:
        return SessionError(f"{self.file}: not a valid kptui session: {where} {what}")

    def keys(self, value: Any, where: str, keys: tuple[str, ...], *,
             optional: bool = False) -> None:
        if not isinstance(value, dict):
            raise self.fail(where, f"must be a map, not {_kind(value)}")
        unknown = [k for k in value if k not in keys]
        if unknown:
            raise self.fail(where, f"has an unknown key {str(unknown[0])[:40]!r}")
        missing = [k for k in keys if k not in value]
        if missing and not optional:
            raise self.fail(where, f"lacks {missing[0]!r}")

    def str(self, value: Any, where: str, limit: int) -> str:
        if not isinstance(value, str):
            raise self.fail(where, f"must be text, not {_kind(value)}")
        if len(value) > limit:
            raise self.fail(where, f"is {len(value):,} characters long (at most {limit:,})")
        return value

    def int(self, value: Any, where: str, low: int = 0, high: int = MAX_INT) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(where, f"must be a whole number, not {_kind(value)}")
        if not low <= value <= high:
            raise self.fail(where, f"is {value}, out of range ({low} .. {high})")
        return value

    def bool(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(where, f"must be true or false, not {_kind(value)}")
        return value

    def bin(self, value: Any, where: str, size: int) -> bytes:
        if not isinstance(value, bytes):
            raise self.fail(where, f"must be binary, not {_kind(value)}")
        if len(value) != size:
            raise self.fail(where, f"must be {size} bytes, not {len(value)}")
        return value

    def array(self, value: Any, where: str, limit: int) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(where, f"must be an array, not {_kind(value)}")
        if len(value) > limit:
            raise self.fail(where, f"has {len(value):,} items (at most {limit:,})")
        return value

    def breakpoint(self, value: Any, where: str) -> dict[str, Any]:
        self.keys(value, where, ("id", "spec", "enabled", "hits"))
        return {"id": self.int(value["id"], f"{where}.id", 1),
                "spec": self.str(value["spec"], f"{where}.spec", MAX_TEXT),
                "enabled": self.bool(value["enabled"], f"{where}.enabled"),
                "hits": self.int(value["hits"], f"{where}.hits")}

    # A long session is thousands of bare steps and event records: their usual shape is
    # checked inline, without naming each one's place in advance (that alone was a third
    # of loading); anything else goes to ``entry`` / ``event``, which say what is wrong.

    def journal(self, items: list[Any]) -> list[JournalEntry]:
        out: list[JournalEntry] = []
        for i, value in enumerate(items):
            op = value.get("op") if type(value) is dict and len(value) == 1 else None
            if type(op) is str and op in _BARE_OPS:
                out.append(value)  # {"op": op} already, and fresh from msgpack: kept as is
            else:
                out.append(self.entry(value, f"journal[{i}]"))
        return out

    def events(self, items: list[Any]) -> list[tuple[bytes, str, str]]:
        out: list[tuple[bytes, str, str]] = []
        for i, value in enumerate(items):
            if type(value) is list and len(value) == 3:
                digest, kind, text = value
                if type(digest) is bytes and len(digest) == EVENT_DIGEST_BYTES and \
                        type(kind) is str and len(kind) <= MAX_KIND and \
                        type(text) is str and len(text) <= MAX_EVENT_TEXT:
                    out.append((digest, kind, text))
                    continue
            out.append(self.event(value, f"events[{i}]"))
        return out

    def entry(self, value: Any, where: str) -> JournalEntry:
        if not isinstance(value, dict):
            raise self.fail(where, f"must be a map, not {_kind(value)}")
        op = self.str(value.get("op"), f"{where}.op", 32)
        shape = ENTRY_SHAPES.get(op)
        if shape is None:
            raise self.fail(where, f"has an unknown action {op[:32]!r}")
        keys, optional = shape
        self.keys(value, where, ("op", *keys), optional=optional)
        out: JournalEntry = {"op": op}
        for key in keys:
            if key not in value:
                continue
            kind, limit = ENTRY_FIELDS[key]
            got = value[key]
            out[key] = (self.int(got, f"{where}.{key}", 0, limit) if kind is int
                        else self.str(got, f"{where}.{key}", limit))
        return out

    def event(self, value: Any, where: str) -> tuple[bytes, str, str]:
        items = self.array(value, where, 3)
        if len(items) != 3:
            raise self.fail(where, "must be [digest, kind, text]")
        return (self.bin(items[0], f"{where}.digest", EVENT_DIGEST_BYTES),
                self.str(items[1], f"{where}.kind", MAX_KIND),
                self.str(items[2], f"{where}.text", MAX_EVENT_TEXT))


# op -> (its keys, whether they are optional)
ENTRY_SHAPES: dict[str, tuple[tuple[str, ...], bool]] = {
    **{op: ((), False) for op in STEP_OPS},
    "packet": (("index",), False),
    "edit": (("path", "text", "at"), False),
    "break": (("id", "spec"), False),
    "enable": (("id",), False),
    "disable": (("id",), False),
    "delete": (("id",), False),
    "seed": (("value",), False),
    "inject": (INJECT_FIELDS, True),
    "reply": (("of",), False),
}
_BARE_OPS = frozenset(op for op, (keys, _) in ENTRY_SHAPES.items() if not keys)
ENTRY_FIELDS: dict[str, tuple[type, int]] = {
    "index": (int, MAX_EVENTS),
    "of": (int, MAX_EVENTS),
    "at": (int, MAX_EVENTS),
    "id": (int, MAX_JOURNAL),
    "value": (int, MAX_INT),
    "path": (str, MAX_WORD),
    "text": (str, MAX_TEXT),
    "spec": (str, MAX_TEXT),
    **{name: (str, MAX_WORD) for name in INJECT_FIELDS},
}


def _kind(value: Any) -> str:
    names = {dict: "a map", list: "an array", str: "text", bytes: "binary", bool: "a boolean",
             int: "a number", float: "a fraction", type(None): "nil"}
    return names.get(type(value), type(value).__name__)


# -- files ---------------------------------------------------------------------------------


def load(path: str | os.PathLike[str]) -> Session:
    """Read and check a session file; the size is checked before reading it all."""
    name = str(path)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise SessionError(f"{name}: {size:,} bytes, more than a session may hold "
                                   f"({MAX_FILE_BYTES:,})")
            data = fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise SessionError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise SessionError(f"{name}: is a directory, not a session file") from None
    except OSError as err:
        raise SessionError(f"{name}: {err.strerror}") from None
    return decode(data, file=name)


def save(session: Session, path: str | os.PathLike[str], *,
         _write: Callable[[Any, bytes], object] | None = None) -> None:
    """Write ``session`` to ``path`` atomically (see ``write_atomic``)."""
    write_atomic(path, encode(session), _write=_write)


def write_atomic(path: str | os.PathLike[str], data: bytes, *,
                 _write: Callable[[Any, bytes], object] | None = None) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same directory,
    written, flushed and fsync'ed, then renamed over ``path`` and the directory
    fsync'ed. A crash or kill at any moment leaves either the old file or the new
    one, never a mix. (``_write`` lets tests fail the write half-way.)"""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    write = _write or (lambda fh, blob: fh.write(blob))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as err:
        raise SessionError(f"{target}: cannot save here: {err.strerror}") from None
    try:
        os.fchmod(fd, _mode_for(target))
        with os.fdopen(fd, "wb") as fh:
            write(fh, data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise SessionError(f"{target}: not saved: {err.strerror or err}") from None
        raise
    _fsync_dir(directory)
    remove_stale_temps(target)


# mkstemp's names: the prefix and suffix given above around 8 of [a-z0-9_].
_TEMP_NAME = "^\\.{name}\\.[a-z0-9_]{{8}}\\.tmp$"
STALE_AFTER = 60.0  # seconds: no save still in progress is that old


def remove_stale_temps(target: Path, *, now: float | None = None) -> list[str]:
    """Remove what killed saves to ``target`` left behind: files named as write_atomic
    names its temporary files for this target, untouched for over a minute (a save
    that is still running is younger). Anything else in the directory is left alone.
    Returns the names removed."""
    directory = target.parent if str(target.parent) else Path(".")
    pattern = re.compile(_TEMP_NAME.format(name=re.escape(target.name)))
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        if not pattern.match(entry.name):
            continue
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False) and \
                    now - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER:
                os.unlink(entry.path)
                removed.append(entry.name)
    return removed


def _mode_for(target: Path) -> int:
    """The replaced file's permissions, or what a new file gets (mkstemp's are 0600)."""
    try:
        return target.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0o22)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX: the directory entry lives in the directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
