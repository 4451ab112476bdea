"""aiocancel.syscalls message/datagram socket calls: recvfrom,
recvfrom_into, recvmsg, sendto, sendmsg, and accept's accept4 flags.

Results and bad-input errors match the socket methods'; a call blocked in
the kernel is cancelled with nothing lost: a datagram sent afterwards (or
one that was queued) is delivered whole, fds passed with SCM_RIGHTS are
neither lost nor leaked."""
from __future__ import annotations

import array
import errno
import os
import socket

import pytest
from conftest import fd_count, requires_core
from syscall_fixtures import (Pending, assert_cancelled, cancel_when_blocked,
                              same_outcome)

from aiocancel import Cancelled, syscalls


@pytest.fixture
def udp_pair():
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def unix_dgram(tmp_path):
    """(receiver bound to a path, unbound sender, path)."""
    path = str(tmp_path / "sock")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    tx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    yield rx, tx, path
    rx.close()
    tx.close()


def _fill_queue(tx: socket.socket, path: str) -> int:
    """Send datagrams to `path` until its queue is full; return how many."""
    tx.setblocking(False)
    n = 0
    try:
        while True:
            tx.sendto(b"q%d" % n, path)
            n += 1
    except BlockingIOError:
        pass
    tx.setblocking(True)
    return n


def _drain(rx: socket.socket) -> list[bytes]:
    rx.setblocking(False)
    out = []
    try:
        while True:
            out.append(rx.recv(100))
    except BlockingIOError:
        pass
    rx.setblocking(True)
    return out


# ---- recvfrom / recvfrom_into -------------------------------------------

def test_recvfrom_matches_socket(udp_pair):
    a, b = udp_pair
    for _ in range(2):
        b.sendto(b"ping", a.getsockname())
    ours = syscalls.recvfrom(a, 100)
    theirs = a.recvfrom(100)
    assert ours == theirs == (b"ping", b.getsockname())
    assert type(ours[1]) is tuple
    same_outcome(lambda: syscalls.recvfrom(a, -1), lambda: a.recvfrom(-1))
    # a connected stream socket reports no address
    s1, s2 = socket.socketpair()
    with s1, s2:
        s2.sendall(b"abcd")
        assert syscalls.recvfrom(s1, 2) == (b"ab", None)
        assert s1.recvfrom(2) == (b"cd", None)


def test_recvfrom_into_matches_socket(udp_pair):
    a, b = udp_pair
    b.sendto(b"hello", a.getsockname())
    b.sendto(b"hello", a.getsockname())
    ours, theirs = bytearray(8), bytearray(8)
    assert syscalls.recvfrom_into(a, ours, 3) == a.recvfrom_into(theirs, 3) \
        == (3, b.getsockname())
    assert ours == theirs
    same_outcome(lambda: syscalls.recvfrom_into(a, bytearray(2), -1),
                 lambda: a.recvfrom_into(bytearray(2), -1))
    same_outcome(lambda: syscalls.recvfrom_into(a, bytearray(2), 5),
                 lambda: a.recvfrom_into(bytearray(2), 5))
    same_outcome(lambda: syscalls.recvfrom_into(a, b"ro"),
                 lambda: a.recvfrom_into(b"ro"), message=False)


def test_recvfrom_honours_socket_timeout(udp_pair):
    a, _ = udp_pair
    a.settimeout(0.01)
    same_outcome(lambda: syscalls.recvfrom(a, 1), lambda: a.recvfrom(1))
    a.setblocking(False)
    same_outcome(lambda: syscalls.recvfrom(a, 1), lambda: a.recvfrom(1))


@requires_core
@pytest.mark.parametrize("call", ["recvfrom", "recvfrom_into"])
def test_recvfrom_cancelled_while_blocked(udp_pair, call):
    a, b = udp_pair
    args = (a, 10) if call == "recvfrom" else (a, bytearray(10))
    run = cancel_when_blocked(getattr(syscalls, call), *args,
                              syscall="recvfrom", arg0=a.fileno())
    assert_cancelled(run)
    b.sendto(b"later", a.getsockname())
    assert syscalls.recvfrom(a, 10) == (b"later", b.getsockname())


# ---- sendto -------------------------------------------------------------------

def test_sendto_matches_socket(udp_pair):
    a, b = udp_pair
    assert syscalls.sendto(b, b"one", a.getsockname()) == 3
    assert syscalls.sendto(b, memoryview(b"two"), 0, a.getsockname()) == 3
    assert syscalls.sendto(b.fileno(), bytearray(b"three"), a.getsockname()) == 5
    assert [a.recvfrom(10) for _ in range(3)] == [
        (b"one", b.getsockname()), (b"two", b.getsockname()),
        (b"three", b.getsockname())]
    same_outcome(lambda: syscalls.sendto(b, b"x"), lambda: b.sendto(b"x"))
    same_outcome(lambda: syscalls.sendto(b, b"x", 1, 2, 3),
                 lambda: b.sendto(b"x", 1, 2, 3))
    same_outcome(lambda: syscalls.sendto(b, "x", a.getsockname()),
                 lambda: b.sendto("x", a.getsockname()))
    for bad in [("127.0.0.1", 99999), "abc"]:
        same_outcome(lambda: syscalls.sendto(b, b"x", bad),
                     lambda: b.sendto(b"x", bad), message=False)


@requires_core
def test_sendto_cancelled_while_queue_full(unix_dgram):
    rx, tx, path = unix_dgram
    queued = _fill_queue(tx, path)
    run = cancel_when_blocked(syscalls.sendto, tx, b"blocked", path,
                              syscall="sendto", arg0=tx.fileno())
    assert_cancelled(run)
    assert _drain(rx) == [b"q%d" % i for i in range(queued)]   # not "blocked"


