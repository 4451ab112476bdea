"""Fixtures and helpers for the asyncio/uvloop tests (test_asyncio_*.py).

Every asyncio test module does::

    from asyncio_fixtures import event_loop_policy  # noqa: F401
    pytestmark = LOOP_MARKS

so that each of its tests runs once on asyncio's default loop and once on
uvloop: pytest-asyncio builds the test's loop from the ``event_loop_policy``
fixture, which this module parametrises. (pytest-asyncio >= 1.3 also offers a
``pytest_asyncio_loop_factories`` hook, but a hook must live in conftest.py
and would re-parametrise every other asyncio test of the suite; overriding
the fixture works from 0.24 on and stays local to these modules.)
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Iterator

import pytest

import aiocancel
from conftest import BLOCK_TIMEOUT, JOIN_TIMEOUT, NR, wait_blocked


def stuck_in_lock_acquire(lock: threading.Lock) -> str:
    """A job stuck in a wait that is no cancellation point (until `lock` is
    released)."""
    lock.acquire()
    lock.release()
    return "late"


@contextlib.contextmanager
def pool_and_held_lock(max_workers: int) -> Iterator[tuple[aiocancel.Executor, threading.Lock]]:
    """``aiocancel.install()`` of an Executor of `max_workers` on the running
    loop, and a held lock for `stuck_in_lock_acquire` jobs; at exit the lock
    is released (if the test did not) and the pool shut down, waiting."""
    executor = aiocancel.install(executor=aiocancel.Executor(max_workers=max_workers))
    lock = threading.Lock()
    lock.acquire()
    try:
        yield executor, lock
    finally:
        if lock.locked():
            lock.release()
        executor.shutdown(wait=True)

try:
    import uvloop
except ImportError:        # pragma: no cover - the test extra installs it
    uvloop = None

LOOPS = ["asyncio", "uvloop"]

LOOP_MARKS = [
    # pytest-asyncio 1.x deprecates overriding event_loop_policy in favour of
    # a conftest hook (see the module docstring).
    pytest.mark.filterwarnings(
        "ignore:Overriding the \"event_loop_policy\" fixture"),
]


@pytest.fixture(params=LOOPS, scope="module")
def event_loop_policy(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoopPolicy:
    """asyncio's default policy, then uvloop's."""
    if request.param == "uvloop":
        if uvloop is None:
            pytest.skip("uvloop is not installed")
        return uvloop.EventLoopPolicy()
    return asyncio.DefaultEventLoopPolicy()


# Thread counts are compared as sets of live threads, "no thread started"
# (set(threading.enumerate()) <= before), rather than active_count()
# equality: threads of other tests' executors may still be exiting.


def is_uvloop(loop: asyncio.AbstractEventLoop) -> bool:
    return uvloop is not None and isinstance(loop, uvloop.Loop)


class Probe:
    """Wraps a job function to record the worker thread that runs it and how
    the call ended, so a test can wait until the worker really blocks in the
    kernel and later check what the worker saw."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.native_id: int | None = None
        self.ident: int | None = None
        self.started = threading.Event()
        self.ended = threading.Event()
        self.result: Any = None
        self.exc: BaseException | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.native_id = threading.get_native_id()
        self.ident = threading.get_ident()
        self.started.set()
        try:
            self.result = self.fn(*args, **kwargs)
            return self.result
        except BaseException as exc:
            self.exc = exc
            raise
        finally:
            self.ended.set()

    def wait_blocked(self, syscall: str, arg0: int | None = None) -> None:
        """Block the calling (loop) thread until the job sleeps in `syscall`.
        The loop has nothing to do meanwhile: the worker waits on the kernel."""
        assert self.started.wait(BLOCK_TIMEOUT), "the job never started"
        wait_blocked(self.native_id, syscall, arg0,
                     alive=lambda: not self.ended.is_set())

    def wait_ended(self) -> None:
        assert self.ended.wait(JOIN_TIMEOUT), "the job did not end"


def spin_until_cancelled() -> None:
    """A job whose only cancellation points are testcancel() and short
    syscalls.sleep calls, so a request acts in fallback mode too."""
    while True:
        aiocancel.testcancel()
        aiocancel.syscalls.sleep(0.001)


