"""aiocancel.to_thread on asyncio and uvloop: results, cancellation of
blocked calls, the pending-cancellation rule, abandon_on_cancel."""
from __future__ import annotations

import asyncio
import contextvars
import os
import socket
import threading

import pytest

import aiocancel
from aiocancel import syscalls
from asyncio_fixtures import (LOOP_MARKS, Probe, cancel_when_blocked,  # noqa: F401
                              event_loop_policy, is_uvloop,
                              spin_until_cancelled, uvloop, wait_for_state)
from conftest import JOIN_TIMEOUT, fd_count, requires_core

pytestmark = LOOP_MARKS

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


class LibraryError(Exception):
    """What a database driver raises when its socket call fails."""


def gate_job(gate: threading.Event, value=42, exc: BaseException | None = None):
    """A job that no cancellation point interrupts: it returns (or raises)
    once `gate` is set, however it was cancelled meanwhile."""
    def job():
        assert gate.wait(JOIN_TIMEOUT), "gate never opened"
        if exc is not None:
            raise exc
        return value
    return job


async def settle(n: int = 5) -> None:
    """Let the loop run a few iterations (callbacks, task steps)."""
    for _ in range(n):
        await asyncio.sleep(0)


@pytest.mark.asyncio
async def test_runs_on_the_parametrised_loop(event_loop_policy):
    loop = asyncio.get_running_loop()
    wanted = uvloop is not None and isinstance(event_loop_policy, uvloop.EventLoopPolicy)
    assert is_uvloop(loop) == wanted


@pytest.mark.asyncio
async def test_result_args_kwargs_and_worker_thread():
    def job(a, b, *, c):
        return a, b, c, threading.current_thread()

    a, b, c, thread = await aiocancel.to_thread(job, 1, 2, c=3)
    assert (a, b, c) == (1, 2, 3)
    assert thread is not threading.current_thread()
    assert thread.name.startswith("aiocancel")


@pytest.mark.asyncio
async def test_job_runs_masked():
    state = await aiocancel.to_thread(aiocancel.getcancelstate)
    assert state == aiocancel.CANCEL_MASKED


@pytest.mark.asyncio
async def test_contextvars_are_copied_like_asyncio_to_thread():
    var.set("caller")

    def job():
        seen = var.get()
        var.set("job")
        return seen

    assert await aiocancel.to_thread(job) == "caller"
    assert var.get() == "caller"


@pytest.mark.asyncio
async def test_exception_propagates_unchanged():
    error = LibraryError("boom")

    def job():
        raise error

    with pytest.raises(LibraryError) as info:
        await aiocancel.to_thread(job)
    assert info.value is error


@pytest.mark.asyncio
async def test_bad_arguments_raise_in_the_task():
    with pytest.raises(TypeError):
        await aiocancel.to_thread(syscalls.read, "not an fd", 1)
    with pytest.raises(ValueError):
        await aiocancel.to_thread(syscalls.read, 0, -1)
    with pytest.raises(TypeError):
        await aiocancel.to_thread(42)


@requires_core
@pytest.mark.asyncio
async def test_timeout_on_empty_pipe_frees_the_worker(pipe):
    r, w = pipe
    executor = aiocancel.install(executor=aiocancel.Executor(max_workers=1))
    try:
        probe = Probe(syscalls.read)
        task = asyncio.ensure_future(aiocancel.to_thread(probe, r, 1))
        await wait_for_state(probe.started.is_set, "job start")
        probe.wait_blocked("read", r)
        threads = set(threading.enumerate())
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await task
        assert isinstance(probe.exc, aiocancel.Cancelled)
        # The single worker runs the next job at once: it is free again.
        assert await aiocancel.to_thread(threading.get_native_id) == probe.native_id
        assert set(threading.enumerate()) <= threads   # no thread started
        os.write(w, b"x")                       # the pipe is still usable
        assert await aiocancel.to_thread(syscalls.read, r, 1) == b"x"
    finally:
        executor.shutdown(wait=True)


