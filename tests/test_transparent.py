"""Transparent mode (aiocancel.transparent): blocking syscalls inside foreign
C code — glibc called by CPython or ctypes, OpenSSL, requests — become
cancellation points for workers that opt in, and only for them."""
from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import errno
import os
import random
import signal
import socket
import ssl
import sys
import threading
import time

import pytest

import aiocancel
from aiocancel import _cancel
from conftest import fd_count, wait_blocked

pytestmark = [
    pytest.mark.skipif(not aiocancel.SUPPORTED,
                       reason="fallback mode interrupts nothing"),
    # aarch64: transparent mode refuses there (tests/test_transparent_refusal.py)
    pytest.mark.skipif(aiocancel.transparent.UNSUPPORTED_REASON is not None,
                       reason=str(aiocancel.transparent.UNSUPPORTED_REASON)),
]

libc = ctypes.CDLL(None, use_errno=True)
JOIN = 20.0


class Probe:
    """Runs `fn(reached)` as a job on a transparent Executor; `fn` calls
    `reached()` just before the blocking call the test is about."""

    def __init__(self, executor: aiocancel.Executor, fn) -> None:
        self.started = threading.Event()
        self.at_point = threading.Event()
        self.info: dict = {}

        def job():
            self.info["tid"] = threading.get_native_id()
            self.started.set()
            try:
                return fn(self.at_point.set)
            finally:
                self.info["state_after"] = aiocancel.getcancelstate()

        self.future = executor.submit(job)
        assert self.started.wait(JOIN)

    def cancel_when_blocked(self, also: threading.Event | None = None):
        assert self.at_point.wait(JOIN)
        if also is not None:
            assert also.wait(JOIN)
        wait_blocked(self.info["tid"])
        # Running: cancel() is False, as the stdlib's, yet the request is sent.
        assert not self.future.cancel()
        return self.future


def ended_cancelled(future) -> bool:
    """A running job whose cancel() was False (the stdlib's answer) ended
    with the error it raised once the request acted."""
    exc = future.exception(JOIN)
    return isinstance(exc, (aiocancel.Cancelled, aiocancel.ThreadCancelled)) or (
        exc is not None and future._job.acted)


@pytest.fixture
def executor():
    ex = aiocancel.Executor(1, transparent=True)
    yield ex
    ex.shutdown(wait=True, cancel_futures=True)


def test_ctypes_libc_read_is_cancelled(executor, pipe):
    r, w = pipe
    buf = ctypes.create_string_buffer(1)

    def foreign_read(reached):
        reached()
        return libc.read(r, buf, 1), ctypes.get_errno()

    future = Probe(executor, foreign_read).cancel_when_blocked()
    # The job returned a value (libc's -1/ECANCELED): not counted as cancelled.
    assert future.result(JOIN) == (-1, errno.ECANCELED)
    os.write(w, b"z")
    assert os.read(r, 1) == b"z"          # the pipe is intact


def test_one_off_foreign_retry_does_not_spin(executor, pipe):
    r, w = pipe
    failures = []

    def retrying_read(reached):
        reached()
        while True:
            try:
                return os.read(r, 1)
            except OSError as exc:        # code that retries on any error
                failures.append(exc.errno)

    probe = Probe(executor, retrying_read)
    probe.cancel_when_blocked()
    # After the first ECANCELED the thread is DISABLE: the retry blocks
    # again instead of failing in a loop.
    deadline = time.monotonic() + JOIN
    while not failures and time.monotonic() < deadline:
        time.sleep(0.001)
    wait_blocked(probe.info["tid"])
    os.write(w, b"k")
    assert probe.future.result(JOIN) == b"k"
    assert failures == [errno.ECANCELED]
    assert probe.info["state_after"] == aiocancel.CANCEL_DISABLE


@pytest.mark.parametrize("call", ["select", "poll", "sleep", "epoll"])
def test_eintr_style_foreign_waits_are_cancelled(executor, pipe, call):
    import select
    r, _ = pipe

    def wait(reached):
        reached()
        if call == "select":
            return select.select([r], [], [])
        if call == "poll":
            p = select.poll()
            p.register(r, select.POLLIN)
            return p.poll()
        if call == "epoll":
            with select.epoll() as ep:
                ep.register(r, select.EPOLLIN)
                return ep.poll()
        return time.sleep(60)

    future = Probe(executor, wait).cancel_when_blocked()
    with pytest.raises(Exception):
        future.result(JOIN)
    assert ended_cancelled(future)        # raised after ECANCELED: cancelled


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    cafile = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    return server, client, str(cafile)


