"""Thread lifecycle: cancel requests racing with the target's exit, slots and
thread idents recycled, executors growing and retiring under load.

The core keeps a thread's slot (and kernel tid) registered until the
thread's TSD destructor unregisters it under the registry lock, and every
request sends its signal under that lock: so no request can reach a thread
that has exited (the kernel would answer ESRCH, counted in
``_stats()["send_esrch"]``) or a thread that has since received the dead
one's tid (a bystander here, which would find the signal pending)."""
from __future__ import annotations

import concurrent.futures as cf
import os
import random
import signal
import threading
import time

import pytest

import aiocancel
from aiocancel import syscalls
from aiocancel._core import cancel as core
from aiocancel._outcome import start_watchdog
from conftest import FALLBACK, JOIN_TIMEOUT, requires_core, wait_blocked
from reliability_fixtures import (cancel_signal_pending_here, stats,
                                  stats_delta, thread_count,
                                  wait_threads_at_most)


class _Target:
    """A registered thread that exits at a random moment: right away, after
    a spin, or after blocking in a read that only a request ends."""

    def __init__(self, rng: random.Random, fd: int, go: threading.Event) -> None:
        self.kind = rng.randrange(3)
        self.spin = rng.randrange(30000)
        self.fd = fd
        self.go = go
        self.ready = threading.Event()
        self.outcome: str | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with aiocancel.masked():
            self.ready.set()
            self.go.wait(JOIN_TIMEOUT)
            if self.kind == 1:
                for _ in range(self.spin):
                    pass
            elif self.kind == 2 and not FALLBACK:
                try:
                    syscalls.read(self.fd, 1)
                    self.outcome = "read"
                except aiocancel.Cancelled:
                    self.outcome = "cancelled"
                    return
        self.outcome = self.outcome or "exited"