@requires_core
@pytest.mark.asyncio
async def test_timeout_on_module_executor_keeps_thread_count(pipe):
    r, _ = pipe
    await aiocancel.to_thread(int)              # the pool has an idle worker
    threads = set(threading.enumerate())
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await aiocancel.to_thread(syscalls.read, r, 1)
    # The worker counted itself idle before the task woke: no new thread.
    await aiocancel.to_thread(int)
    assert set(threading.enumerate()) <= threads   # no thread started


def _blocked_call(kind, pair, listener):
    if kind == "recv":
        return Probe(syscalls.recv), (pair[0], 10), "recvfrom", pair[0].fileno()
    if kind == "accept":
        return Probe(syscalls.accept), (listener,), "accept4", listener.fileno()
    return Probe(syscalls.sleep), (3600,), "clock_nanosleep", None


@requires_core
@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["recv", "accept", "sleep"])
async def test_task_cancel_during_blocked_call(kind):
    pair = socket.socketpair()
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        probe, args, nr, arg0 = _blocked_call(kind, pair, listener)
        exc = await cancel_when_blocked(aiocancel.to_thread(probe, *args), nr,
                                        arg0, probe)
        assert isinstance(probe.exc, aiocancel.Cancelled)
        assert exc.__cause__ is probe.exc
        # The fd is still usable.
        if kind == "recv":
            pair[1].sendall(b"ping")
            assert await aiocancel.to_thread(syscalls.recv, pair[0], 10) == b"ping"
        elif kind == "accept":
            client = socket.create_connection(listener.getsockname())
            fd, _ = await aiocancel.to_thread(syscalls.accept, listener)
            os.close(fd)
            client.close()
        else:
            assert await aiocancel.to_thread(syscalls.sleep, 0) is None
    finally:
        for s in (*pair, listener):
            s.close()


@requires_core
@pytest.mark.asyncio
async def test_cancelled_error_keeps_message_and_chains_job_error(pipe):
    r, _ = pipe
    probe = Probe(syscalls.read)
    exc = await cancel_when_blocked(aiocancel.to_thread(probe, r, 1), "read", r,
                                    probe, msg="stop reading")
    assert exc.args == ("stop reading",)
    assert isinstance(probe.exc, aiocancel.Cancelled)
    assert exc.__cause__ is probe.exc


@requires_core
@pytest.mark.asyncio
async def test_library_error_after_ecanceled_counts_as_cancelled(pipe):
    r, _ = pipe

    def query():
        try:
            return syscalls.read(r, 1)
        except OSError as exc:           # as a driver wraps socket errors
            raise LibraryError("connection lost") from exc

    probe = Probe(query)
    exc = await cancel_when_blocked(aiocancel.to_thread(probe), "read", r, probe)
    assert isinstance(exc.__cause__, LibraryError)
    assert isinstance(exc.__cause__.__cause__, aiocancel.Cancelled)


@pytest.mark.asyncio
async def test_task_waits_for_the_worker_and_counts_cancels():
    gate = threading.Event()

    def job():
        assert gate.wait(JOIN_TIMEOUT)
        aiocancel.testcancel()           # the request acts here
        return "not cancelled"

    probe = Probe(job)
    seen = {}

    async def waiter():
        try:
            await aiocancel.to_thread(probe)
        except asyncio.CancelledError as exc:
            seen["count"] = asyncio.current_task().cancelling()
            seen["args"] = exc.args
            raise

    task = asyncio.ensure_future(waiter())
    await wait_for_state(probe.started.is_set, "job start")
    task.cancel("first")
    await settle()
    assert not task.done()               # not released before the worker
    task.cancel("second")
    await settle()
    assert not task.done()
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == {"count": 2, "args": ("first",)}
    assert isinstance(probe.exc, aiocancel.Cancelled)


