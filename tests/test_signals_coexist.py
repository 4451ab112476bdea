"""aiocancel's real-time signal living with everyone else's signals.

* Another library already owns the first real-time signal: aiocancel takes
  the next free one, says which (`aiocancel.cancel_signal()`), and both work.
* ``AIOCANCEL_SIGNAL`` naming no signal at all: a clear error at import; a
  signal in use (or none left): a clear error at first use (the handler is
  installed then, never by ``import aiocancel``).
* Another handler replacing aiocancel's: the next request says so
  (RuntimeWarning) and sends no signal.
* A worker that blocks the cancel signal (``pthread_sigmask``): a blocked
  syscall is not interrupted, but the request stays pending and acts at the
  next cancellation point (the flag check), and the next job is
  interruptible again.
* SIGINT / SIGTERM and Python-level handlers of the main thread behave as
  without aiocancel, also while workers block in cancellable calls.

Fresh interpreters (`run_python`) are used wherever the signal choice at
import is what is tested."""
from __future__ import annotations

import concurrent.futures as cf
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import aiocancel
from aiocancel import syscalls
from conftest import JOIN_TIMEOUT, requires_core, wait_blocked, wait_until
from reliability_fixtures import run_python

pytestmark = requires_core

RTMIN = int(signal.SIGRTMIN)
RTMAX = int(signal.SIGRTMAX)

# Blocks a thread in syscalls.read, cancels it, prints how it ended.
CANCEL_CHECK = """
import os, threading, time
import aiocancel
from aiocancel import syscalls
r, w = os.pipe()
out = {}
def body():
    with aiocancel.masked():
        try:
            syscalls.read(r, 1)
            out["how"] = "read"
        except aiocancel.Cancelled:
            out["how"] = "cancelled"
t = threading.Thread(target=body)
t.start()
path = f"/proc/self/task/{t.native_id}/stat"
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    with open(path) as f:
        if f.read().rsplit(")", 1)[1].split()[0] == "S":
            break
    time.sleep(0.001)
aiocancel.cancel_thread(t.ident)
t.join(10)
if t.is_alive():
    os.write(w, b"!")
    t.join()
print("cancel:", out["how"])
"""


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("AIOCANCEL_FALLBACK", "AIOCANCEL_SIGNAL")}
    env.update(extra)
    return env


def _run(code: str, **extra: str) -> subprocess.CompletedProcess:
    return run_python(textwrap.dedent(code), env=_env(**extra))


# ---- choosing the signal -------------------------------------------------------

def test_python_handler_on_sigrtmin_moves_aiocancel_to_the_next():
    done = _run(textwrap.dedent("""
        import os, signal, threading
        got = []
        signal.signal(signal.SIGRTMIN, lambda s, f: got.append(s))
        import aiocancel
        print("signal:", aiocancel.cancel_signal())
        import time
        os.kill(os.getpid(), signal.SIGRTMIN)      # the library's still works
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.001)
        print("library:", got)
    """) + CANCEL_CHECK)
    assert done.returncode == 0, done.stderr
    assert f"signal: {RTMIN + 1}\n" in done.stdout
    assert f"library: [{RTMIN}]" in done.stdout
    assert "cancel: cancelled" in done.stdout


def test_ignored_signals_count_as_taken():
    done = _run(f"""
        import signal
        for s in range({RTMIN}, {RTMIN + 3}):
            signal.signal(s, signal.SIG_IGN)
        import aiocancel
        print("signal:", aiocancel.cancel_signal())
    """)
    assert done.returncode == 0, done.stderr
    assert f"signal: {RTMIN + 3}" in done.stdout


def test_every_realtime_signal_taken_is_a_clear_error_at_first_use():
    done = _run(f"""
        import signal
        for s in range({RTMIN}, {RTMAX} + 1):
            signal.signal(s, lambda *a: None)
        import aiocancel
        print("imported")
        aiocancel.setcancelstate(aiocancel.CANCEL_MASKED)
    """)
    assert "imported" in done.stdout
    assert done.returncode != 0
    assert "RuntimeError" in done.stderr
    assert "every real-time signal" in done.stderr


def test_aiocancel_signal_picks_a_free_signal():
    done = _run(CANCEL_CHECK + "\nprint('signal:', aiocancel.cancel_signal())",
                AIOCANCEL_SIGNAL="SIGRTMIN+5")
    assert done.returncode == 0, done.stderr
    assert f"signal: {RTMIN + 5}" in done.stdout
    assert "cancel: cancelled" in done.stdout


