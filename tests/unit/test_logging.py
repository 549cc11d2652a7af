"""House rule 6: the token never reaches a log line, not even inside a traceback."""

from __future__ import annotations

import io
import logging

import pytest

from bot.cli import QuietStartupFilter, RedactingFilter

TOKEN = "424242:AAH-secret-token-value"


def _logger(stream: io.StringIO) -> logging.Logger:
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter([TOKEN]))
    logger = logging.getLogger(f"test-redaction-{id(stream)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger


def test_token_is_masked_when_a_message_or_its_arguments_contain_it() -> None:
    stream = io.StringIO()
    logger = _logger(stream)
    logger.info("POST https://api.telegram.org/bot%s/getUpdates", TOKEN)
    logger.warning("url was https://api.telegram.org/bot" + TOKEN + "/sendMessage")  # noqa: G003 - a message that embeds the token, on purpose
    output = stream.getvalue()
    assert TOKEN not in output
    assert output.count("**********") == 2


def test_token_is_masked_when_an_exception_traceback_contains_it() -> None:
    stream = io.StringIO()
    logger = _logger(stream)
    try:
        raise ConnectionError(f"cannot reach https://api.telegram.org/bot{TOKEN}/getMe")
    except ConnectionError:
        logger.exception("polling failed")
    output = stream.getvalue()
    assert "ConnectionError" in output
    assert TOKEN not in output


def _bootstrap_abort(level: int = logging.ERROR) -> logging.LogRecord:
    """PTB's record when start-up gives up on a network error (with its traceback)."""
    try:
        raise ConnectionError("All connection attempts failed")
    except ConnectionError as exc:
        info = (type(exc), exc, exc.__traceback__)
    return logging.LogRecord(
        "telegram.ext", level, __file__, 1,
        "Network Retry Loop (%s): Failed run number %s of %s. Aborting.",
        ("Bootstrap Initialize Application", 0, 0), info,
    )  # fmt: skip


@pytest.mark.parametrize(("root_level", "kept"), [(logging.INFO, False), (logging.DEBUG, True)])
def test_start_up_abort_traceback_is_left_to_one_line_except_at_debug(
    root_level: int, kept: bool
) -> None:
    root = logging.getLogger()
    before = root.level
    root.setLevel(root_level)
    try:
        assert QuietStartupFilter().filter(_bootstrap_abort()) is kept
    finally:
        root.setLevel(before)


def test_other_errors_of_the_library_are_still_logged() -> None:
    record = _bootstrap_abort()
    record.args = ("Polling Updates", 3, 0)
    record.msg = "Network Retry Loop (%s): Failed run number %s of %s. Retrying."
    assert QuietStartupFilter().filter(record) is True
