"""aiocancel.syscalls.futex_wait / futex_wake and the futex Waiter lock
behind aiocancel.threading.

futex_wait returns like FUTEX_WAIT (False only on timeout) and is cancelled
while it sleeps; Waiter behaves as a ``_thread.lock`` (results and errors)
and its blocking acquire is a cancellation point that never loses a
release: a release racing with the cancel either hands the lock to the
cancelled waiter (which then returns True, request still pending) or leaves
the lock free."""
from __future__ import annotations

import _thread
from decimal import Decimal
from fractions import Fraction
import mmap
import threading

import pytest
from conftest import JOIN_TIMEOUT, Runner, requires_core, wait_blocked
from syscall_fixtures import (Pending, assert_cancelled, cancel_when_blocked,
                              same_outcome)

import aiocancel
from aiocancel import Cancelled, syscalls
from aiocancel._core import futex as _futex

Waiter = _futex.Waiter


# ---- futex_wait / futex_wake (the compiled core's: the fallback has no futex) ---

@requires_core
def test_futex_wait_returns_at_once_when_the_word_differs():
    word = bytearray(4)
    assert syscalls.futex_wait(word, 1) is True
    assert syscalls.futex_wait(word, 0, 0.001) is False          # timed out
    assert syscalls.futex_wake(word) == 0


@requires_core
def test_futex_wake_wakes_a_waiter():
    word = bytearray(8)
    r = Runner(syscalls.futex_wait, word, 0, None).start()
    wait_blocked(r.native_id, "futex", alive=r.alive)
    woken = 0
    while r.alive():
        woken += syscalls.futex_wake(word, 1)
    assert r.outcome() is True


@requires_core
def test_futex_wait_shared_mapping():
    with mmap.mmap(-1, 4096) as shared:
        assert syscalls.futex_wait(shared, 0, 0.001, offset=8, private=False) is False
        assert syscalls.futex_wake(shared, 5, offset=8, private=False) == 0


@requires_core
@pytest.mark.parametrize("call,args,kwargs,exc", [
    ("futex_wait", (b"abcd", 0), {}, TypeError),             # read-only
    ("futex_wait", (bytearray(8), 0, 0), {"offset": 2}, ValueError),
    ("futex_wait", (bytearray(8), 0, 0), {"offset": 6}, ValueError),
    ("futex_wait", (bytearray(8), 0, 0), {"offset": -4}, ValueError),
    ("futex_wait", (bytearray(4), 0, float("nan")), {}, ValueError),
    ("futex_wake", (bytearray(2),), {}, ValueError),
    ("futex_wake", ("str",), {}, TypeError)])
def test_futex_bad_input(call, args, kwargs, exc):
    with pytest.raises(exc):
        getattr(syscalls, call)(*args, **kwargs)


@requires_core
def test_futex_wait_cancelled_while_blocked():
    word = bytearray(4)
    run = cancel_when_blocked(syscalls.futex_wait, word, 0, None, syscall="futex")
    assert_cancelled(run)


@requires_core
def test_futex_wait_pending_request_acts_at_entry():
    assert isinstance(Pending().run(syscalls.futex_wait, bytearray(4), 0).exc,
                      Cancelled)


# ---- Waiter: a _thread.lock ----------------------------------------------------

def _lock_script(lock):
    out = [lock.acquire(), lock.acquire(False), lock.acquire(True, 0.001),
           lock.locked()]
    lock.release()
    out += [lock.locked(), lock.acquire(blocking=False)]
    lock.release()
    with lock as entered:
        out += [entered, lock.locked()]
    return out


def test_waiter_behaves_as_a_thread_lock():
    assert _lock_script(Waiter()) == _lock_script(_thread.allocate_lock())
    # Texts and accepted types differ between CPython versions (3.15 takes
    # any real number): the same outcome as this interpreter's lock.
    for args in [(False, 1), (True, -2), (True, 1e300), (True, 10**30), (True, "x"),
                 (True, float("nan")), (True, Fraction(1, 1000)),
                 (True, Decimal("0.001"))]:
        same_outcome(lambda: Waiter().acquire(*args),
                     lambda: _thread.allocate_lock().acquire(*args))
    same_outcome(lambda: Waiter().release(),
                 lambda: _thread.allocate_lock().release())


def test_waiter_released_by_another_thread():
    w = Waiter()
    w.acquire()
    r = Runner(w.acquire).start()
    if aiocancel.SUPPORTED:
        wait_blocked(r.native_id, "futex", alive=r.alive)
    w.release()
    assert r.outcome() is True and w.locked()


@requires_core
def test_waiter_acquire_cancelled_while_blocked_lock_unchanged():
    w = Waiter()
    w.acquire()
    run = cancel_when_blocked(w.acquire, syscall="futex")
    assert_cancelled(run)
    assert w.locked()
    w.release()
    assert not w.locked() and w.acquire(False)


@requires_core
def test_waiter_release_racing_cancel_is_never_lost(fast_switch):
    """Release and cancel at once, many times: the waiter either got the
    lock (True, and its request is still pending: the next cancellation
    point raises) or was cancelled and the lock ends up free."""
    got = cancelled = 0
    for i in range(200):
        w = Waiter()
        w.acquire()
        started = threading.Event()
        outcome = {}

        def body():
            with aiocancel.masked():
                started.set()
                try:
                    outcome["acquired"] = w.acquire()
                except Cancelled:
                    outcome["acquired"] = False
                try:
                    aiocancel.testcancel()
                    outcome["next_point"] = "passed"
                except Cancelled:
                    outcome["next_point"] = "cancelled"

        r = Runner(body).start()
        assert started.wait(JOIN_TIMEOUT)
        if i % 2:
            wait_blocked(r.native_id, "futex", alive=r.alive)
        assert aiocancel.cancel_thread(r.ident)
        w.release()
        r.join()
        assert r.exc is None, r.exc
        if outcome["acquired"]:
            got += 1
            assert w.locked()
            assert outcome["next_point"] == "cancelled"   # request kept
        else:
            cancelled += 1
            assert not w.locked()                          # release not lost
            assert outcome["next_point"] == "passed"       # one-off
    assert got + cancelled == 200
