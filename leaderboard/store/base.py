"""The connection and what every part of the store shares."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Self, cast

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.connection import HiredisRespSerializer
from redis.exceptions import AskError, CrossSlotTransactionError, RedisClusterException, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError

from leaderboard.errors import StoreConflict
from leaderboard.perks import PerkRule
from leaderboard.scoring import DECAYED, ScoringRules, decayed_value
from leaderboard.store.keys import Keys, namespace_prefix
from leaderboard.store.scripts import Scripts


class _HiredisPackConnection(aioredis.Connection):
    """A connection tuned for the big apply calls.

    - redis-py's asyncio client packs commands in pure Python (its sync client uses hiredis); one
      apply of 5,000 events carries ~85k arguments: 43 ms to pack in Python, 6 ms with hiredis.
    - A zero write-buffer limit makes ``drain()`` return only once every byte is in the kernel, so
      a sent apply reaches Redis while the worker goes back to CPU-bound planning (with asyncio's
      default 64 KiB limit the tail of a 1 MB command waited for the next loop iteration).
    """

    _packer = HiredisRespSerializer()  # type: ignore[no-untyped-call,unused-ignore]  # (redis 8.2)

    def pack_command(self, *args: Any) -> list[bytes]:
        if args and args[0] == "EVALSHA":
            # the apply call: str and bytes arguments only, nothing for redis-py's wrapper to convert
            return [hiredis.pack_command(args)]
        return self._packer.pack(*args)  # type: ignore[no-any-return]

    async def on_connect(self) -> None:
        await super().on_connect()
        writer = getattr(self, "_writer", None)
        if writer is not None:
            writer.transport.set_write_buffer_limits(high=0)


@contextlib.contextmanager
def _outage() -> Iterator[None]:
    """redis-py's cluster client raises RedisClusterException, not a RedisError, when no node
    answers or a slot is not covered (a fail-over under way): as a ConnectionError, every
    caller's retry for an unreachable Redis (the worker's batch loop, the deliverer's loops, the
    web's 503) covers a cluster outage too. A cross-slot transaction is a bug: it stays."""
    try:
        yield
    except CrossSlotTransactionError:
        raise
    except RedisClusterException as exc:
        raise RedisConnectionError(f"Redis Cluster: {exc}") from exc


class _ClusterPipeline(ClusterPipeline):
    async def execute(
        self, raise_on_error: bool = True, allow_redirections: bool = True
    ) -> list[Any]:
        with _outage():
            return await super().execute(raise_on_error, allow_redirections)


class _Cluster(RedisCluster):
    """The cluster client Kudos uses: outages as ConnectionError (:func:`_outage`), and
    transactions that are not retried by the client (see :meth:`pipeline`)."""

    async def initialize(self, *args: Any, **kwargs: Any) -> Self:
        with _outage():
            await super().initialize(*args, **kwargs)
        return self

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        with _outage():
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        if shard_hint:
            raise ValueError("shard_hint is not for a cluster")
        pipe = _ClusterPipeline(self, transaction)  # type: ignore[abstract]
        if transaction:
            # redis-py retries a cluster MULTI/EXEC on a new connection after a connection
            # error: the WATCH is gone then, and an EXEC whose reply was lost runs twice (the
            # fan-out would make its webhook jobs again). With no retry the error reaches the
            # caller, which starts over with a fresh WATCH, as on a single Redis.
            pipe._execution_strategy._retry = Retry(NoBackoff(), 0)  # type: ignore[attr-defined]
        return pipe


def cluster_client(url: str) -> Any:
    """A Redis Cluster client from any node's URL, with the hiredis packing of the apply calls
    (redis-py's cluster client fixes its connection class; its nodes take it from these kwargs).
    It follows MOVED and ASK redirections and, on a node's loss, re-reads the slot map, so a
    fail-over looks like a short outage to the retrying callers."""
    client = _Cluster.from_url(url, decode_responses=True)
    if url.startswith("redis://"):
        client.nodes_manager.connection_kwargs["connection_class"] = _HiredisPackConnection
        for node in client.nodes_manager.startup_nodes.values():
            node.connection_class = _HiredisPackConnection
    return client


