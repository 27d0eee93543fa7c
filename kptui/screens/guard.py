"""One place where an error met on user input becomes a message on screen.

A Textual app ends, with a traceback, on any exception that escapes a key
action, a message handler or a palette command. kptui must never end on what
the user typed, so every entry point runs through here:

* ``error_message(node, err)``: the text to show for ``err``. A KptuiError is
  the engine's own reason, shown as it is. Anything else is a kptui bug: it is
  logged with its traceback (``node.log.error``), counted on the app
  (``app.internal_errors``, which the tests read) and shown with a hint to
  report it.
* ``attempt(node, fn, *args)``: call ``fn``; on an error, the message instead
  of the result (the dialogs' submit shows it on the dialog's error line).
* ``guarded``: a decorator for message handlers; an error becomes a
  notification.
* ``KptApp.run_action`` (app.py) calls ``notify_error`` for every key and click
  action, and the palette's commands are wrapped in ``safe`` (commands.py).
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from kptui.engine.errors import KptuiError

REPORT_HINT = "this is a kptui bug, please report it with the session (Ctrl+S)"

F = TypeVar("F", bound=Callable[..., Any])


def internal_text(err: BaseException) -> str:
    """What the screen says about an exception that is not the engine's own error."""
    detail = str(err)
    if len(detail) > 200:
        detail = detail[:197] + "..."
    return f"internal error: {type(err).__name__}: {detail}; {REPORT_HINT}"


def where(err: BaseException) -> str:
    """file:line of the innermost frame ``err`` was raised in (a worker's: its cause's)."""
    inner = getattr(err, "error", None)  # textual's WorkerFailed wraps the worker's error
    if isinstance(inner, BaseException):
        err = inner
    frames = traceback.extract_tb(err.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"


def error_message(node: Any, err: Exception, *, trace: str = "") -> str:
    """The message for ``err``; a non-KptuiError is logged and recorded on the app first.

    ``trace``: the traceback text when ``err`` was caught elsewhere (a worker thread).
    """
    if isinstance(err, KptuiError):
        return str(err)
    message = internal_text(err)
    trace = trace or "".join(traceback.format_exception(err))
    try:
        node.log.error(f"{message}\n{trace}")
        node.app.internal_errors.append(f"{type(err).__name__}: {err} (at {where(err)})")
    except Exception:  # noqa: BLE001 - reporting must not raise in its turn
        pass
    return message


def notify_error(node: Any, err: Exception, *, title: str = "") -> None:
    """Show ``err`` as an error notification (logged first when it is a kptui bug)."""
    message = error_message(node, err)
    try:
        node.notify(message, severity="error", title=title,
                    timeout=6 if isinstance(err, KptuiError) else 15)
    except Exception:  # noqa: BLE001 - a node no longer mounted: the log has it
        pass


def attempt(node: Any, fn: Callable[..., Any], *args: Any) -> tuple[Any, str]:
    """``(fn(*args), "")``, or ``(None, message)`` when it raised."""
    try:
        return fn(*args), ""
    except Exception as err:  # noqa: BLE001 - the one place errors become messages
        return None, error_message(node, err)


def safe(node: Any, fn: Callable[..., Any]) -> Callable[[], None]:
    """``fn`` as a callback that notifies instead of raising (palette commands)."""

    def call() -> None:
        try:
            fn()
        except Exception as err:  # noqa: BLE001 - see the module doc
            notify_error(node, err)

    return call


def guarded(method: F) -> F:
    """Decorate a message handler (or any method of a widget or screen) so that an
    exception in it becomes a notification instead of ending the app."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as err:  # noqa: BLE001 - see the module doc
            notify_error(self, err)
            return None

    return wrapper  # type: ignore[return-value]
