"""A real embedded Redis Cluster for tests (``kudos.cluster``), started once per module.

In a test module or a ``conftest.py``::

    from tests.cluster_fixture import cluster_fixture

    redis_cluster = cluster_fixture()  # 3 primaries, 1 replica each, fixture "redis_cluster"

or import the ready one: ``from tests.cluster_fixture import redis_cluster  # noqa: F401``.
Its value is a :class:`kudos.cluster.EmbeddedCluster`: ``.url`` for a cluster client,
``.primaries()``, ``.replica_of(node)``, ``.kill(node)``, ``.wait_ok()``. A test that kills a
node leaves the cluster changed for the tests after it in the module: make a fixture of its own
with ``cluster_fixture(name=...)``, or kill in the module's last test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal

import pytest

from kudos.cluster import NODE_TIMEOUT_MS, EmbeddedCluster, start_cluster

Scope = Literal["session", "package", "module", "class", "function"]


def cluster_fixture(
    primaries: int = 3,
    replicas: int = 1,
    *,
    name: str = "redis_cluster",
    scope: Scope = "module",
    node_timeout_ms: int = NODE_TIMEOUT_MS,
) -> Callable[..., Any]:
    """A pytest fixture ``name`` that starts a cluster once per ``scope`` in its own temporary
    directory, waits until it is ok, and stops every node after the last test using it."""

    def fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedCluster]:
        workdir = tmp_path_factory.mktemp(name)
        cluster = start_cluster(
            primaries, workdir, replicas=replicas, node_timeout_ms=node_timeout_ms
        )
        try:
            yield cluster
        finally:
            cluster.stop()

    return pytest.fixture(scope=scope, name=name)(fixture)


redis_cluster = cluster_fixture()
