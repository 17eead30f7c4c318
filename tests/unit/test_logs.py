"""One logging setup: plain lines name the process; rich output on request."""

from __future__ import annotations

import io
import logging

from lppo.core.logs import setup_logging


def test_plain_format_names_process_and_level():
    stream = io.StringIO()
    setup_logging("DEBUG", "auto", process="actor-3", stream=stream)  # StringIO is not a TTY
    logging.getLogger("lppo.test").debug("hello %d", 7)
    line = stream.getvalue().strip()
    assert "DEBUG" in line and "[actor-3]" in line and "lppo.test: hello 7" in line


def test_level_filters_and_handlers_are_replaced_not_stacked():
    stream = io.StringIO()
    setup_logging("WARNING", "plain", stream=stream)
    setup_logging("WARNING", "plain", stream=stream)
    logging.getLogger("x").info("hidden")
    logging.getLogger("x").warning("shown")
    assert stream.getvalue().count("shown") == 1 and "hidden" not in stream.getvalue()


def test_rich_format_on_request():
    stream = io.StringIO()
    setup_logging("INFO", "rich", process="learner", stream=stream)
    logging.getLogger("y").info("rich line")
    assert "rich line" in stream.getvalue() and "[learner]" in stream.getvalue()