class _Bystander:
    """An unregistered thread created with the cancel signal blocked: it
    may receive a recycled tid, and must never find the signal pending."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.saw_signal: bool | None = None
        self.native_id: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.native_id = threading.get_native_id()
        self.release.wait(JOIN_TIMEOUT)
        self.saw_signal = cancel_signal_pending_here()


def _hammer_exits(waves: int, per_wave: int, seed: int, bystanders_per_wave: int):
    """Start waves of targets exiting at random times while this thread keeps
    requesting cancellation of every target by ident (alive, exiting or
    gone), and bystanders start in between; returns the counts."""
    rng = random.Random(seed)
    r, w = os.pipe()
    counts = dict(targets=0, requests=0, hits=0, bystanders=0, recycled_tids=0)
    target_tids: set[int] = set()
    waiting: list[list[_Bystander]] = []     # per wave, released a wave later
    sig = aiocancel.cancel_signal()

    def check(bystanders: list[_Bystander]) -> None:
        for b in bystanders:
            b.release.set()
        for b in bystanders:
            b.thread.join(JOIN_TIMEOUT)
            assert not b.thread.is_alive()
            counts["bystanders"] += 1
            counts["recycled_tids"] += b.native_id in target_tids
            assert b.saw_signal is False, (
                f"bystander {b.native_id} (a recycled tid: "
                f"{b.native_id in target_tids}) received the cancel signal")

    try:
        for _ in range(waves):
            bystanders: list[_Bystander] = []
            waiting.append(bystanders)
            go = threading.Event()
            targets = [_Target(rng, r, go) for _ in range(per_wave)]
            for t in targets:
                t.thread.start()
                counts["targets"] += 1
                target_tids.add(t.thread.native_id)
            for t in targets:
                t.ready.wait(JOIN_TIMEOUT)
            go.set()      # all registered: now they exit at random moments
            # Bystanders inherit this thread's mask: block the signal only
            # while starting them.
            if sig:
                signal.pthread_sigmask(signal.SIG_BLOCK, {sig})
            try:
                for _ in range(bystanders_per_wave):
                    b = _Bystander()
                    b.thread.start()
                    bystanders.append(b)
            finally:
                if sig:
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
            while any(t.thread.is_alive() for t in targets):
                for t in targets:
                    counts["requests"] += 1
                    counts["hits"] += aiocancel.cancel_thread(t.thread.ident)
                    for _ in range(rng.randrange(50)):
                        pass
                time.sleep(0)
            for t in targets:
                t.thread.join(JOIN_TIMEOUT)
                assert not t.thread.is_alive()
                # after the join, once more: the thread is gone or going
                counts["requests"] += 1
                counts["hits"] += aiocancel.cancel_thread(t.thread.ident)
            if len(waiting) > 2:
                check(waiting.pop(0))
        while waiting:
            check(waiting.pop(0))
    finally:
        os.close(r)
        os.close(w)
    return counts


def test_requests_racing_thread_exit_never_reach_a_dead_thread(fast_switch):
    threads0 = thread_count()
    before = stats()
    counts = _hammer_exits(waves=30, per_wave=24, seed=11, bystanders_per_wave=4)
    delta = stats_delta(before)
    assert counts["targets"] == 30 * 24
    assert counts["requests"] > counts["targets"]
    if not FALLBACK:
        assert counts["hits"] > 0
    assert delta["send_esrch"] == 0
    assert delta["send_failed"] == 0
    assert wait_threads_at_most(threads0) <= threads0


@pytest.mark.stress
def test_requests_never_reach_a_recycled_tid():
    """Creates threads until the kernel's tid counter wraps (pid_max), so
    that bystanders receive the tids of dead targets."""
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    if pid_max > 70000:
        pytest.skip(f"pid_max={pid_max}: too many threads to wrap the tid space")
    before = stats()
    counts = _hammer_exits(waves=pid_max // 64 + 100, per_wave=16, seed=12,
                           bystanders_per_wave=48)
    delta = stats_delta(before)
    print(counts, delta)
    assert counts["recycled_tids"] > 0
    assert delta["send_esrch"] == 0


def _wait_gone(thread: threading.Thread) -> None:
    """join() returns before the kernel thread (and its TSD destructor,
    which releases the slot) is done: wait for /proc/self/task to drop it."""
    thread.join(JOIN_TIMEOUT)
    deadline = time.monotonic() + JOIN_TIMEOUT
    while (os.path.exists(f"/proc/self/task/{thread.native_id}")
           and time.monotonic() < deadline):
        time.sleep(0.001)


@requires_core
def test_recycled_slot_ignores_requests_for_its_previous_thread(pipe):
    """A thread exits; the next thread to register gets its slot (slots are
    recycled LIFO) under a new generation: a request addressed to the old
    (slot, generation) misses the new thread. (Retried if some other
    thread's exit put its slot on top of the free list in between.)"""
    r, w = pipe
    for _attempt in range(20):
        first: dict = {}
        second: dict = {}

        def old_worker():
            first["slot"] = core._worker_slot()
            first["job"] = core._job_begin()
            core._job_end()

        def new_worker():
            second["slot"] = core._worker_slot()
            second["job"] = core._job_begin()
            second["old_request_hit"] = core._cancel_job(*first["job"])
            second["pending"] = core._pending()
            try:
                second["read"] = syscalls.read(r, 1)
            finally:
                core._job_end()

        t = threading.Thread(target=old_worker)
        t.start()
        _wait_gone(t)
        os.write(w, b"x")
        t2 = threading.Thread(target=new_worker)
        t2.start()
        _wait_gone(t2)
        assert second["old_request_hit"] is False
        assert second["pending"] is False
        assert second["read"] == b"x"
        if second["slot"] == first["slot"]:
            assert second["job"][1] != first["job"][1]
            break
    else:
        pytest.fail("the slot was never recycled")


@requires_core
def test_request_for_an_exited_thread_returns_false():
    idents = {}

    def body():
        aiocancel.setcancelstate(aiocancel.CANCEL_MASKED)
        idents["me"] = threading.get_ident()

    t = threading.Thread(target=body)
    t.start()
    _wait_gone(t)
    before = stats()
    assert aiocancel.cancel_thread(idents["me"]) is False
    assert stats_delta(before)["sent"] == 0


@requires_core
def test_thread_exiting_right_after_being_cancelled(pipe):
    """The worker ends the moment its read is cancelled; further requests
    keep coming while it unwinds and exits: none fails, none is lost."""
    r, _ = pipe
    before = stats()
    for _ in range(40):
        box = {}

        def body():
            box["ident"] = threading.get_ident()
            with aiocancel.masked():
                try:
                    syscalls.read(r, 1)
                except aiocancel.Cancelled:
                    box["cancelled"] = True

        t = threading.Thread(target=body)
        t.start()
        wait_blocked(t.native_id, "read", r, alive=t.is_alive)
        while t.is_alive():
            aiocancel.cancel_thread(t.ident)
        t.join(JOIN_TIMEOUT)
        assert box.get("cancelled") is True
    delta = stats_delta(before)
    assert delta["send_esrch"] == 0 and delta["send_failed"] == 0


# ---- executors growing and retiring under load -----------------------------------

class _Load:
    """Jobs of three kinds with known outcomes: quick values, short
    cancellable sleeps, and reads on their own pipe that are fed only
    sometimes (an unfed read ends only by cancellation)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.pipes: list[tuple[int, int]] = []

    def make(self, i: int):
        kind = self.rng.randrange(3)
        if kind == 0:
            return kind, (lambda i=i: i * 2), None
        if kind == 1:
            return kind, (lambda: syscalls.sleep(self.rng.random() * 1e-3) or "slept"), None
        r, w = os.pipe()
        self.pipes.append((r, w))
        # (fallback mode cannot interrupt a blocked read: feed them all)
        fed = FALLBACK or self.rng.random() < 0.5
        if fed:
            os.write(w, b"%d" % (i % 10))
        return kind, (lambda r=r: syscalls.read(r, 1)), (r, fed, i)

    def close(self) -> None:
        for r, w in self.pipes:
            os.close(r)
            os.close(w)


def test_executors_growing_and_retiring_under_load_lose_no_job():
    """Rounds of executors of random size fed bursts from several threads;
    futures are cancelled at random (queued or running) and each executor is
    shut down mid-burst, with or without cancel_futures. Every future must
    end: with its job's value, or cancelled with nothing consumed."""
    rng = random.Random(21)
    fds0 = set(os.listdir("/proc/self/fd"))
    # The pools' one watchdog thread (aiocancel._outcome) lives on: start it
    # before the baseline.
    start_watchdog()
    threads0 = thread_count()
    load = _Load(rng)
    counts = dict(jobs=0, values=0, cancelled=0, refused=0)
    try:
        for _ in range(12):
            ex = aiocancel.Executor(max_workers=rng.randrange(1, 7))
            jobs: list = []
            lock = threading.Lock()
            shut = threading.Event()

            # Each submitter says when half its burst is in: the shutdown
            # comes mid-burst on a loaded machine too (after a bare yield it
            # could precede most submits, leaving the round nearly empty).
            halfway = threading.Semaphore(0)

            def submitter(n: int, seed: int) -> None:
                local = random.Random(seed)
                for i in range(n):
                    if i == n // 2:
                        halfway.release()
                    with lock:
                        kind, fn, info = load.make(i)
                    try:
                        fut = ex.submit(fn)
                    except RuntimeError:
                        assert shut.is_set()
                        counts["refused"] += 1
                        continue
                    with lock:
                        jobs.append((kind, fut, info))
                    if local.random() < 0.3:
                        fut.cancel()

            subs = [threading.Thread(target=submitter, args=(rng.randrange(5, 25), rng.random()))
                    for _ in range(3)]
            for s in subs:
                s.start()
            for _ in subs:
                assert halfway.acquire(timeout=JOIN_TIMEOUT)
            shut.set()
            ex.shutdown(wait=False, cancel_futures=rng.random() < 0.5)
            for s in subs:
                s.join(JOIN_TIMEOUT)
            # Whatever still waits on an unfed pipe ends by cancellation.
            for kind, fut, info in jobs:
                if kind == 2 and not info[1]:
                    fut.cancel()
            done, not_done = cf.wait([f for _, f, _ in jobs], timeout=30)
            assert not not_done, f"{len(not_done)} jobs lost"
            for kind, fut, info in jobs:
                counts["jobs"] += 1
                # A running job whose cancel() returned False (the stdlib's
                # answer) ends with the Cancelled error it raised.
                if fut.cancelled() or isinstance(fut.exception(0), aiocancel.Cancelled):
                    counts["cancelled"] += 1
                    if kind == 2 and info[1]:
                        # a cancelled read consumed nothing
                        os.set_blocking(info[0], False)
                        assert os.read(info[0], 1) == b"%d" % (info[2] % 10)
                    continue
                value = fut.result(0)
                counts["values"] += 1
                if kind == 0:
                    assert value % 2 == 0
                elif kind == 1:
                    assert value == "slept"
                else:
                    assert info[1], "an unfed read returned a value"
                    assert value == b"%d" % (info[2] % 10)
            ex.shutdown(wait=True)
    finally:
        load.close()
    assert counts["jobs"] > 100
    assert counts["values"] > 0 and counts["cancelled"] > 0
    assert wait_threads_at_most(threads0) <= threads0
    assert set(os.listdir("/proc/self/fd")) == fds0