@pytest.mark.asyncio
async def test_result_that_raced_the_cancel_goes_to_on_abandoned_result():
    """The job's result arrives after the task was cancelled: the task ends
    cancelled (message and count kept), the result is handed over."""
    gate = threading.Event()
    probe = Probe(gate_job(gate, value="kernel data"))
    seen = {}
    abandoned = []

    async def reader():
        try:
            await aiocancel.to_thread(probe, on_abandoned_result=abandoned.append)
        except asyncio.CancelledError as exc:
            seen["raised"] = exc.args
            seen["count"] = asyncio.current_task().cancelling()
            raise

    task = asyncio.ensure_future(reader())
    await wait_for_state(probe.started.is_set, "job start")
    task.cancel("later")
    await settle()
    gate.set()
    done, _ = await asyncio.wait([task], timeout=JOIN_TIMEOUT)
    assert done and task.cancelled()
    assert seen == {"raised": ("later",), "count": 1}
    assert abandoned == ["kernel data"]


@pytest.mark.asyncio
async def test_job_exception_that_raced_the_cancel_is_the_cause():
    gate = threading.Event()
    probe = Probe(gate_job(gate, exc=LibraryError("own failure")))
    seen = {}

    async def reader():
        try:
            await aiocancel.to_thread(probe)
        except asyncio.CancelledError as exc:
            seen["cause"] = type(exc.__cause__)
            raise

    task = asyncio.ensure_future(reader())
    await wait_for_state(probe.started.is_set, "job start")
    task.cancel()
    await settle()
    gate.set()
    done, _ = await asyncio.wait([task], timeout=JOIN_TIMEOUT)
    assert done and task.cancelled()
    assert seen == {"cause": LibraryError}


@requires_core
@pytest.mark.asyncio
async def test_job_that_handled_cancelled_and_returned_still_ends_the_task(pipe):
    r, _ = pipe

    def job():
        try:
            return syscalls.read(r, 1)
        except aiocancel.Cancelled:
            return b"partial"

    probe = Probe(job)
    abandoned = []
    task = asyncio.ensure_future(
        aiocancel.to_thread(probe, on_abandoned_result=abandoned.append))
    await wait_for_state(probe.started.is_set, "job start")
    probe.wait_blocked("read", r)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=JOIN_TIMEOUT)
    assert done and task.cancelled()
    assert abandoned == [b"partial"]


async def expire_while_running(task, probe, seen) -> None:
    """Make the timeout ``seen["cm"]`` expire once `probe`'s job runs (so the
    request reaches a running job, not a queued one); wait for its cancel."""
    await wait_for_state(probe.started.is_set, "job start")
    seen["cm"].reschedule(asyncio.get_running_loop().time())
    await wait_for_state(lambda: task.cancelling() > 0, "the timeout's cancel")


@pytest.mark.asyncio
async def test_timeout_raises_and_leaves_no_pending_cancel():
    """asyncio.timeout expires while the job runs; the job's result comes
    anyway (no cancellation point): TimeoutError at the await, the result
    goes to on_abandoned_result, and the timeout's withdrawn cancellation
    leaves nothing pending (3.11/3.12's uncancel() keeps _must_cancel)."""
    gate = threading.Event()
    probe = Probe(gate_job(gate))
    seen = {}
    abandoned = []

    async def body():
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(None) as seen["cm"]:
                seen["value"] = await aiocancel.to_thread(
                    probe, on_abandoned_result=abandoned.append)
        seen["expired"] = seen.pop("cm").expired()
        await settle()
        await asyncio.sleep(0.01)        # the next suspensions raise nothing
        seen["count"] = asyncio.current_task().cancelling()

    task = asyncio.ensure_future(body())
    await expire_while_running(task, probe, seen)
    gate.set()
    await asyncio.wait_for(task, JOIN_TIMEOUT)
    assert seen == {"expired": True, "count": 0}
    assert abandoned == [42]


@pytest.mark.asyncio
async def test_wait_for_raises_timeout_over_a_job_that_ignores_the_request():
    gate = threading.Event()
    abandoned = []
    probe = Probe(gate_job(gate))

    async def release_later():
        await wait_for_state(probe.started.is_set, "job start")
        await asyncio.sleep(0.1)
        gate.set()

    releaser = asyncio.ensure_future(release_later())
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(
            aiocancel.to_thread(probe, on_abandoned_result=abandoned.append), 0.05)
    await releaser
    await asyncio.sleep(0.01)            # nothing pending
    assert asyncio.current_task().cancelling() == 0
    assert abandoned == [42]