@pytest.mark.parametrize("spec,value", [("RTMAX-2", RTMAX - 2), (f" {RTMIN + 7} ", RTMIN + 7),
                                        ("sigrtmin", RTMIN)])
def test_aiocancel_signal_spellings(spec, value):
    done = _run("import aiocancel; print('signal:', aiocancel.cancel_signal())",
                AIOCANCEL_SIGNAL=spec)
    assert done.returncode == 0, done.stderr
    assert f"signal: {value}" in done.stdout


def test_aiocancel_signal_in_use_is_a_clear_error_at_first_use():
    done = _run("""
        import signal
        signal.signal(signal.SIGRTMIN + 3, lambda *a: None)
        import aiocancel
        print("imported")
        aiocancel.cancel_signal()
    """, AIOCANCEL_SIGNAL="SIGRTMIN+3")
    assert "imported" in done.stdout
    assert done.returncode != 0
    assert "RuntimeError" in done.stderr
    assert f"signal {RTMIN + 3} already has a handler" in done.stderr


@pytest.mark.parametrize("spec,message", [
    ("banana", "expected a signal number"),
    ("10", "is not a real-time signal"),          # SIGUSR1
    (str(RTMAX + 1), "is not a real-time signal"),
    ("SIGRTMIN-1", "is not a real-time signal"),
    ("0", "is not a real-time signal"),
    ("-3", "is not a real-time signal"),
    ("99999999999999999999", "is not a real-time signal"),
])
def test_aiocancel_signal_not_a_realtime_signal_is_a_clear_import_error(spec, message):
    done = _run("import aiocancel", AIOCANCEL_SIGNAL=spec)
    assert done.returncode != 0
    assert "ValueError" in done.stderr
    assert message in done.stderr


# ---- a worker that blocks the cancel signal --------------------------------------------

def _sig_bits(native_id: int, field: str) -> int:
    with open(f"/proc/self/task/{native_id}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1], 16)
    raise AssertionError(field)


def test_worker_blocking_the_signal_is_cancelled_at_its_next_cancellation_point(pipe):
    """Blocked signal: the blocked read is not interrupted (the request waits,
    pending, in the thread's SigPnd), its data is returned when it comes,
    and the next cancellation point (here testcancel) acts."""
    r, w = pipe
    sig = aiocancel.cancel_signal()
    seen = {}

    def job():
        signal.pthread_sigmask(signal.SIG_BLOCK, {sig})
        seen["tid"] = threading.get_native_id()
        data = syscalls.read(r, 1)
        seen["data"] = data
        aiocancel.testcancel()
        return "not cancelled"

    with aiocancel.Executor(max_workers=1) as ex:
        fut = ex.submit(job)
        wait_until(lambda: "tid" in seen, what="job start")
        wait_blocked(seen["tid"], "read", r)
        assert fut.cancel() is False               # running: False, yet sent
        # The request reached the thread and waits there, blocked.
        wait_until(lambda: _sig_bits(seen["tid"], "SigPnd") >> (sig - 1) & 1,
                   what="the cancel signal pending in the worker")
        wait_blocked(seen["tid"], "read", r)       # still in the same read
        os.write(w, b"d")
        done, _ = cf.wait([fut], timeout=JOIN_TIMEOUT)
        assert isinstance(fut.exception(), aiocancel.Cancelled)
        assert seen["data"] == b"d"                # the result was not lost

        # The next job on the same worker is interruptible again.
        fut2 = ex.submit(syscalls.read, r, 1)
        wait_until(lambda: not _sig_bits(seen["tid"], "SigBlk") >> (sig - 1) & 1,
                   what="the signal unblocked for the next job")
        wait_blocked(seen["tid"], "read", r)
        assert fut2.cancel() is False
        cf.wait([fut2], timeout=JOIN_TIMEOUT)
        assert isinstance(fut2.exception(0), aiocancel.Cancelled)


def test_request_pending_before_a_blocked_signal_acts_at_the_call(pipe):
    """With the signal blocked, a request made before the call still acts
    at the call's flag check: no byte is consumed."""
    r, w = pipe
    os.write(w, b"q")
    sig = aiocancel.cancel_signal()

    def body():
        signal.pthread_sigmask(signal.SIG_BLOCK, {sig})
        try:
            with aiocancel.masked():
                aiocancel.cancel_thread(threading.get_ident())
                try:
                    syscalls.read(r, 1)
                    return "read"
                except aiocancel.Cancelled:
                    return "cancelled"
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})

    out: list = []
    t = threading.Thread(target=lambda: out.append(body()))
    t.start()
    t.join(JOIN_TIMEOUT)
    assert out == ["cancelled"]
    assert os.read(r, 1) == b"q"


