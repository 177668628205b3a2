"""JSON logs (kudos/logs.py): one object per line with time, level, logger, message and extras."""

from __future__ import annotations

import logging
import logging.config
import sys
from collections.abc import Iterator
from datetime import datetime

import orjson
import pytest

from kudos.logs import JsonFormatter, configure, worker_logging_config
from leaderboard.settings import LogSettings


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        for h in root.handlers:
            if h not in handlers:
                root.removeHandler(h)
        for h in handlers:
            if h not in root.handlers:
                root.addHandler(h)
        root.setLevel(level)


def record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    return logging.getLogger("kudos.test").makeRecord(
        "kudos.test", logging.WARNING, __file__, 1, msg, args, None, extra=extra
    )


def test_a_record_is_one_json_object_with_the_promised_fields() -> None:
    line = JsonFormatter().format(
        record("batch %d retried", 3, partition=2, offsets=[1, 2], odd={1: object()})
    )
    assert "\n" not in line
    out = orjson.loads(line)
    assert list(out)[:4] == ["time", "level", "logger", "message"]
    assert out["level"] == "WARNING" and out["logger"] == "kudos.test"
    assert out["message"] == "batch 3 retried"
    assert out["partition"] == 2 and out["offsets"] == [1, 2]
    assert out["odd"]["1"].startswith("<object object")  # not JSON: written as str
    assert out["time"].endswith("Z")
    datetime.fromisoformat(out["time"])
    assert "args" not in out and "msg" not in out and "levelno" not in out


def test_a_traceback_is_kept_in_one_line() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        rec = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    out = orjson.loads(line)
    assert "ValueError: boom" in out["exc_info"] and "Traceback" in out["exc_info"]


def test_configure_writes_json_lines_from_the_level_up(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    configure(LogSettings(json=True, level="warning"))
    logging.getLogger("kudos.web").info("hidden")
    logging.getLogger("kudos.web").warning("shown %s", "here", extra={"clients": 3})
    err = capsys.readouterr().err.splitlines()
    assert [orjson.loads(line)["message"] for line in err] == ["shown here"]
    assert orjson.loads(err[0])["clients"] == 3


def test_configure_writes_text_by_default(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    configure(LogSettings())
    logging.getLogger("kudos.web").info("hello")
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith(" INFO kudos.web: hello")


def test_worker_config_is_faust_default_unless_json(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    assert worker_logging_config(LogSettings(), "info") is None
    config = worker_logging_config(LogSettings(json=True), "info")
    assert config is not None
    logging.config.dictConfig(config)
    logging.getLogger("faust.worker").info("Starting...")
    (line,) = capsys.readouterr().out.splitlines()
    assert orjson.loads(line)["logger"] == "faust.worker"
