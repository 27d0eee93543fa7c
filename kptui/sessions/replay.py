"""Sessions in and out of the engine: record a debugger as a Session, replay one.

Replaying re-runs the journal on a fresh box built from the session's own
scenario text, then compares the resulting events with the recorded ones, one
digest per event: a newer engine or an edited scenario is reported at the
first event that differs, with both versions of it. The whole stream's
digest is sha256 over a canonical serialisation (sorted-key compact JSON of
each event's ``to_dict()``, the shape of ``kptui trace --json``'s events).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from kptui import __version__
from kptui.engine.debugger import Debugger
from kptui.engine.decided import fate_json
from kptui.engine.errors import KptuiError
from kptui.engine.events import ChainEnter, Event, Fate, StageLeave, WalkStart
from kptui.engine.monitor import packet_fields
from kptui.scenario_files import read_text_file
from kptui.sessions import pcap
from kptui.sessions.format import EVENT_DIGEST_BYTES, MAX_EVENT_TEXT, Session, SessionError

# json.dumps with these options builds a new encoder per call; one encoder made once is
# the same encoding (it keeps no state between calls), for every event of a session.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              default=str).encode


def canonical(event: Event) -> bytes:
    """One event as canonical bytes: compact JSON, sorted keys, of its ``to_dict()``."""
    return _CANONICAL(event.to_dict()).encode()


def stream_digest(events: Iterable[Event]) -> bytes:
    """sha256 over the event stream: the canonical events as a JSON array."""
    return _digest_of(canonical(event) for event in events)


def _digest_of(canonicals: Iterable[bytes]) -> bytes:
    """stream_digest from the events' canonical bytes (made once, used for both digests)."""
    h = hashlib.sha256(b"[")
    h.update(b",".join(canonicals))
    h.update(b"]")
    return h.digest()


def event_record(event: Event) -> tuple[bytes, str, str]:
    """(short digest, kind, one line for people): what a session keeps of each event."""
    return _record_of(event, canonical(event))


def _record_of(event: Event, data: bytes) -> tuple[bytes, str, str]:
    return (_short(data), event.kind, event.describe()[:MAX_EVENT_TEXT])


