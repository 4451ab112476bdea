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

import os
import random
import socket
import threading

import pytest

import aiocancel
from aiocancel import _cancel as core
from aiocancel import syscalls
from conftest import (JOIN_TIMEOUT, Runner, fd_count, open_fds, pipe_pending,
                      requires_core, run_in_thread, wait_blocked)

pytestmark = requires_core

READ_ITERATIONS = 15_000
ACCEPT_ITERATIONS = 6_000
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

def _race_read(iterations, seed):
    rng = random.Random(seed)
    r, w = os.pipe()
    written = bytearray()
    returned = bytearray()
    stats = dict(result=0, cancelled=0, accepted_request=0)
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
                written += chunk
                outcome, acted = worker.finish_round()
                assert outcome is not None
                if outcome == CANCELLED:
                    stats["cancelled"] += 1
                    assert accepted, "Cancelled without an accepted request"
                    assert acted is True
                else:
                    stats["result"] += 1
                    assert isinstance(outcome, bytes) and outcome
                    assert acted is False
                    returned += outcome
                stats["accepted_request"] += accepted
        left = pipe_pending(r)
    finally:
        os.close(r)
        os.close(w)
    # Nothing lost, nothing duplicated, nothing reordered.
    assert bytes(returned) + left == bytes(written)
    return stats


@pytest.mark.usefixtures("fast_switch")
def test_race_read_no_lost_bytes():
    stats = _race_read(READ_ITERATIONS, seed=1)
    print(stats)
    # Both outcomes must actually occur, or the test proves nothing.
    assert stats["cancelled"] > 0 and stats["result"] > 0, stats


@pytest.mark.stress
@pytest.mark.usefixtures("fast_switch")
def test_race_read_no_lost_bytes_stress():
    stats = _race_read(READ_ITERATIONS * STRESS_FACTOR, seed=random.randrange(1 << 30))
    assert stats["cancelled"] > 0 and stats["result"] > 0, stats


# =============================================================================
# accept: no connection (fd) is ever lost
# =============================================================================

def _race_accept(iterations, seed):
    rng = random.Random(seed)
    tag = f"aiocancel-race-{os.getpid()}-{seed}-"
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lst.bind(b"\0" + tag.encode() + b"listener")
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
                name = b"\0" + tag.encode() + str(i).encode()
                connect_first = rng.random() < 0.5
                spin_a, spin_b = spin_count(rng), spin_count(rng)
                c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                c.bind(name)
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
    print(stats)
    assert stats["cancelled"] > 0 and stats["result"] > 0, stats


@pytest.mark.stress
@pytest.mark.usefixtures("fast_switch")
def test_race_accept_no_lost_fds_stress():
    stats = _race_accept(ACCEPT_ITERATIONS * STRESS_FACTOR, seed=random.randrange(1 << 30))
    assert stats["cancelled"] > 0 and stats["result"] > 0, stats
