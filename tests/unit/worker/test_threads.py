from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from dtask_async.worker._threads import ThreadRunner

REQUEST = contextvars.ContextVar("REQUEST", default="none")


async def test_results_and_exceptions_come_back() -> None:
    runner = ThreadRunner(2)
    assert await runner.run(lambda a, b: a + b, 2, 3) == 5
    with pytest.raises(ZeroDivisionError):
        await runner.run(lambda: 1 / 0)
    runner.close()


async def test_never_more_threads_than_the_limit() -> None:
    runner = ThreadRunner(3)
    active = 0
    peak = 0
    lock = threading.Lock()
    gate = threading.Event()

    def work(i: int) -> int:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        gate.wait(5)
        with lock:
            active -= 1
        return i

    tasks = [asyncio.ensure_future(runner.run(work, i)) for i in range(20)]
    await asyncio.sleep(0.05)
    gate.set()
    assert await asyncio.gather(*tasks) == list(range(20))
    assert peak == 3
    assert threading.current_thread().name == "MainThread"
    runner.close()


async def test_calls_run_off_the_loop_thread_with_the_callers_context() -> None:
    runner = ThreadRunner(1)
    REQUEST.set("abc")
    name, value = await runner.run(lambda: (threading.current_thread().name, REQUEST.get()))
    assert name.startswith("dtask-activity")
    assert value == "abc"
    runner.close()


async def test_a_cancelled_caller_does_not_break_later_calls() -> None:
    runner = ThreadRunner(1)
    gate = threading.Event()
    slow = asyncio.ensure_future(runner.run(gate.wait, 5))
    await asyncio.sleep(0.01)
    slow.cancel()
    gate.set()
    assert await runner.run(lambda: "next") == "next"
    runner.close()
    with pytest.raises(RuntimeError, match="closed"):
        await runner.run(lambda: None)


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_threads"):
        ThreadRunner(0)
