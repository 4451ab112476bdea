"""Signals: the nested-handler case (2011 post) and not disturbing anyone else.

aiocancel owns one real-time signal. It must act only on registered threads
in ENABLE/MASKED state that a request was aimed at, defer while another
signal handler runs on top of the syscall, and leave Python's own signal
handling (SIGINT, signal.signal handlers) alone.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

import aiocancel
from aiocancel import _cancel as core
from aiocancel import syscalls
from conftest import (JOIN_TIMEOUT, pipe_pending, requires_core, run_in_thread, wait_blocked,
                      wait_until)

pytestmark = requires_core


def _stats():
    return core._stats() if hasattr(core, "_stats") else None


def _delta(before):
    if before is None:
        return None
    after = core._stats()
    return {k: after[k] - before[k] for k in after}


def _pending_but_blocked(native_id, sig):
    """Thread-directed `sig` pending while the thread blocks it."""
    fields = {}
    try:
        with open(f"/proc/self/task/{native_id}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
    except (FileNotFoundError, ProcessLookupError):   # the thread is exiting
        return False
    bit = 1 << (sig - 1)
    return bool(int(fields["SigPnd"], 16) & bit and int(fields["SigBlk"], 16) & bit)


def masked_read(fd, n=10):
    def body():
        with aiocancel.masked():
            try:
                return syscalls.read(fd, n), aiocancel.getcancelstate()
            except aiocancel.Cancelled as exc:
                return exc, aiocancel.getcancelstate()
    return body


# =============================================================================
# 2011: a signal handler running on top of the blocked syscall
# =============================================================================

def test_nested_handler_defers_cancel_until_it_returns(runner, pipe):
    """Worker blocked in read; a slow SIGUSR1 handler (C, from _testhelper)
    starts on top of it; the cancel request arrives while that handler runs.
    aiocancel must not act inside the handler (its PC is not the syscall's):
    it re-queues the signal and leaves it blocked, so it is still pending
    when the handler ends; once the handler returns, the request acts on the
    restarted read, which raises Cancelled. Data written meanwhile stays in
    the pipe."""
    from aiocancel import _testhelper as th
    r, w = pipe
    th.install_slow_handler(signal.SIGUSR1, aiocancel.cancel_signal())
    try:
        before = _stats()
        t = runner(masked_read(r))
        wait_blocked(t.native_id, "read", r, alive=t.alive)
        signal.pthread_kill(t.ident, signal.SIGUSR1)
        wait_until(lambda: th.state()["entered"], what="the slow handler to start")
        assert aiocancel.cancel_thread(t.ident) is True
        os.write(w, b"d")                 # arrives while the handler runs
        th.release()
        exc, state = t.outcome()
        st = th.state()
        assert st["done"]
        assert st["cancel_pending_at_end"], "the cancel was not deferred past the handler"
        assert isinstance(exc, aiocancel.Cancelled), exc
        assert state == aiocancel.CANCEL_DISABLE
        assert pipe_pending(r) == b"d"
        delta = _delta(before)
        if delta:
            assert delta["deferred"] >= 1 and delta["redirected"] >= 1, delta
    finally:
        th.restore_default(signal.SIGUSR1)


# =============================================================================
# Nobody else is disturbed
# =============================================================================

def test_disable_registered_thread_blocked_read_not_disturbed(runner, pipe):
    """A registered thread in DISABLE, blocked in a plain syscalls.read, gets
    a request: the read is not interrupted and returns the data; the request
    stays pending."""
    r, w = pipe

    def body():
        aiocancel.setcancelstate(aiocancel.CANCEL_DISABLE)
        return syscalls.read(r, 10), core._pending(), aiocancel.getcancelstate()

    t = runner(body)
    wait_blocked(t.native_id, "read", r, alive=t.alive)
    before = _stats()
    assert aiocancel.cancel_thread(t.ident) is True
    delta = _delta(before)
    if delta is not None:
        wait_until(lambda: _delta(before)["handled"] >= 1, what="the handler to run")
    wait_blocked(t.native_id, "read", r, alive=t.alive)   # still (again) in read
    os.write(w, b"data")
    assert t.outcome() == (b"data", True, aiocancel.CANCEL_DISABLE)


def test_foreign_cancel_signal_is_ignored(runner, pipe):
    """The cancel signal sent by someone else (kill/tgkill, no request) does
    not cancel a MASKED thread blocked in read, nor hurt the main thread."""
    r, w = pipe
    sig = aiocancel.cancel_signal()
    t = runner(masked_read(r))
    wait_blocked(t.native_id, "read", r, alive=t.alive)
    signal.pthread_kill(t.ident, sig)            # tgkill: SI_TKILL, no request
    os.kill(os.getpid(), sig)                    # process-directed: SI_USER
    wait_blocked(t.native_id, "read", r, alive=t.alive)
    os.write(w, b"still")
    assert t.outcome() == (b"still", aiocancel.CANCEL_MASKED)


def test_main_thread_untouched_while_workers_are_cancelled(runner, pipe):
    """The main thread (never registered) keeps doing blocking syscalls.read
    while workers are cancelled around it."""
    r, w = pipe
    main_r, main_w = os.pipe()
    try:
        for i in range(20):
            t = runner(masked_read(r))
            wait_blocked(t.native_id, "read", r, alive=t.alive)
            assert aiocancel.cancel_thread(t.ident) is True
            os.write(main_w, b"m")
            assert syscalls.read(main_r, 1) == b"m"
            exc, _ = t.outcome()
            assert isinstance(exc, aiocancel.Cancelled)
        assert aiocancel.cancel_thread(threading.main_thread().ident) is False
        assert aiocancel.getcancelstate() == aiocancel.CANCEL_ENABLE   # unregistered
    finally:
        os.close(main_r)
        os.close(main_w)


def test_python_signal_handlers_keep_working(runner, pipe):
    """signal.signal handlers still run (in the main thread) after aiocancel
    is imported and in use, including for a signal that lands on a MASKED
    worker blocked in read: its EINTR is retried, it is not a cancellation."""
    r, w = pipe
    got = []
    old = signal.signal(signal.SIGUSR2, lambda signum, frame: got.append(signum))
    try:
        # aiocancel in use: cancel one worker first.
        t0 = runner(masked_read(r))
        wait_blocked(t0.native_id, "read", r, alive=t0.alive)
        aiocancel.cancel_thread(t0.ident)
        assert isinstance(t0.outcome()[0], aiocancel.Cancelled)

        os.kill(os.getpid(), signal.SIGUSR2)
        wait_until(lambda: len(got) >= 1, what="the SIGUSR2 handler")

        t = runner(masked_read(r))
        wait_blocked(t.native_id, "read", r, alive=t.alive)
        signal.pthread_kill(t.ident, signal.SIGUSR2)
        wait_until(lambda: len(got) >= 2, what="the SIGUSR2 handler (worker)")
        wait_blocked(t.native_id, "read", r, alive=t.alive)
        os.write(w, b"ok")
        assert t.outcome() == (b"ok", aiocancel.CANCEL_MASKED)
        assert got == [signal.SIGUSR2, signal.SIGUSR2]
    finally:
        signal.signal(signal.SIGUSR2, old)


def test_sigint_handler_unchanged_in_process():
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    run_in_thread(lambda: aiocancel.setcancelstate(aiocancel.CANCEL_MASKED))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert aiocancel.cancel_signal() not in (signal.SIGINT, signal.SIGTERM,
                                             signal.SIGUSR1, signal.SIGUSR2)


_SIGINT_CHILD = textwrap.dedent("""
    import os, signal, sys, threading, time
    import aiocancel
    from aiocancel import syscalls
    assert aiocancel.SUPPORTED or os.environ.get("AIOCANCEL_FALLBACK")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    # Use aiocancel: cancel a worker blocked in read.
    r, w = os.pipe()
    out = []
    def worker():
        with aiocancel.masked():
            try:
                syscalls.read(r, 1)
            except aiocancel.Cancelled:
                out.append("cancelled")
    def blocked(tid, nr):
        try:
            with open(f"/proc/self/task/{tid}/syscall") as f:
                fields = f.read().split()
        except OSError:
            return False
        return bool(fields) and fields[0] == str(nr)
    NR_READ = int(sys.argv[1])
    t = threading.Thread(target=worker)
    t.start()
    deadline = time.monotonic() + 10
    while not blocked(t.native_id, NR_READ):
        assert time.monotonic() < deadline
        time.sleep(0.001)
    assert aiocancel.cancel_thread(t.ident)
    t.join(10)
    assert out == ["cancelled"], out
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    # Ctrl-C still interrupts the main thread blocked in syscalls.read.
    main_tid = threading.get_native_id()
    main_ident = threading.get_ident()
    def interrupter():
        deadline = time.monotonic() + 10
        while not blocked(main_tid, NR_READ):
            if time.monotonic() > deadline:
                os._exit(3)
            time.sleep(0.001)
        signal.pthread_kill(main_ident, signal.SIGINT)
    threading.Thread(target=interrupter, daemon=True).start()
    try:
        syscalls.read(r, 1)
    except KeyboardInterrupt:
        print("KeyboardInterrupt")
    else:
        print("read returned")
""")


def test_sigint_still_raises_keyboardinterrupt_in_blocked_main_thread():
    from conftest import NR
    if "read" not in NR:
        pytest.skip("no syscall table for this machine")
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(aiocancel.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [pkg_parent] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    proc = subprocess.run([sys.executable, "-c", _SIGINT_CHILD, str(NR["read"])],
                          env=env, cwd="/", capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "KeyboardInterrupt", (proc.stdout, proc.stderr)


def test_thread_spawned_by_a_cancelled_thread_is_still_interruptible(runner, pipe):
    """A deferred request leaves the cancel signal blocked in the thread that
    received it (musl's design: it is re-raised when an outer handler
    returns). Threads inherit their creator's signal mask, so a thread
    spawned afterwards must still be interruptible once it registers: a
    request must stop it while it blocks in read."""
    r, w = pipe
    sig = aiocancel.cancel_signal()
    children = []

    def parent():
        aiocancel.setcancelstate(aiocancel.CANCEL_MASKED)
        aiocancel.cancel_thread(threading.get_ident())    # deferred: PC not in a syscall
        try:
            aiocancel.testcancel()
        except aiocancel.Cancelled:
            pass
        children.append(runner(masked_read(r)))
        return sig in signal.pthread_sigmask(signal.SIG_BLOCK, set())

    parent_blocks_sig = run_in_thread(parent)
    child = children[0]
    wait_blocked(child.native_id, "read", r, alive=child.alive)
    assert aiocancel.cancel_thread(child.ident) is True
    # Either the child finishes, or the signal sits pending behind its mask
    # (observable in /proc, so no waiting out a timeout).
    wait_until(lambda: not child.alive() or _pending_but_blocked(child.native_id, sig),
               what="the child to be interrupted")
    stuck = child.alive()
    if stuck:
        os.write(w, b"x")                  # release it, then report
    exc, state = child.outcome()
    assert not stuck and isinstance(exc, aiocancel.Cancelled), (
        f"child not interrupted (read returned {exc!r}); the creator had the "
        f"cancel signal blocked: {parent_blocks_sig}")
    assert state == aiocancel.CANCEL_DISABLE
