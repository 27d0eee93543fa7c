"""Crafted session files: a valid checksum around a mutated journal or scenario.

Bit flips and truncations are caught by the checksum (tests/test_sessions.py);
a file written on purpose passes it, so its journal entries and its scenario
reach the engine. Loading and replaying such a file must end in a session, a
divergence that names the journal entry, or a SessionError: the project's own
error, never a traceback (issue 13).
"""

from __future__ import annotations

from pathlib import Path

import msgpack
from fuzzing import fuzz, fuzz_settings, mutated, own_error_or_success
from hypothesis import given, reject
from hypothesis import strategies as st

from kptui.sessions import format as fmt
from kptui.sessions.replay import replay

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = [p.read_bytes() for p in sorted(ROOT.glob("sessions/*.kpt"))]
# Texts journal entries carry: breakpoint specs, edit paths and values, inject fields.
ENTRY_TEXTS = ("stage nat:POSTROUTING", "rule filter:FORWARD:2", "watch meta.mark",
               "chain filter:FORWARD if ip.dst == 192.0.2.20", "tcp.dport", "ip.ttl", "80",
               "0x10", "meta.mark", "SA", "1:10", "eth0", "192.0.2.1")
WORDS = ("step", "cont", "edit", "break", "inject", "reply", "seed", "delete", "packet")


def reseal(raw: dict) -> bytes:
    del raw["checksum"]
    try:
        return msgpack.packb(fmt.seal(raw), use_bin_type=True)
    except UnicodeEncodeError:  # a lone surrogate (a tricky word): no msgpack text holds it
        reject()


@st.composite
def crafted(draw: st.DrawFn) -> bytes:
    """A sample session with journal entries or scenario lines changed, resealed."""
    raw = msgpack.unpackb(draw(st.sampled_from(SAMPLES)), raw=False)
    journal = raw["journal"]
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        what = draw(st.integers(min_value=0, max_value=3))
        if what == 0 and journal:  # a text value of an entry
            entry = journal[draw(st.integers(min_value=0, max_value=len(journal) - 1))]
            key = draw(st.sampled_from(sorted(entry)))
            value = entry[key]
            entry[key] = draw(mutated([value] if isinstance(value, str) and value
                                      else list(ENTRY_TEXTS), extra_words=ENTRY_TEXTS))
        elif what == 1:  # a new entry made of known ops and texts
            keys = draw(st.lists(st.sampled_from(("op", "spec", "path", "text", "id", "at",
                                                  "value", "of", "index")), max_size=4))
            entry = {k: draw(st.sampled_from(WORDS + ENTRY_TEXTS) | st.integers(-1, 40))
                     for k in ["op", *keys]}
            journal.insert(draw(st.integers(min_value=0, max_value=len(journal))), entry)
        elif what == 2 and journal:  # an entry dropped
            del journal[draw(st.integers(min_value=0, max_value=len(journal) - 1))]
        else:  # a line of the embedded scenario
            lines = raw["scenario"]["text"].split("\n")
            i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            lines[i] = draw(mutated([lines[i]]))
            raw["scenario"]["text"] = "\n".join(lines)
    return reseal(raw)


def load_and_replay(data: bytes) -> object:
    session = fmt.decode(data, file="crafted.kpt")
    return replay(session, file="crafted.kpt").divergence


def test_the_samples_replay_as_recorded():
    assert len(SAMPLES) >= 5
    for data in SAMPLES:
        assert load_and_replay(data) == ""


@fuzz
@fuzz_settings(120)
@given(crafted())
def test_a_crafted_session_replays_or_is_refused(data: bytes) -> None:
    outcome = own_error_or_success(load_and_replay, data)
    if isinstance(outcome, str) and outcome.startswith("journal action"):
        assert "internal error" not in outcome, outcome