@requires_core
@pytest.mark.asyncio
async def test_timeout_nested_in_an_outer_cancel(pipe):
    """An outer cancel during a timed-out read: CancelledError, not
    TimeoutError, as asyncio.timeout specifies."""
    r, _ = pipe
    probe = Probe(syscalls.read)

    async def body():
        async with asyncio.timeout(3600):
            await aiocancel.to_thread(probe, r, 1)

    await cancel_when_blocked(body(), "read", r, probe)


@requires_core
@pytest.mark.asyncio
async def test_taskgroup_failure_cancels_blocked_siblings(pipe):
    r, _ = pipe
    pair = socket.socketpair()
    probes = [Probe(syscalls.read), Probe(syscalls.recv), Probe(syscalls.sleep)]
    calls = [(probes[0], (r, 1), "read", r),
             (probes[1], (pair[0], 1), "recvfrom", pair[0].fileno()),
             (probes[2], (3600,), "clock_nanosleep", None)]
    go = asyncio.Event()

    async def failing():
        await go.wait()
        raise LibraryError("child failed")

    try:
        with pytest.raises(ExceptionGroup) as info:
            async with asyncio.TaskGroup() as tg:
                for probe, args, _, _ in calls:
                    tg.create_task(aiocancel.to_thread(probe, *args))
                tg.create_task(failing())
                await wait_for_state(lambda: all(p.started.is_set() for p in probes),
                                     "jobs start")
                for probe, _, nr, arg0 in calls:
                    probe.wait_blocked(nr, arg0)
                go.set()
        assert [type(e) for e in info.value.exceptions] == [LibraryError]
        assert all(isinstance(p.exc, aiocancel.Cancelled) for p in probes)
    finally:
        pair[0].close()
        pair[1].close()


@pytest.mark.asyncio
async def test_cancel_before_the_job_starts():
    """A queued job cancelled: CancelledError at once (the only worker is
    busy), and the job never runs."""
    executor = aiocancel.install(executor=aiocancel.Executor(max_workers=1))
    gate = threading.Event()
    try:
        blocker = asyncio.ensure_future(aiocancel.to_thread(gate_job(gate)))
        ran = []
        queued = asyncio.ensure_future(aiocancel.to_thread(ran.append, 1))
        await settle()
        queued.cancel()
        done, _ = await asyncio.wait([queued], timeout=JOIN_TIMEOUT)
        assert done and queued.cancelled()
        assert not gate.is_set() and not blocker.done()
        gate.set()
        assert await blocker == 42
        assert await aiocancel.to_thread(int) == 0   # the queue moved on
        assert ran == []
    finally:
        executor.shutdown(wait=True)


@pytest.mark.asyncio
async def test_cancel_acts_at_testcancel():
    """Works in fallback mode too: the request acts at testcancel()."""
    probe = Probe(spin_until_cancelled)
    task = asyncio.ensure_future(aiocancel.to_thread(probe))
    await wait_for_state(probe.started.is_set, "job start")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.asyncio
async def test_executor_shutdown_cancels_the_awaiting_task():
    """A job ended by shutdown(cancel_futures=True) raises CancelledError in
    the task, as a cancelled executor future does."""
    executor = aiocancel.install(executor=aiocancel.Executor(max_workers=1))
    probe = Probe(spin_until_cancelled)
    task = asyncio.ensure_future(aiocancel.to_thread(probe))
    await wait_for_state(probe.started.is_set, "job start")
    executor.shutdown(wait=False, cancel_futures=True)
    with pytest.raises(asyncio.CancelledError) as info:
        await task
    assert isinstance(info.value.__cause__, aiocancel.Cancelled)
    executor.shutdown(wait=True)


# ---- abandon_on_cancel -------------------------------------------------------

