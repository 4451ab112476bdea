"""urllib.request.urlopen against a local HTTP server that never answers:
in a worker under patch mode, cancelling the job ends the read, the
connection is closed (the server sees it go) and the worker is freed."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.request

import pytest
from client_fixtures import silent_http  # noqa: F401
from conftest import JOIN_TIMEOUT, requires_core
from patch_fixtures import Job, patched, run_with_install_patch  # noqa: F401

import aiocancel

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "examples", "urllib_hang.py")


@requires_core
def test_example_runs():
    out = subprocess.run([sys.executable, EXAMPLE], capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.decode().splitlines() == [
        "urlopen cancelled by the timeout",
        "worker free: yes",
        "server saw the connection closed: True"]


@requires_core
@pytest.mark.usefixtures("patched")
def test_urlopen_in_worker_cancelled_connection_closed(silent_http):
    ex = aiocancel.Executor(max_workers=1)
    try:
        job = Job(ex, urllib.request.urlopen, silent_http.url)
        job.wait_blocked("recvfrom")        # the request went out; no reply
        job.cancel_and_check()
        assert silent_http.closed.acquire(timeout=JOIN_TIMEOUT)
        assert silent_http.requests[0].startswith(b"GET / HTTP/1.1\r\n")
        assert ex.submit(lambda: "free").result(JOIN_TIMEOUT) == "free"
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


@requires_core
def test_urlopen_through_asyncio_timeout(silent_http):
    async def main():
        aiocancel.install(executor=aiocancel.Executor(max_workers=1), patch=True)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await asyncio.to_thread(urllib.request.urlopen, silent_http.url)
        assert await asyncio.wait_for(asyncio.to_thread(lambda: 1), JOIN_TIMEOUT) == 1
    run_with_install_patch(main)
    assert silent_http.closed.acquire(timeout=JOIN_TIMEOUT)
