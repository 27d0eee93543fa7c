"""The simulator: pure Python, deterministic, no I/O and no UI.

Given a scenario and a journal of actions it always produces the same events.
"""
