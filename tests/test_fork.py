"""fork: ``os.fork()`` and ``multiprocessing`` (fork start method) from a
process whose workers are busy in cancellable calls.

The child must start with clean cancel state (a request aimed at the
parent's thread is not the child's; registrations of threads that do not
exist in the child are gone; the cancel signal is not left blocked), must be
able to use aiocancel (its handler still installed and right), and the
parent must be unaffected (its blocked workers still cancellable, its own
pending requests still pending)."""
from __future__ import annotations

import asyncio
import concurrent.futures as cf
import json
import multiprocessing
import os
import select
import signal
import threading
import time
import traceback
import warnings

import pytest

import aiocancel
from aiocancel import syscalls
from aiocancel._core import cancel as core
from conftest import FALLBACK, JOIN_TIMEOUT, Runner, requires_core, wait_blocked

CHILD_TIMEOUT = 60.0

# Python 3.12+ warns that fork() in a multi-threaded process may deadlock the
# child; forking with busy threads is exactly what these tests are about.
pytestmark = pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")


def in_child(fn):
    """Fork; run `fn()` in the child and return its JSON-able result in the
    parent (or fail with the child's traceback). The child never returns
    into pytest: it always leaves through os._exit."""
    r, w = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            out = json.dumps({"ok": fn()})
            code = 0
        except BaseException:      # noqa: BLE001 - reported to the parent
            out = json.dumps({"error": traceback.format_exc()})
        finally:
            try:
                os.write(w, out.encode())
            finally:
                os._exit(code)
    os.close(w)
    chunks = []
    deadline = time.monotonic() + CHILD_TIMEOUT
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([r], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail(f"the child hung for {CHILD_TIMEOUT} s")
            data = os.read(r, 65536)
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    reply = json.loads(b"".join(chunks) or b"{}")
    assert "error" not in reply, reply["error"]
    assert os.waitstatus_to_exitcode(status) == 0, reply
    return reply["ok"]


def sig_blocked(native_id: int, sig: int) -> bool:
    """Whether thread `native_id` has `sig` in its signal mask (SigBlk)."""
    with open(f"/proc/self/task/{native_id}/status") as f:
        for line in f:
            if line.startswith("SigBlk:"):
                return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    raise AssertionError("no SigBlk line")


def cancel_a_blocked_reader() -> str:
    """In this process: block a fresh thread in syscalls.read, cancel it from
    here, and say how the read ended (the thread gets a byte after 10 s if
    the request did not interrupt it). Fallback mode cannot interrupt a
    blocked read: there the request is made before the read starts."""
    r, w = os.pipe()
    try:
        out = {}
        ready = threading.Event()

        def body():
            out["ident"] = threading.get_ident()
            with aiocancel.masked():
                if FALLBACK:
                    aiocancel.cancel_thread(threading.get_ident())
                ready.set()
                try:
                    out["read"] = syscalls.read(r, 1).decode()
                except aiocancel.Cancelled:
                    out["read"] = "cancelled"

        t = threading.Thread(target=body)
        t.start()
        ready.wait(JOIN_TIMEOUT)
        if not FALLBACK:
            wait_blocked(t.native_id, "read", r, alive=t.is_alive)
            aiocancel.cancel_thread(out["ident"])
        t.join(JOIN_TIMEOUT)
        if t.is_alive():
            os.write(w, b"!")
            t.join(JOIN_TIMEOUT)
        return out["read"]
    finally:
        os.close(r)
        os.close(w)


@pytest.fixture
def busy_pool(pipe):
    """An Executor whose two workers are blocked in syscalls.read."""
    r, w = pipe
    ex = aiocancel.Executor(max_workers=2)
    probes = [ex.submit(syscalls.read, r, 1) for _ in range(2)]
    if not FALLBACK:
        for t in list(ex._threads):
            wait_blocked(t.native_id, "read", r)
    yield ex, probes, (r, w)
    for f in probes:
        f.cancel()
    if FALLBACK:
        os.write(w, b"xx")
    ex.shutdown(wait=True)


def test_child_of_a_busy_process_starts_clean_and_can_cancel(busy_pool):
    ex, probes, (r, w) = busy_pool

    def forking_thread():
        # This thread has a request pending (DISABLE keeps it pending).
        aiocancel.setcancelstate(aiocancel.CANCEL_DISABLE)
        aiocancel.cancel_thread(threading.get_ident())
        parent_pending_before = core._pending()

        def child():
            return {
                "pending": core._pending(),
                "state": aiocancel.getcancelstate(),
                "signal": aiocancel.cancel_signal(),
                # the parent's workers do not exist here: not registered
                "worker_hits": [aiocancel.cancel_thread(t.ident)
                                for t in ex._threads],
                "reader": cancel_a_blocked_reader(),
            }

        result = in_child(child)
        return parent_pending_before, result, core._pending()

    before, child, after = Runner(forking_thread).start().outcome()
    assert before is True and after is True      # the parent keeps its request
    assert child["pending"] is False              # the child does not
    assert child["state"] == aiocancel.CANCEL_DISABLE
    assert child["signal"] == aiocancel.cancel_signal()
    assert child["worker_hits"] == [False, False]
    assert child["reader"] == "cancelled"
    # The parent's workers are still blocked and still cancellable.
    if not FALLBACK:
        for t in list(ex._threads):
            wait_blocked(t.native_id, "read", r)
        for f in probes:
            assert f.cancel() is False            # running: as the stdlib
        done, _ = cf.wait(probes, timeout=JOIN_TIMEOUT)
        assert len(done) == 2
        assert all(isinstance(f.exception(), aiocancel.Cancelled) for f in done)
        os.write(w, b"z")
        assert os.read(r, 1) == b"z"                  # nothing consumed


def test_child_uses_to_thread_and_a_new_executor(busy_pool):
    def child():
        r, w = os.pipe()

        async def main():
            try:
                async with asyncio.timeout(0.05):
                    await aiocancel.to_thread(syscalls.read, r, 1)
            except TimeoutError:
                return "timed out"
            return "read"

        out = {"to_thread": asyncio.run(main()) if not FALLBACK else "timed out"}
        with aiocancel.Executor(max_workers=1) as ex:
            out["job"] = ex.submit(lambda: 6 * 7).result(JOIN_TIMEOUT)
        return out

    assert in_child(child) == {"to_thread": "timed out", "job": 42}


@requires_core
def test_child_of_a_thread_left_with_the_signal_blocked(pipe):
    """A request that reaches a MASKED thread outside a syscall is deferred:
    the handler leaves the cancel signal blocked. If that thread forks, the
    child must not inherit the block, or its blocked syscalls could never be
    interrupted again."""
    sig = aiocancel.cancel_signal()

    def forking_thread():
        me = threading.get_native_id()
        with aiocancel.masked():
            aiocancel.cancel_thread(threading.get_ident())   # deferred at once
            blocked_in_parent = sig_blocked(me, sig)
            aiocancel.setcancelstate(aiocancel.CANCEL_DISABLE)

            def child():
                tid = threading.get_native_id()
                blocked = sig_blocked(tid, sig)
                # This thread, blocked in a read, cancelled by another one.
                r, w = os.pipe()
                aiocancel.setcancelstate(aiocancel.CANCEL_MASKED)
                helper_result = {}

                def helper():
                    try:
                        wait_blocked(tid, "read", r)
                        helper_result["hit"] = aiocancel.cancel_thread(ident)
                        deadline = time.monotonic() + 10
                        while time.monotonic() < deadline and not done.is_set():
                            time.sleep(0.001)
                    finally:
                        if not done.is_set():
                            os.write(w, b"!")   # unblock: the cancel failed

                ident = threading.get_ident()
                done = threading.Event()
                h = threading.Thread(target=helper)
                h.start()
                try:
                    syscalls.read(r, 1)
                    how = "not interrupted"
                except aiocancel.Cancelled:
                    how = "cancelled"
                done.set()
                h.join(JOIN_TIMEOUT)
                return {"blocked": blocked, "how": how, **helper_result}

            return blocked_in_parent, in_child(child)

    blocked_in_parent, child = Runner(forking_thread).start().outcome()
    assert blocked_in_parent is True      # the premise: the handler deferred
    assert child == {"blocked": False, "how": "cancelled", "hit": True}


def test_forks_while_requests_fly(busy_pool, fast_switch):
    """fork() takes the registry lock: forking while another thread keeps
    sending requests must neither deadlock nor leave the child's registry
    inconsistent."""
    ex, probes, _ = busy_pool
    stop = threading.Event()
    sent = [0]

    def hammer():
        while not stop.is_set():
            for t in list(ex._threads):
                aiocancel.cancel_thread(t.ident)
                sent[0] += 1

    h = threading.Thread(target=hammer)
    h.start()
    try:
        results = [in_child(lambda: [core._pending(), cancel_a_blocked_reader()])
                   for _ in range(8)]
    finally:
        stop.set()
        h.join(JOIN_TIMEOUT)
    assert results == [[False, "cancelled"]] * 8
    assert sent[0] > 0


def _mp_child(conn) -> None:
    try:
        r, w = os.pipe()
        with aiocancel.Executor(max_workers=1) as ex:
            fut = ex.submit(syscalls.read, r, 1)
            if not FALLBACK:
                wait_blocked(next(iter(ex._threads)).native_id, "read", r)
            else:
                os.write(w, b"!")
            cancelled = fut.cancel()
            try:
                outcome = fut.result(JOIN_TIMEOUT)
            except (cf.CancelledError, aiocancel.Cancelled):
                outcome = "cancelled"
        conn.send({"pending": core._pending(), "cancel": cancelled,
                   "outcome": outcome if isinstance(outcome, str) else "read"})
    except BaseException as e:   # noqa: BLE001
        conn.send({"error": repr(e)})
    finally:
        conn.close()


def test_multiprocessing_fork_child_cancels_jobs(busy_pool):
    ctx = multiprocessing.get_context("fork")
    parent_conn, child_conn = ctx.Pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        p = ctx.Process(target=_mp_child, args=(child_conn,))
        p.start()
    try:
        assert parent_conn.poll(CHILD_TIMEOUT)
        reply = parent_conn.recv()
    finally:
        p.join(CHILD_TIMEOUT)
    assert p.exitcode == 0
    expected = "read" if FALLBACK else "cancelled"
    # cancel() of a running job is False, as in the stdlib, yet interrupts it.
    assert reply == {"pending": False, "cancel": False, "outcome": expected}