def _short(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()[:EVENT_DIGEST_BYTES]


def with_seed(dbg: Debugger) -> list[dict[str, str | int]]:
    """The debugger's journal, starting with its seed (a session always says it)."""
    journal = [dict(entry) for entry in dbg.journal]
    if not journal or journal[0].get("op") != "seed":
        journal.insert(0, {"op": "seed", "value": dbg.seed})
    return journal


def record(dbg: Debugger, scenario_text: str, scenario_file: str, *,
           view: dict[str, str] | None = None) -> Session:
    """The session of ``dbg`` (made from ``scenario_text``) as it is now. Each event is
    serialised once, for its own record and for the stream's digest."""
    canonicals = [canonical(ev) for ev in dbg.events]
    return Session(
        scenario_text=scenario_text,
        scenario_file=scenario_file,
        journal=with_seed(dbg),
        events=[_record_of(ev, data) for ev, data in zip(dbg.events, canonicals, strict=True)],
        digest=_digest_of(canonicals),
        breakpoints=[{"id": bp.id, "spec": bp.spec, "enabled": bp.enabled, "hits": bp.hits}
                     for bp in dbg.breakpoints.values()],
        view=dict(view or {}),
        kptui_version=__version__,
    )


def record_run(scenario: Any, text: str, file: str) -> Session:
    """A headless run as a session: every packet run to its fate, in order."""
    dbg = Debugger.for_scenario(scenario)
    while dbg.cont().reason != "end" and dbg.state != "finished":
        pass
    return record(dbg, text, file)


@dataclass(slots=True)
class Replayed:
    """A replayed session: the scenario, the debugger at the session's last event, and
    what differs from the recording ('' when nothing: the digest matches)."""

    scenario: Any
    debugger: Debugger
    divergence: str = ""

    @property
    def ok(self) -> bool:
        return not self.divergence


def replay(session: Session, *, file: str = "session") -> Replayed:
    """Re-run ``session``'s journal on its scenario and compare with the recording.

    A scenario that no longer loads is a SessionError (nothing to replay); a
    journal action that fails or events that differ are a divergence.
    """
    from kptui.engine.scenario import load_scenario

    try:
        # a scenario's iptables_file is read beside the scenario file, as when it was run
        scenario = load_scenario(session.scenario_text, file=session.scenario_file,
                                 read_file=read_text_file)
    except KptuiError as err:
        raise SessionError(f"{file}: its scenario does not load in this kptui: {err}") from None
    dbg = Debugger.for_scenario(scenario)
    failure = ""
    for position, entry in enumerate(session.journal):
        try:
            dbg.apply(entry)
        except KptuiError as err:
            failure = f"journal action {position} {_entry_text(entry)} fails: {err}"
            break
        except Exception as err:  # noqa: BLE001 - a session file is untrusted input
            failure = (f"journal action {position} {_entry_text(entry)} fails with an internal "
                       f"error ({type(err).__name__}: {err}); this is a kptui bug, please "
                       "report it with the session file")
            break
    canonicals = [canonical(ev) for ev in dbg.events]
    divergence = first_difference(session.events, dbg.events, canonicals)
    if not divergence and not failure and _digest_of(canonicals) != session.digest:
        divergence = "the event digest differs from the recorded one (corrupt session?)"
    if failure:
        divergence = failure + (f"; before that, {divergence}" if divergence else "")
    elif not divergence:
        divergence = _breakpoints_differ(session, dbg)
    return Replayed(scenario, dbg, divergence)


def _entry_text(entry: dict[str, Any], limit: int = 200) -> str:
    """The entry as JSON, cut to ``limit`` characters (an entry may hold a long text)."""
    text = json.dumps(entry, sort_keys=False, default=repr)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def first_difference(recorded: Sequence[tuple[bytes, str, str]], events: Sequence[Event],
                     canonicals: Sequence[bytes] | None = None) -> str:
    """'' when ``events`` are the recorded ones, else the first that differs, in words.
    ``canonicals``: the events' canonical bytes when the caller has them already. Only
    the differing event is described (describe() for every event would double the cost)."""
    if canonicals is None:
        canonicals = [canonical(ev) for ev in events]
    for position, (want, data) in enumerate(zip(recorded, canonicals, strict=False)):
        if _short(data) != want[0]:
            got = _record_of(events[position], data)
            return (f"event {position} differs: recorded {want[1]}: {want[2]!r}; "
                    f"replayed {got[1]}: {got[2]!r}")
    if len(recorded) > len(events):
        want = recorded[len(events)]
        return (f"the replay stops after {len(events)} events; the recording goes on with "
                f"event {len(events)}, {want[1]}: {want[2]!r}")
    if len(events) > len(recorded):
        got = event_record(events[len(recorded)])
        return (f"the recording ends after {len(recorded)} events; the replay goes on with "
                f"event {len(recorded)}, {got[1]}: {got[2]!r}")
    return ""


def _breakpoints_differ(session: Session, dbg: Debugger) -> str:
    now = [{"id": bp.id, "spec": bp.spec, "enabled": bp.enabled, "hits": bp.hits}
           for bp in dbg.breakpoints.values()]
    if now != session.breakpoints:
        return f"breakpoints differ: recorded {session.breakpoints}, replayed {now}"
    return ""


# -- exports -------------------------------------------------------------------------------


@dataclass(slots=True)
class WalkResult:
    """One walk in a session (maybe unfinished: the session ended mid-walk): a scenario
    packet's, or, nested in ``answers``, the walk of an answer the box sent (REJECT's
    ICMP/RST, ICMP errors), shaped like kptui.engine.run.PacketResult so that the
    report renderers print a replay exactly as `kptui trace` prints the run."""

    index: int
    events: list[Event]
    packet: Any
    answers: list[WalkResult] = field(default_factory=list)
    why: str = ""  # for an answer walk: what sent it (its AnswerSent's ``why``)
    headers: dict[int, str] = field(default_factory=dict)  # PACKET fields, by event position

    def all_answers(self) -> Iterator[WalkResult]:
        """Every answer walk, depth first (an answer's answers follow it)."""
        for answer in self.answers:
            yield answer
            yield from answer.all_answers()

    def last_walk(self) -> WalkResult:
        """The walk that ran last: this one, or its last answer's last walk."""
        return self.answers[-1].last_walk() if self.answers else self

    @property
    def fate(self) -> Fate | None:
        last = self.events[-1] if self.events else None
        return last if isinstance(last, Fate) else None

    def wire_answers(self) -> list[dict[str, Any]]:
        """--json's ``answers``, as PacketResult.wire_answers (an unfinished answer walk
        has not left the box yet, so it has none)."""
        from kptui.engine.run import wire_answer

        entries = (wire_answer(a.packet, a.fate, a.events) for a in self.all_answers())
        return [entry for entry in entries if entry is not None]

    def to_json(self) -> dict[str, Any]:
        from kptui.engine.events import trace_lines

        fate = self.fate
        return {"packet": self.index, "fate": fate_json(self.events, fate) if fate else None,
                "out": self.packet.out_dict() if self.packet is not None else {},
                "trace": trace_lines(self.events),
                "answers": self.wire_answers(),
                "events": [ev.to_dict() for ev in self.events]}


def walks(dbg: Debugger) -> list[WalkResult]:
    """The session's scenario packets' walks, each with its packet as it was at its last
    event and its answer walks nested in ``answers``.

    The debugger walks a fate's answers right after it, depth first, with the same
    packet index, and records each walk's answer depth and why (Debugger.walk_info):
    an answer walk at depth d belongs to the last walk started at depth d - 1."""
    out: list[WalkResult] = []
    open_walks: list[WalkResult] = []  # the latest walk at each answer depth
    current: WalkResult | None = None
    for position, (event, packet) in enumerate(dbg.rerun()):
        if isinstance(event, WalkStart):
            depth, why = dbg.walk_info.get(position, (0, ""))
            current = WalkResult(event.index, [], None, why=why)
            del open_walks[depth:]
            if depth:
                open_walks[depth - 1].answers.append(current)
            else:
                out.append(current)
            open_walks.append(current)
        if current is None:
            continue
        current.events.append(event)
        if isinstance(event, ChainEnter) and event.via == "hook":
            # the headers as the kernel's trace dumps them at each base chain
            current.headers[len(current.events) - 1] = packet_fields(packet, event.hook)
        if isinstance(event, Fate) and packet is not None:  # None: a reply never built
            current.packet = packet.copy()
    if current is not None and current.packet is None and dbg.packet is not None:
        current.packet = dbg.packet.copy()
    return out


def pcap_records(dbg: Debugger) -> list[pcap.Record]:
    """Each walked packet as it arrives, then again after each stage that changed its
    bytes (and after a change outside stages, such as an edit at the fate). An answer
    walk's packets are records of the packet that caused it: the same second, the
    microseconds going on from its records (pcap.py's timestamps)."""
    records: list[pcap.Record] = []
    last = b""
    count = 0
    index = -1
    for event, packet in dbg.rerun():
        if isinstance(event, WalkStart):
            # an answer walk has the index of the packet that caused it (Debugger)
            if event.index != index:
                index, count = event.index, 0
            last = b""
        if not isinstance(event, (WalkStart, StageLeave, Fate)) or packet is None:
            continue  # None: a reply to a packet that never got through, never built
        data = packet.to_bytes()
        if data != last:
            records.append(pcap.Record(index, count, data))
            count += 1
            last = data
    return records


def as_json_lines(results: Sequence[WalkResult]) -> str:
    return "".join(json.dumps(r.to_json()) + "\n" for r in results)


def as_trace(results: Sequence[WalkResult], *, ruleset: Any = None,
             profile: str = "modern") -> str:
    from kptui import report

    return report.as_trace(results, ruleset=ruleset, profile=profile)  # type: ignore[arg-type]


def as_text(results: Sequence[WalkResult]) -> str:
    from kptui import report

    text = report.as_text(results)  # type: ignore[arg-type]
    if results and results[-1].last_walk().fate is None:
        text += "  .. in flight: the session ends here\n"
    return text