@contextlib.contextmanager
def stalling_server(server_ctx=None, greeting=b"", read_request=False):
    """A loopback server that accepts one client, optionally completes a TLS
    handshake, sends `greeting`, optionally reads a request (then sets
    `.request_seen`), then goes silent until the test ends. Yields
    (address, request_seen)."""
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()
    request_seen = threading.Event()
    conns = []

    def serve():
        conn, _ = listener.accept()
        conns.append(conn)
        # The client is cancelled mid-protocol by design: its aborts are not
        # this server's business.
        with contextlib.suppress(OSError):
            if server_ctx is not None:
                conn = server_ctx.wrap_socket(conn, server_side=True)
                conns.append(conn)
            if greeting:
                conn.sendall(greeting)
            if read_request:
                conn.recv(65536)
                request_seen.set()
        done.wait()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname(), request_seen
    finally:
        done.set()
        thread.join(JOIN)
        for conn in conns:
            conn.close()
        listener.close()


@pytest.mark.parametrize("suppress_ragged_eofs", [False, True])
def test_ssl_recv_from_a_silent_peer_is_cancelled(executor, tls, suppress_ragged_eofs):
    """The read under SSL_read fails with ECANCELED. CPython 3.13's ssl
    raises it as OSError(ECANCELED); 3.11 and 3.12 report it as an
    unexpected EOF (SSLEOFError), which the default suppress_ragged_eofs=True
    turns into b"". Either way the worker is freed at once and the
    connection is closed by its owner, not leaked."""
    server_ctx, client_ctx, _ = tls
    baseline = fd_count()
    foreign = _cancel._stats()["foreign"]
    with stalling_server(server_ctx, greeting=b"hello") as (addr, _):
        def client(reached):
            with socket.create_connection(addr) as raw:
                with client_ctx.wrap_socket(
                        raw, server_hostname="127.0.0.1",
                        suppress_ragged_eofs=suppress_ragged_eofs) as s:
                    assert s.recv(5) == b"hello"
                    reached()
                    return s.recv(1)      # the peer never sends again

        future = Probe(executor, client).cancel_when_blocked()
        if suppress_ragged_eofs and sys.version_info < (3, 13):
            assert future.result(JOIN) == b""
        else:                             # raised after ECANCELED: cancelled
            with pytest.raises(Exception):
                future.result(JOIN)
            assert ended_cancelled(future)
    assert _cancel._stats()["foreign"] == foreign + 1
    assert fd_count() == baseline


def test_tls_handshake_with_a_mute_server_is_cancelled(executor, tls):
    _, client_ctx, _ = tls
    baseline = fd_count()
    with stalling_server() as (addr, _):  # plain TCP: never answers hello
        def handshake(reached):
            with socket.create_connection(addr) as raw:
                reached()
                with client_ctx.wrap_socket(raw, server_hostname="127.0.0.1"):
                    return "connected"

        future = Probe(executor, handshake).cancel_when_blocked()
        with pytest.raises(Exception):
            future.result(JOIN)
        assert ended_cancelled(future)
    assert fd_count() == baseline


def test_requests_get_against_a_stalled_https_server_is_cancelled(executor, tls):
    requests = pytest.importorskip("requests")
    server_ctx, _, cafile = tls
    baseline = fd_count()
    with stalling_server(server_ctx, read_request=True) as ((host, port), seen):
        def get(reached):
            reached()
            return requests.get(f"https://{host}:{port}/", verify=cafile)

        # Cancel while the client waits for the response.
        future = Probe(executor, get).cancel_when_blocked(also=seen)
        with pytest.raises(Exception) as info:
            future.result(JOIN)
        assert ended_cancelled(future), info.value
    assert fd_count() == baseline
    # The worker is free: the next job runs.
    assert executor.submit(lambda: 42).result(JOIN) == 42


