"""redis-py against a real redis-server: a BLPOP key 0 blocked in a worker
is cancelled through patch mode, the worker is freed, the connection is
discarded cleanly (the server stops counting a blocked client, the next
command on the same client works), and nothing was popped.

Needs redis-server (Debian package) and redis-py (the test extra); without
redis-server the tests fail unless AIOCANCEL_NO_REDIS=1."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from client_fixtures import redis_module, redis_url  # noqa: F401
from conftest import JOIN_TIMEOUT, requires_core, wait_until
from patch_fixtures import Job, patched, run_with_install_patch  # noqa: F401

import aiocancel

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "examples", "redis_blpop.py")


@requires_core
def test_example_runs(redis_url):
    out = subprocess.run([sys.executable, EXAMPLE, redis_url], capture_output=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.decode().splitlines() == [
        "BLPOP cancelled by the timeout",
        "worker free: yes",
        "blocked clients on the server: 0",
        "next BLPOP: (b'aiocancel:example:queue', b'job-1')"]


@requires_core
@pytest.mark.usefixtures("patched")
def test_blpop_in_worker_cancelled_connection_discarded(redis_url, redis_module):
    client = redis_module.Redis.from_url(redis_url)
    key = "aiocancel:test:blpop"
    client.delete(key)
    ex = aiocancel.Executor(max_workers=1)
    try:
        job = Job(ex, client.blpop, [key], 0)
        wait_until(lambda: client.info("clients")["blocked_clients"] == 1,
                   what="the server to see BLPOP block")
        (blocked,) = [c["id"] for c in client.client_list() if c["cmd"] == "blpop"]
        # redis-py 8 gives sockets a 5 s timeout (the read then waits in
        # ppoll, and BLPOP 0 gives up after 5 s); older ones block in recvfrom.
        job.wait_blocked_in_any("recvfrom", "ppoll")
        job.cancel_and_check()
        # freed: the single worker runs the next job
        assert ex.submit(lambda: "free").result(JOIN_TIMEOUT) == "free"
        # discarded: the server saw that connection go; nobody blocks any more
        wait_until(lambda: blocked not in [c["id"] for c in client.client_list()],
                   what="the server to drop the cancelled connection")
        assert client.info("clients")["blocked_clients"] == 0
        # nothing was popped, and the client (its pool) works on
        client.rpush(key, "a")
        assert client.llen(key) == 1
        assert ex.submit(client.blpop, [key], 0).result(JOIN_TIMEOUT) == (
            key.encode(), b"a")
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
        client.close()


@requires_core
def test_blpop_through_asyncio_to_thread_with_install_patch(redis_url, redis_module):
    async def main():
        aiocancel.install(executor=aiocancel.Executor(max_workers=1), patch=True)
        client = redis_module.Redis.from_url(redis_url)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await asyncio.to_thread(client.blpop, ["aiocancel:test:async"], 0)
        # the same single worker is free again
        assert await asyncio.wait_for(asyncio.to_thread(client.ping), JOIN_TIMEOUT)
        client.close()
    run_with_install_patch(main)
