"""Races: no lost results, job generations, and the thread registry.

The race tests use ONE long-lived worker running jobs with the internal
protocol (_job_begin / _job_end) and the main thread aiming _cancel_job at
(slot, generation) after a random spin, so the request lands before, during
or after the syscall. They assert invariants, never timings:

* every call either returned a result or raised Cancelled (exactly one);
* _job_end() reports that a cancellation point acted iff Cancelled was raised;
* Cancelled implies the request was accepted (_cancel_job returned True);
* every byte written is returned or still in the pipe, in order;
* every connection is accepted exactly once or still queued, and no fd leaks.
"""
from __future__ import annotations

import array
import fcntl
import os
import queue
import random
import signal
import socket
import termios
import threading

import pytest

import aiocancel
from aiocancel import _cancel as core
from aiocancel import syscalls
from conftest import (JOIN_TIMEOUT, Runner, fd_count, open_fds, pipe_pending,
                      requires_core, run_in_thread, wait_blocked, wait_until)

pytestmark = requires_core

READ_ITERATIONS = 15_000
ACCEPT_ITERATIONS = 6_000
TCP_ACCEPT_ITERATIONS = 1_000
STRESS_FACTOR = 10
SPIN_BITS = 13                # spins are log-uniform in 1 .. 2**13 loop turns

CANCELLED = "cancelled"


class JobWorker:
    """A worker thread that runs `op()` once per round as a job.

    Per round: main calls start_round() -> (slot, generation) once the job
    has begun, then finish_round() -> (outcome, acted) when it is over."""

    def __init__(self, op):
        self.op = op
        self.go = threading.Semaphore(0)
        self.begun = threading.Semaphore(0)
        self.done = threading.Semaphore(0)
        self.stop = False
        self.address = None
        self.outcome = None
        self.acted = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name="aiocancel-race-worker")

    def _run(self):
        try:
            core._worker_slot()
            while True:
                self.go.acquire()
                if self.stop:
                    return
                self.address = core._job_begin()
                self.begun.release()
                try:
                    outcome = self.op()
                except aiocancel.Cancelled:
                    outcome = CANCELLED
                self.acted = core._job_end()
                self.outcome = outcome
                self.done.release()
        except BaseException as exc:   # reported by finish_round / close
            self.error = exc
            self.begun.release()
            self.done.release()

    def __enter__(self):
        self.thread.start()
        return self

    def start_round(self):
        self.go.release()
        assert self.begun.acquire(timeout=JOIN_TIMEOUT), "worker did not begin the job"
        if self.error:
            raise self.error
        return self.address

    def finish_round(self):
        assert self.done.acquire(timeout=JOIN_TIMEOUT), "job did not finish"
        if self.error:
            raise self.error
        return self.outcome, self.acted

    def __exit__(self, *exc):
        self.stop = True
        self.go.release()
        self.thread.join(JOIN_TIMEOUT)
        assert not self.thread.is_alive()


def _core_stats():
    return core._stats() if hasattr(core, "_stats") else None


def _core_stats_delta(before):
    if before is None:
        return None
    after = core._stats()
    return {k: after[k] - before[k] for k in after}


def spin(n):
    for _ in range(n):
        pass


def spin_count(rng):
    """Log-uniform: as many short spins (request before/at the syscall) as
    long ones (request while blocked, or after the result)."""
    return int(2 ** rng.uniform(0, SPIN_BITS)) - 1


# =============================================================================
# read: no byte is ever lost
# =============================================================================

def _available(fd):
    buf = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, buf)
    return buf[0]


def _race_read(iterations, seed):
    rng = random.Random(seed)
    r, w = os.pipe()
    stats = dict(result=0, cancelled=0, accepted_request=0, blocked_rounds=0)
    try:
        with JobWorker(lambda: syscalls.read(r, 4096)) as worker:
            for i in range(iterations):
                chunk = bytes([i & 0xFF]) * rng.randint(1, 3)
                # Data arrives before the call, or while it may be blocked;
                # the request before, during or after the syscall.
                write_first = rng.random() < 0.5
                spin_a, spin_b = spin_count(rng), spin_count(rng)
                slot, gen = worker.start_round()
                if write_first:
                    os.write(w, chunk)
                spin(spin_a)
                accepted = core._cancel_job(slot, gen)
                spin(spin_b)
                if not write_first:
                    os.write(w, chunk)
                outcome, acted = worker.finish_round()
                # The worker is idle: whatever it did not return is still
                # in the pipe. Take it out so every round starts empty.
                left = os.read(r, 4096) if _available(r) else b""
                assert outcome is not None
                if outcome == CANCELLED:
                    stats["cancelled"] += 1
                    assert accepted, "Cancelled without an accepted request"
                    assert acted is True
                    # Nothing lost, nothing duplicated.
                    assert left == chunk, (i, left, chunk)
                else:
                    stats["result"] += 1
                    assert acted is False
                    assert outcome == chunk and left == b"", (i, outcome, left, chunk)
                stats["accepted_request"] += accepted
                stats["blocked_rounds"] += not write_first
        assert _available(r) == 0
    finally:
        os.close(r)
        os.close(w)
    return stats


