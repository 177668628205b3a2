"""The suite on the oldest dependencies pyproject.toml admits: ``make test-min-deps``.

Every runtime dependency, and every one of the ``embedded`` extra, is pinned to the lower bound of
its own requirement in pyproject.toml (``name>=X`` installs ``name==X``): the pins are
derived here, never written down, so they cannot drift from the bounds. The dev tools resolve
freely (users never install them). A fresh virtualenv in a temporary folder gets the project and
those pins, then runs the unit tests and the integration tests that exercise each library's API
(:data:`INTEGRATION`). It takes minutes, so ``make test`` leaves it out.

    python -m tests.min_deps                      # what `make test-min-deps` runs
    python -m tests.min_deps --pin hiredis==2.2.3 # probe an older release than the bound
    python -m tests.min_deps -- -x -k store       # extra pytest arguments for both runs
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
#: extras whose requirements are pinned too (``dev`` is not: test tools, not what users install)
PINNED_EXTRAS = ("embedded",)
#: the extras the virtualenv gets
EXTRAS = ("dev", "embedded")
#: integration tests run on the pinned versions, one or more per library whose API the code uses
INTEGRATION = (
    "tests/web/test_api.py",  # websockets server + process_request, redis-py, hiredis packing
    "tests/web/test_ingest.py",  # web/http_body.py on websockets' connection internals; aiokafka
    "tests/web/test_session.py",  # websockets sessions and broadcast(text=True)
    "tests/leaderboard/test_store.py",  # the Lua scripts through register_script
    "tests/broker/test_topics.py",  # aiokafka's admin client
    "tests/stream/test_pipeline.py",  # faust-streaming's worker and agent on aiokafka
    "tests/deliver/test_deliverer.py",  # aiohttp's client with the guarded connector
)
#: a lower bound is what one of these operators admits as the oldest version
_LOWER = (">=", "==", "~=", "===")


def lower_bound(req: Requirement) -> str:
    """The oldest version ``req`` admits, as written (``>=1.2.3`` → ``1.2.3``).

    Raises:
        ValueError: ``req`` states no lower bound (every dependency must: the oldest version it
            admits is the one this check installs).
    """
    found = [s.version for s in req.specifier if s.operator in _LOWER]
    if len(found) != 1:
        raise ValueError(f"{req}: needs exactly one lower bound (>=, ==, ~=), found {found}")
    return found[0].removesuffix(".*")


def requirements(project: Mapping[str, Any]) -> list[Requirement]:
    """The requirements whose lower bounds are pinned: runtime and :data:`PINNED_EXTRAS`."""
    table = project["project"]
    lines = list(table["dependencies"])
    for extra in PINNED_EXTRAS:
        lines += table["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


def pins(project: Mapping[str, Any]) -> dict[str, str]:
    """``{canonical name: oldest admitted version}`` for every pinned requirement."""
    return {canonicalize_name(r.name): lower_bound(r) for r in requirements(project)}


def load_project(root: Path = ROOT) -> dict[str, Any]:
    return tomllib.loads((root / "pyproject.toml").read_text())


def _run(argv: Sequence[str], **kwargs: Any) -> None:
    print("+", " ".join(argv), flush=True)
    subprocess.run(list(argv), check=True, **kwargs)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--python", default=sys.executable, help="interpreter for the virtualenv")
    ap.add_argument(
        "--pin",
        action="append",
        default=[],
        metavar="NAME==VERSION",
        help="probe another version of one dependency (also below its bound)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the virtualenv and print its path")
    ap.add_argument("pytest_args", nargs="*", help="after --: passed to both pytest runs")
    args = ap.parse_args(argv)

    pinned = pins(load_project())
    # probes below a bound: installed over the pinned set with --no-deps (the project's own
    # requirement would refuse them), after `pip check` has seen the pinned set whole
    probes: dict[str, str] = {}
    for override in args.pin:
        name, _, version = override.partition("==")
        probes[canonicalize_name(name)] = version

    tmp = Path(tempfile.mkdtemp(prefix="kudos-min-deps-"))
    venv, py = tmp / "venv", tmp / "venv" / "bin" / "python"
    constraints = tmp / "constraints.txt"
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in sorted(pinned.items())))
    started = time.monotonic()
    try:
        _run([args.python, "-m", "venv", str(venv)])
        pip = [str(py), "-m", "pip", "--disable-pip-version-check"]
        _run([*pip, "install", "-qq", "--upgrade", "pip"])
        # editable, as `make install` does: the tests import the source tree either way
        _run([*pip, "install", "-qq", "-c", str(constraints), f"-e{ROOT}[{','.join(EXTRAS)}]"])
        _run([*pip, "check"])
        if probes:
            _run([*pip, "install", "-qq", "--no-deps", *(f"{n}=={v}" for n, v in probes.items())])
            pinned = {**pinned, **probes}
        _check_installed(py, pinned)
        # its own Kudos home and no KUDOS_* of the caller's: only the test fixtures configure it
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUDOS_")}
        env["KUDOS_HOME"] = str(tmp / "home")
        pytest = [str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider", *args.pytest_args]
        _run([*pytest, "-m", "not integration"], cwd=ROOT, env=env)
        _run([*pytest, *INTEGRATION], cwd=ROOT, env=env)
    except subprocess.CalledProcessError as exc:
        print(f"min-deps: FAILED ({exc.cmd[2:5]}...) on {_pin_line(pinned)}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"min-deps: virtualenv kept at {venv}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"min-deps: passed in {time.monotonic() - started:.0f} s on {_pin_line(pinned)}")
    return 0


def _pin_line(pinned: Mapping[str, str]) -> str:
    return " ".join(f"{n}=={v}" for n, v in sorted(pinned.items()))


def _check_installed(py: Path, pinned: Mapping[str, str]) -> None:
    """Fail unless the virtualenv holds exactly the pinned versions (a constraint pip could not
    honour fails the install already; this also catches a pin that named nothing installed)."""
    code = "import importlib.metadata as m, sys\nfor n in sys.argv[1:]: print(m.version(n))"
    out = subprocess.run(
        [str(py), "-c", code, *pinned], check=True, capture_output=True, text=True
    ).stdout.split()
    for (name, want), got in zip(pinned.items(), out, strict=True):
        if Version(got) != Version(want):
            raise SystemExit(f"min-deps: {name} {got} is installed, the pin is {want}")


if __name__ == "__main__":
    sys.exit(main())
