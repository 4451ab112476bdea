"""The asyncio front end's public names and signatures, and helpers that
need no event loop."""
from __future__ import annotations

import asyncio
import inspect
import os
import signal
import socket
import time

import pytest

import aiocancel
from aiocancel import aio, syscalls
from aiocancel import close_abandoned
from conftest import JOIN_TIMEOUT


def test_to_thread_signature_matches_asyncio():
    params = inspect.signature(aiocancel.to_thread).parameters
    assert list(params)[:2] == ["func", "args"]
    assert params["func"].kind is inspect.Parameter.POSITIONAL_ONLY
    assert params["abandon_on_cancel"].default is False
    assert params["grace"].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["on_abandoned_result"].default is close_abandoned
    assert params["kwargs"].kind is inspect.Parameter.VAR_KEYWORD
    assert inspect.iscoroutinefunction(aiocancel.to_thread)


def test_install_signature():
    params = inspect.signature(aiocancel.install).parameters
    assert list(params)[:2] == ["loop", "executor"]
    assert params["loop"].default is None
    assert params["executor"].default is None
    assert params["grace"].kind is inspect.Parameter.KEYWORD_ONLY


def test_grace_is_a_finite_default_and_validated():
    assert 0 < aiocancel.DEFAULT_GRACE < float("inf")
    assert aiocancel.Executor().grace == aiocancel.DEFAULT_GRACE
    assert aiocancel.Executor(grace=None).grace is None
    assert aiocancel.Executor(grace=0).grace == 0.0
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            aiocancel.Executor(grace=bad)
    for bad in ("1", True, [1]):
        with pytest.raises(TypeError):
            aiocancel.Executor(grace=bad)


def test_every_syscall_has_an_awaitable():
    """The issue's awaitables (and the rest of the core set) exist, and each
    mirrors the syscall it awaits."""
    known = {"sleep_blocking" if n == "sleep" else n for n in syscalls.__all__}
    required = {"read", "write", "recv", "sendall", "accept", "connect",
                "sleep_blocking", "waitpid", "readinto", "pread", "pwrite",
                "recv_into", "send", "poll"}
    assert required <= set(aio.__all__) <= known
    for name in aio.__all__:
        fn = getattr(aio, name)
        assert inspect.iscoroutinefunction(fn), name
        assert fn.__doc__, name
        wrapped = getattr(syscalls, "sleep" if name == "sleep_blocking" else name)
        # Same parameters and defaults as the syscall it awaits.
        ours = inspect.signature(fn).parameters
        theirs = inspect.signature(wrapped).parameters
        assert [(p.name, p.default) for p in ours.values()] == \
            [(p.name, p.default) for p in theirs.values()], name


def test_close_abandoned_closes_only_unambiguous_resources():
    """Sockets and file objects are closed; ints and tuples are never
    touched (a (pid, status) or (count, label) is no fd)."""
    a, b = socket.socketpair()
    close_abandoned(a)
    assert a.fileno() == -1
    r, w = os.pipe()
    f = os.fdopen(r, "rb")
    close_abandoned(f)
    assert f.closed
    fd = os.dup(b.fileno())
    close_abandoned((fd, ("127.0.0.1", 1)))
    close_abandoned((fd, 0))
    close_abandoned(fd)
    os.fstat(fd)                         # all left alone: still open
    os.close(fd)
    os.close(w)
    close_abandoned(b"data")
    close_abandoned(None)
    b.close()


# Forking with live threads is the point here (3.12+ warns about it).
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")
def test_forked_child_gets_a_fresh_module_executor():
    """The child inherits the module executor object but not its threads:
    to_thread there must start a new pool instead of queueing for ever."""
    parent = aiocancel._asyncio._module_executor()
    parent.submit(int).result(JOIN_TIMEOUT)      # it has a worker thread
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            if (asyncio.run(aiocancel.to_thread(lambda: 7)) == 7
                    and aiocancel._asyncio._module_executor() is not parent):
                code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + JOIN_TIMEOUT
    while (result := os.waitpid(pid, os.WNOHANG)) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(result[1]) == 0


def test_aio_is_reachable_from_the_package():
    assert aiocancel.aio is aio
    assert {"aio", "to_thread", "install", "get_executor", "Executor"} <= set(aiocancel.__all__)