@pytest.mark.usefixtures("fast_switch")
def test_race_read_no_lost_bytes():
    before = _core_stats()
    stats = _race_read(READ_ITERATIONS, seed=1)
    # Both outcomes must actually occur, or the test proves nothing; so must
    # requests that landed after the result existed (accepted, not acted).
    assert stats["cancelled"] > 0 and stats["result"] > 0, stats
    assert stats["accepted_request"] > stats["cancelled"], stats
    handler = _core_stats_delta(before)
    if handler:
        assert handler["redirected"] > 0 and handler["deferred"] > 0, handler


@pytest.mark.stress
@pytest.mark.usefixtures("fast_switch")
def test_race_read_no_lost_bytes_stress():
    stats = _race_read(READ_ITERATIONS * STRESS_FACTOR, seed=random.randrange(1 << 30))
    assert stats["cancelled"] > 0 and stats["result"] > 0, stats


# =============================================================================
# accept: no connection (fd) is ever lost
# =============================================================================

def _race_accept(iterations, seed, family=socket.AF_UNIX):
    rng = random.Random(seed)
    tag = f"aiocancel-race-{os.getpid()}-{seed}-"
    lst = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_UNIX:
        lst.bind(b"\0" + tag.encode() + b"listener")
    else:
        lst.bind(("127.0.0.1", 0))
    lst.listen(128)
    accepted_from = []            # client addresses the worker accepted
    clients = []
    stats = dict(result=0, cancelled=0)
    before = fd_count()

    def op():
        fd, addr = syscalls.accept(lst)
        os.close(fd)              # the fd was returned: it cannot leak
        return addr

    try:
        with JobWorker(op) as worker:
            for i in range(iterations):
                if family == socket.AF_UNIX:
                    name = b"\0" + tag.encode() + str(i).encode()
                else:
                    name = ("127.0.0.1", 0)
                connect_first = rng.random() < 0.5
                spin_a, spin_b = spin_count(rng), spin_count(rng)
                c = socket.socket(family, socket.SOCK_STREAM)
                c.bind(name)
                name = c.getsockname()
                slot, gen = worker.start_round()
                if connect_first:
                    c.connect(lst.getsockname())
                spin(spin_a)
                accepted = core._cancel_job(slot, gen)
                spin(spin_b)
                if not connect_first:
                    c.connect(lst.getsockname())
                clients.append(name)
                c.close()          # the queued connection survives the close
                outcome, acted = worker.finish_round()
                assert outcome is not None
                if outcome == CANCELLED:
                    stats["cancelled"] += 1
                    assert accepted and acted is True
                    # The cancelled round left its client queued: take the
                    # oldest one here (FIFO, the worker is idle), or the
                    # backlog would fill and block the next connect.
                    lst.setblocking(False)
                    conn, addr = lst.accept()
                    lst.setblocking(True)
                    conn.close()
                    accepted_from.append(addr)
                else:
                    stats["result"] += 1
                    assert acted is False
                    accepted_from.append(outcome)
        # Whatever is still queued.
        lst.setblocking(False)
        while True:
            try:
                conn, addr = lst.accept()
            except BlockingIOError:
                break
            conn.close()
            accepted_from.append(addr)
    finally:
        lst.close()
    assert fd_count() == before - 1       # only the listener is gone
    # Every connection came out exactly once, in arrival order.
    assert accepted_from == clients
    return stats


@pytest.mark.usefixtures("fast_switch")
def test_race_accept_no_lost_fds():
    stats = _race_accept(ACCEPT_ITERATIONS, seed=2)
    assert stats["cancelled"] > 0 and stats["result"] > 0, stats


@pytest.mark.usefixtures("fast_switch")
def test_race_accept_tcp_no_lost_fds():
    stats = _race_accept(TCP_ACCEPT_ITERATIONS, seed=3, family=socket.AF_INET)
    assert stats["cancelled"] > 0 and stats["result"] > 0, stats