def cluster_mismatch(exc: BaseException, cluster: bool) -> str | None:
    """What to do when ``exc`` says the Redis is not the kind the settings name: a cluster node
    answering a plain client (MOVED), or a plain Redis under a cluster client; None otherwise."""
    text = str(exc)
    signs = ("CLUSTERDOWN", "CROSSSLOT", "hash to the same slot")
    redirected = isinstance(exc, AskError)  # (MovedError is one; its text is "<slot> <node>")
    if not cluster and (redirected or any(s in text for s in signs)):
        return "KUDOS_REDIS_URL names a Redis Cluster node: set KUDOS_REDIS_CLUSTER=true"
    if cluster and "cluster" in text.lower() and "not enabled" in text.lower():
        return "KUDOS_REDIS_URL is not a Redis Cluster node: unset KUDOS_REDIS_CLUSTER"
    return None


#: How long a reader trusts its cached generation before it reads the pointer again (one GET).
#: Plain reads may see the previous generation for about this long after a switch; the rebuild
#: waits longer than this before it drops that generation (``stream.rebuild.DROP_GRACE_S``).
FOLLOW_S = 0.5

#: Times an atomic read is retried when the generation moved under it ('stale').
STALE_RETRIES = 5


def clock_of(wm: str, landmark: str) -> tuple[float | None, int | None]:
    return (float(wm) if wm else None, int(landmark) if landmark else None)


