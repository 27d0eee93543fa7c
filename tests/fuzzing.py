"""Shared pieces of the fuzz tests: settings, a mutation strategy, the one property.

Every parser's fuzz test asserts the same thing: any input gives a result or
the project's own error (KptuiError, which every front end prints as a
message), never anything else. Inputs are real, valid inputs mutated the way
the bad-input issue found crashes: words swapped for tricky ones (non-ASCII
digits, a leading zero, 5000 digits, empty quotes), pieces cut out, repeated
or spliced from another input.

CI runs a bounded, seeded number of examples per test (``FUZZ_EXAMPLES``);
``KPTUI_FUZZ_EXAMPLES=100000 python3 -m pytest -m fuzz`` is the long run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from kptui.engine.errors import KptuiError

_LONG_RUN = os.environ.get("KPTUI_FUZZ_EXAMPLES", "")
FUZZ_EXAMPLES = int(_LONG_RUN) if _LONG_RUN.isascii() and _LONG_RUN.isdigit() else 0


def fuzz_settings(examples: int = 300) -> settings:
    """Seeded (derandomize), no deadline, ``examples`` cases unless the long run asks more."""
    return settings(max_examples=FUZZ_EXAMPLES or examples, derandomize=True, deadline=None,
                    database=None, suppress_health_check=list(HealthCheck), print_blob=True)


fuzz = pytest.mark.fuzz

# Words that broke parsers before (issue 13) or are on the edge of a tool's syntax.
TRICKY_WORDS = (
    "8\u00b2", "\u0661\u0662", "\uff11\uff12", "010", "08", "0x", "0x1g", "-1", "+1", "1e9",
    "9" * 5000, "4294967296", "65536", "256", "0", "", '""', "''", "\"", "'", "\\", "#",
    "1.5", ".", ":", "/", ",", "!", "-", "--", "=", "[", "]", "{", "}", "(", ")", "((((",
    "\t", "\n", "\x00", "\u00e9", "\u202e", "\ud800", "nan", "inf", "1_000", " ", "::", "1:2:3",
    "0/0", "1.2.3.4/33", "255.255.255.256", "not", "and", "or", "in", "==", "1²/hour",
)


def _words(text: str) -> list[str]:
    return text.split(" ")


@st.composite
def mutated(draw: Callable[..., Any], corpus: Sequence[str],
            extra_words: Sequence[str] = ()) -> str:
    """A text from ``corpus`` with a few mutations of its words, lines or characters."""
    text = draw(st.sampled_from(list(corpus)))
    vocabulary = list(TRICKY_WORDS) + list(extra_words)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        words = _words(text)
        kind = draw(st.integers(min_value=0, max_value=6))
        i = draw(st.integers(min_value=0, max_value=max(len(words) - 1, 0)))
        if kind == 0:  # replace a word by a tricky one
            words[i] = draw(st.sampled_from(vocabulary))
        elif kind == 1:  # glue a tricky word onto a word
            words[i] = words[i] + draw(st.sampled_from(vocabulary))
        elif kind == 2:  # drop a word
            del words[i]
        elif kind == 3:  # repeat a word
            words.insert(i, words[i] if words else "")
        elif kind == 4:  # a word from another input of the corpus
            other = _words(draw(st.sampled_from(list(corpus))))
            words.insert(i, draw(st.sampled_from(other)))
        elif kind == 5:  # cut the text somewhere
            text = " ".join(words)
            cut = draw(st.integers(min_value=0, max_value=len(text)))
            words = _words(text[:cut])
        else:  # arbitrary characters somewhere
            words.insert(i, draw(st.text(max_size=6)))
        text = " ".join(words)
    return text


def own_error_or_success(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn``; a KptuiError is a fine answer to bad input, anything else fails."""
    try:
        return fn(*args, **kwargs)
    except KptuiError as exc:
        assert str(exc), "a KptuiError with no message"
        return exc
