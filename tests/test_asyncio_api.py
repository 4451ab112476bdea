"""The asyncio front end's public names and signatures, and helpers that
need no event loop."""
from __future__ import annotations

import inspect
import os
import socket

import pytest

import aiocancel
from aiocancel import aio, syscalls
from aiocancel._job import close_abandoned


def test_to_thread_signature_matches_asyncio():
    params = inspect.signature(aiocancel.to_thread).parameters
    assert list(params)[:2] == ["func", "args"]
    assert params["func"].kind is inspect.Parameter.POSITIONAL_ONLY
    assert params["abandon_on_cancel"].default is False
    assert params["on_abandoned_result"].default is close_abandoned
    assert params["kwargs"].kind is inspect.Parameter.VAR_KEYWORD
    assert inspect.iscoroutinefunction(aiocancel.to_thread)


def test_install_signature():
    params = inspect.signature(aiocancel.install).parameters
    assert list(params)[:2] == ["loop", "executor"]
    assert params["loop"].default is None
    assert params["executor"].default is None


def test_every_syscall_has_an_awaitable():
    expected = {"sleep_blocking" if n == "sleep" else n for n in syscalls.__all__}
    assert set(aio.__all__) == expected
    for name in expected:
        fn = getattr(aio, name)
        assert inspect.iscoroutinefunction(fn), name
        assert fn.__doc__, name
        wrapped = getattr(syscalls, "sleep" if name == "sleep_blocking" else name)
        # Same parameters and defaults as the syscall it awaits.
        ours = inspect.signature(fn).parameters
        theirs = inspect.signature(wrapped).parameters
        assert [(p.name, p.default) for p in ours.values()] == \
            [(p.name, p.default) for p in theirs.values()], name


def test_close_abandoned_closes_what_holds_resources():
    a, b = socket.socketpair()
    close_abandoned(a)
    assert a.fileno() == -1
    fd = os.dup(b.fileno())
    close_abandoned((fd, ("127.0.0.1", 1)))
    with pytest.raises(OSError):
        os.fstat(fd)
    close_abandoned(5)                   # a bare int may be a count: left alone
    close_abandoned(b"data")
    close_abandoned(None)
    b.close()