def test_race_foreign_read_with_data_loses_no_byte(pipe):
    """≥ 20,000 transparent cancels landing at random moments around a glibc
    read() that has data: every byte written is either returned or still in
    the pipe, and each read either returned or failed, never both."""
    r, w = pipe
    iterations = 20_000
    go = threading.Semaphore(0)
    done = threading.Semaphore(0)
    job = {}
    got = bytearray()
    outcomes = {"data": 0, "cancelled": 0}

    def worker():
        _cancel._set_transparent(True)
        for _ in range(iterations):
            job["id"] = _cancel._job_begin()
            go.release()
            try:
                data = os.read(r, 64)
            except OSError as exc:
                assert exc.errno == errno.ECANCELED
                outcomes["cancelled"] += 1
            else:
                assert data
                got.extend(data)
                outcomes["data"] += 1
            _cancel._job_end()
            done.release()

    thread = threading.Thread(target=worker)
    thread.start()
    rnd = random.Random(8)
    written = 0
    for _ in range(iterations):
        assert go.acquire(timeout=JOIN)
        n = rnd.randint(1, 3)
        if rnd.random() < 0.5:
            written += os.write(w, b"x" * n)
            for _ in range(rnd.randrange(200)):
                pass
            _cancel._cancel_job(*job["id"])
        else:
            # Cancel first; the request travels through the re-sender (a
            # /proc probe, then the signal), so give it a random head start
            # that sometimes beats the data and sometimes does not.
            _cancel._cancel_job(*job["id"])
            for _ in range(rnd.randrange(6000)):
                pass
            written += os.write(w, b"x" * n)
        assert done.acquire(timeout=JOIN)
    thread.join(JOIN)
    assert not thread.is_alive()
    os.set_blocking(r, False)
    left = 0
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(r, 65536):
            left += len(chunk)
    assert len(got) + left == written
    assert outcomes["data"] + outcomes["cancelled"] == iterations
    print("race outcomes", outcomes, "bytes", written)
    assert outcomes["cancelled"] > 0 and outcomes["data"] > 0


def test_off_by_default_foreign_calls_are_untouched(pipe):
    r, w = pipe
    ex = aiocancel.Executor(1)            # transparent not requested
    try:
        probe = Probe(ex, lambda reached: (reached(), os.read(r, 1))[1])
        probe.cancel_when_blocked()       # the request is sent...
        wait_blocked(probe.info["tid"])   # ...and the foreign read goes on
        os.write(w, b"a")
        assert probe.future.result(JOIN) == b"a"
        assert not probe.future.cancelled()
    finally:
        ex.shutdown()


def test_no_signal_reaches_a_non_worker_thread(executor, pipe):
    """A bystander thread, with the cancel signal blocked so that anything
    aimed at it would stay visible as pending, does foreign reads while
    transparent workers are cancelled around it."""
    r, w = pipe
    sig = aiocancel.cancel_signal()
    report = {}
    ready = threading.Event()
    stop = threading.Event()
    br, bw = os.pipe()

    def bystander():
        signal.pthread_sigmask(signal.SIG_BLOCK, {sig})
        ready.set()
        n = 0
        while not stop.is_set():
            os.write(bw, b"b")
            n += len(os.read(br, 1))
        report["reads"] = n
        report["pending"] = sig in signal.sigpending()

    thread = threading.Thread(target=bystander)
    thread.start()
    assert ready.wait(JOIN)
    for _ in range(20):
        Probe(executor, lambda reached: (reached(), os.read(r, 1))[1]).cancel_when_blocked()
    stop.set()
    thread.join(JOIN)
    os.close(br)
    os.close(bw)
    assert not thread.is_alive()
    assert report["reads"] > 0
    assert report["pending"] is False


def test_cpython_lock_wait_is_never_failed(executor):
    """A worker blocked in threading.Lock().acquire() (a futex wait) keeps
    waiting while the re-sender signals it, and gets the lock."""
    lock = threading.Lock()
    lock.acquire()
    probe = Probe(executor, lambda reached: (reached(), lock.acquire())[1])
    wait_blocked(probe.info["tid"])
    handled = _cancel._stats()["handled"]
    assert not probe.future.cancel()
    # Re-sends land in the futex wait: count the handler's runs.
    deadline = time.monotonic() + JOIN
    while _cancel._stats()["handled"] < handled + 3 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert _cancel._stats()["handled"] >= handled + 3
    lock.release()
    assert probe.future.result(JOIN) is True
    assert not probe.future.cancelled()


def test_asyncio_maps_a_foreign_ecanceled_to_cancellation(pipe):
    """install(transparent=True): a job whose foreign call failed with
    ECANCELED ends the awaiting task cancelled (TimeoutError under
    asyncio.timeout), with the job's own exception chained."""
    import asyncio
    r, w = pipe

    async def main():
        executor = aiocancel.install(transparent=True)
        with pytest.raises(TimeoutError) as info:
            async with asyncio.timeout(0.05):
                await aiocancel.to_thread(os.read, r, 1)
        chained = info.value.__context__.__cause__
        assert isinstance(chained, OSError) and chained.errno == errno.ECANCELED
        # The worker is free: the next job on the same executor runs.
        os.write(w, b"q")
        assert await aiocancel.to_thread(os.read, r, 1) == b"q"
        assert aiocancel.get_executor() is executor

    asyncio.run(main())


