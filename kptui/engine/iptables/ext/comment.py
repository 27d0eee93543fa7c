"""-m comment (libxt_comment 1.8.9, xt_comment.c): a note that always matches.

The text is kept in a char[256]: a longer one is cut to 255 bytes (checked:
iptables-nft 1.8.9 accepts 256 characters and saves 255).
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.ext._idopts import Quick
from kptui.engine.iptables.ext._kernel import truncate
from kptui.engine.iptables.values import save_string
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch

XT_MAX_COMMENT_LEN = 256


class CommentMatch(Quick, XtMatch):
    name = "comment"
    entries = (Entry("comment", XT.STRING, mand=True),)

    def __init__(self) -> None:
        super().__init__()
        self.comment = ""

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        # 63 characters are at most 252 bytes: only a longer one may need cutting
        self.comment = value if len(value) < 64 else truncate(value, XT_MAX_COMMENT_LEN)

    def save(self) -> str:
        return f"--comment {save_string(self.comment)}"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        return None


MATCHES = (CommentMatch,)
