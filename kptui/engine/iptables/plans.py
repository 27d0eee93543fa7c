"""Parse plans: what RuleParser did for one shape of rule, to do again for the next.

A kube-proxy dump is 20,000 rules in a few dozen shapes: ``-s ADDR -m comment
--comment TEXT -j CHAIN`` thousands of times, with other values. Which module
owns each option, which checks apply and in what order depend only on the words
the parser reads as options, the ``-m``/``-p`` arguments, the ``-j``/``-g`` target
(a user chain, or which target) and the number of words; the values in between
are only handed to the modules. A plan is the list of calls a successful parse
made (create this match, give that option these words, this target), and the
positions and words it read to decide them. A rule with those words at those
positions takes the same path, so RuleParser replays the calls with its own
values: the same modules, the same checks of values, the same errors at the same
words, without deciding again (tests/test_parse_plans.py compares both ways).

Nothing is planned from a parse that rewrote its words (``--dp``, ``--to=X``,
``-mtcp``) or looked at a value's first character (an optional argument).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from operator import itemgetter
from typing import Any

# a step's first item; the second is the word an error of the step points at
IP, MATCH, IMPLICIT, TARGET, OPTION = range(5)
Step = tuple[Any, ...]

MAX_SHAPES = 4096  # keys kept; a ruleset of more shapes than this parses the long way
MAX_PER_KEY = 8  # plans tried for one key


class Plan:
    """The steps of one parse and what a rule must have to take them again."""

    __slots__ = ("steps", "read", "expected", "user_at", "build")

    def __init__(self, steps: list[Step], looked: list[int], words: list[str],
                 user_at: int) -> None:
        self.steps = tuple(steps)
        self.read = itemgetter(*looked)  # the words the parse decided by
        self.expected = self.read(words)
        self.user_at = user_at  # the -j/-g word naming a user chain (-1: none)
        self.build: Any = None  # the steps as one function (compiled.py), once made

    def fits(self, words: list[str], lookup: Any) -> bool:
        return self.read(words) == self.expected and (
            self.user_at < 0 or lookup(words[self.user_at]) == "user")


class Switch:
    """A process-wide off switch, for tests that compare a fast path with the long way:
    ``with SWITCH.off(): ...``; ``bool(SWITCH)`` is whether it is off."""

    def __init__(self) -> None:
        self.offs = 0

    def __bool__(self) -> bool:
        return self.offs > 0

    @contextmanager
    def off(self) -> Iterator[None]:
        self.offs += 1
        try:
            yield
        finally:
            self.offs -= 1


_PLANS: dict[tuple[Any, ...], list[Plan]] = {}
_OFF = Switch()  # off: no plan is used or made (tests compare both ways)


def key(words: list[str]) -> tuple[Any, ...]:
    """A cheap first sort of rules by shape: the plans under it are then checked."""
    n = len(words)
    return (n, words[0], words[-2]) if n > 1 else (n, words[0] if n else "")


def find(words: list[str], lookup: Any) -> Plan | None:
    if _OFF:
        return None
    for plan in _PLANS.get(key(words), ()):
        if plan.fits(words, lookup):
            return plan
    return None


def keep(words: list[str], plan: Plan) -> None:
    if _OFF:
        return
    plans = _PLANS.get(key(words))
    if plans is None:
        if len(_PLANS) >= MAX_SHAPES:
            return
        plans = _PLANS[key(words)] = []
    if len(plans) < MAX_PER_KEY:
        plans.append(plan)


def forget() -> None:
    """Drop every plan."""
    _PLANS.clear()


def off() -> Any:
    """Parse without plans, as the parse that decides as it goes (for comparisons)."""
    return _OFF.off()
