"""An Executor starts a thread only when no worker is there for a job: its
thread count never exceeds the number of jobs ever in flight at once, even
with a huge max_workers (the anyio pool's case). to_thread jobs make the
bound exact: their worker counts itself free before the caller can learn
that the job ended."""
from __future__ import annotations

import asyncio

import aiocancel

IN_FLIGHT = 64


def _noop() -> None:
    pass


def test_threads_bounded_by_jobs_in_flight_to_thread():
    executor = aiocancel.Executor(max_workers=100_000)

    async def main() -> None:
        aiocancel.install(asyncio.get_running_loop(), executor)

        async def caller() -> None:
            for _ in range(100):
                await aiocancel.to_thread(_noop)

        await asyncio.gather(*(caller() for _ in range(IN_FLIGHT)))

    try:
        asyncio.run(main())
        assert 1 <= len(executor._threads) <= IN_FLIGHT
    finally:
        executor.shutdown(wait=True)
