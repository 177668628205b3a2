"""What of a URL or secret errors and logs may show (leaderboard/redact.py), and that the CLI
and config errors go through it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from leaderboard import redact
from leaderboard.errors import ConfigError
from leaderboard.settings import Settings, load_settings


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("redis://:hunter2@127.0.0.1:6379/0", "redis://***@127.0.0.1:6379/0"),
        ("redis://user:hunter2@redis/0", "redis://***@redis/0"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("kafka://kafka:9092", "kafka://kafka:9092"),
        ("https://hooks.example/T0/B1/xyz", "https://hooks.example/T0/***"),
        ("https://shop.example/hooks?token=abc#x", "https://shop.example/hooks?***"),
        ("https://[::1]:8443/a/b", "https://[::1]:8443/a/***"),
        ("not a url with pw@host", "host"),
        ("plain text", "plain text"),
    ],
)
def test_url_hides_passwords_and_token_paths(raw: str, shown: str) -> None:
    assert redact.url(raw) == shown
    assert "hunter2" not in redact.url(raw) and "xyz" not in redact.url(raw)


def test_text_hides_every_secret_and_settings_know_theirs() -> None:
    s = load_settings(
        {
            "KUDOS_REDIS_URL": "redis://:hunter2@127.0.0.1:6379/0",
            "KUDOS_WEB_TOKEN": "tok-ws",
            "KUDOS_WEB_INGEST_TOKEN": "tok-in",
        }
    )
    secrets = s.secrets()
    assert {"hunter2", "tok-ws", "tok-in"} <= set(secrets)
    said = redact.text("Error connecting to redis://:hunter2@127.0.0.1 with tok-ws", secrets)
    assert "hunter2" not in said and "tok-ws" not in said
    assert Settings().secrets() == ()


def test_config_errors_never_echo_a_password() -> None:
    settings = load_settings({"KUDOS_REDIS_URL": "redis://:hunter2@127.0.0.1:notaport/0"})
    with pytest.raises(ConfigError) as err:
        _ = settings.redis_host_port
    assert "hunter2" not in str(err.value) and "KUDOS_REDIS_URL" in str(err.value)


def test_the_cli_does_not_print_the_redis_password(tmp_path: object) -> None:
    """`kudos board all` against a Redis that is not there names the URL without its password."""
    env = {
        **os.environ,
        "KUDOS_REDIS_URL": "redis://:hunter2@127.0.0.1:1/0",
        "KUDOS_HOME": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "kudos", "board", "all"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "hunter2" not in done.stderr + done.stdout
    assert "cannot reach Redis at redis://***@127.0.0.1:1/0" in done.stderr
