"""The session file (kptui/sessions/format.py): schema, checks, migrations, atomic saves.

What a user notices: a saved session loads back as it was; a truncated,
bit-flipped, oversized, wrong-typed, too-new or hostile file is refused with
one clear line and exit status 2 from the CLI, and nothing on disk changes;
a crash in the middle of a save leaves the old file as it was.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kptui.cli import main
from kptui.engine.debugger import Debugger
from kptui.engine.scenario import load_scenario
from kptui.sessions import format as fmt
from kptui.sessions.format import SessionError
from kptui.sessions.replay import record, replay

SCENARIO = """
name = "tiny"
iptables = \"\"\"
*filter
:INPUT DROP [0:0]
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
\"\"\"
[[interfaces]]
name = "eth0"
addresses = ["192.0.2.1/24"]
[[packets]]
iif = "eth0"
proto = "tcp"
src = "192.0.2.10"
dst = "192.0.2.1"
sport = 40000
dport = 22
[[packets]]
iif = "eth0"
proto = "tcp"
src = "192.0.2.10"
dst = "192.0.2.1"
sport = 40001
dport = 80
"""


def debugged() -> Debugger:
    dbg = Debugger.for_scenario(load_scenario(SCENARIO, file="tiny.toml"))
    dbg.add_breakpoint("stage filter:INPUT")
    dbg.cont()
    dbg.edit("tcp.dport", "2222")
    dbg.cont()
    dbg.cont()
    return dbg


def session() -> fmt.Session:
    return record(debugged(), SCENARIO, "tiny.toml", view={"tab": "rules", "mode": "debug"})


@pytest.fixture(scope="module")
def good_bytes() -> bytes:
    return fmt.encode(session())


def test_round_trip_keeps_every_field(good_bytes):
    loaded = fmt.decode(good_bytes, file="s.kpt")
    original = session()
    assert loaded == original
    assert loaded.journal[0] == {"op": "seed", "value": 0}
    edits = [e for e in loaded.journal if e["op"] == "edit"]
    assert edits == [{"op": "edit", "path": "tcp.dport", "text": "2222", "at": edits[0]["at"]}]
    assert loaded.breakpoints == [{"id": 1, "spec": "stage filter:INPUT", "enabled": True,
                                   "hits": 2}]


def test_the_file_is_plain_msgpack_with_a_version(good_bytes):
    raw = msgpack.unpackb(good_bytes, raw=False)
    assert raw["format"] == fmt.FORMAT_VERSION == 1
    assert list(raw) == list(fmt.KEYS)
    assert raw["scenario"]["text"] == SCENARIO


def test_save_and_load(tmp_path):
    path = tmp_path / "s.kpt"
    fmt.save(session(), path)
    assert fmt.load(path) == session()
    assert oct(path.stat().st_mode & 0o777) != oct(0o600) or os.umask(0o22) == 0o077
    assert [p.name for p in tmp_path.iterdir()] == ["s.kpt"]  # no temp file left


def test_a_failed_save_leaves_the_old_file_intact(tmp_path):
    path = tmp_path / "s.kpt"
    fmt.save(session(), path)
    before = path.read_bytes()
    dbg = debugged()
    dbg.step()

    def half_then_die(fh, data):
        fh.write(data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    with pytest.raises(SessionError, match="not saved: No space left on device"):
        fmt.save(record(dbg, SCENARIO, "tiny.toml"), path, _write=half_then_die)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.kpt"]


def test_a_killed_save_leaves_the_old_file_intact(tmp_path):
    # a real kill -9 half-way through the write, in another process
    path = tmp_path / "s.kpt"
    fmt.save(session(), path)
    before = path.read_bytes()
    code = (
        "import os, sys\n"
        "from kptui.sessions import format as fmt\n"
        "sys.path.insert(0, %r)\n"
        "from test_sessions import session\n"
        "def die(fh, data):\n"
        "    fh.write(data[:100]); fh.flush(); os.kill(os.getpid(), 9)\n"
        "fmt.save(session(), %r, _write=die)\n"
    ) % (os.path.dirname(__file__), str(path))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == -9
    assert path.read_bytes() == before
    assert fmt.load(path) == session()
    left = [p for p in tmp_path.iterdir() if p.name != "s.kpt"]
    assert len(left) == 1 and left[0].name.startswith(".s.kpt.")  # the killed save's temp


def test_the_next_save_removes_temps_of_killed_saves(tmp_path):
    # Issue 13: 200 killed saves left 141 MB of .NAME.kpt.*.tmp behind. The next save to the
    # same place removes its own old temps (over a minute old), and nothing else.
    path = tmp_path / "s.kpt"
    stale = tmp_path / ".s.kpt.abcd_123.tmp"
    fresh = tmp_path / ".s.kpt.zzzz9999.tmp"  # a save in progress right now
    other = [tmp_path / ".t.kpt.abcd_123.tmp", tmp_path / ".s.kpt.abcd_123.tmp.keep",
             tmp_path / "s.kpt.abcd_123.tmp", tmp_path / "notes.txt"]
    for p in [stale, fresh, *other]:
        p.write_bytes(b"x" * 10)
    old = time.time() - 120
    for p in [stale, *other]:
        os.utime(p, (old, old))
    fmt.save(session(), path)
    names = {p.name for p in tmp_path.iterdir()}
    assert stale.name not in names
    assert {fresh.name, "s.kpt", *(p.name for p in other)} == names


# -- bad files ------------------------------------------------------------------------------


def _resealed(mutate) -> bytes:
    """A file with a field changed and a valid checksum: only the shape checks can stop it."""
    raw = msgpack.unpackb(fmt.encode(session()), raw=False)
    del raw["checksum"]
    mutate(raw)
    raw["checksum"] = fmt._checksum(raw)
    return msgpack.packb(raw, use_bin_type=True)


def _deep(depth: int) -> bytes:
    return b"\x91" * depth + b"\x00"


BAD_FILES = {
    "empty": (lambda good: b"", "empty file"),
    "truncated": (lambda good: good[: len(good) // 2], "truncated"),
    "one byte short": (lambda good: good[:-1], "truncated"),
    "trailing garbage": (lambda good: good + b"\x00", "bytes after the end"),
    "scenario text": (lambda good: SCENARIO.encode(), "not a kptui session"),
    "not a map": (lambda good: msgpack.packb([1, 2, 3]), "no format version"),
    "too new": (lambda good: msgpack.packb({"format": 2, "kptui_version": "9.0"}),
                "format 2 .*newer than this kptui reads .*upgrade kptui"),
    "version is text": (lambda good: msgpack.packb({"format": "1"}), "not a version number"),
    "flipped checksum": (lambda good: good[:-1] + bytes([good[-1] ^ 1]), "checksum"),
    "huge array": (lambda good: b"\x82\xa6format\x01\xa7journal\xdd\xff\xff\xff\xff",
                   "not a kptui session or damaged .*exceeds max_array_len"),
    "huge string": (lambda good: b"\x82\xa6format\x01\xa4text\xdb\x7f\xff\xff\xff",
                    "damaged"),
    "huge map": (lambda good: b"\xdf\xff\xff\xff\xff", "damaged"),
    "deep nesting": (lambda good: _deep(100_000), "nested too deeply"),
    "extension type": (lambda good: msgpack.packb({"format": msgpack.ExtType(1, b"x" * 8)}),
                       "damaged"),
    "timestamp": (lambda good: msgpack.packb({"format": 1, "t": msgpack.Timestamp(1, 0)}),
                  "damaged"),
    "int map key": (lambda good: msgpack.packb({1: 1}), "damaged"),
    "journal is a map": (lambda good: _resealed(lambda r: r.update(journal={"op": "step"})),
                         "journal must be an array, not a map"),
    "unknown action": (lambda good: _resealed(lambda r: r["journal"].append({"op": "rm"})),
                       r"journal\[\d+\] has an unknown action 'rm'"),
    "edit at text": (lambda good: _resealed(
        lambda r: r["journal"].append({"op": "edit", "path": "ip.ttl", "text": "1",
                                       "at": "3"})), r"\.at must be a whole number, not text"),
    "negative id": (lambda good: _resealed(
        lambda r: r["journal"].append({"op": "delete", "id": -1})), "out of range"),
    "extra key": (lambda good: _resealed(lambda r: r.update(x=1)), "unknown key 'x'"),
    "digest too short": (lambda good: _resealed(lambda r: r.update(digest=b"12")),
                         "digest must be 32 bytes"),
    "event shape": (lambda good: _resealed(lambda r: r["events"].append([b"12345678", "x"])),
                    r"events\[\d+\] must be \[digest, kind, text\]"),
    "scenario is bytes": (lambda good: _resealed(
        lambda r: r["scenario"].update(text=b"name = 'x'")), "scenario.text must be text"),
    "breakpoint enabled as 1": (lambda good: _resealed(
        lambda r: r["breakpoints"][0].update(enabled=1)), "must be true or false"),
    "float seed": (lambda good: _resealed(lambda r: r["journal"][0].update(value=0.5)),
                   "must be a whole number, not a fraction"),
    "view too long": (lambda good: _resealed(lambda r: r["view"].update(tab="x" * 1000)),
                      "view.tab is 1,000 characters long"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_are_refused_with_one_clear_line_and_exit_2(case, good_bytes, tmp_path,
                                                              capsys):
    make, message = BAD_FILES[case]
    path = tmp_path / "bad.kpt"
    data = make(good_bytes)
    path.write_bytes(data)
    out_pcap = tmp_path / "out.pcap"
    with pytest.raises(SessionError, match=message):
        fmt.load(path)
    for argv in (["replay", str(path), "--headless", "--pcap", str(out_pcap)],
                 ["replay", str(path), "--headless"], [str(path), "--no-tui"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"kptui: error: {path}: ") and err.count("\n") == 1, err
        assert "Traceback" not in err
    assert path.read_bytes() == data  # nothing changed on disk
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.kpt"]


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "big.kpt"
    with open(path, "wb") as fh:
        fh.truncate(fmt.MAX_FILE_BYTES + 1)  # sparse: no need to write 64 MiB
    read = []
    monkeypatch.setattr(fmt, "decode", lambda *a, **k: read.append(1))
    with pytest.raises(SessionError, match="more than a session may hold"):
        fmt.load(path)
    assert read == []


def test_a_scenario_that_no_longer_loads_is_an_error(tmp_path):
    s = session()
    s.scenario_text = "name = 1\n"
    with pytest.raises(SessionError, match="its scenario does not load"):
        replay(s, file="s.kpt")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_bit_flips_and_truncations_are_refused_or_harmless(good_bytes, data):
    # any corruption either gives a SessionError or (a flip msgpack decodes to the very same
    # values) loads the same session: never a traceback, never a different session
    corrupt = bytearray(good_bytes)
    for _ in range(data.draw(st.integers(1, 4), label="flips")):
        pos = data.draw(st.integers(0, len(corrupt) - 1), label="byte")
        corrupt[pos] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    cut = data.draw(st.integers(0, len(corrupt)), label="keep")
    corrupt = corrupt[:cut] if data.draw(st.booleans(), label="truncate") else corrupt
    try:
        loaded = fmt.decode(bytes(corrupt), file="x.kpt")
    except SessionError as err:
        assert str(err).startswith("x.kpt: ") and "\n" not in str(err)
    else:
        assert loaded == fmt.decode(good_bytes, file="x.kpt")


@settings(max_examples=150, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats()
                    | st.text() | st.binary(), lambda kids: st.lists(kids, max_size=4)
                    | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=20))
def test_any_msgpack_value_is_refused_cleanly(value):
    data = msgpack.packb(value, use_bin_type=True)
    with pytest.raises(SessionError):
        fmt.decode(data, file="x.kpt")


# -- migrations -------------------------------------------------------------------------------


def test_an_older_format_loads_through_its_migration(monkeypatch):
    # a fake format 0: the same session, but the scenario at the top level and no view
    def v0_to_v1(raw):
        body = {"format": 1, "kptui_version": raw["kptui_version"],
                "scenario": {"text": raw["scenario_text"], "file": raw["scenario_file"]},
                "breakpoints": raw["breakpoints"], "journal": raw["journal"], "view": {},
                "events": raw["events"], "digest": raw["digest"]}
        return fmt.seal(body)

    new = msgpack.unpackb(fmt.encode(session()), raw=False)
    v0 = {"format": 0, "kptui_version": "0.0.1", "scenario_text": SCENARIO,
          "scenario_file": "tiny.toml", "breakpoints": new["breakpoints"],
          "journal": new["journal"], "events": new["events"], "digest": new["digest"]}
    data = msgpack.packb(v0, use_bin_type=True)
    with pytest.raises(SessionError, match="format 0 is too old for this kptui"):
        fmt.decode(data, file="old.kpt")
    monkeypatch.setitem(fmt.MIGRATIONS, 0, v0_to_v1)
    loaded = fmt.decode(data, file="old.kpt")
    assert loaded.journal == session().journal and loaded.view == {}
    assert replay(loaded).ok
    # a migration that fails on a damaged old file is a clear error too
    del v0["journal"]
    with pytest.raises(SessionError, match="cannot read this format 0 session: 'journal'"):
        fmt.decode(msgpack.packb(v0, use_bin_type=True), file="old.kpt")


def test_sessions_import_no_ui():
    code = ("import sys, kptui.sessions.format, kptui.sessions.replay, kptui.sessions.pcap\n"
            "print('\\n'.join(sorted(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert not [m for m in out.stdout.split()
                if m.split(".")[0] in ("textual", "rich") or m.startswith("kptui.screens")]


# -- the inline checks of long journals and event lists ------------------------------------


def _outcome(fn):
    try:
        return ("ok", fn())
    except SessionError as err:
        return ("error", str(err))


_WORD = st.sampled_from(["", "x", "step", "packet", "edit", "seed", "inject", "cont"]) | st.text()
_ANY = st.recursive(st.none() | st.booleans() | st.integers(-2**64, 2**64) | st.floats()
                    | _WORD | st.binary(max_size=10),
                    lambda kids: st.lists(kids, max_size=4)
                    | st.dictionaries(_WORD, kids, max_size=3), max_leaves=8)
_ENTRY = st.one_of(
    st.sampled_from(fmt.STEP_OPS).map(lambda op: {"op": op}),
    st.fixed_dictionaries({"op": st.sampled_from([*fmt.ENTRY_SHAPES, "nope"]) | _ANY},
                          optional={"index": _ANY, "id": _ANY, "x": _ANY}),
    _ANY)
_RECORD = st.one_of(
    st.tuples(st.binary(min_size=7, max_size=9),
              st.integers(62, 66).map(lambda n: "k" * n) | st.text(max_size=8) | _ANY,
              st.sampled_from([0, fmt.MAX_TEXT * 4, fmt.MAX_TEXT * 4 + 1]).map(
                  lambda n: "t" * n) | st.text(max_size=8) | _ANY).map(list),
    st.lists(st.binary(min_size=8, max_size=8) | st.text(max_size=3), max_size=4),
    _ANY)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.lists(_ENTRY, max_size=6), st.lists(_RECORD, max_size=6))
def test_the_inline_checks_agree_with_the_field_by_field_ones(entries, records):
    # loading checks the usual shapes (bare steps, event records) inline, for speed; any
    # list of values must give what checking each one by itself gives: the same values, or
    # the same error naming the same place
    check = fmt._Checker("x.kpt")
    assert _outcome(lambda: check.journal(entries)) == _outcome(
        lambda: [check.entry(e, f"journal[{i}]") for i, e in enumerate(entries)])
    assert _outcome(lambda: check.events(records)) == _outcome(
        lambda: [check.event(e, f"events[{i}]") for i, e in enumerate(records)])


def test_a_long_text_in_an_event_record_is_refused_naming_it(good_bytes):
    raw = msgpack.unpackb(good_bytes, raw=False)
    raw["events"][3][2] = "x" * (fmt.MAX_TEXT * 4 + 1)
    del raw["checksum"]
    with pytest.raises(SessionError, match=r"events\[3\]\.text is 16,385 characters long"):
        fmt.decode(msgpack.packb(fmt.seal(raw), use_bin_type=True), file="x.kpt")


def test_a_recording_serialises_each_event_once_and_says_the_same():
    from kptui.sessions.replay import event_record, first_difference, stream_digest

    dbg = debugged()
    s = record(dbg, SCENARIO, "tiny.toml")
    assert s.events == [event_record(ev) for ev in dbg.events]
    assert s.digest == stream_digest(dbg.events) == stream_digest(iter(dbg.events))
    changed = list(s.events)
    changed[4] = (b"\0" * 8, *changed[4][1:])
    assert first_difference(changed, dbg.events).startswith("event 4 differs: recorded ")
    assert first_difference(s.events, dbg.events) == ""
