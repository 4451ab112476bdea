"""aiocancel.syscalls.msgsnd / msgrcv (System V message queues): results
and errors match libc's msgsnd(3)/msgrcv(3) (called through ctypes, the
stdlib having no binding); a blocked msgrcv (empty queue) or msgsnd (full
queue) is cancelled without taking or adding a message."""
from __future__ import annotations

import ctypes
import errno

import pytest
from conftest import requires_core
from syscall_fixtures import Pending, assert_cancelled, cancel_when_blocked

from aiocancel import Cancelled, syscalls

IPC_PRIVATE, IPC_CREAT, IPC_RMID, IPC_STAT = 0, 0o1000, 0, 2
IPC_NOWAIT, MSG_NOERROR = 0o4000, 0o10000

# The compiled core's calls: the fallback has no System V IPC.
pytestmark = requires_core

libc = ctypes.CDLL(None, use_errno=True)
libc.msgrcv.restype = ctypes.c_ssize_t


@pytest.fixture
def queue_id():
    qid = libc.msgget(IPC_PRIVATE, IPC_CREAT | 0o600)
    if qid < 0:
        pytest.fail(f"msgget: {ctypes.get_errno()}")
    yield qid
    libc.msgctl(qid, IPC_RMID, None)


def _libc_send(qid, mtype, data):
    buf = ctypes.create_string_buffer(ctypes.sizeof(ctypes.c_long) + len(data))
    ctypes.c_long.from_buffer(buf).value = mtype
    buf[ctypes.sizeof(ctypes.c_long):] = data
    assert libc.msgsnd(qid, buf, ctypes.c_size_t(len(data)), 0) == 0


def _libc_recv(qid, maxsize, mtype=0, flags=0):
    buf = ctypes.create_string_buffer(ctypes.sizeof(ctypes.c_long) + maxsize)
    n = libc.msgrcv(qid, buf, ctypes.c_size_t(maxsize), ctypes.c_long(mtype), flags)
    if n < 0:
        return ("errno", ctypes.get_errno())
    head = ctypes.sizeof(ctypes.c_long)
    return ctypes.c_long.from_buffer(buf).value, buf.raw[head:head + n]


def _ours_recv(qid, maxsize, mtype=0, flags=0):
    try:
        return syscalls.msgrcv(qid, maxsize, mtype, flags)
    except OSError as exc:
        return ("errno", exc.errno)


def test_msgsnd_msgrcv_match_libc(queue_id):
    for t, data in [(3, b"three"), (1, b"one"), (2, b""), (5, bytearray(b"five5"))]:
        syscalls.msgsnd(queue_id, t, data)
        _libc_send(queue_id, t, bytes(data))
    cases = [(100, 2, 0), (100, 0, 0), (100, -2, 0), (3, 5, 0), (3, 5, MSG_NOERROR),
             (100, 7, IPC_NOWAIT)]
    for maxsize, mtype, flags in cases:
        assert _ours_recv(queue_id, maxsize, mtype, flags) == \
            _libc_recv(queue_id, maxsize, mtype, flags)
    assert _ours_recv(queue_id, 100, 0, IPC_NOWAIT) == ("errno", errno.ENOMSG)


def test_bad_input(queue_id):
    with pytest.raises(OSError) as info:
        syscalls.msgsnd(queue_id, 0, b"x")             # type must be > 0
    assert info.value.errno == errno.EINVAL
    with pytest.raises(OSError) as info:
        syscalls.msgrcv(-1, 10)
    assert info.value.errno == errno.EINVAL
    with pytest.raises(ValueError):
        syscalls.msgrcv(queue_id, -1)
    with pytest.raises(TypeError):
        syscalls.msgsnd(queue_id, 1, "str")


def test_msgrcv_cancelled_while_queue_empty(queue_id):
    run = cancel_when_blocked(syscalls.msgrcv, queue_id, 10, syscall="msgrcv",
                              arg0=queue_id)
    assert_cancelled(run)
    syscalls.msgsnd(queue_id, 1, b"after")
    assert syscalls.msgrcv(queue_id, 10) == (1, b"after")


def test_msgsnd_cancelled_while_queue_full(queue_id):
    sent = 0
    while True:
        try:
            syscalls.msgsnd(queue_id, 1, b"x" * 1024, IPC_NOWAIT)
        except BlockingIOError:
            break
        sent += 1
    run = cancel_when_blocked(syscalls.msgsnd, queue_id, 2, b"blocked",
                              syscall="msgsnd", arg0=queue_id)
    assert_cancelled(run)
    got = []
    while True:
        try:
            got.append(syscalls.msgrcv(queue_id, 2048, 0, IPC_NOWAIT)[0])
        except OSError as exc:
            assert exc.errno == errno.ENOMSG
            break
    assert got == [1] * sent                  # the blocked message never went in


def test_pending_request_acts_before_the_call(queue_id):
    syscalls.msgsnd(queue_id, 1, b"kept")
    assert isinstance(Pending().run(syscalls.msgrcv, queue_id, 10).exc, Cancelled)
    assert isinstance(Pending().run(syscalls.msgsnd, queue_id, 1, b"no").exc, Cancelled)
    assert syscalls.msgrcv(queue_id, 10, 0, IPC_NOWAIT) == (1, b"kept")
    with pytest.raises(OSError):
        syscalls.msgrcv(queue_id, 10, 0, IPC_NOWAIT)
