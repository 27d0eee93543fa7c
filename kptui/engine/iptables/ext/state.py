"""-m state (libxt_conntrack 1.8.9's "state" alias of conntrack revision 3): the
packet's conntrack state is one of the listed ones (xt_conntrack.c)."""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.ext._idopts import Quick
from kptui.engine.iptables.matches import _ct_statebit
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch

_PARSE = ("INVALID", "NEW", "ESTABLISHED", "RELATED", "UNTRACKED")  # state_parse_state
_PRINT = ("INVALID", "NEW", "RELATED", "ESTABLISHED", "UNTRACKED")  # state_print_state


def _state(word: str) -> str | None:
    """The first state ``word`` is a prefix of (strncasecmp over its length)."""
    head = word.encode("utf-8", "surrogateescape").upper()
    return next((s for s in _PARSE if s.encode()[:len(head)] == head), None)


_PARSED: dict[str, tuple[str, ...]] = {}  # a restore repeats the same few lists
_PARSED_MAX = 1024


def parse_states(arg: str) -> tuple[str, ...]:
    """state_parse_states: the error quotes the text from the bad name on."""
    states = _PARSED.get(arg)
    if states is None:
        states = _parse_states(arg)
        if len(_PARSED) < _PARSED_MAX:
            _PARSED[arg] = states
    return states


def _parse_states(arg: str) -> tuple[str, ...]:
    found = set()
    rest = arg
    while "," in rest:
        word, _, after = rest.partition(",")
        state = _state(word) if word else None
        if state is None:
            raise BadValue(f'Bad state "{rest}"')
        found.add(state)
        rest = after
    if not rest:
        raise BadValue('"--state" requires a list of states with no spaces, e.g. '
                       "ESTABLISHED,RELATED")
    state = _state(rest)
    if state is None:
        raise BadValue(f'Bad state "{rest}"')
    found.add(state)
    return tuple(s for s in _PRINT if s in found)


class StateMatch(Quick, XtMatch):
    name = "state"
    entries = (Entry("state", XT.STRING, mand=True, invert=True),)

    def __init__(self) -> None:
        super().__init__()
        self.states: tuple[str, ...] = ()
        self.inv = False

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        self.states, self.inv = parse_states(value), inv

    def save(self) -> str:
        return f"{'! ' if self.inv else ''}--state {','.join(self.states)}"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        state = _ct_statebit(pkt)
        if (state in self.states) == self.inv:
            return f"state {state} {'in' if self.inv else 'not in'} {','.join(self.states)}"
        return None


MATCHES = (StateMatch,)