class Resource(socket.socket):
    """A socket that records the thread that closed it."""
    closed_in: threading.Thread | None = None

    def close(self):
        self.closed_in = threading.current_thread()
        super().close()


@pytest.mark.asyncio
async def test_abandon_releases_the_task_at_once_and_closes_a_late_result():
    gate = threading.Event()
    resource = Resource()
    probe = Probe(gate_job(gate, value=resource))
    fds = fd_count()
    task = asyncio.ensure_future(
        aiocancel.to_thread(probe, abandon_on_cancel=True))
    await wait_for_state(probe.started.is_set, "job start")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not probe.ended.is_set()      # released before the worker
    gate.set()
    await wait_for_state(lambda: resource.closed_in is not None, "close()")
    assert resource.closed_in is threading.current_thread()   # on the loop
    assert fd_count() == fds - 1


@pytest.mark.asyncio
async def test_abandon_passes_a_late_result_to_the_callback():
    gate = threading.Event()
    got = []
    probe = Probe(gate_job(gate, value="late"))
    task = asyncio.ensure_future(aiocancel.to_thread(
        probe, abandon_on_cancel=True, on_abandoned_result=got.append))
    await wait_for_state(probe.started.is_set, "job start")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    gate.set()
    await wait_for_state(lambda: got, "the callback")
    assert got == ["late"]


@pytest.mark.asyncio
async def test_abandon_callback_error_goes_to_the_exception_handler():
    gate = threading.Event()
    loop = asyncio.get_running_loop()
    reported = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))

    def bad_callback(result):
        raise RuntimeError("callback bug")

    try:
        probe = Probe(gate_job(gate))
        task = asyncio.ensure_future(aiocancel.to_thread(
            probe, abandon_on_cancel=True, on_abandoned_result=bad_callback))
        await wait_for_state(probe.started.is_set, "job start")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.set()
        await wait_for_state(lambda: reported, "the report")
        assert isinstance(reported[0]["exception"], RuntimeError)
        assert await aiocancel.to_thread(int) == 0   # workers are fine
    finally:
        loop.set_exception_handler(None)


@requires_core
@pytest.mark.asyncio
async def test_abandon_still_frees_the_worker(pipe):
    r, _ = pipe
    probe = Probe(syscalls.read)
    await cancel_when_blocked(
        aiocancel.to_thread(probe, r, 1, abandon_on_cancel=True), "read", r, probe)
    probe.wait_ended()
    assert isinstance(probe.exc, aiocancel.Cancelled)


@pytest.mark.asyncio
async def test_abandoned_socket_result_is_closed():
    """The kernel accepted, the task gave up: the default on_abandoned_result
    closes the socket the job made, so the fd does not leak."""
    listener = socket.create_server(("127.0.0.1", 0))
    gate = threading.Event()
    accepted = threading.Event()
    try:
        def accept_then_wait():
            fd, _ = syscalls.accept(listener)
            accepted.set()
            assert gate.wait(JOIN_TIMEOUT)   # not a cancellation point
            return socket.socket(fileno=fd)

        client = socket.create_connection(listener.getsockname())
        before = fd_count()
        task = asyncio.ensure_future(
            aiocancel.to_thread(accept_then_wait, abandon_on_cancel=True))
        await wait_for_state(accepted.is_set, "accept")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.set()
        await wait_for_state(lambda: fd_count() == before, "the fd closed")
        client.settimeout(JOIN_TIMEOUT)
        assert client.recv(1) == b""         # the server side was closed
        client.close()
    finally:
        listener.close()


# ---- coroutine closed while waiting ------------------------------------------

@requires_core
@pytest.mark.asyncio
async def test_closed_coroutine_cancels_and_abandons_its_job(pipe):
    r, _ = pipe
    probe = Probe(syscalls.read)
    coro = aiocancel.to_thread(probe, r, 1)
    coro.send(None)                      # now suspended on its waiter
    await wait_for_state(probe.started.is_set, "job start")
    probe.wait_blocked("read", r)
    coro.close()
    probe.wait_ended()
    assert isinstance(probe.exc, aiocancel.Cancelled)
