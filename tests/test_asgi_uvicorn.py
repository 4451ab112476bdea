"""aiocancel.asgi.CancelOnDisconnect under a real uvicorn process: the
Starlette example's sync endpoint, blocked on its backend, is freed when
the client disconnects."""
from __future__ import annotations

import os
import socket

import pytest

from conftest import REPO_ROOT, requires_core
from uvicorn_helpers import Uvicorn, freed_on_disconnect, upstream  # noqa: F401

pytest.importorskip("starlette", reason="starlette is not installed")
pytest.importorskip("uvicorn", reason="uvicorn is not installed")


@requires_core
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_starlette_endpoint_freed_on_disconnect(upstream: socket.socket,  # noqa: F811
                                                loop: str) -> None:
    host, port = upstream.getsockname()
    server = Uvicorn("anyio_starlette:app_from_env", os.path.join(REPO_ROOT, "examples"),
                     {"BACKEND_ADDRESS": f"{host}:{port}", "DEADLINE": "60"},
                     ("--factory", "--loop", loop))
    try:
        freed_on_disconnect(server, "/backend", upstream)
        # A second request is served: the worker thread was given back.
        freed_on_disconnect(server, "/backend", upstream)
    finally:
        code = server.stop()
    assert code == 0
