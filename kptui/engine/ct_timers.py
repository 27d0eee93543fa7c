"""Conntrack timeouts on the simulated clock: a heap with lazy invalidation.

The kernel gives every entry its own timeout (ct->timeout, checked by
nf_ct_is_expired on every lookup and collected by the gc worker); kptui's table
must answer "which entries have expired by now?" on every listing without
looking at every entry. ``Timers`` keeps one heap item (when, id) per entry,
ordered by time, so collecting the expired entries costs what they are, not what
the table is.

Entries are refreshed by nearly every packet, so their heap items are not moved
on each refresh (that would cost a heap operation per packet): an item may fire
*early*, and the caller then re-arms it at the entry's real expiry. Only a
refresh that makes an entry expire *earlier* than its item (a TCP connection
going from ESTABLISHED's five days to CLOSE's ten seconds) pushes a new item.
Invariant: every armed id has an item whose time is at or before its entry's
expiry, and ``_due[id]`` is the earliest of its items; items that disagree with
``_due`` are stale and skipped. The heap is rebuilt from ``_due`` when stale
items outnumber the live ones, so its size stays O(entries).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

# Rebuild the heap when it holds more than this many items per armed id (plus slack).
_STALE_FACTOR = 2
_STALE_SLACK = 64


class Timers:
    """One timer per table entry id, fired in order of time."""

    __slots__ = ("_heap", "_due")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        self._due: dict[int, float] = {}

    def __len__(self) -> int:
        return len(self._due)

    def arm(self, key: int, when: float) -> None:
        """The entry ``key`` expires at ``when``: make sure a timer fires by then."""
        due = self._due.get(key)
        if due is not None and due <= when:
            return  # an earlier item fires first and re-arms at the real expiry
        self._due[key] = when
        heapq.heappush(self._heap, (when, key))
        if len(self._heap) > _STALE_FACTOR * len(self._due) + _STALE_SLACK:
            self._rebuild()

    def cancel(self, key: int) -> None:
        """The entry left the table: its items become stale."""
        self._due.pop(key, None)

    def expired(self, now: float, expires_of: Callable[[int], float]) -> list[int]:
        """The armed ids whose entry has expired at ``now`` (``now >= expires_of(id)``),
        disarmed; entries refreshed since their item was pushed are re-armed."""
        heap, due = self._heap, self._due
        out: list[int] = []
        while heap and heap[0][0] <= now:
            when, key = heapq.heappop(heap)
            if due.get(key) != when:
                continue  # stale: cancelled, or a later duplicate of an earlier item
            expires = expires_of(key)
            if now >= expires:
                del due[key]
                out.append(key)
            else:
                due[key] = expires
                heapq.heappush(heap, (expires, key))
        return out

    def state(self) -> tuple[list[tuple[float, int]], dict[int, float]]:
        """What ``load`` needs to give back these timers (copies; the items are tuples,
        shared)."""
        return list(self._heap), dict(self._due)

    def load(self, state: tuple[list[tuple[float, int]], dict[int, float]]) -> None:
        """Back to a ``state()`` (copied again: it can be loaded any number of times)."""
        heap, due = state
        self._heap = list(heap)
        self._due = dict(due)

    def _rebuild(self) -> None:
        self._heap = [(when, key) for key, when in self._due.items()]
        heapq.heapify(self._heap)
