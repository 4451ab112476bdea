"""aiocancel.trio: trio.to_thread.run_sync on cancellable workers, with
trio's own semantics."""
from __future__ import annotations

import os
import threading
import time
from typing import Iterator

import pytest

import aiocancel
from conftest import requires_core
import aiocancel.trio

trio = pytest.importorskip("trio", reason="trio is not installed")
pytest.importorskip("anyio", reason="aiocancel.trio runs on the anyio trio backend")

DEADLINE = 5.0


@pytest.fixture
def installed() -> Iterator[None]:
    original = trio.to_thread.run_sync
    aiocancel.trio.install()
    try:
        assert trio.to_thread.run_sync is aiocancel.trio.run_sync
        yield
    finally:
        aiocancel.trio.uninstall()
    assert trio.to_thread.run_sync is original


@requires_core
@pytest.mark.parametrize("abandon", [False, True], ids=["wait", "abandon"])
def test_move_on_after_frees_the_thread(installed: None, abandon: bool) -> None:
    """A read under move_on_after: the block exits promptly, and no thread
    is left blocked in the read (a byte written later reaches the test)."""
    r, w = os.pipe()
    entered = threading.Event()
    results: list[object] = []

    def read() -> bytes:
        entered.set()
        return aiocancel.syscalls.read(r, 1)

    async def main() -> None:
        start = time.monotonic()
        with trio.move_on_after(0.2) as scope:
            results.append(await trio.to_thread.run_sync(
                read, abandon_on_cancel=abandon))
        assert scope.cancelled_caught
        assert time.monotonic() - start < DEADLINE
        # With abandon, trio returned before the worker; give it the time.
        limiter = trio.to_thread.current_default_thread_limiter()
        deadline = time.monotonic() + DEADLINE
        while limiter.borrowed_tokens:
            assert time.monotonic() < deadline, "the worker still holds its token"
            await trio.sleep(0.01)

    try:
        trio.run(main)
        assert entered.is_set() and results == []
        os.write(w, b"x")
        assert os.read(r, 1) == b"x"
    finally:
        os.close(r)
        os.close(w)


def test_result_and_from_thread(installed: None) -> None:
    """Values, exceptions and trio.from_thread work as in trio's threads."""
    async def main() -> None:
        token_task = trio.lowlevel.current_task()

        def back_in_trio() -> object:
            return trio.from_thread.run_sync(trio.lowlevel.current_task)

        assert await trio.to_thread.run_sync(lambda: 6 * 7) == 42
        assert await trio.to_thread.run_sync(back_in_trio) is token_task
        with pytest.raises(ZeroDivisionError):
            await trio.to_thread.run_sync(lambda: 1 / 0)

    trio.run(main)
