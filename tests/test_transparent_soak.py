"""Transparent-mode soak (stress marker): at least 60 s of transparent jobs
making libc's own blocking calls — time.sleep loops (clock_nanosleep, an
EINTR-style call), select.poll and os.read on a pipe — cancelled at random
moments while another thread keeps the GIL busy, so that the workers also
wait on CPython's GIL and locks (futex waits that, since glibc 2.41, return
through the same syscall instruction as the sleeps and reads).

This is the load that aborted the interpreter on glibc 2.41 ("The futex
facility returned an unexpected error code"): a futex's EINTR turned into
ECANCELED. Run it with::

    python -m pytest -m stress tests/test_transparent_soak.py

AIOCANCEL_SOAK_SECONDS changes the duration (default 60).

Checked, every job: it returned its result or ended cancelled (a libc call
failed with ECANCELED), never anything else, and never hung; every byte
written to the pipe was read by a job or is still in it; no fd or thread
leaked; no signal went to a thread that no longer existed."""
from __future__ import annotations

import concurrent.futures as cf
import errno
import os
import random
import select
import threading
import time

import pytest

import aiocancel
from aiocancel import _cancel
from conftest import fd_count, requires_core

pytestmark = [pytest.mark.stress, requires_core]

SECONDS = float(os.environ.get("AIOCANCEL_SOAK_SECONDS", "60"))
JOB_TIMEOUT = 20.0


class Pipe:
    """A pipe whose every byte is accounted for: written, read by a job, or
    still in it at the end."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        self.written = 0
        self.read = 0
        self.lock = threading.Lock()

    def produce(self, n: int) -> None:
        self.written += os.write(self.w, b"s" * n)

    def consumed(self, data: bytes) -> None:
        with self.lock:
            self.read += len(data)

    def left(self) -> int:
        os.set_blocking(self.r, False)
        n = 0
        try:
            while chunk := os.read(self.r, 65536):
                n += len(chunk)
        except BlockingIOError:
            pass
        return n

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


def sleep_loop(n: int) -> int:
    for _ in range(n):
        time.sleep(0.0005)
    return n


def poll_wait(fd: int, timeout_ms: int) -> int:
    p = select.poll()
    p.register(fd, select.POLLIN)
    return len(p.poll(timeout_ms))


def read_some(pipe: Pipe) -> bytes:
    data = os.read(pipe.r, 64)
    pipe.consumed(data)
    return data


def gil_hog(stop: threading.Event) -> None:
    """Pure Python work: the workers must take the GIL back from it (a timed
    futex wait inside pthread_cond_timedwait) after every blocking call."""
    x = 0
    while not stop.is_set():
        for i in range(20000):
            x ^= i


def _start_resender() -> None:
    """The core's re-sender thread (and its eventfd) starts with the first
    transparent request and stays: start it before the baselines."""
    with aiocancel.Executor(1, transparent=True) as ex:
        fut = ex.submit(time.sleep, 30)
        while not fut.running():
            time.sleep(0.001)
        fut.cancel()
        # A running future's cancel() returns False (concurrent.futures):
        # the future then holds the job's own outcome, the ECANCELED that
        # time.sleep raised in transparent mode.
        with pytest.raises(OSError) as info:
            fut.result(JOB_TIMEOUT)
        assert info.value.errno == errno.ECANCELED


def test_transparent_soak():
    rnd = random.Random(int(os.environ.get("AIOCANCEL_SOAK_SEED", "11")))
    _start_resender()
    baseline_fds = fd_count()
    baseline_threads = threading.active_count()
    stats_before = _cancel._stats()
    pipe = Pipe()
    stop = threading.Event()
    hog = threading.Thread(target=gil_hog, args=(stop,), daemon=True)
    hog.start()
    outcomes = {"result": 0, "cancelled": 0}
    kinds = {"sleep": 0, "poll": 0, "read": 0}
    ex = aiocancel.Executor(2, transparent=True)
    end = time.monotonic() + SECONDS
    try:
        while time.monotonic() < end:
            kind = rnd.choice(("sleep", "sleep", "poll", "read"))
            kinds[kind] += 1
            if kind == "sleep":
                fut = ex.submit(sleep_loop, rnd.randint(1, 30))
            elif kind == "poll":
                fut = ex.submit(poll_wait, pipe.r, rnd.choice((-1, 5, 50)))
            else:
                fut = ex.submit(read_some, pipe)
            if rnd.random() < 0.5:
                pipe.produce(rnd.randint(1, 8))   # sometimes data wins
            time.sleep(rnd.random() * 0.003)
            if rnd.random() < 0.8:
                fut.cancel()
            elif kind != "sleep":
                pipe.produce(1)                   # left alone: let it finish
            try:
                fut.result(JOB_TIMEOUT)
            except cf.CancelledError:
                outcomes["cancelled"] += 1
                continue
            except OSError as exc:
                # A running future's cancel() returns False: the future
                # holds the job's own ECANCELED (transparent mode).
                if exc.errno != errno.ECANCELED:
                    raise
                outcomes["cancelled"] += 1
                continue
            outcomes["result"] += 1
    finally:
        stop.set()
        pipe.produce(64)                          # release anything waiting
        ex.shutdown(wait=True)
        hog.join(JOB_TIMEOUT)
    left = pipe.left()
    pipe.close()
    stats = _cancel._stats()
    print("soak", SECONDS, "s:", outcomes, kinds, "bytes written", pipe.written,
          "read", pipe.read, "left", left,
          {k: stats[k] - stats_before[k] for k in stats})
    assert pipe.read + left == pipe.written
    assert outcomes["cancelled"] > 0 and outcomes["result"] > 0
    assert stats["send_esrch"] == stats_before["send_esrch"]
    assert fd_count() == baseline_fds
    assert threading.active_count() == baseline_threads
    assert time.monotonic() >= end                # it really ran that long
