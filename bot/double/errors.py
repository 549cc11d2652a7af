"""Handler errors made visible to tests: PTB only logs what reaches its error handlers."""

from __future__ import annotations

from typing import Any

from telegram.ext import Application, CallbackContext


class HandlerError(AssertionError):
    """A handler raised; the exception that reached PTB's error handlers is the cause."""


def record_errors(
    app: Application[Any, Any, Any, Any, Any, Any], errors: list[BaseException]
) -> None:
    """Adds an error handler to ``app`` that appends every handler exception to ``errors``."""

    async def record(update: object, context: CallbackContext[Any, Any, Any, Any]) -> None:
        if context.error is not None:
            errors.append(context.error)

    app.add_error_handler(record)


def raise_if_any(errors: list[BaseException], since: int = 0) -> None:
    """Raises ``HandlerError`` (caused by the first of ``errors[since:]``) if there is one."""
    if len(errors) > since:
        first = errors[since]
        raise HandlerError(
            f"a handler raised {first!r} ({len(errors) - since} error(s))"
        ) from first
