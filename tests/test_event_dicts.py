"""Event.to_dict, made from each class's fields once instead of by dataclasses.asdict.

asdict was most of a session replay's time (issue 16), so to_dict builds the dict
itself. What a user would notice if it were wrong: `kptui trace --json` output
changing, or every saved session diverging (the session digest is sha256 over the
events' to_dict). So the base to_dict must equal asdict's result exactly: the same
keys, in the same order, with the same values of the same types, for every event
class, for real walks and for any field values.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, fields
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kptui.engine import walk_historical  # noqa: F401 - its ImqPass is an event class too
from kptui.engine.events import Event
from kptui.engine.run import run_scenario
from kptui.engine.scenario import load_scenario

CORPUS = Path(__file__).parent / "kernel" / "scenarios"


def reference(event: Event) -> dict:
    """What Event.to_dict was: the kind, then dataclasses.asdict."""
    d = {"kind": event.kind}
    d.update(asdict(event))
    return d


def same(got: dict, want: dict) -> bool:
    """Equal keys in the same order, and values that print the same in JSON (so 1 and
    True, or 1 and 1.0, which compare equal in Python, still differ here)."""
    return list(got) == list(want) and got == want and \
        json.dumps(got, default=repr) == json.dumps(want, default=repr)


def event_classes() -> list[type[Event]]:
    out, todo = [], [Event]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(out, key=lambda c: c.__name__)


def test_every_event_of_real_walks_gives_what_asdict_gave():
    texts = [resources.files("kptui.scenarios").joinpath("demo.toml").read_text("utf-8")]
    texts += [p.read_text("utf-8") for p in sorted(CORPUS.glob("*.toml"))[::10]]
    kinds = set()
    for n, text in enumerate(texts):
        scenario = load_scenario(text, file=f"s{n}.toml")
        for result in run_scenario(scenario):
            for event in result.events:
                kinds.add(type(event))
                assert same(Event.to_dict(event), reference(event)), event
    assert len(kinds) > 12  # the walks met most classes


_VALUES = {
    "str": st.text(max_size=20),
    "int": st.integers(min_value=-2**70, max_value=2**70),
    "bool": st.booleans(),
    "float": st.floats(allow_nan=False),
    "list[str]": st.lists(st.text(max_size=8), max_size=4),
}
# ``Any`` fields (a field change's old and new values, an answer's packet) hold whatever
# the engine puts there: addresses, numbers, text, None, and nested containers.
_ANY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8)
    | st.builds(ipaddress.IPv4Address, st.integers(min_value=0, max_value=2**32 - 1)),
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6)


@pytest.mark.parametrize("cls", event_classes(), ids=lambda c: c.__name__)
@settings(max_examples=40, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_any_field_values_give_what_asdict_gave(cls, data):
    values = {f.name: data.draw(_VALUES.get(f.type, _ANY), label=f.name)
              for f in fields(cls) if f.init}
    event = cls(**values)
    assert same(Event.to_dict(event), reference(event))
    # the lists in it are the event's own copies, as asdict's were
    for name, value in Event.to_dict(event).items():
        if isinstance(value, list):
            assert value is not getattr(event, name)