# ---- recvmsg / sendmsg ----------------------------------------------------------

def _fds_in(ancdata) -> list[int]:
    fds = array.array("i")
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    return list(fds)


def test_sendmsg_recvmsg_pass_fds_like_socket(pipe):
    r, w = pipe
    s1, s2 = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with s1, s2:
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [r, w]))]
        assert syscalls.sendmsg(s1, [b"ab", b"cd"], rights) == 4
        assert s1.sendmsg([b"ab", b"cd"], rights) == 4
        space = socket.CMSG_SPACE(2 * 4)
        ours = syscalls.recvmsg(s2, 10, space)
        theirs = s2.recvmsg(10, space)
        for msg in (ours, theirs):
            assert msg[0] == b"abcd" and msg[2] == 0 and msg[3] is None
            assert len(msg[1]) == 1 and msg[1][0][:2] == (socket.SOL_SOCKET,
                                                           socket.SCM_RIGHTS)
            got = _fds_in(msg[1])
            assert len(got) == 2
            os.write(got[1], b"x")          # the passed write end works
            assert os.read(r, 1) == b"x"
            for fd in got:
                os.close(fd)


def test_recvmsg_truncation_and_errors_match_socket(udp_pair):
    a, b = udp_pair
    b.sendto(b"0123456789", a.getsockname())
    b.sendto(b"0123456789", a.getsockname())
    ours = syscalls.recvmsg(a, 4)
    theirs = a.recvmsg(4)
    assert ours == theirs == (b"0123", [], socket.MSG_TRUNC, b.getsockname())
    same_outcome(lambda: syscalls.recvmsg(a, -1), lambda: a.recvmsg(-1))
    same_outcome(lambda: syscalls.recvmsg(a, 1, -1), lambda: a.recvmsg(1, -1))
    same_outcome(lambda: syscalls.sendmsg(b, 5), lambda: b.sendmsg(5))
    same_outcome(lambda: syscalls.sendmsg(b, [b""], 5), lambda: b.sendmsg([b""], 5))
    same_outcome(lambda: syscalls.sendmsg(b, [b""], [5]), lambda: b.sendmsg([b""], [5]))
    same_outcome(lambda: syscalls.sendmsg(b, ["s"]), lambda: b.sendmsg(["s"]))
    assert syscalls.sendmsg(b, [b"to", b"addr"], [], 0, a.getsockname()) == 6
    assert a.recvfrom(10) == (b"toaddr", b.getsockname())


def test_recvmsg_ctrunc_reports_partial_rights(pipe):
    r, w = pipe
    s1, s2 = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with s1, s2:
        before = fd_count()
        s1.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                             array.array("i", [r, w, r]))])
        data, anc, flags, _ = syscalls.recvmsg(s2, 1, socket.CMSG_LEN(4))
        assert flags & socket.MSG_CTRUNC
        for fd in _fds_in(anc):
            os.close(fd)
        assert fd_count() == before     # the kernel closed what did not fit


@requires_core
def test_recvmsg_cancelled_while_blocked_then_fds_arrive_intact(pipe):
    r, w = pipe
    s1, s2 = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with s1, s2:
        before = fd_count()
        run = cancel_when_blocked(syscalls.recvmsg, s2, 10, 64,
                                  syscall="recvmsg", arg0=s2.fileno())
        assert_cancelled(run)
        assert fd_count() == before
        syscalls.sendmsg(s1, [b"fd"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                        array.array("i", [w]))])
        data, anc, _, _ = syscalls.recvmsg(s2, 10, 64)
        (fd,) = _fds_in(anc)
        assert data == b"fd"
        os.write(fd, b"!")
        os.close(fd)
        assert os.read(r, 1) == b"!"


@requires_core
def test_sendmsg_cancelled_while_queue_full(unix_dgram):
    rx, tx, path = unix_dgram
    queued = _fill_queue(tx, path)
    run = cancel_when_blocked(syscalls.sendmsg, tx, [b"blocked"], [], 0, path,
                              syscall="sendmsg", arg0=tx.fileno())
    assert_cancelled(run)
    assert _drain(rx) == [b"q%d" % i for i in range(queued)]


@pytest.mark.parametrize("call,args", [
    ("recvfrom", (10,)), ("recvfrom_into", (bytearray(1),)),
    ("recvmsg", (10,)), ("sendto", (b"x", ("127.0.0.1", 9))),
    ("sendmsg", ([b"x"], [], 0, ("127.0.0.1", 9)))])
def test_pending_request_acts_before_the_call(udp_pair, call, args):
    a, b = udp_pair
    b.sendto(b"queued", a.getsockname())
    run = Pending().run(getattr(syscalls, call), a, *args)
    assert isinstance(run.exc, Cancelled)
    # nothing was taken: the queued datagram is still there
    assert a.recvfrom(10) == (b"queued", b.getsockname())


# ---- accept4 flags ----------------------------------------------------------------

def test_accept_flags_are_accept4s():
    with socket.create_server(("127.0.0.1", 0)) as srv:
        clients = [socket.create_connection(srv.getsockname()) for _ in range(2)]
        try:
            fd, addr = syscalls.accept(srv, socket.SOCK_NONBLOCK)
            assert not os.get_blocking(fd)
            assert os.get_inheritable(fd)             # no SOCK_CLOEXEC asked
            assert addr == clients[0].getsockname()
            os.close(fd)
            fd, addr = syscalls.accept(srv)            # default: CLOEXEC only
            assert os.get_blocking(fd) and not os.get_inheritable(fd)
            os.close(fd)
        finally:
            for c in clients:
                c.close()
    with pytest.raises(OSError) as info:
        syscalls.accept(-1)
    assert info.value.errno == errno.EBADF
