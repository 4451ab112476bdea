"""The Django example project under a real uvicorn process: a sync view
blocked on a socket is freed when its client disconnects."""
from __future__ import annotations

import os
import socket

import pytest

from conftest import REPO_ROOT, requires_core
from uvicorn_helpers import Uvicorn, freed_on_disconnect, upstream  # noqa: F401

pytest.importorskip("django", reason="Django is not installed")
pytest.importorskip("uvicorn", reason="uvicorn is not installed")

PROJECT = os.path.join(REPO_ROOT, "examples", "django_project")


@requires_core
def test_view_freed_on_disconnect(upstream: socket.socket) -> None:  # noqa: F811
    host, port = upstream.getsockname()
    server = Uvicorn("asgi:application", PROJECT, {"AIOCANCEL_UPSTREAM": f"{host}:{port}"})
    try:
        assert server.get("/ping/").startswith(b"HTTP/1.1 200")
        freed_on_disconnect(server, "/block/", upstream)
        server.wait_output("block view freed: Cancelled")
        response = server.get("/ping/")
        assert response.startswith(b"HTTP/1.1 200") and b"pong" in response
    finally:
        code = server.stop()
    assert code == 0          # and the server exits: no thread holds it