@pytest.mark.stress
@pytest.mark.usefixtures("fast_switch")
def test_race_accept_no_lost_fds_stress():
    stats = _race_accept(ACCEPT_ITERATIONS * STRESS_FACTOR, seed=random.randrange(1 << 30))
    assert stats["cancelled"] > 0 and stats["result"] > 0, stats


# =============================================================================
# Job generations
# =============================================================================

def test_job_generation_old_request_never_cancels_next_job(runner, pipe):
    """A request aimed at a finished job misses: _cancel_job(slot, old_gen)
    returns False, before and during the next job, whose call completes."""
    r, w = pipe
    to_worker, from_worker = queue.Queue(), queue.Queue()

    def body():
        core._worker_slot()
        from_worker.put(core._job_begin())
        out1 = syscalls.read(r, 10)
        from_worker.put((out1, core._job_end()))
        to_worker.get()
        from_worker.put(core._job_begin())
        to_worker.get()
        out2 = syscalls.read(r, 10)          # blocks until main writes
        return out2, core._job_end(), core._pending()

    t = runner(body)
    slot, g1 = from_worker.get(timeout=JOIN_TIMEOUT)
    os.write(w, b"a")
    assert from_worker.get(timeout=JOIN_TIMEOUT) == (b"a", False)
    assert core._cancel_job(slot, g1) is False          # between jobs
    to_worker.put(None)
    slot2, g2 = from_worker.get(timeout=JOIN_TIMEOUT)
    assert slot2 == slot and g2 != g1
    assert core._cancel_job(slot, g1) is False          # during the next job
    to_worker.put(None)
    wait_blocked(t.native_id, "read", r, alive=t.alive)
    assert core._cancel_job(slot, g1) is False          # while it blocks
    os.write(w, b"b")
    assert t.outcome() == (b"b", False, False)


def test_request_after_result_does_not_leak_into_next_job(runner, pipe):
    """A request accepted after the job's call returned (it is still the
    current job) does not act in that job, and neither its flag nor its
    signal reaches the next job: a blocking call there is not interrupted."""
    r, w = pipe
    to_worker, from_worker = queue.Queue(), queue.Queue()

    def body():
        core._worker_slot()
        from_worker.put(core._job_begin())
        out1 = syscalls.read(r, 10)
        from_worker.put(out1)
        to_worker.get()                       # main requests now
        acted1 = core._job_end()
        core._job_begin()
        pending = core._pending()
        out2 = syscalls.read(r, 10)           # blocks; must not be interrupted
        return acted1, pending, out2, core._job_end()

    t = runner(body)
    slot, gen = from_worker.get(timeout=JOIN_TIMEOUT)
    os.write(w, b"1")
    assert from_worker.get(timeout=JOIN_TIMEOUT) == b"1"
    assert core._cancel_job(slot, gen) is True   # the job has not ended yet
    to_worker.put(None)
    wait_blocked(t.native_id, "read", r, alive=t.alive)
    os.write(w, b"2")
    assert t.outcome() == (False, False, b"2", False)


def test_job_generation_many_jobs_late_requests_all_miss(runner, pipe):
    """Across many jobs, a request for each job's generation sent after the
    job ended always returns False and never disturbs later jobs."""
    r, w = pipe
    n = 300
    gens = queue.Queue()
    go = threading.Semaphore(0)

    def body():
        core._worker_slot()
        outs = []
        for i in range(n):
            addr = core._job_begin()
            outs.append(syscalls.read(r, 1))
            acted = core._job_end()
            gens.put((addr, acted))
            go.acquire()
        return outs

    t = runner(body)
    for i in range(n):
        os.write(w, bytes([i & 0xFF]))
        (slot, gen), acted = gens.get(timeout=JOIN_TIMEOUT)
        assert acted is False
        assert core._cancel_job(slot, gen) is False
        go.release()
    assert t.outcome() == [bytes([i & 0xFF]) for i in range(n)]


# =============================================================================
# The thread registry
# =============================================================================

def test_exited_thread_is_unregistered():
    """cancel_thread on a thread that registered and exited (joined) is
    False. Repeated, because the window between join() returning and the
    thread's registration ending is short."""
    late = 0
    for i in range(300):
        t = threading.Thread(target=aiocancel.setcancelstate,
                             args=(aiocancel.CANCEL_MASKED,), daemon=True)
        t.start()
        ident = t.ident
        t.join(JOIN_TIMEOUT)
        assert not t.is_alive()
        late += aiocancel.cancel_thread(ident)
    assert late == 0, (f"{late}/300 joined threads were still registered "
                       "(cancel_thread returned True after join)")