# ---- the main thread's signals are untouched ------------------------------------------

def test_import_leaves_handlers_and_mask_alone():
    done = _run("""
        import signal
        before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM),
                  signal.pthread_sigmask(signal.SIG_BLOCK, []))
        import aiocancel
        with aiocancel.Executor() as ex:
            ex.submit(lambda: None).result()
        after = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM),
                 signal.pthread_sigmask(signal.SIG_BLOCK, []))
        print(before == after, after[0] is signal.default_int_handler,
              after[1] == signal.SIG_DFL, sorted(after[2]))
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True True True []"


# A process whose workers block in cancellable reads; the main thread waits.
BUSY = """
import os, signal, sys, threading, time
import aiocancel
from aiocancel import syscalls
r, w = os.pipe()
ex = aiocancel.Executor(max_workers=2)
futs = [ex.submit(syscalls.read, r, 1) for _ in range(2)]
def blocked(t):
    with open(f"/proc/self/task/{t.native_id}/syscall") as f:
        return f.read().split()[0] not in ("running", "-1")
deadline = time.monotonic() + 10
while len(ex._threads) < 2 or not all(blocked(t) for t in ex._threads):
    assert time.monotonic() < deadline
    time.sleep(0.001)
"""


@pytest.mark.parametrize("target", ["process", "worker"])
def test_sigint_is_keyboardinterrupt_in_main_while_workers_block(target):
    """SIGINT sent to the process, or straight to a worker blocked in a
    cancellable read: the main thread gets KeyboardInterrupt as usual and
    the workers' reads go on (no EINTR, no Cancelled, no lost byte)."""
    done = _run(BUSY + f"""
try:
    if "{target}" == "process":
        os.kill(os.getpid(), signal.SIGINT)
    else:
        signal.pthread_kill(next(iter(ex._threads)).ident, signal.SIGINT)
    # Short sleeps: a signal handled in another thread does not interrupt
    # the main thread's sleep (with or without aiocancel).
    for _ in range(10000):
        time.sleep(0.001)
    print("no KeyboardInterrupt")
except KeyboardInterrupt:
    print("KeyboardInterrupt in main")
deadline = time.monotonic() + 10
while not all(blocked(t) for t in ex._threads) and time.monotonic() < deadline:
    time.sleep(0.001)
print("still blocked:", all(blocked(t) for t in ex._threads))
print("not done:", [f.done() for f in futs])
os.write(w, b"ab")
print("results:", sorted(f.result(10) for f in futs))
ex.shutdown()
""")
    assert done.returncode == 0, done.stderr
    assert "KeyboardInterrupt in main" in done.stdout
    assert "still blocked: True" in done.stdout
    assert "not done: [False, False]" in done.stdout
    assert "results: [b'a', b'b']" in done.stdout


def test_sigterm_default_action_kills_a_busy_process():
    code = BUSY + "print('ready', flush=True)\ntime.sleep(60)\n"
    proc = subprocess.Popen([sys.executable, "-c", code], env=_pythonpath_env(),
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(JOIN_TIMEOUT) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_python_sigterm_handler_runs_in_main_while_workers_block():
    done = _run(BUSY + """
got = []
signal.signal(signal.SIGTERM, lambda s, f: got.append(threading.current_thread() is threading.main_thread()))
signal.pthread_kill(next(iter(ex._threads)).ident, signal.SIGTERM)
deadline = time.monotonic() + 10
while not got and time.monotonic() < deadline:
    time.sleep(0.001)
print("handler in main:", got)
for f in futs:
    f.cancel()
ex.shutdown()
# cancel() of a running job is False (the stdlib's answer) yet interrupts it.
print("cancelled:", [isinstance(f.exception(), aiocancel.Cancelled) for f in futs])
""")
    assert done.returncode == 0, done.stderr
    assert "handler in main: [True]" in done.stdout
    assert "cancelled: [True, True]" in done.stdout


def _pythonpath_env() -> dict:
    pkg_parent = os.path.dirname(os.path.dirname(aiocancel.__file__))
    env = _env()
    env["PYTHONPATH"] = pkg_parent + os.pathsep + env.get("PYTHONPATH", "")
    return env
