"""The cyclic garbage collector and the box: what lives for the whole run is frozen.

A 20,000-rule box is a quarter of a million objects or more, alive until the debugger is
replaced. While they are young, the collector scans them every few hundred allocations
as the parse makes them (0.15 s of a kube-proxy load); once old, every full collection
scans them all again (~0.18 s each: a step that happened to trigger one took 250 ms
instead of 15). So the app builds the box with the collector off and then moves what is
alive to the permanent generation (``gc.freeze``); ``kptui trace`` keeps its box the
same way (at exit, a collection over it alone took 0.4 s). Reference counting still
frees what a step drops;
only cycles among the frozen objects would stay, so replacing the debugger (a profile
switch) and the app's end unfreeze (``release``): the old box is then collected as
usual, and a process that opens many apps (the tests) does not keep them.

Process-wide state, so it lives here with the front ends (cli, app), never in the engine.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def building() -> Iterator[None]:
    """Build what the run keeps (the box) with the collector off; freeze it after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        keep()
    finally:
        if was_enabled:
            gc.enable()


def keep() -> None:
    """What is alive now lives for the run: no collection scans it again."""
    gc.freeze()


def release() -> None:
    """The run is over: what was kept is ordinary garbage-collected memory again."""
    gc.unfreeze()
