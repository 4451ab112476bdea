"""A real uvicorn server process on a unix socket, for end-to-end tests."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Iterator

import pytest

DEADLINE = 5.0
START_TIMEOUT = 30.0


class Uvicorn:
    """``python -m uvicorn [args] app`` run in `cwd` with `env` added,
    serving on a unix socket in a temporary directory (no port to race
    for); its output goes to a log file (`output`)."""

    def __init__(self, app: str, cwd: str, env: dict[str, str],
                 args: tuple[str, ...] = ()) -> None:
        self.dir = tempfile.mkdtemp(prefix="aiocancel-uvicorn-")
        self.path = os.path.join(self.dir, "uvicorn.sock")
        self.log = open(os.path.join(self.dir, "log"), "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--uds", self.path,
             "--no-access-log", *args, app],
            cwd=cwd, env=dict(os.environ, **env), stdout=self.log,
            stderr=subprocess.STDOUT)
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
        """One whole ``GET path`` exchange: the raw response."""
        with self.connect() as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                      .encode())
            chunks = []
            while chunk := s.recv(4096):
                chunks.append(chunk)
        return b"".join(chunks)

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def wait_output(self, text: str) -> None:
        deadline = time.monotonic() + DEADLINE
        while text not in self.output():
            assert time.monotonic() < deadline, self.output()
            time.sleep(0.02)

    def stop(self) -> int:
        """Ctrl-C, as an operator would; the exit code."""
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(START_TIMEOUT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.log.close()
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def upstream() -> Iterator[socket.socket]:
    """A listening TCP socket standing for a slow upstream service."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(START_TIMEOUT)
    yield listener
    listener.close()


def freed_on_disconnect(server: Uvicorn, path: str, upstream: socket.socket) -> None:
    """GET `path`, whose handler connects to `upstream` and waits for a
    reply; disconnect once it is waiting: the handler's socket must close
    (its blocked recv was interrupted) within DEADLINE."""
    client = server.connect()
    client.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    handler_side, _ = upstream.accept()
    handler_side.settimeout(DEADLINE)
    try:
        start = time.monotonic()
        client.close()
        assert handler_side.recv(1) == b""
        assert time.monotonic() - start < DEADLINE
    finally:
        handler_side.close()
