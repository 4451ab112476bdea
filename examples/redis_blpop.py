"""Cancel redis-py's blocking BLPOP from asyncio, with aiocancel's patch mode.

redis-py is a blocking client: awaited through ``asyncio.to_thread`` it
occupies a worker thread, and ``BLPOP key 0`` waits forever in ``recv``. With
``aiocancel.install(patch=True)`` the socket methods redis-py calls are
cancellation points in the loop's (now aiocancel) workers: when the awaiting
task is cancelled (here by ``asyncio.timeout``), the ``recv`` fails with
``aiocancel.Cancelled``, redis-py treats it as a dropped connection and
closes the socket, and the worker is free for the next job.

    python examples/redis_blpop.py [redis://127.0.0.1:6379/0]

Install the patch before importing redis: redis-py binds ``time.sleep`` at
import time (for its retry back-off). (redis-py 8 also gives its sockets a
5 s default timeout, after which ``BLPOP key 0`` raises TimeoutError;
earlier versions wait forever. Either way the cancellation acts at once.)
"""
from __future__ import annotations

import asyncio
import sys
import time

import aiocancel

KEY = "aiocancel:example:queue"


async def main(url: str) -> None:
    # One worker: if the cancelled job kept it, the next job could not run.
    aiocancel.install(executor=aiocancel.Executor(max_workers=1), patch=True)
    import redis

    client = redis.Redis.from_url(url)
    client.delete(KEY)
    try:
        async with asyncio.timeout(0.5):
            await asyncio.to_thread(client.blpop, [KEY], 0)
    except TimeoutError:
        print("BLPOP cancelled by the timeout")
    print("worker free:", await asyncio.to_thread(lambda: "yes"))
    # The server saw the cancelled connection close: nobody blocks on KEY.
    deadline = time.monotonic() + 10
    while client.info("clients")["blocked_clients"] and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    print("blocked clients on the server:", client.info("clients")["blocked_clients"])
    client.rpush(KEY, "job-1")
    print("next BLPOP:", await asyncio.to_thread(client.blpop, [KEY], 0))
    client.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/0"))
