"""The Django example project under a real uvicorn process: a sync view
blocked on a socket is freed when its client disconnects."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Iterator

import pytest

from conftest import REPO_ROOT, requires_core

pytest.importorskip("django", reason="Django is not installed")
pytest.importorskip("uvicorn", reason="uvicorn is not installed")

PROJECT = os.path.join(REPO_ROOT, "examples", "django_project")
DEADLINE = 5.0
START_TIMEOUT = 30.0


class Server:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.dir = tempfile.mkdtemp(prefix="aiocancel-django-")
        self.path = os.path.join(self.dir, "uvicorn.sock")
        env = dict(os.environ, AIOCANCEL_UPSTREAM=f"{upstream[0]}:{upstream[1]}")
        self.log = open(os.path.join(self.dir, "log"), "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--uds", self.path, "--no-access-log",
             "asgi:application"],
            cwd=PROJECT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self.proc.poll() is None, self.output()
            try:
                self.connect().close()
                break
            except OSError:
                assert time.monotonic() < deadline, self.output()
                time.sleep(0.05)

    def connect(self) -> socket.socket:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(DEADLINE)
        s.connect(self.path)
        return s

    def get(self, path: str) -> bytes:
        with self.connect() as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            chunks = []
            while chunk := s.recv(4096):
                chunks.append(chunk)
        return b"".join(chunks)

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(START_TIMEOUT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.log.close()


@pytest.fixture
def upstream() -> Iterator[socket.socket]:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(START_TIMEOUT)
    yield listener
    listener.close()


@requires_core
def test_view_freed_on_disconnect(upstream: socket.socket) -> None:
    server = Server(upstream.getsockname())
    try:
        assert server.get("/ping/").startswith(b"HTTP/1.1 200")
        client = server.connect()
        client.sendall(b"GET /block/ HTTP/1.1\r\nHost: x\r\n\r\n")
        view_side, _ = upstream.accept()       # the view waits for a reply
        view_side.settimeout(DEADLINE)
        start = time.monotonic()
        client.close()                         # the client goes away
        # The view's recv was interrupted and its `with` closed the socket.
        assert view_side.recv(1) == b""
        assert time.monotonic() - start < DEADLINE
        view_side.close()
        deadline = time.monotonic() + DEADLINE
        while "block view freed: Cancelled" not in server.output():
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.02)
        response = server.get("/ping/")
        assert response.startswith(b"HTTP/1.1 200") and b"pong" in response
    finally:
        code = server.stop()
    assert code == 0          # and the server exits: no thread holds it
