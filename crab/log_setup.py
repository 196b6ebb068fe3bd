"""How `crab serve` and `crab worker` write their log: a line per event an
admin cares about, as text for a person or JSON for a log shipper.

grpclib logs every call its client dropped or let time out at INFO
("Request was cancelled"): 10,000 lines when 10,000 idle clients leave.
Those lines are demoted to DEBUG, where they help whoever is debugging."""

from __future__ import annotations

import logging
import sys

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries whose INFO lines are per call or per request.
CHATTY = ("grpclib.", "httpx.")


class PerCallChatter(logging.Filter):
    """Their INFO lines become DEBUG ones, kept only at --log-level debug. On
    the handler: a logger's own filters do not see its children's records."""

    def __init__(self, debugging: bool) -> None:
        super().__init__()
        self._debugging = debugging

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not record.name.startswith(CHATTY):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return self._debugging


def formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter  # not for `crab chat`

        # One object a line: time (ISO 8601, UTC), level, logger, message,
        # and exc_info as one string when there is a traceback.
        return JsonFormatter(
            "{levelname}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
        )
    return logging.Formatter(TEXT)


def configure(level: str = "info", fmt: str = "text") -> None:
    """Replaces whatever logging was set up before: one handler on stderr."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    handler.addFilter(PerCallChatter(root.isEnabledFor(logging.DEBUG)))
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    # Its INFO is a line per migration step.
    logging.getLogger("alembic").setLevel(logging.WARNING)
