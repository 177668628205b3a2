"""Typed settings from a TOML file and KUDOS_<SECTION>_<NAME> variables (leaderboard/settings.py)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leaderboard.errors import ConfigError
from leaderboard.settings import Settings, host_port, load_settings, settings_env


@pytest.fixture(autouse=True)
def _no_stray_kudos_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # load_settings falls back to ./kudos.toml; run every test in an empty directory
    empty = tmp_path / "cwd"
    empty.mkdir()
    monkeypatch.chdir(empty)


def config(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "kudos.toml"
    path.write_text(text)
    return {"KUDOS_CONFIG": str(path)}


def test_defaults_without_file_or_env() -> None:
    s = load_settings({})
    assert s == Settings()
    assert s.redis.url == "redis://127.0.0.1:6379/0"
    assert s.broker.url == "kafka://127.0.0.1:9092"
    assert s.web.port == 8000
    assert s.worker.dedupe_horizon_s == 7 * 86400
    assert s.bait.enabled is True
    assert s.home == Path(".kudos")


def test_file_values_are_read(tmp_path: Path) -> None:
    env = config(
        tmp_path,
        '[web]\nport = 9000\n[broker]\ntopic = "events"\n'
        "[worker]\nbatch_within_s = 0.5\n[bait]\nenabled = false\n",
    )
    s = load_settings(env)
    assert s.web.port == 9000
    assert s.broker.topic == "events"
    assert s.worker.batch_within_s == 0.5
    assert s.bait.enabled is False


def test_env_overrides_the_file(tmp_path: Path) -> None:
    env = config(tmp_path, '[web]\nport = 9000\nhost = "0.0.0.0"\n[bait]\nenabled = false\n')
    env |= {
        "KUDOS_WEB_PORT": "9100",
        "KUDOS_BAIT_ENABLED": "true",
        "KUDOS_WORKER_BATCH_MESSAGES": "50",
        "KUDOS_HOME": "/tmp/k",
    }
    s = load_settings(env)
    assert s.web.port == 9100
    assert s.web.host == "0.0.0.0"  # from the file: no variable for it
    assert s.bait.enabled is True
    assert s.worker.batch_messages == 50
    assert s.home == Path("/tmp/k")


def test_kudos_toml_in_the_working_directory_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "kudos.toml").write_text("[web]\nport = 8123\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings({}).web.port == 8123


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        (" yes ", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("False", False),
        ("no", False),
        ("off", False),
    ],
)
def test_bool_parsing(text: str, value: bool) -> None:
    assert load_settings({"KUDOS_BAIT_ENABLED": text}).bait.enabled is value
    assert (
        load_settings({"KUDOS_BROKER_IDEMPOTENT_PRODUCER": text}).broker.idempotent_producer
        is value
    )


@pytest.mark.parametrize("text", ["maybe", "", "2", "enabled"])
def test_bad_bool_names_the_variable(text: str) -> None:
    with pytest.raises(ConfigError, match="KUDOS_BAIT_ENABLED"):
        load_settings({"KUDOS_BAIT_ENABLED": text})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KUDOS_WEB_PORT", "abc"),
        ("KUDOS_WEB_PORT", "80.5"),
        ("KUDOS_WORKER_BATCH_MESSAGES", "lots"),
        ("KUDOS_BROKER_PARTITIONS", ""),
        ("KUDOS_WORKER_BATCH_WITHIN_S", "fast"),
    ],
)
def test_bad_number_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({name: value})
    assert name in str(info.value)
    assert repr(value) in str(info.value)


def test_bad_value_in_the_file_names_section_and_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[web\] port"):
        load_settings(config(tmp_path, '[web]\nport = "eighty"\n'))
    with pytest.raises(ConfigError, match=r"\[web\] port"):
        load_settings(config(tmp_path, "[web]\nport = true\n"))


def test_unknown_section_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown section.*webb"):
        load_settings(config(tmp_path, "[webb]\nport = 1\n"))


def test_unknown_key_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(config(tmp_path, '[web]\nport = 1\ncolour = "red"\n'))
    assert "[web]" in str(info.value)
    assert "colour" in str(info.value)


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="KUDOS_CONFIG"):
        load_settings({"KUDOS_CONFIG": str(tmp_path / "missing.toml")})


def test_invalid_toml_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config(tmp_path, "[web\nport = 1\n"))


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"KUDOS_WORKER_DEDUPE_HORIZON_S": "86399"}, "KUDOS_WORKER_DEDUPE_HORIZON_S"),
        ({"KUDOS_WORKER_DEDUPE_HORIZON_S": "3600"}, "KUDOS_WORKER_DEDUPE_HORIZON_S"),
        ({"KUDOS_WEB_PORT": "-1"}, "KUDOS_WEB_PORT"),
        ({"KUDOS_WEB_PORT": "65536"}, "KUDOS_WEB_PORT"),
        ({"KUDOS_BROKER_PARTITIONS": "0"}, "KUDOS_BROKER_PARTITIONS"),
        ({"KUDOS_WORKER_BATCH_MESSAGES": "0"}, "KUDOS_WORKER_BATCH_MESSAGES"),
        ({"KUDOS_WORKER_MAX_EVENTS_PER_APPLY": "0"}, "KUDOS_WORKER_MAX_EVENTS_PER_APPLY"),
        ({"KUDOS_WORKER_BATCH_WITHIN_S": "-0.1"}, "KUDOS_WORKER_BATCH_WITHIN_S"),
        ({"KUDOS_WORKER_METRICS_PORT": "70000"}, "KUDOS_WORKER_METRICS_PORT"),
        ({"KUDOS_WEBHOOKS_METRICS_PORT": "-1"}, "KUDOS_WEBHOOKS_METRICS_PORT"),
        ({"KUDOS_LOG_LEVEL": "loud"}, "KUDOS_LOG_LEVEL"),
        ({"KUDOS_WEB_INGEST_MAX_BYTES": "100"}, "KUDOS_WEB_INGEST_MAX_BYTES"),
        ({"KUDOS_WEB_INGEST_TIMEOUT_S": "0"}, "KUDOS_WEB_INGEST_TIMEOUT_S"),
        ({"KUDOS_WEB_INGEST_TIMEOUT_S": "30"}, "KUDOS_WEB_INGEST_TIMEOUT_S"),
    ],
)
def test_out_of_range_values_are_rejected(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        load_settings(env)


def test_a_dedupe_horizon_longer_than_a_top_posts_period_is_refused() -> None:
    # a late event inside the horizon could land in a period of top posts already dropped
    with pytest.raises(ConfigError, match="30 days"):
        load_settings({"KUDOS_WORKER_DEDUPE_HORIZON_S": str(30 * 86400 + 1)})
    assert load_settings({"KUDOS_WORKER_DEDUPE_HORIZON_S": str(30 * 86400)}).worker


def test_dedupe_horizon_of_a_day_is_enough(tmp_path: Path) -> None:
    assert (
        load_settings({"KUDOS_WORKER_DEDUPE_HORIZON_S": "86400"}).worker.dedupe_horizon_s == 86400
    )
    with pytest.raises(ConfigError, match="86400"):
        load_settings(config(tmp_path, "[worker]\ndedupe_horizon_s = 600\n"))


def test_float_in_the_file_for_an_int_setting_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="batch_messages"):
        load_settings(config(tmp_path, "[worker]\nbatch_messages = 2.5\n"))


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_float_setting_is_rejected(value: str) -> None:
    with pytest.raises(ConfigError, match="KUDOS_WORKER_BATCH_WITHIN_S"):
        load_settings({"KUDOS_WORKER_BATCH_WITHIN_S": value})


# ---------------------------------------------------------------------------------------------
# settings_env: what a parent passes to a child process


def test_settings_env_round_trips_through_load_settings(tmp_path: Path) -> None:
    env = config(tmp_path, '[redis]\nprefix = "k2"\n[worker]\nbatch_within_s = 0.125\n')
    env |= {
        "KUDOS_BAIT_ENABLED": "off",
        "KUDOS_WEB_PORT": "8765",
        "KUDOS_HOME": "/var/kudos",
        "KUDOS_SCORING_PATH": "/etc/kudos/scoring.toml",
        "KUDOS_BROKER_IDEMPOTENT_PRODUCER": "yes",
    }
    original = load_settings(env)
    child = settings_env(original)
    assert child["KUDOS_BAIT_ENABLED"] == "false"
    assert child["KUDOS_BROKER_IDEMPOTENT_PRODUCER"] == "true"
    assert child["KUDOS_REDIS_PREFIX"] == "k2"
    assert child["KUDOS_WORKER_BATCH_WITHIN_S"] == "0.125"
    assert child["KUDOS_HOME"] == "/var/kudos"
    assert "KUDOS_CONFIG" not in child
    assert all(isinstance(v, str) for v in child.values())
    assert load_settings(child) == original


def test_settings_env_covers_every_field() -> None:
    child = settings_env(Settings())
    names = {
        f"KUDOS_{s.name.upper()}_{f.name.upper()}"
        for s in dataclasses.fields(Settings)
        if s.name != "home"
        for f in dataclasses.fields(getattr(Settings(), s.name))
    }
    assert set(child) == {"KUDOS_HOME"} | names
    assert child["KUDOS_WORKER_DEDUPE_HORIZON_S"] == str(7 * 86400)
    assert load_settings(child) == Settings()


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    port=st.integers(0, 65535),
    within=st.floats(0, 1e9, allow_nan=False),
    enabled=st.booleans(),
    topic=st.text(min_size=1, max_size=30).filter(lambda t: "\x00" not in t),
    horizon=st.integers(86400, 30 * 86400),
)
def test_settings_env_round_trip_property(
    port: int, within: float, enabled: bool, topic: str, horizon: int
) -> None:
    original = load_settings(
        {
            "KUDOS_WEB_PORT": str(port),
            "KUDOS_WORKER_BATCH_WITHIN_S": repr(within),
            "KUDOS_BAIT_ENABLED": str(enabled),
            "KUDOS_BROKER_TOPIC": topic,
            "KUDOS_WORKER_DEDUPE_HORIZON_S": str(horizon),
        }
    )
    assert original.web.port == port
    assert original.worker.batch_within_s == within
    assert original.broker.topic == topic
    again = load_settings(settings_env(original))
    assert again == original
    assert not math.isnan(again.worker.batch_within_s)


# ---------------------------------------------------------------------------------------------
# addresses


@pytest.mark.parametrize(
    ("url", "default", "expected"),
    [
        ("kafka://127.0.0.1:9092", 9092, ("127.0.0.1", 9092)),
        ("redis://localhost:6380/0", 6379, ("localhost", 6380)),
        ("redis://redis.internal/1", 6379, ("redis.internal", 6379)),
    ],
)
def test_host_port(url: str, default: int, expected: tuple[str, int]) -> None:
    assert host_port(url, "KUDOS_X_URL", default) == expected


@pytest.mark.parametrize("url", ["localhost:6379", "redis://:6379", "redis://h:99999"])
def test_host_port_errors_name_the_variable(url: str) -> None:
    with pytest.raises(ConfigError, match="KUDOS_REDIS_URL"):
        host_port(url, "KUDOS_REDIS_URL", 6379)


def test_settings_addresses_come_from_the_urls() -> None:
    s = load_settings(
        {
            "KUDOS_BROKER_URL": "kafka://10.0.0.5:19092",
            "KUDOS_REDIS_URL": "redis://10.0.0.6:16379/2",
        }
    )
    assert s.broker_host_port == ("10.0.0.5", 19092)
    assert s.redis_host_port == ("10.0.0.6", 16379)


def test_a_misspelt_kudos_variable_is_rejected() -> None:
    with pytest.raises(ConfigError, match="KUDOS_WEB_PROT"):
        load_settings({"KUDOS_WEB_PROT": "8001"})
    # variables of other programs are none of our business
    assert load_settings({"PATH": "/bin", "KUDOSX": "1"}) == Settings()


def test_webhook_settings() -> None:
    s = load_settings(
        {"KUDOS_WEBHOOKS_ALLOW": "127.0.0.1, ::1", "KUDOS_WEBHOOKS_SCHEDULE_S": "0.5,1"}
    )
    assert (s.webhooks.allow, s.webhooks.schedule_s) == ("127.0.0.1, ::1", "0.5,1")
    assert (s.webhooks.timeout_s, s.webhooks.lease_s) == (15.0, 60.0)
    assert s.broker.perks_topic == "perk-unlocks"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KUDOS_WEBHOOKS_ALLOW": "localhost"}, "KUDOS_WEBHOOKS_ALLOW: 'localhost'"),
        ({"KUDOS_WEBHOOKS_SCHEDULE_S": "5,soon"}, "KUDOS_WEBHOOKS_SCHEDULE_S: 'soon'"),
        ({"KUDOS_WEBHOOKS_LEASE_S": "10"}, "KUDOS_WEBHOOKS_LEASE_S=10 must be longer"),
        ({"KUDOS_WEBHOOKS_TIMEOUT_S": "0"}, "must be positive"),
        ({"KUDOS_WEBHOOKS_CONCURRENCY": "0"}, "must be positive"),
    ],
)
def test_bad_webhook_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_bait_settings_make_the_detector_parameters_and_are_checked() -> None:
    s = load_settings({"KUDOS_BAIT_THRESHOLD": "2.5", "KUDOS_BAIT_MIN_COMMENTS": "20"})
    params = s.bait.params()
    assert params is not None and (params.threshold, params.min_comments) == (2.5, 20)
    assert load_settings({"KUDOS_BAIT_ENABLED": "false"}).bait.params() is None
    with pytest.raises(ConfigError, match="KUDOS_BAIT_MULTIPLIER_MIN"):
        load_settings({"KUDOS_BAIT_MULTIPLIER_MIN": "0.5", "KUDOS_BAIT_MULTIPLIER_MAX": "0.2"})
    with pytest.raises(ConfigError, match="KUDOS_BAIT_MIN_COMMENTS"):
        load_settings({"KUDOS_BAIT_MIN_COMMENTS": "0"})


def test_a_cluster_refuses_braces_in_the_prefix_and_databases_other_than_0() -> None:
    ok = load_settings({"KUDOS_REDIS_CLUSTER": "true", "KUDOS_REDIS_URL": "redis://node-1:7000/0"})
    assert ok.redis.cluster
    with pytest.raises(ConfigError, match=r"KUDOS_REDIS_PREFIX.*braces"):
        load_settings({"KUDOS_REDIS_CLUSTER": "true", "KUDOS_REDIS_PREFIX": "{kudos}"})
    with pytest.raises(ConfigError, match=r"KUDOS_REDIS_URL.*database 0 only"):
        load_settings({"KUDOS_REDIS_CLUSTER": "true", "KUDOS_REDIS_URL": "redis://node-1:7000/3"})
    with pytest.raises(ConfigError, match=r"KUDOS_REDIS_URL.*database 0 only"):
        load_settings(
            {"KUDOS_REDIS_CLUSTER": "true", "KUDOS_REDIS_URL": "redis://node-1:7000/0?db=2"}
        )
    with pytest.raises(ConfigError, match=r"KUDOS_REDIS_URL.*over TCP"):
        load_settings({"KUDOS_REDIS_CLUSTER": "true", "KUDOS_REDIS_URL": "unix:///run/r.sock"})
    with pytest.raises(ConfigError, match=r"KUDOS_REDIS_PREFIX is empty"):
        load_settings({"KUDOS_REDIS_CLUSTER": "true", "KUDOS_REDIS_PREFIX": ""})
    # a single Redis keeps its databases and any prefix
    single = load_settings({"KUDOS_REDIS_URL": "redis://r:6379/3", "KUDOS_REDIS_PREFIX": "{k}"})
    assert not single.redis.cluster


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KUDOS_REDIS_SHARDS": "0"}, "KUDOS_REDIS_SHARDS=0: must be between 1 and 256"),
        ({"KUDOS_REDIS_SHARDS": "300"}, "KUDOS_REDIS_SHARDS=300: must be between 1 and 256"),
        (
            {"KUDOS_REDIS_SHARDS": "5"},
            "KUDOS_REDIS_SHARDS=5 is more than KUDOS_BROKER_PARTITIONS=4",
        ),
    ],
)
def test_a_shard_count_outside_one_to_the_partitions_is_refused(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_shards_up_to_the_partition_count_are_accepted() -> None:
    s = load_settings({"KUDOS_REDIS_SHARDS": "4"})
    assert (s.redis.shards, s.broker.partitions) == (4, 4)
    assert load_settings({}).redis.shards == 1
