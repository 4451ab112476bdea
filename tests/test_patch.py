"""aiocancel.patch(): the stdlib's blocking calls become cancellation points
in workers, and stay exactly the stdlib's everywhere else.

In a worker, time.sleep(60), sock.recv(1), subprocess.run(["sleep", "60"]),
q.get(), select.select([r], [], []), threading.Event().wait() (and the other
patched calls) end when the job is cancelled; subprocess.run's child is then
killed and reaped. Outside workers the calls are not cancellation points."""
from __future__ import annotations

import fcntl
import os
import queue
import select
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from conftest import JOIN_TIMEOUT, Runner, requires_core, wait_until
from patch_fixtures import Job, cancel_blocked_job, executor, patched  # noqa: F401

import aiocancel
from aiocancel import _patch

pytestmark = pytest.mark.usefixtures("patched")


# ---- patch / unpatch ------------------------------------------------------------

def _current():
    return {(owner, name): owner.__dict__.get(name, _patch._ABSENT)
            for owner, name, _ in _patch._targets()}


def test_patch_unpatch_idempotent_and_restores_originals():
    aiocancel.unpatch()
    original = _current()
    assert "recv" not in socket.socket.__dict__
    for _ in range(2):
        aiocancel.patch()
        assert aiocancel.is_patched()
    now = _current()
    assert all(now[k] is not original[k] for k in original)
    for _ in range(2):
        aiocancel.unpatch()
        assert not aiocancel.is_patched()
    assert _current() == original
    assert "recv" not in socket.socket.__dict__         # inherited again
    assert time.sleep.__module__ == "time" and type(time.sleep) is type(len)


def test_patch_unpatch_from_many_threads():
    aiocancel.unpatch()
    original = _current()
    barrier = threading.Barrier(6)

    def flip(i):
        barrier.wait()
        for _ in range(30):
            (aiocancel.patch if i % 2 else aiocancel.unpatch)()
    for r in [Runner(flip, i).start() for i in range(6)]:
        r.outcome()
    aiocancel.unpatch()
    assert _current() == original
    aiocancel.patch()
    now = _current()
    assert all(now[k] is not original[k] for k in original)


def test_unpatch_leaves_a_later_replacement_alone():
    real_sleep = _patch._saved[(time, "sleep")][0]

    def mine(secs):
        return "mine"
    time.sleep = mine
    try:
        aiocancel.unpatch()
        assert time.sleep is mine
        assert socket.socket.__dict__.get("recv") is None     # others restored
    finally:
        time.sleep = real_sleep


def test_install_patch_true():
    import asyncio

    async def main():
        aiocancel.unpatch()
        aiocancel.install(patch=True)
        return aiocancel.is_patched()
    assert asyncio.run(main())


# ---- outside workers: the stdlib's behaviour, never a cancellation point ----------

def _stdlib_round(r, w, a, b, q, ev):
    """One of each patched call, none blocking for long."""
    out = []
    time.sleep(0.001)
    b.sendall(b"ping")
    out.append(a.recv(4))
    os.write(w, b"x")
    out.append(select.select([r], [], [], 0)[0] == [r])
    out.append(os.read(r, 1))
    q.put(1)
    out.append(q.get())
    out.append(ev.wait(0.001))
    with selectors.DefaultSelector() as sel:
        sel.register(r, selectors.EVENT_READ)
        out.append(sel.select(0))
    out.append(subprocess.run(["true"]).returncode)
    return out


def test_non_worker_threads_are_not_cancellation_points(pipe):
    """A registered thread in DISABLE state (an idle worker) with a request
    pending, an unregistered thread and the main thread all get the stdlib's
    results from every patched call."""
    r, w = pipe
    a, b = socket.socketpair()
    q, ev = queue.Queue(), threading.Event()
    expected = [b"ping", True, b"x", 1, False, [], 0]

    def disabled_with_request():
        aiocancel.setcancelstate(aiocancel.CANCEL_DISABLE)
        assert aiocancel.cancel_thread(threading.get_ident())
        return _stdlib_round(r, w, a, b, q, ev)
    with a, b:
        assert Runner(disabled_with_request).start().outcome() == expected
        assert Runner(_stdlib_round, r, w, a, b, q, ev).start().outcome() == expected
        assert _stdlib_round(r, w, a, b, q, ev) == expected


