"""-m comment (libxt_comment 1.8.9, xt_comment.c): a note that always matches.

The text is kept in a char[256]: a longer one is cut to 255 bytes (checked:
iptables-nft 1.8.9 accepts 256 characters and saves 255).
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.ext._idopts import Quick
from kptui.engine.iptables.ext._kernel import truncate
from kptui.engine.iptables.values import BadValue, save_string
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch

XT_MAX_COMMENT_LEN = 256


class CommentMatch(Quick, XtMatch):
    name = "comment"
    entries = (Entry("comment", XT.STRING, mand=True),)

    def __init__(self) -> None:
        super().__init__()
        self.comment = ""

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        # Quick.option for the one entry, written out (nearly every kube-proxy rule has
        # a comment): once, not invertible, the text as it is
        if opt in self.seen:
            raise BadValue('comment: option "--comment" can only be used once.')
        if inv:
            raise BadValue('comment: option "--comment" cannot be inverted.')
        self.parsed("comment", args[0], inv)

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        # 63 characters are at most 252 bytes: only a longer one may need cutting
        self.comment = value if len(value) < 64 else truncate(value, XT_MAX_COMMENT_LEN)

    def save(self) -> str:
        return f"--comment {save_string(self.comment)}"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        return None


MATCHES = (CommentMatch,)