async def wait_for_state(predicate: Callable[[], Any], what: str,
                         timeout: float = BLOCK_TIMEOUT) -> None:
    """Yield to the loop until `predicate()` holds; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


def worker_in(syscall: str) -> int | None:
    """The native id of a worker of `aiocancel.get_executor()` that is inside
    `syscall` now, for jobs that no Probe wraps (aiocancel.aio calls)."""
    for thread in list(aiocancel.get_executor()._threads):
        try:
            with open(f"/proc/self/task/{thread.native_id}/syscall") as f:
                fields = f.read().split()
        except FileNotFoundError:
            continue
        if fields and fields[0] == str(NR[syscall]):
            return thread.native_id
    return None


async def cancel_when_blocked(awaitable: Any, syscall: str, arg0: int | None = None,
                              probe: Probe | None = None,
                              msg: str | None = None) -> asyncio.CancelledError:
    """Await `awaitable` in a task, cancel the task (with `msg`) once the job
    sleeps in `syscall` (the job `probe` wraps, else any worker in it), and
    return the CancelledError the task raised (its ``__cause__`` is the
    job's exception: caught inside, since awaiting a cancelled task from
    outside yields a fresh CancelledError)."""
    caught: list[asyncio.CancelledError] = []

    async def run() -> None:
        try:
            await awaitable
        except asyncio.CancelledError as exc:
            caught.append(exc)
            raise

    task = asyncio.ensure_future(run())
    if probe is not None:
        await wait_for_state(probe.started.is_set, "job start")
        probe.wait_blocked(syscall, arg0)
    else:
        await wait_for_state(lambda: worker_in(syscall), f"a worker in {syscall}")
        wait_blocked(worker_in(syscall), syscall, arg0)
    task.cancel(msg)
    done, _ = await asyncio.wait([task], timeout=JOIN_TIMEOUT)
    assert done, "the cancelled task did not end"
    assert task.cancelled() and caught, "the task did not raise CancelledError"
    return caught[0]


def thread_state(pid: int, tid: int) -> tuple[str, str]:
    """(state letter, /proc syscall line) of thread `tid` of process `pid`."""
    base = f"/proc/{pid}/task/{tid}"
    with open(f"{base}/stat") as f:
        stat = f.read()
    with open(f"{base}/syscall") as f:
        return stat[stat.rindex(")") + 2:].split()[0], f.read().strip()


def wait_child_blocked(proc: subprocess.Popen, tid: int | None, nr: int,
                       arg0: int | None = None) -> int:
    """Wait until a thread of child `proc` (thread `tid`, or any) sleeps in
    syscall `nr` (with first argument `arg0` if given); return its tid."""
    deadline = time.monotonic() + BLOCK_TIMEOUT
    last = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"child exited early ({proc.returncode})"
        tids = [tid] if tid is not None else [
            int(t) for t in os.listdir(f"/proc/{proc.pid}/task")]
        for t in tids:
            try:
                last = thread_state(proc.pid, t)
            except (FileNotFoundError, ProcessLookupError):
                continue
            fields = last[1].split()
            if (last[0] == "S" and len(fields) > 1
                    and fields[0] not in ("running", "-1")
                    and int(fields[0]) == nr
                    and (arg0 is None or int(fields[1], 16) == arg0)):
                return t
        time.sleep(0.005)
    pytest.fail(f"no thread of the child blocked in syscall {nr}: {last}")


def finish_child(proc: subprocess.Popen, timeout: float = 20.0,
                 keep_stdin: bool = False) -> tuple[int, str, str]:
    """Wait for `proc` to exit (killing it if it does not: a hang fails the
    test); return (returncode, stdout, stderr). `keep_stdin`: do not close
    the child's stdin pipe first (it would see end of input)."""
    try:
        if keep_stdin:
            proc.wait(timeout)
            out, err = proc.stdout.read(), proc.stderr.read()
        else:
            out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"child did not exit within {timeout}s; stdout={out!r} "
                    f"stderr={err!r}")
    return proc.returncode, out, err


def child_env() -> dict[str, str]:
    """The environment for child interpreters: the test's own sys.path, so
    that they import the same aiocancel."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.pop("PYTHONASYNCIODEBUG", None)
    return env


SIGINT_STATUS = -signal.SIGINT   # an unhandled KeyboardInterrupt re-raises SIGINT