def test_exited_thread_is_eventually_unregistered():
    t = threading.Thread(target=aiocancel.setcancelstate,
                         args=(aiocancel.CANCEL_DISABLE,), daemon=True)
    t.start()
    ident = t.ident
    t.join(JOIN_TIMEOUT)
    assert not t.is_alive()
    wait_until(lambda: not aiocancel.cancel_thread(ident), what="unregistration")


def test_registry_churn_with_cancel_hammer(pipe):
    """Many short-lived threads register and exit while a hammer thread
    cancels their idents. Nothing crashes, no signal reaches a thread it was
    not aimed at: a registered MASKED canary blocked in read is untouched,
    and the main thread (cancel signal blocked here, so a stray one would
    stay pending) receives none."""
    r, w = pipe
    sig = aiocancel.cancel_signal()
    n_threads = 600
    BLOCKER_EVERY = 60             # a multiple of 3: those threads are MASKED
    blocker_r, blocker_w = os.pipe()
    idents: list[int] = []
    counts = dict(true=0, false=0, cancelled=0, completed=0)
    lock = threading.Lock()
    stop = threading.Event()
    stats_before = _core_stats()

    def canary():
        with aiocancel.masked():
            return syscalls.read(r, 10), core._pending(), aiocancel.getcancelstate()

    def short_lived(i):
        state = (aiocancel.CANCEL_MASKED, aiocancel.CANCEL_ENABLE,
                 aiocancel.CANCEL_DISABLE)[i % 3]
        if state == aiocancel.CANCEL_ENABLE:
            state = aiocancel.CANCEL_MASKED   # ThreadCancelled would be noise
        aiocancel.setcancelstate(state)
        try:
            if i % BLOCKER_EVERY == 0:
                # MASKED (i % 3 == 0), blocked until the hammer's request
                # acts (or the pipe is closed): the hammer hits a live
                # thread however the scheduler runs the others.
                syscalls.read(blocker_r, 1)
            else:
                syscalls.poll([], 0)
            aiocancel.testcancel()
            key = "completed"
        except aiocancel.Cancelled:
            key = "cancelled"
        with lock:
            counts[key] += 1

    def spawner():
        live = []
        for i in range(n_threads):
            t = threading.Thread(target=short_lived, args=(i,), daemon=True)
            t.start()
            with lock:
                idents.append(t.ident)
            live.append(t)
            if len(live) >= 8:
                live.pop(0).join(JOIN_TIMEOUT)
        for t in live:
            t.join(JOIN_TIMEOUT)

    def hammer():
        while not stop.is_set():
            with lock:
                recent = idents[-16:]
            for ident in recent:
                if aiocancel.cancel_thread(ident):
                    counts["true"] += 1
                else:
                    counts["false"] += 1

    canary_t = Runner(canary).start()
    wait_blocked(canary_t.native_id, "read", r, alive=canary_t.alive)
    hammer_t = threading.Thread(target=hammer, daemon=True)
    spawner_t = threading.Thread(target=spawner, daemon=True)
    hammer_t.start()
    spawner_t.start()           # both inherit an unblocked signal mask
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {sig})
    try:
        try:
            spawner_t.join(60)
        finally:
            os.close(blocker_w)    # a blocker never hit ends (EOF)
        assert not spawner_t.is_alive()
        stop.set()
        hammer_t.join(JOIN_TIMEOUT)
        assert not hammer_t.is_alive()
        assert sig not in signal.sigpending(), "a cancel signal reached the main thread"
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        os.close(blocker_r)
    os.write(w, b"canary")
    assert canary_t.outcome() == (b"canary", False, aiocancel.CANCEL_MASKED)
    assert counts["cancelled"] + counts["completed"] == n_threads, counts
    assert counts["true"] > 0 and counts["false"] > 0, counts
    delta = _core_stats_delta(stats_before)
    if delta:
        assert delta["send_esrch"] == 0 and delta["send_failed"] == 0, delta


def test_many_concurrent_registered_threads_all_cancellable(runner, pipe):
    """More registered threads than one registry chunk (256 slots), all
    blocked in read at once: each request reaches its own thread."""
    r, w = pipe
    n = 300

    def body():
        with aiocancel.masked():
            try:
                return syscalls.read(r, 1)
            except aiocancel.Cancelled:
                return CANCELLED

    threads = [runner(body) for _ in range(n)]
    for t in threads:
        wait_blocked(t.native_id, "read", r, alive=t.alive)
    order = list(range(n))
    random.Random(4).shuffle(order)
    for i in order:
        assert aiocancel.cancel_thread(threads[i].ident) is True
    assert [t.outcome() for t in threads] == [CANCELLED] * n
    assert pipe_pending(r) == b""
