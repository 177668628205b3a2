"""Wait in a test for a fact, instead of sleeping for a guess at how long it takes.

``await eventually(check, what="...")`` calls ``check`` — a plain function or an ``async`` one, with
no arguments — again and again, ``interval`` seconds apart, and this is the whole contract:

- ``check`` returns something **falsy**: not yet, call it again;
- ``check`` returns something **truthy**: done, and that value is what ``eventually`` returns (so a
  check can hand back what it found: a record, a scrape, a line);
- ``check`` **raises**: that exception propagates at once, whatever it is (``AssertionError``
  too). A check reports "not yet" only by returning a falsy value, never by raising;
- ``timeout`` seconds after the start — time spent inside ``check`` counts, and a check still
  running then is cancelled — ``eventually`` raises ``AssertionError``, whose message says what
  was awaited (``what``), how long, the last value ``check`` returned and, when given,
  ``details()`` (called only then: logs, frames, the state held at that moment).

A check that itself blocks (reads the next frame or line) may use ``interval=0``.

``eventually_sync`` is the same for plain (not async) tests; it cannot cancel a check, so a check
that blocks there must bound itself.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

T = TypeVar("T")

#: Defaults: generous for a loaded CI machine; a test that waits for longer says so.
TIMEOUT_S = 20.0
INTERVAL_S = 0.05


class _Nothing:
    def __repr__(self) -> str:
        return "(none: the first call had not returned)"


_NOTHING = _Nothing()


def _failure(
    what: str, timeout: float, last: object, details: Callable[[], str] | None
) -> AssertionError:
    message = f"not within {timeout:g} s: {what}\nlast value: {last!r}"
    if details is not None:
        message += f"\n{details()}"
    return AssertionError(message)


# a check returning ``X | None`` makes ``eventually`` return ``X``: it never returns a falsy value
@overload
async def eventually(
    check: Callable[[], Awaitable[T | None]],
    *,
    timeout: float = ...,
    interval: float = ...,
    what: str = ...,
    details: Callable[[], str] | None = ...,
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T | None],
    *,
    timeout: float = ...,
    interval: float = ...,
    what: str = ...,
    details: Callable[[], str] | None = ...,
) -> T: ...


async def eventually(
    check: Callable[[], object],
    *,
    timeout: float = TIMEOUT_S,
    interval: float = INTERVAL_S,
    what: str = "the check to return a truthy value",
    details: Callable[[], str] | None = None,
) -> object:
    """The first truthy value ``check`` returns, within ``timeout`` seconds (see the module)."""
    last: object = _NOTHING
    scope = asyncio.timeout(timeout)
    try:
        async with scope:
            while True:
                value = check()
                if inspect.isawaitable(value):
                    value = await value
                if value:
                    return value
                last = value
                await asyncio.sleep(interval)
    except TimeoutError:
        if not scope.expired():
            raise  # the check's own timeout, not ours: an error like any other
        raise _failure(what, timeout, last, details) from None


def eventually_sync(
    check: Callable[[], T | None],
    *,
    timeout: float = TIMEOUT_S,
    interval: float = INTERVAL_S,
    what: str = "the check to return a truthy value",
    details: Callable[[], str] | None = None,
) -> T:
    """:func:`eventually` for plain tests: the same contract, except that a check already
    running at the timeout is let finish (it is called no more)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise _failure(what, timeout, value, details)
        time.sleep(interval)
