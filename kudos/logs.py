"""Logging of the long-running commands (``kudos web``, ``kudos worker``, ``kudos deliver``): text
lines, or with ``KUDOS_LOG_JSON=true`` one JSON object per line for log collectors::

    {"time": "2026-11-21T21:12:20.123Z", "level": "INFO", "logger": "kudos.web", "message": "..."}

followed by the fields a call passed as ``extra={...}``, and ``exc_info`` (the formatted
traceback) when there is one. ``KUDOS_LOG_LEVEL`` sets the lowest level.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

from leaderboard.settings import LogSettings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, RFC 3339, milliseconds), level, logger, message,
    then the record's extra fields (values JSON cannot hold are written as their ``str``)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in out:
                out[key] = value
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack_info"] = self.formatStack(record.stack_info)
        return orjson.dumps(out, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def configure(log: LogSettings, default_level: str = "info") -> None:
    """Send every logger's records to standard error, as text or JSON, from ``log.level`` up."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log.json else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=(log.level or default_level).upper(), handlers=[handler], force=True)


def worker_logging_config(log: LogSettings, level: str) -> dict[str, Any] | None:
    """The ``logging_config`` for Faust's worker: None keeps Faust's own (coloured text)."""
    if not log.json:
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"level": level.upper(), "handlers": ["default"]},
    }