def test_a_recycled_slot_does_not_inherit_transparent_mode():
    """Thread slots are recycled (LIFO) when threads exit; the next thread
    must start with transparent mode off."""
    seen = []

    def transparent_thread():
        aiocancel.transparent.enable()
        seen.append(("first", aiocancel.transparent.enabled(), _cancel._worker_slot()))

    def plain_thread():
        seen.append(("second", aiocancel.transparent.enabled(), _cancel._worker_slot()))

    for target in (transparent_thread, plain_thread):
        thread = threading.Thread(target=target)
        thread.start()
        thread.join(JOIN)
        assert not thread.is_alive()
    (_, first_on, first_slot), (_, second_on, second_slot) = seen
    assert first_on is True
    assert second_slot == first_slot      # the slot really was recycled
    assert second_on is False


def test_anyio_install_transparent_cancels_a_foreign_read(pipe):
    anyio = pytest.importorskip("anyio")
    import aiocancel.anyio as aio_anyio
    r, w = pipe

    async def main():
        with anyio.move_on_after(0.05) as scope:
            await anyio.to_thread.run_sync(os.read, r, 1)
        assert scope.cancelled_caught
        os.write(w, b"t")                 # the worker is free again
        assert await anyio.to_thread.run_sync(os.read, r, 1) == b"t"

    aio_anyio.install(transparent=True)
    try:
        anyio.run(main)
    finally:
        aio_anyio.install(transparent=False)
        aio_anyio.uninstall()


def _full_pipe():
    """A pipe whose buffer is full; returns (r, w, bytes in it)."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    filled = 0
    with contextlib.suppress(BlockingIOError):
        while True:
            filled += os.write(w, b"f" * 4096)
    os.set_blocking(w, True)
    return r, w, filled


def _full_backlog():
    """A listener whose accept queue is full (listen(0) holds one), so the
    next blocking connect waits for the SYN-ACK that never comes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(8):
        c = socket.socket()
        c.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            c.connect(listener.getsockname())
        fillers.append(c)
    return listener, fillers


@pytest.mark.parametrize("call", ["write_full_pipe", "accept", "connect", "waitpid"])
def test_allow_listed_foreign_calls_are_cancelled_with_nothing_done(executor, call):
    """Foreign (glibc, via CPython) blocking calls on the allow-list: the
    cancelled call did nothing — no byte written, no connection taken, no
    child reaped — and the objects stay usable."""
    cleanup = []
    try:
        if call == "write_full_pipe":
            r, w, filled = _full_pipe()
            cleanup += [lambda: os.close(r), lambda: os.close(w)]
            fn = lambda reached: (reached(), os.write(w, b"x"))[1]
        elif call == "accept":
            listener = socket.create_server(("127.0.0.1", 0))
            cleanup.append(listener.close)
            fn = lambda reached: (reached(), listener.accept())[1]
        elif call == "connect":
            listener, fillers = _full_backlog()
            sock = socket.socket()
            cleanup += [listener.close, sock.close] + [f.close for f in fillers]
            fn = lambda reached: (reached(), sock.connect(listener.getsockname()))[1]
        else:
            import subprocess
            child = subprocess.Popen(["sleep", "60"])
            cleanup.append(lambda: (child.kill(), child.wait()))
            fn = lambda reached: (reached(), os.waitpid(child.pid, 0))[1]
        baseline = fd_count()
        future = Probe(executor, fn).cancel_when_blocked()
        with pytest.raises(Exception):
            future.result(JOIN)
        assert ended_cancelled(future)
        assert fd_count() == baseline
        if call == "write_full_pipe":
            os.set_blocking(r, False)
            drained = bytearray()
            with contextlib.suppress(BlockingIOError):
                while chunk := os.read(r, 1 << 20):
                    drained += chunk
            assert len(drained) == filled and b"x" not in drained
        elif call == "accept":
            client = socket.create_connection(listener.getsockname())
            conn, _ = listener.accept()       # the listener still works
            conn.close()
            client.close()
        elif call == "waitpid":
            assert child.poll() is None       # not reaped by the cancelled call
    finally:
        for fn in reversed(cleanup):
            with contextlib.suppress(Exception):
                fn()