class StoreBase:
    """The client, the namespace's key names, the rules, and the registered scripts: what every
    part of :class:`leaderboard.store.Store` shares."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        rules: ScoringRules,
        perk_rules: Sequence[PerkRule] = (),
        scoring_id: str | None = None,
        generation: int | None = None,
    ) -> None:
        self.client = client
        #: on a Redis Cluster (the namespace is one slot: ``prefix`` is its hash tag)
        self.cluster = isinstance(client, RedisCluster)
        self.prefix = prefix
        self.rules = rules
        #: the identity applies are guarded by (leaderboard.bait.identity: rules + bait settings)
        self.scoring_id = scoring_id or rules.version
        #: checked by every apply (the worker's store has them; readers need not)
        self.perk_rules = tuple(perk_rules)
        #: the generation this store is pinned to (the rebuild's new one), or None: it follows
        #: the namespace's pointer (workers, web, CLI, deliverer)
        self.pinned = generation
        self.keys = Keys(prefix, generation or 0)
        #: serving keys (the pointer, the lock, the feed, ...), whatever the generation
        self.serving = Keys(prefix)
        self._followed_at = -float("inf")
        self.scripts = Scripts(client)
        self._sha: str | None = None
        #: board rows each Lua call of the latest apply expired or rescaled (several calls when
        #: it had to do that in steps, see :meth:`send_apply`)
        self.apply_work: list[int] = []
        #: awaited between those calls (tests read the boards there)
        self.between_apply_calls: Callable[[], Awaitable[None]] | None = None

    @classmethod
    def connect(
        cls,
        url: str,
        prefix: str,
        rules: ScoringRules,
        perk_rules: Sequence[PerkRule] = (),
        scoring_id: str | None = None,
        generation: int | None = None,
        *,
        cluster: bool = False,
    ) -> Self:
        """A store on the Redis at ``url`` (with ``cluster``: on the Redis Cluster that node
        belongs to; the namespace becomes one hash tag, :func:`namespace_prefix`)."""
        if cluster:
            return cls(
                cluster_client(url), namespace_prefix(prefix, True), rules, perk_rules,
                scoring_id, generation,
            )  # fmt: skip
        kwargs: dict[str, Any] = {"decode_responses": True}
        if url.startswith("redis://"):
            kwargs["connection_class"] = _HiredisPackConnection
        pool = aioredis.ConnectionPool.from_url(url, **kwargs)
        return cls(
            aioredis.Redis.from_pool(pool), prefix, rules, perk_rules, scoring_id, generation
        )

    async def _connection_for(self, key: str) -> tuple[Any, Callable[[], Awaitable[None]]]:
        """A connection of its own to the node holding ``key`` (the apply's pipelined send and
        read, see :meth:`send_apply`), and the coroutine that gives it back."""
        if self.cluster:
            cluster: Any = self.client
            await cluster.initialize()  # (only when the slot map is to be read again)
            node = cluster.get_node_from_key(key)
            conn = node.acquire_connection()

            async def give_back_node() -> None:
                node.release(conn)

            return conn, give_back_node
        pool = self.client.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]

        async def give_back() -> None:
            await pool.release(conn)

        return conn, give_back

    async def _after_error(self, exc: BaseException) -> None:
        """After a failed call on a connection of :meth:`_connection_for`: on a cluster, read
        the slot map again (a fail-over moved the slot, or its node is gone), as the cluster
        client does for its own calls; the caller's retry then goes to the new primary."""
        if self.cluster and isinstance(exc, RedisError | OSError):
            with contextlib.suppress(RedisError, OSError):
                await cast(Any, self.client).nodes_manager.initialize()

    async def _scan(self, cursor: int, match: str, count: int) -> tuple[int, list[str]]:
        """One SCAN step over this namespace's keys; on a cluster, on the primary holding the
        namespace's slot (a cluster client's own SCAN keeps a cursor per node). A fail-over
        between two steps makes the cursor another node's: a walk that must see every key (the
        rebuild's drop) is repeated by the next rebuild, which drops what is left."""
        if not self.cluster:
            c, found = await self.client.scan(cursor, match=match, count=count)
            return int(c), cast("list[str]", found)
        cluster: Any = self.client
        await cluster.initialize()
        node = cluster.get_node_from_key(self.serving.key("live"))
        cursors, found = await cluster.scan(cursor, match=match, count=count, target_nodes=node)
        return int(cursors[node.name]), cast("list[str]", found)

    async def close(self) -> None:
        await self.client.aclose()

    def key(self, family: str, *parts: object) -> str:
        """The name of a key of ``family`` (a :data:`leaderboard.store.keys.FAMILIES` name)."""
        return self.keys.key(family, *parts)

    @property
    def generation(self) -> int:
        """The generation this store's keys name (the last one it saw the pointer at)."""
        return self.keys.generation

    def at_generation(self, generation: int) -> None:
        if generation != self.keys.generation:
            self.keys = Keys(self.prefix, generation)

    async def pointer(self) -> int:
        """The namespace's live generation (one GET)."""
        return int(await self.client.get(self.serving.key("live")) or 0)

    async def follow(self, force: bool = False) -> int:
        """Bring the key names up to the live generation if the cached one is older than
        :data:`FOLLOW_S` (or ``force``); the generation. A pinned store stays where it is."""
        if self.pinned is not None:
            return self.pinned
        now = time.monotonic()
        if force or now - self._followed_at > FOLLOW_S:
            self.at_generation(await self.pointer())
            self._followed_at = now
        return self.keys.generation

    async def _atomic(self, script: Any, build: Callable[[], tuple[list[str], list[Any]]]) -> Any:
        """Run a script on the live generation (the reads, ``explain``, ``feed_poll``, and
        ``admit``, which writes the community set of a namespace kept as shards): ``build``
        names its keys after :meth:`follow`; the script gets the pointer as its last KEY and the
        generation assumed as its last ARGV, and answers 'stale' (having read and written
        nothing) when they differ: then the pointer is read again and the call retried, so one
        answer never mixes two generations or reads a dropped one."""
        for _ in range(STALE_RETRIES):
            generation = await self.follow()
            keys, args = build()
            want = "" if self.pinned is not None else str(generation)
            res = await script(keys=[*keys, self.serving.key("live")], args=[*args, want])
            if res != "stale":
                return res
            await self.follow(force=True)
        raise StoreConflict("the rebuild generation kept moving under a read")

    def _to_points(
        self, board: str, stored: float, clock: tuple[float | None, int | None]
    ) -> float:
        if board.partition(":")[0] == DECAYED:
            wm, lm = clock
            if wm is None or lm is None:
                return 0.0
            return decayed_value(stored, wm, lm, self.rules.half_life_s) / 1000.0
        return stored / 1000.0