def test_stand_ins_keep_names_and_docs():
    assert time.sleep.__name__ == "sleep" and time.sleep.__doc__
    assert socket.socket.recv.__name__ == "recv"
    assert select.poll.__name__ == "poll" and select.epoll.__name__ == "epoll"
    with pytest.raises(TypeError, match="cannot create 'select.poll' instances"):
        type(select.poll())()


# ---- in workers: each call ends on cancel ---------------------------------------

@requires_core
def test_time_sleep_in_worker_cancelled(executor):
    cancel_blocked_job(executor, time.sleep, 60, syscall="clock_nanosleep")


@requires_core
def test_sock_recv_in_worker_cancelled_data_kept(executor):
    a, b = socket.socketpair()
    with a, b:
        cancel_blocked_job(executor, a.recv, 1, syscall="recvfrom", arg0=a.fileno())
        b.sendall(b"!")
        assert executor.submit(a.recv, 1).result(JOIN_TIMEOUT) == b"!"


@requires_core
@pytest.mark.parametrize("call", ["recv_into", "recvfrom", "recvfrom_into",
                                  "recvmsg", "accept", "makefile"])
def test_other_socket_waits_in_worker_cancelled(executor, call):
    if call == "accept":
        sock = socket.create_server(("127.0.0.1", 0))
        fn, args, nr = sock.accept, (), "accept4"
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        fn, args, nr = {
            "recv_into": (sock.recv_into, (bytearray(4),), "recvfrom"),
            "recvfrom": (sock.recvfrom, (4,), "recvfrom"),
            "recvfrom_into": (sock.recvfrom_into, (bytearray(4),), "recvfrom"),
            "recvmsg": (sock.recvmsg, (4,), "recvmsg"),
            "makefile": (lambda: sock.makefile("rb").read(1), (), "recvfrom"),
        }[call]
    with sock:
        cancel_blocked_job(executor, fn, *args, syscall=nr, arg0=sock.fileno())


@requires_core
def test_sendall_in_worker_cancelled(executor):
    a, b = socket.socketpair()
    with a, b:
        job = Job(executor, a.sendall, b"x" * (1 << 24))
        job.wait_blocked("sendto", a.fileno())
        job.cancel_and_check()


