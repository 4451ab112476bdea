"""Calls that must NOT type-check (tests/test_typing.py expects exactly the
errors marked ``# E: <error code>`` on their lines, as asyncio's own
to_thread and ThreadPoolExecutor.submit would give)."""
from __future__ import annotations

import aiocancel
from aiocancel import syscalls


def count(data: bytes, sep: bytes = b"\n") -> int:
    return data.count(sep)


async def main() -> None:
    await aiocancel.to_thread(len, 1, 2)  # E: call-arg
    await aiocancel.to_thread(count, "text")  # E: arg-type
    await aiocancel.to_thread(count, b"x", sepp=b"")  # E: call-arg
    wrong: str = await aiocancel.to_thread(count, b"x")  # E: arg-type
    with aiocancel.Executor() as executor:
        executor.submit(len, 1, 2)  # E: call-arg
        executor.submit(count, 3)  # E: arg-type
    syscalls.read("fd", 1)  # E: arg-type
    syscalls.read(0, "1")  # E: arg-type
