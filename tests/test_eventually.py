"""The contract of tests/eventually.py, which every wait in the suite relies on: a helper that returned
too early would let the assertions after it run on a state not reached yet."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from tests.eventually import eventually, eventually_sync


async def test_returns_the_first_truthy_value_of_a_sync_or_async_check() -> None:
    calls = itertools.count(1)
    assert await eventually(lambda: [n] if (n := next(calls)) >= 3 else [], interval=0) == [3]

    async def check() -> int:
        return next(calls)

    assert await eventually(check) == 4


async def test_fails_after_the_timeout_naming_what_and_the_last_value() -> None:
    started = time.monotonic()
    with pytest.raises(AssertionError) as failure:
        await eventually(
            lambda: 0, timeout=0.2, interval=0.01, what="the answer", details=lambda: "see logs"
        )
    assert 0.2 <= time.monotonic() - started < 2
    assert str(failure.value) == "not within 0.2 s: the answer\nlast value: 0\nsee logs"


async def test_an_exception_of_the_check_propagates_at_once() -> None:
    calls = []

    def check() -> bool:
        calls.append(1)
        raise AssertionError("wrong, not late")

    with pytest.raises(AssertionError, match="wrong, not late"):
        await eventually(check, timeout=5)
    assert len(calls) == 1

    async def times_out() -> bool:
        raise TimeoutError  # the check's own timeout: not taken for the wait's

    with pytest.raises(TimeoutError):
        await eventually(times_out, timeout=5)


async def test_a_check_still_running_at_the_timeout_is_cancelled() -> None:
    cancelled = asyncio.Event()

    async def blocks() -> bool:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return True

    with pytest.raises(AssertionError, match=r"not within 0\.1 s: a line\nlast value: \(none"):
        await eventually(blocks, timeout=0.1, what="a line")
    assert cancelled.is_set()


def test_the_sync_variant_keeps_the_same_contract() -> None:
    calls = itertools.count(1)
    assert eventually_sync(lambda: n if (n := next(calls)) >= 3 else None, interval=0) == 3
    with pytest.raises(AssertionError, match=r"^not within 0\.1 s: a file\nlast value: False$"):
        eventually_sync(lambda: False, timeout=0.1, interval=0.01, what="a file")
    with pytest.raises(ZeroDivisionError):
        eventually_sync(lambda: 1 / 0, timeout=5)