@pytest.fixture
def full_listener():
    """A listening socket whose accept queue is full, so that a blocking
    connect to it waits in the kernel (its SYNs are dropped)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    fillers = []
    try:
        while len(fillers) < 64:
            c = socket.socket()
            c.settimeout(0.2)
            try:
                c.connect(srv.getsockname())
            except TimeoutError:
                c.close()
                break
            fillers.append(c)
        else:
            pytest.fail("the accept queue never filled up")
        yield srv.getsockname()
    finally:
        for c in fillers:
            c.close()
        srv.close()


@requires_core
@pytest.mark.parametrize("name", ["connect", "connect_ex"])
def test_connect_in_worker_cancelled(executor, full_listener, name):
    with socket.socket() as s:
        cancel_blocked_job(executor, getattr(s, name), full_listener,
                           syscall="connect", arg0=s.fileno())


@requires_core
def test_subprocess_run_in_worker_cancelled_child_killed_and_reaped(executor, tmp_path):
    pidfile = tmp_path / "pid"
    job = Job(executor, subprocess.run,
              ["sh", "-c", f"echo $$ > {pidfile}.tmp && mv {pidfile}.tmp {pidfile}"
                           f" && exec sleep 60"])
    wait_until(pidfile.exists, what="the child to start")
    pid = int(pidfile.read_text())
    job.wait_blocked("wait4", pid)
    job.cancel_and_check()
    with pytest.raises(ProcessLookupError):     # killed and reaped: no zombie
        os.kill(pid, 0)


@requires_core
def test_subprocess_run_with_timeout_and_pipes_in_worker_cancelled(executor, tmp_path):
    pidfile = tmp_path / "pid"

    def run():
        return subprocess.run(
            ["sh", "-c", f"echo $$ > {pidfile}.tmp && mv {pidfile}.tmp {pidfile}"
                         f" && exec sleep 60"], capture_output=True, timeout=60)
    job = Job(executor, run)
    wait_until(pidfile.exists, what="the child to start")
    pid = int(pidfile.read_text())
    job.wait_blocked("ppoll")           # communicate() polls the pipes
    job.cancel_and_check()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@requires_core
def test_popen_wait_in_worker_cancelled_child_left_running(executor):
    proc = subprocess.Popen(["sleep", "60"])
    try:
        cancel_blocked_job(executor, proc.wait, syscall="wait4", arg0=proc.pid)
        assert proc.poll() is None                 # wait() does not kill
    finally:
        proc.kill()
        assert proc.wait(JOIN_TIMEOUT) == -signal.SIGKILL


@requires_core
def test_queue_get_in_worker_cancelled_queue_still_works(executor):
    q = queue.Queue()
    cancel_blocked_job(executor, q.get, syscall="futex")
    assert not q.not_empty._waiters          # the waiter left the condition
    q.put("item")
    assert executor.submit(q.get).result(JOIN_TIMEOUT) == "item"


@requires_core
def test_select_in_worker_cancelled(executor, pipe):
    r, _ = pipe
    cancel_blocked_job(executor, select.select, [r], [], [], syscall="pselect6",
                       arg0=r + 1)


@requires_core
def test_event_wait_in_worker_cancelled(executor):
    ev = threading.Event()
    cancel_blocked_job(executor, ev.wait, syscall="futex")
    assert not ev._cond._waiters


@requires_core
@pytest.mark.parametrize("kind", ["poll", "epoll", "DefaultSelector",
                                  "PollSelector", "SelectSelector"])
def test_poll_objects_and_selectors_in_worker_cancelled(executor, pipe, kind):
    r, _ = pipe
    if kind == "poll":
        obj = select.poll()
        obj.register(r, select.POLLIN)
        wait, nr = obj.poll, "ppoll"
    elif kind == "epoll":
        obj = select.epoll()
        obj.register(r, select.EPOLLIN)
        wait, nr = obj.poll, "epoll_pwait"
    else:
        obj = getattr(selectors, kind)()
        obj.register(r, selectors.EVENT_READ)
        wait = obj.select
        nr = {"DefaultSelector": "epoll_pwait", "PollSelector": "ppoll",
              "SelectSelector": "pselect6"}[kind]
    try:
        cancel_blocked_job(executor, wait, syscall=nr)
    finally:
        close = getattr(obj, "close", None)
        if close:
            close()


@requires_core
def test_os_waits_in_worker_cancelled(executor, pipe):
    r, w = pipe
    cancel_blocked_job(executor, os.read, r, 1, syscall="read", arg0=r)
    cancel_blocked_job(executor, os.readv, r, [bytearray(1)], syscall="readv", arg0=r)
    proc = subprocess.Popen(["sleep", "60"])
    try:
        cancel_blocked_job(executor, os.waitpid, proc.pid, 0, syscall="wait4",
                           arg0=proc.pid)
        cancel_blocked_job(executor, os.waitid, os.P_PID, proc.pid, os.WEXITED,
                           syscall="waitid")
    finally:
        proc.kill()
        proc.wait()
    os.write(w, b"z")
    assert os.read(r, 1) == b"z"


@requires_core
def test_fcntl_locks_in_worker_cancelled(executor, tmp_path):
    path = tmp_path / "lock"
    path.touch()
    with open(path) as holder, open(path) as waiter:
        fcntl.flock(holder, fcntl.LOCK_EX)
        cancel_blocked_job(executor, fcntl.flock, waiter, fcntl.LOCK_EX,
                           syscall="flock", arg0=waiter.fileno())
    # fcntl.fcntl without a lock wait keeps the original
    assert fcntl.fcntl(0, fcntl.F_GETFD) == _patch._saved[(fcntl, "fcntl")][0](
        0, fcntl.F_GETFD)


@requires_core
def test_sigwaitinfo_in_worker_cancelled(executor):
    def wait():
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR2])
        try:
            return signal.sigwaitinfo([signal.SIGUSR2])
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGUSR2])
    cancel_blocked_job(executor, wait, syscall="rt_sigtimedwait")


# ---- in workers: stdlib results otherwise ------------------------------------------

def test_socket_timeouts_and_nonblocking_in_worker_keep_stdlib_behaviour(executor):
    a, b = socket.socketpair()
    with a, b:
        a.settimeout(0.01)
        with pytest.raises(TimeoutError):
            executor.submit(a.recv, 1).result(JOIN_TIMEOUT)
        a.setblocking(False)
        with pytest.raises(BlockingIOError):
            executor.submit(a.recv, 1).result(JOIN_TIMEOUT)
        a.setblocking(True)
        b.sendall(b"data")
        assert executor.submit(a.recv, 4).result(JOIN_TIMEOUT) == b"data"
    with socket.socket() as c, socket.socket() as d:    # port 1: refused
        assert executor.submit(c.connect_ex, ("127.0.0.1", 1)).result(JOIN_TIMEOUT) \
            == d.connect_ex(("127.0.0.1", 1))


def test_worker_queue_event_and_subprocess_results(executor):
    q = queue.Queue()
    f = executor.submit(q.get)
    q.put(5)
    assert f.result(JOIN_TIMEOUT) == 5
    assert executor.submit(threading.Event().wait, 0.001).result(JOIN_TIMEOUT) is False
    done = executor.submit(subprocess.run, [sys.executable, "-c", "print(42)"],
                           capture_output=True, timeout=60).result(60)
    assert done.stdout == b"42\n" and done.returncode == 0
    with pytest.raises(subprocess.TimeoutExpired):
        executor.submit(subprocess.run, ["sleep", "5"], timeout=0.05).result(60)


@requires_core
def test_queue_notify_racing_cancel_is_never_lost(executor):
    """Two jobs wait in q.get(); one is cancelled while an item is put.
    Either the cancelled job still got the item (its result is kept) or the
    other job gets it: the put is never lost."""
    kept = passed_on = 0
    for i in range(40):
        q = queue.Queue()
        first, second = Job(executor, q.get), Job(executor, q.get)
        first.wait_blocked("futex")
        second.wait_blocked("futex")
        if i % 2:
            q.put("item")
            first.future.cancel()
        else:
            first.future.cancel()
            q.put("item")
        wait_until(first.future.done, JOIN_TIMEOUT, "the cancelled job")
        # cancel() of the running job was False (the stdlib's answer); the
        # job ended with its Cancelled, or with the item it got first.
        if isinstance(first.future.exception(), aiocancel.Cancelled):
            passed_on += 1
            assert second.future.result(JOIN_TIMEOUT) == "item"
        else:
            kept += 1
            assert first.future.result() == "item"
            q.put("next")
            assert second.future.result(JOIN_TIMEOUT) == "next"
    assert kept + passed_on == 40


@requires_core
def test_cancelled_job_cannot_block_again_but_can_reap(executor, pipe):
    """After a cancellation acted, the job's further patched waits raise
    Cancelled at once (a library retrying the "dropped connection" must not
    block again), except reaping a child, which cleanup needs."""
    r, _ = pipe
    q = queue.Queue()
    a, b = socket.socketpair()

    def job():
        out = []
        proc = subprocess.Popen(["sleep", "60"])
        try:
            q.get()
        except aiocancel.Cancelled:
            out.append("get")
        for call in (lambda: time.sleep(60), lambda: a.recv(1),
                     lambda: select.select([r], [], []), q.get,
                     lambda: socket.create_connection(("127.0.0.1", 9))):
            try:
                call()
            except aiocancel.Cancelled:
                out.append("again")
        proc.kill()
        out.append(os.waitpid(proc.pid, 0)[0] == proc.pid)
        return out
    with a, b:
        j = Job(executor, job)
        j.wait_blocked("futex")
        assert not j.future.cancel()          # running: False, yet sent
        # The job caught its Cancelled and returned: a result, not a cancellation.
        assert j.future.result(JOIN_TIMEOUT) == ["get"] + ["again"] * 5 + [True]
        # The worker's next job is a fresh one: its calls block again.
        assert executor.submit(lambda: select.select([r], [], [], 0.001)).result(
            JOIN_TIMEOUT) == ([], [], [])
