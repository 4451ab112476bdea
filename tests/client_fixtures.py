"""Servers for the real-client tests (test_clients_*.py): a redis-server on
a free loopback port in a temporary directory, and an HTTP server that never
answers. Both are started by the test and stopped afterwards."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time

import pytest
from conftest import JOIN_TIMEOUT

NO_REDIS = os.environ.get("AIOCANCEL_NO_REDIS", "") == "1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """redis://127.0.0.1:<port>/0 of a redis-server private to the module.

    A missing redis-server fails the test (CI installs it) unless
    AIOCANCEL_NO_REDIS=1 says to skip."""
    exe = shutil.which("redis-server")
    if exe is None:
        if NO_REDIS:
            pytest.skip("redis-server not installed (AIOCANCEL_NO_REDIS=1)")
        pytest.fail("redis-server not found: install it (Debian: apt-get install "
                    "redis-server) or set AIOCANCEL_NO_REDIS=1 to skip these tests")
    workdir = tmp_path_factory.mktemp("redis")
    for _ in range(3):           # a port taken between probe and bind: retry
        port = _free_port()
        log = open(workdir / "redis.log", "ab")
        proc = subprocess.Popen(
            [exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
             "--save", "", "--appendonly", "no", "--daemonize", "no"],
            stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
        deadline = time.monotonic() + JOIN_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            if _redis_ping(port):
                break
            time.sleep(0.02)
        if proc.poll() is None and _redis_ping(port):
            break
        proc.kill()
        proc.wait()
        log.close()
    else:
        pytest.fail(f"redis-server did not start; see {workdir / 'redis.log'}")
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(JOIN_TIMEOUT)
        log.close()


@pytest.fixture
def redis_module():
    """redis-py, imported (if not yet) after aiocancel.patch(): it binds
    time.sleep at import for its retry back-off."""
    try:
        import redis
    except ImportError:
        if NO_REDIS:
            pytest.skip("redis-py not installed (AIOCANCEL_NO_REDIS=1)")
        pytest.fail("redis-py not installed: pip install -e '.[test]'")
    return redis


class SilentHTTPServer:
    """Accepts connections and reads requests, never answers. `closed`
    counts connections the client closed."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = "http://%s:%d/" % self.sock.getsockname()
        self.requests: list[bytes] = []
        self.closed = threading.Semaphore(0)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    def _drain(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
            self.requests.append(data)
        self.closed.release()

    def close(self) -> None:
        # shutdown, unlike close, wakes the accept() blocked in _serve (Linux)
        self.sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(JOIN_TIMEOUT)
        self.sock.close()


@pytest.fixture
def silent_http():
    server = SilentHTTPServer()
    yield server
    server.close()
