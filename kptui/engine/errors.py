"""Errors the engine raises. Each one carries a message fit for a user.

The CLI and the UI print ``str(error)`` and never a traceback, so every
message says what is wrong, where, and (when it helps) what would be right.
"""

from __future__ import annotations

# An error quotes at most this much of its token: a 1 MB word stays a one-line message.
TOKEN_SHOWN = 60


class KptuiError(Exception):
    """Base of every error a user may see."""


class ParseError(KptuiError):
    """Bad input text: names the file, line, column and offending token."""

    def __init__(
        self,
        message: str,
        *,
        file: str = "<input>",
        line: int = 0,
        column: int = 0,
        token: str = "",
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.token = token
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}"
            if self.column:
                where += f":{self.column}"
        shown = self.token if len(self.token) <= TOKEN_SHOWN else \
            self.token[:TOKEN_SHOWN - 3] + "..."
        tok = f" (at {shown!r})" if self.token else ""
        return f"{where}: {self.message}{tok}"


class UnsupportedError(KptuiError):
    """Valid Linux input that kptui does not model yet. Never guessed around."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"unsupported yet: {what}")


class FieldError(KptuiError):
    """A packet field path or value that was refused, with the reason."""
