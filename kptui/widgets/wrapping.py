"""Wrapping long lines in the Line-API lists (rules, log): a key toggles it.

Unwrapped, a list scrolls sideways (←/→); wrapped, an item longer than the
pane continues on the next lines, indented past its prefix (the marks and
numbers), so nothing is cut at 80 columns. The lists map each screen row to
(item, piece) with ``rows``; ``piece`` cuts the piece out of the item's strip.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.segment import Segment
from textual.strip import Strip


def pieces(length: int, width: int, indent: int) -> int:
    """How many screen rows an item of ``length`` cells takes wrapped at ``width``."""
    if width <= indent + 1 or length <= width:
        return 1
    rest = width - indent
    return 1 + -(-(length - width) // rest)


def rows(lengths: Iterable[int], width: int, indent: int) -> tuple[list[tuple[int, int]],
                                                                    list[int]]:
    """(item, piece) per screen row, and each item's first row."""
    out: list[tuple[int, int]] = []
    first: list[int] = []
    for item, length in enumerate(lengths):
        first.append(len(out))
        out.extend((item, k) for k in range(pieces(length, width, indent)))
    return out, first


def piece(strip: Strip, k: int, width: int, indent: int) -> Strip:
    """Piece ``k`` of ``strip`` wrapped at ``width``: the first as it starts, the others
    indented by ``indent`` blank cells."""
    if k == 0:
        return strip.crop(0, width)
    start = width + (k - 1) * (width - indent)
    body = strip.crop(start, start + width - indent)
    return Strip.join([Strip([Segment(" " * indent)]), body])
