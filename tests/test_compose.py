"""docker-compose.yml cannot run here (no Docker engine), so check it against the code instead."""

from __future__ import annotations

from pathlib import Path

import yaml

from kudos.cli import parser
from leaderboard.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


def test_compose_services_use_real_commands_and_settings() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "redis", "worker", "web"} <= set(services)
    verbs = set(parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    for name in ("worker", "web"):
        svc = services[name]
        cmd = svc["command"]
        assert cmd[0] == "kudos" and cmd[1] in verbs, f"{name}: {cmd} is not a kudos command"
        env = {k: str(v) for k, v in svc["environment"].items()}
        settings = load_settings(env)  # raises on an unknown or malformed KUDOS_* variable
        assert settings.redis.url.startswith("redis://redis:")
        assert settings.broker.url == "kafka://kafka:9092"
        assert settings.broker.idempotent_producer is True
    assert services["web"]["ports"] == ["8000:8000"]
    assert (
        load_settings({k: str(v) for k, v in services["web"]["environment"].items()}).web.port
        == 8000
    )
    assert (
        "--appendfsync" in services["redis"]["command"]
        and "everysec" in services["redis"]["command"]
    )
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert (ROOT / "Dockerfile").is_file()
