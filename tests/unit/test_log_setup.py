"""The log's two formats and the per-call chatter filter, on log records."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from crab import log_setup


def record(name: str, level: int, message: str = "Request was cancelled") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, (), None)


@pytest.mark.parametrize("name", ["grpclib.server", "grpclib.protocol", "httpx._client"])
def test_library_info_becomes_debug(name: str) -> None:
    quiet, debugging = log_setup.PerCallChatter(False), log_setup.PerCallChatter(True)
    assert not quiet.filter(record(name, logging.INFO))
    line = record(name, logging.INFO)
    assert debugging.filter(line)
    assert (line.levelno, line.levelname) == (logging.DEBUG, "DEBUG")


@pytest.mark.parametrize(
    ("name", "level"),
    [
        ("grpclib.server", logging.ERROR),  # "Application error" stays an error
        ("grpclib.server", logging.WARNING),
        ("crab", logging.INFO),  # crab's own INFO lines are the ones that matter
        ("crab.core.services.accounts", logging.INFO),
        ("grpclibrary", logging.INFO),  # a prefix of a name is not that library
    ],
)
def test_everything_else_passes_unchanged(name: str, level: int) -> None:
    line = record(name, level)
    assert log_setup.PerCallChatter(False).filter(line)
    assert line.levelno == level


def test_json_keeps_a_traceback_in_its_line() -> None:
    """A line with a traceback stays one line (a shipper reads line by line)."""
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        line = logging.LogRecord("crab", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    text = log_setup.formatter("json").format(line)
    assert "\n" not in text
    entry = json.loads(text)
    assert entry["message"] == "failed" and entry["level"] == "ERROR"
    assert "ValueError: boom" in entry["exc_info"]


def test_json_arguments_are_formatted_and_escaped() -> None:
    line = logging.LogRecord(
        "crab", logging.INFO, __file__, 1, "account %s signed up", ('a"\nb',), None
    )
    entry = json.loads(log_setup.formatter("json").format(line))
    assert entry["message"] == 'account a"\nb signed up'
    assert entry["logger"] == "crab" and entry["time"].endswith("+00:00")


def test_text_is_the_classic_line() -> None:
    line = record("crab", logging.WARNING, "disk nearly full")
    assert log_setup.formatter("text").format(line).endswith(" WARNING crab: disk nearly full")
