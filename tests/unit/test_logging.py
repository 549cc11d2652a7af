"""House rule 6: the token never reaches a log line, not even inside a traceback."""

from __future__ import annotations

import io
import logging

from bot.cli import RedactingFilter

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
