"""The Starlette example, and Starlette's run_in_threadpool after install()."""
from __future__ import annotations

import importlib.util
import os

import anyio
import pytest
from starlette.concurrency import run_in_threadpool

import aiocancel
from anyio_fixtures import anyio_backend, installed, reader  # noqa: F401
from conftest import REPO_ROOT, requires_core

EXAMPLE = os.path.join(REPO_ROOT, "examples", "anyio_starlette.py")


def load_example():
    spec = importlib.util.spec_from_file_location("anyio_starlette_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@requires_core
@pytest.mark.parametrize("backend", ["asyncio", "uvloop", "trio"])
def test_example_frees_workers(backend, capsys):
    example = load_example()
    assert example.main(["--backend", backend, "--deadline", "0.2",
                         "--disconnect-after", "0.05"]) == 0
    out = capsys.readouterr().out
    assert out.count("recv interrupted") == 2
    assert "response 504" in out
    assert out.rstrip().endswith("worker threads freed")


@requires_core
@pytest.mark.anyio
async def test_run_in_threadpool_is_cancellable(installed, reader):
    r = reader()
    limiter = anyio.to_thread.current_default_thread_limiter()
    with anyio.move_on_after(0.05) as scope:
        await run_in_threadpool(r)
    assert scope.cancelled_caught
    assert isinstance(r.exc, aiocancel.Cancelled)
    assert limiter.borrowed_tokens == 0
