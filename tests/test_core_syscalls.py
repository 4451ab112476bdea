"""aiocancel.syscalls: cancelling blocked calls, stdlib-equal results, bad input."""
from __future__ import annotations

import array
import errno
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

import pytest

import aiocancel
from aiocancel import syscalls
from conftest import (blocked_in, fd_count, open_fds, pipe_pending, requires_core,
                      run_in_thread, wait_blocked, wait_until)

POLLIN, POLLOUT = select.POLLIN, select.POLLOUT


def masked_call(fn, *args):
    """Thread body: run fn in MASKED state; return (outcome, state after)."""
    def body():
        with aiocancel.masked():
            try:
                result = fn(*args)
            except aiocancel.Cancelled as exc:
                return exc, aiocancel.getcancelstate()
            return result, aiocancel.getcancelstate()
    return body


def cancel_blocked(runner, body, syscall, arg0=None):
    """Start `body` in a thread, wait until it blocks in `syscall`, cancel it,
    join it, and return what it returned."""
    t = runner(body)
    wait_blocked(t.native_id, syscall, arg0, alive=t.alive)
    assert aiocancel.cancel_thread(t.ident) is True
    return t.outcome()


def assert_cancelled(outcome):
    exc, state = outcome
    assert isinstance(exc, aiocancel.Cancelled), f"call returned {exc!r}"
    assert exc.errno == errno.ECANCELED
    assert state == aiocancel.CANCEL_DISABLE


@pytest.fixture
def sockpair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def _tcp_listener(family=socket.AF_INET, backlog=8):
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    lst = socket.socket(family, socket.SOCK_STREAM)
    lst.bind((host, 0))
    lst.listen(backlog)
    return lst


def _have_ipv6() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


# =============================================================================
# A thread blocked in each call is cancelled, and the fd stays usable
# =============================================================================

@requires_core
def test_cancel_blocked_read_empty_pipe(runner, pipe):
    r, w = pipe
    assert_cancelled(cancel_blocked(runner, masked_call(syscalls.read, r, 10), "read", r))
    os.write(w, b"z")
    assert syscalls.read(r, 10) == b"z"


@requires_core
def test_cancel_blocked_readinto_empty_pipe(runner, pipe):
    r, w = pipe
    buf = bytearray(8)
    assert_cancelled(cancel_blocked(runner, masked_call(syscalls.readinto, r, buf),
                                    "read", r))
    assert buf == bytearray(8)
    os.write(w, b"q")
    assert syscalls.readinto(r, buf) == 1 and buf[:1] == b"q"


@requires_core
def test_cancel_blocked_write_full_pipe(runner, pipe):
    """A write that cannot write a single byte is cancelled; nothing of it
    reaches the pipe."""
    r, w = pipe
    os.set_blocking(w, False)
    filled = 0
    while True:
        try:
            filled += os.write(w, b"f" * 65536)
        except BlockingIOError:
            break
    os.set_blocking(w, True)
    assert_cancelled(cancel_blocked(runner, masked_call(syscalls.write, w, b"X"), "write", w))
    data = pipe_pending(r)
    assert data == b"f" * filled
    assert syscalls.write(w, b"ok") == 2
    assert os.read(r, 10) == b"ok"


@requires_core
def test_cancel_blocked_write_after_partial_write_returns_the_count(runner, pipe):
    """A big write fills the pipe, then blocks; the request arrives then. The
    kernel already wrote part of it, so that count is the result (no lost
    result), the request stays pending, and the next call is cancelled."""
    r, w = pipe
    data = b"p" * (1 << 20)

    def body():
        with aiocancel.masked():
            n = syscalls.write(w, data)
            state, pending = aiocancel.getcancelstate(), aiocancel._cancel._pending()
            try:
                syscalls.write(w, b"more")
            except aiocancel.Cancelled:
                return n, state, pending, "cancelled"
            return n, state, pending, "written"

    n, state, pending, second = cancel_blocked(runner, body, "write", w)
    assert 0 < n < len(data)
    assert (state, pending, second) == (aiocancel.CANCEL_MASKED, True, "cancelled")
    assert pipe_pending(r) == data[:n]


@requires_core
def test_cancel_blocked_recv_silent_socket(runner, sockpair):
    a, b = sockpair
    assert_cancelled(cancel_blocked(runner, masked_call(syscalls.recv, a, 100),
                                    "recvfrom", a.fileno()))
    b.sendall(b"hi")
    assert syscalls.recv(a, 100) == b"hi"


@requires_core
def test_cancel_blocked_recv_into_silent_socket(runner, sockpair):
    a, b = sockpair
    buf = bytearray(4)
    assert_cancelled(cancel_blocked(runner, masked_call(syscalls.recv_into, a, buf),
                                    "recvfrom", a.fileno()))
    b.sendall(b"hi")
    assert syscalls.recv_into(a, buf) == 2 and buf[:2] == b"hi"


@requires_core
def test_cancel_blocked_recv_socket_with_timeout(runner, sockpair):
    """A socket with a timeout waits in ppoll; that wait is cancellable too."""
    a, b = sockpair
    a.settimeout(60)
    assert_cancelled(cancel_blocked(runner, masked_call(syscalls.recv, a, 100), "ppoll"))
    b.sendall(b"hi")
    assert syscalls.recv(a, 100) == b"hi"


@requires_core
def test_cancel_blocked_sendall_reports_bytes_sent(runner, sockpair):
    """sendall blocks once the buffers are full; on cancellation bytes_sent
    is exactly what the peer can read."""
    a, b = sockpair
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    data = bytes(range(256)) * 4096          # 1 MiB, far more than the buffers
    outcome = cancel_blocked(runner, masked_call(syscalls.sendall, a, data), "sendto",
                             a.fileno())
    assert_cancelled(outcome)
    sent = outcome[0].bytes_sent
    assert 0 < sent < len(data)
    b.setblocking(False)
    received = bytearray()
    while True:
        try:
            chunk = b.recv(1 << 16)
        except BlockingIOError:
            break
        received += chunk
    assert bytes(received) == data[:sent]
    syscalls.sendall(a, b"end")
    b.setblocking(True)
    assert syscalls.recv(b, 10) == b"end"


@requires_core
def test_cancel_blocked_accept(runner):
    lst = _tcp_listener()
    try:
        before = open_fds()
        assert_cancelled(cancel_blocked(runner, masked_call(syscalls.accept, lst),
                                        "accept4", lst.fileno()))
        assert open_fds() == before
        with socket.create_connection(lst.getsockname()) as c:
            fd, addr = syscalls.accept(lst)
            try:
                assert addr == c.getsockname()
            finally:
                os.close(fd)
    finally:
        lst.close()


@requires_core
def test_cancel_blocked_connect_tcp_full_backlog(runner):
    """connect to a loopback listener whose accept queue is full: the SYN is
    dropped, so connect really blocks (checked via /proc) until cancelled."""
    lst = _tcp_listener(backlog=0)
    fillers = []
    sock = socket.socket()
    try:
        # listen(0) queues one connection; once it is established, further
        # SYNs are dropped while nobody accepts.
        c = socket.socket()
        c.setblocking(False)
        assert c.connect_ex(lst.getsockname()) in (0, errno.EINPROGRESS)
        fillers.append(c)
        assert select.select([], [c], [], 10)[1], "first connection never completed"
        assert c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
        outcome = cancel_blocked(runner, masked_call(syscalls.connect, sock,
                                                     lst.getsockname()),
                                 "connect", sock.fileno())
        assert_cancelled(outcome)
        # The socket is still open and valid (no POLLNVAL), just not connected.
        assert sock.fileno() >= 0
        os.fstat(sock.fileno())
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
        evs = dict(syscalls.poll([(sock, POLLIN | POLLOUT)], 0))
        assert not evs.get(sock.fileno(), 0) & select.POLLNVAL
    finally:
        sock.close()
        for c in fillers:
            c.close()
        lst.close()


@requires_core
def test_cancel_blocked_connect_unix_full_backlog_then_reconnect(runner):
    """Same on AF_UNIX, where connect also blocks on a full backlog; after
    cancellation the same socket connects fine once there is room."""
    lst = socket.socket(socket.AF_UNIX)
    lst.bind("")
    lst.listen(0)
    filler = socket.socket(socket.AF_UNIX)
    filler.connect(lst.getsockname())
    sock = socket.socket(socket.AF_UNIX)
    try:
        assert_cancelled(cancel_blocked(runner, masked_call(syscalls.connect, sock,
                                                            lst.getsockname()),
                                        "connect", sock.fileno()))
        conn, _ = lst.accept()               # make room
        conn.close()
        assert syscalls.connect(sock, lst.getsockname()) is None
        conn, _ = lst.accept()
        with conn:
            syscalls.sendall(sock, b"ping")
            assert conn.recv(10) == b"ping"
    finally:
        for s in (sock, filler, lst):
            s.close()


@requires_core
def test_cancel_blocked_poll_no_events(runner, pipe):
    r, w = pipe
    assert_cancelled(cancel_blocked(runner, masked_call(syscalls.poll, [(r, POLLIN)]),
                                    "ppoll"))
    os.write(w, b"x")
    assert syscalls.poll([(r, POLLIN)], 10) == [(r, POLLIN)]
    assert os.read(r, 1) == b"x"


@requires_core
def test_cancel_blocked_sleep(runner):
    assert_cancelled(cancel_blocked(runner, masked_call(syscalls.sleep, 60),
                                    "clock_nanosleep"))


@requires_core
def test_cancel_blocked_waitpid_sleeping_child(runner):
    argv = [shutil.which("sleep") or "sleep", "60"]
    if not os.path.exists(argv[0]):
        argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    child = subprocess.Popen(argv)
    try:
        assert_cancelled(cancel_blocked(runner, masked_call(syscalls.waitpid, child.pid, 0),
                                        "wait4", child.pid))
        # The child was not reaped by the cancelled call: it is still ours.
        assert syscalls.waitpid(child.pid, os.WNOHANG) == (0, 0)
        child.kill()
        pid, status = syscalls.waitpid(child.pid, 0)
        assert pid == child.pid
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9
        child.returncode = -9
    finally:
        if child.returncode is None:
            child.kill()
            child.wait()


@requires_core
def test_cancel_blocked_read_enable_state_raises_thread_cancelled(runner, pipe):
    r, w = pipe

    def body():
        aiocancel.setcancelstate(aiocancel.CANCEL_ENABLE)
        try:
            syscalls.read(r, 10)
        except aiocancel.ThreadCancelled as exc:
            return exc, aiocancel.getcancelstate()
        return "not cancelled", None

    exc, state = cancel_blocked(runner, body, "read", r)
    assert isinstance(exc, aiocancel.ThreadCancelled)
    assert state == aiocancel.CANCEL_DISABLE
    os.write(w, b"1")
    assert os.read(r, 1) == b"1"


# =============================================================================
# Results match the stdlib (unregistered thread, and MASKED without request)
# =============================================================================

MODES = ["plain", "masked"]


def in_mode(mode, fn):
    if mode == "plain":
        return fn()

    def body():
        with aiocancel.masked():
            out = fn()
            assert aiocancel.getcancelstate() == aiocancel.CANCEL_MASKED
            return out
    return run_in_thread(body)


@pytest.mark.parametrize("mode", MODES)
def test_stdlib_read_write(mode, pipe):
    r, w = pipe

    def body():
        out = []
        for data in (b"hello", bytearray(b"ba"), memoryview(b"xyzw")[1:3],
                     array.array("i", [1, 2]), b""):
            n1 = syscalls.write(w, data)
            n2 = os.write(w, data)
            out.append((n1, n2, type(n1)))
            size = len(memoryview(data).cast("B"))
            a, b = syscalls.read(r, size), os.read(r, size)
            out.append((a, b, type(a)))
        os.write(w, b"abc")
        out.append((syscalls.read(r, 0), os.read(r, 0)))
        out.append((syscalls.read(r, 2), b"ab"))
        out.append((syscalls.read(r, 100), b"c"))
        return out

    for got, want, *rest in in_mode(mode, body):
        assert got == want


@pytest.mark.parametrize("mode", MODES)
def test_stdlib_read_eof_and_readinto(mode, pipe):
    r, w = pipe

    def body():
        os.write(w, b"0123456789")
        ba = bytearray(4)
        n = syscalls.readinto(r, ba)
        mv = memoryview(bytearray(10))
        m = syscalls.readinto(r, mv[2:5])
        arr = array.array("b", [0] * 3)
        k = syscalls.readinto(r, arr)
        os.close(w)
        eof = syscalls.read(r, 10), syscalls.readinto(r, bytearray(3))
        return n, bytes(ba), m, bytes(mv), k, arr.tobytes(), eof

    n, ba, m, mv, k, arr, eof = in_mode(mode, body)
    assert (n, ba) == (4, b"0123")
    assert (m, mv) == (3, b"\x00\x00456" + b"\x00" * 5)
    assert (k, arr) == (3, b"789")
    assert eof == (os.read(r, 10), 0) == (b"", 0)


@pytest.mark.parametrize("mode", MODES)
def test_stdlib_pread_pwrite(mode):
    with tempfile.TemporaryFile() as f:
        fd = f.fileno()

        def body():
            out = []
            out.append((syscalls.pwrite(fd, b"abcdef", 0), os.pwrite(fd, b"abcdef", 10)))
            out.append((syscalls.pwrite(fd, memoryview(b"XY"), 2), os.pwrite(fd, b"XY", 12)))
            out.append((syscalls.pread(fd, 4, 1), os.pread(fd, 4, 11)))
            out.append((syscalls.pread(fd, 100, 14), os.pread(fd, 100, 14)))
            out.append((syscalls.pread(fd, 100, 0), os.pread(fd, 100, 0)))
            out.append((syscalls.pread(fd, 10, 1000), os.pread(fd, 10, 1000)))
            out.append((syscalls.pread(fd, 0, 0), os.pread(fd, 0, 0)))
            return out

        for got, want in in_mode(mode, body):
            assert got == want and type(got) is type(want)
        assert os.pread(fd, 16, 0) == b"abXYef\0\0\0\0abXYef"
        # position untouched, like os.pread/os.pwrite
        assert os.lseek(fd, 0, os.SEEK_CUR) == 0


def test_stdlib_pread_pwrite_errors_match(pipe):
    r, w = pipe
    for ours, theirs in ((lambda: syscalls.pread(r, 1, 0), lambda: os.pread(r, 1, 0)),
                         (lambda: syscalls.pwrite(w, b"x", 0), lambda: os.pwrite(w, b"x", 0))):
        with pytest.raises(OSError) as e1:
            ours()
        with pytest.raises(OSError) as e2:
            theirs()
        assert type(e1.value) is type(e2.value)
        assert e1.value.errno == e2.value.errno == errno.ESPIPE
    with tempfile.TemporaryFile() as f:
        with pytest.raises(OSError) as e1:
            syscalls.pread(f.fileno(), 1, -1)
        with pytest.raises(OSError) as e2:
            os.pread(f.fileno(), 1, -1)
        assert e1.value.errno == e2.value.errno


@pytest.mark.parametrize("mode", MODES)
def test_stdlib_socket_send_recv(mode, sockpair):
    a, b = sockpair

    def body():
        out = []
        out.append((syscalls.send(a, b"hello"), a.send(b"hello")))
        out.append((syscalls.recv(b, 3, socket.MSG_PEEK), b.recv(3, socket.MSG_PEEK)))
        out.append((syscalls.recv(b, 5), b.recv(5)))
        buf1, buf2 = bytearray(8), bytearray(8)
        a.sendall(b"123" * 2)
        out.append((syscalls.recv_into(b, buf1, 3), b.recv_into(buf2, 3)))
        out.append((bytes(buf1), bytes(buf2)))
        a.sendall(b"abcdefgh" * 2)
        out.append((syscalls.recv_into(b, buf1), b.recv_into(buf2)))
        out.append((bytes(buf1), bytes(buf2)))
        out.append((syscalls.sendall(a, b"x" * 20000), a.sendall(b"x" * 20000)))
        got = bytearray()
        while len(got) < 40000:
            got += b.recv(1 << 16)
        out.append((bytes(got), b"x" * 40000))
        # fd instead of socket object
        out.append((syscalls.send(a.fileno(), b"fd"), 2))
        out.append((syscalls.recv(b.fileno(), 10), b"fd"))
        a.shutdown(socket.SHUT_WR)
        out.append((syscalls.recv(b, 10), b.recv(10)))          # EOF
        return out

    for got, want in in_mode(mode, body):
        assert got == want and type(got) is type(want)


def test_stdlib_recv_zero_bytes_returns_at_once(sockpair, runner):
    """socket.recv(0) returns b"" without a syscall; on an empty AF_UNIX
    stream socket a recv(0) syscall would block."""
    a, b = sockpair
    assert a.recv(0) == b""
    t = runner(syscalls.recv, a, 0)
    wait_until(lambda: not t.alive() or blocked_in(t.native_id, "recvfrom"),
               what="recv(0) to return or block")
    blocked = t.alive()
    if blocked:
        b.sendall(b"x")          # release it
    assert t.outcome() == b""
    assert not blocked, "syscalls.recv(sock, 0) blocked in recvfrom"


def test_stdlib_socket_timeouts_match(sockpair):
    a, b = sockpair
    a.setblocking(False)
    with pytest.raises(BlockingIOError) as e1:
        syscalls.recv(a, 10)
    with pytest.raises(BlockingIOError) as e2:
        a.recv(10)
    assert e1.value.errno == e2.value.errno
    a.settimeout(0.01)
    with pytest.raises(TimeoutError):
        syscalls.recv(a, 10)
    with pytest.raises(TimeoutError):
        a.recv(10)


def _compare_accept(family, lst, make_client):
    c1, c2 = make_client(), make_client()
    try:
        fd, addr = syscalls.accept(lst)
        fd2, addr2 = lst._accept()
        try:
            assert type(fd) is int and fd >= 0
            assert type(addr) is type(addr2)
            if isinstance(addr, tuple):
                assert len(addr) == len(addr2)
                assert [type(x) for x in addr] == [type(x) for x in addr2]
            assert addr == c1.getsockname()
            assert addr2 == c2.getsockname()
            assert os.get_inheritable(fd) == os.get_inheritable(fd2) is False
            assert os.get_blocking(fd) == os.get_blocking(fd2) is True
            with socket.socket(fileno=fd) as s1:
                fd = -1
                assert s1.family == family
                assert s1.getpeername() == c1.getsockname()
        finally:
            if fd >= 0:
                os.close(fd)
            os.close(fd2)
    finally:
        c1.close()
        c2.close()
    return addr, addr2


@pytest.mark.parametrize("mode", MODES)
def test_stdlib_accept_af_inet(mode):
    with _tcp_listener() as lst:
        addr, addr2 = in_mode(mode, lambda: _compare_accept(
            socket.AF_INET, lst, lambda: socket.create_connection(lst.getsockname())))
    assert addr[0] == "127.0.0.1" and isinstance(addr[1], int)


@pytest.mark.skipif(not _have_ipv6(), reason="no IPv6 loopback")
@pytest.mark.parametrize("mode", MODES)
def test_stdlib_accept_af_inet6(mode):
    with _tcp_listener(socket.AF_INET6) as lst:
        addr, _ = in_mode(mode, lambda: _compare_accept(
            socket.AF_INET6, lst, lambda: socket.create_connection(lst.getsockname()[:2])))
    assert addr[0] == "::1" and len(addr) == 4


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("client_addr", ["unnamed", "path", "abstract"])
def test_stdlib_accept_af_unix(mode, client_addr, tmp_path):
    counter = iter(range(10))

    def make_client():
        c = socket.socket(socket.AF_UNIX)
        i = next(counter)
        if client_addr == "path":
            c.bind(str(tmp_path / f"client{i}"))
        elif client_addr == "abstract":
            c.bind(f"\0aiocancel-test-{os.getpid()}-{i}".encode())
        c.connect(str(tmp_path / "listener"))
        return c

    with socket.socket(socket.AF_UNIX) as lst:
        lst.bind(str(tmp_path / "listener"))
        lst.listen(4)
        addr, addr2 = in_mode(mode, lambda: _compare_accept(socket.AF_UNIX, lst, make_client))
    expected_type = {"unnamed": str, "path": str, "abstract": bytes}[client_addr]
    assert type(addr) is expected_type
    if client_addr == "unnamed":
        assert addr == addr2 == ""


@pytest.mark.parametrize("mode", MODES)
def test_stdlib_connect(mode, tmp_path):
    with _tcp_listener() as lst:
        def body():
            out = []
            with socket.socket() as s:
                out.append(syscalls.connect(s, lst.getsockname()))
                conn, _ = lst.accept()
                with conn:
                    out.append(conn.getpeername() == s.getsockname())
            with socket.socket() as s:
                out.append(syscalls.connect(s, ("localhost", lst.getsockname()[1])))
                lst.accept()[0].close()
            # refused: a port with no listener
            with socket.socket() as tmp:
                tmp.bind(("127.0.0.1", 0))
                port = tmp.getsockname()[1]
            for connect in (syscalls.connect, socket.socket.connect):
                with socket.socket() as s:
                    try:
                        connect(s, ("127.0.0.1", port))
                    except OSError as exc:
                        out.append((type(exc), exc.errno))
            for connect in (syscalls.connect, socket.socket.connect):
                with socket.socket(socket.AF_UNIX) as s:
                    try:
                        connect(s, str(tmp_path / "nonexistent"))
                    except OSError as exc:
                        out.append((type(exc), exc.errno))
            return out

        out = in_mode(mode, body)
    assert out[:3] == [None, True, None]
    assert out[3] == out[4] == (ConnectionRefusedError, errno.ECONNREFUSED)
    assert out[5] == out[6] == (FileNotFoundError, errno.ENOENT)


@pytest.mark.skipif(not _have_ipv6(), reason="no IPv6 loopback")
def test_stdlib_connect_af_inet6():
    with _tcp_listener(socket.AF_INET6) as lst, socket.socket(socket.AF_INET6) as s:
        assert syscalls.connect(s, lst.getsockname()) is None
        conn, addr = lst.accept()
        with conn:
            assert addr == s.getsockname()


def test_stdlib_connect_with_timeout_socket():
    with _tcp_listener() as lst, socket.socket() as s:
        s.settimeout(10)
        assert syscalls.connect(s, lst.getsockname()) is None
        assert s.gettimeout() == 10
        lst.accept()[0].close()


@pytest.mark.parametrize("mode", MODES)
def test_stdlib_poll(mode, pipe, sockpair):
    r, w = pipe
    a, b = sockpair
    closed_r, closed_w = os.pipe()
    os.close(closed_r)
    os.close(closed_w)
    cases = [
        [(r, POLLIN)],
        [(w, POLLOUT), (r, POLLIN)],
        [(a, POLLIN | POLLOUT)],
        [(closed_r, POLLIN)],
    ]

    def stdlib(fds, timeout_ms):
        p = select.poll()
        for fd, ev in fds:
            p.register(fd, ev)
        return sorted(p.poll(timeout_ms))

    def body():
        out = []
        for fds in cases:
            out.append((sorted(syscalls.poll(fds, 0)), stdlib(fds, 0)))
        os.write(w, b"x")
        b.sendall(b"y")
        for fds in cases:
            out.append((sorted(syscalls.poll(fds, 0)), stdlib(fds, 0)))
            out.append((sorted(syscalls.poll(fds)), stdlib(fds, None)))   # ready: no wait
        out.append((syscalls.poll([], 0), []))
        out.append((syscalls.poll([(r, POLLOUT)], 0.001), stdlib([(r, POLLOUT)], 1)))
        os.close(w)
        os.read(r, 1)
        out.append((sorted(syscalls.poll([(r, POLLIN)], 0)), stdlib([(r, POLLIN)], 0)))
        return out

    for got, want in in_mode(mode, body):
        assert got == want
        assert all(type(fd) is int and type(ev) is int for fd, ev in got)


@pytest.mark.parametrize("mode", MODES)
def test_stdlib_waitpid(mode):
    code = "import sys; sys.exit(7)"
    twin = subprocess.Popen([sys.executable, "-c", code])
    child = subprocess.Popen([sys.executable, "-c", code])
    sleeper = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                               stdin=subprocess.PIPE)
    try:
        def body():
            return (syscalls.waitpid(child.pid, 0), syscalls.waitpid(sleeper.pid, os.WNOHANG))
        (pid, status), nohang = in_mode(mode, body)
        pid2, status2 = os.waitpid(twin.pid, 0)
        assert pid == child.pid and pid2 == twin.pid
        assert status == status2 and os.waitstatus_to_exitcode(status) == 7
        assert nohang == os.waitpid(sleeper.pid, os.WNOHANG) == (0, 0)
        child.returncode = twin.returncode = 7
    finally:
        sleeper.stdin.close()
        sleeper.wait(10)
        for p in (child, twin):
            if p.returncode is None:
                p.wait(10)
    with pytest.raises(ChildProcessError) as e1:
        syscalls.waitpid(child.pid, 0)
    with pytest.raises(ChildProcessError) as e2:
        os.waitpid(child.pid, 0)
    assert e1.value.errno == e2.value.errno == errno.ECHILD


def test_stdlib_sleep_returns_none():
    assert syscalls.sleep(0) is None
    assert syscalls.sleep(0.001) is None


# =============================================================================
# Bad input
# =============================================================================

def _closed_fd() -> int:
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    return r


@pytest.mark.parametrize("fd_kind", ["closed", "minus_one"])
def test_bad_fd_raises_ebadf(fd_kind):
    before = fd_count()
    fd = _closed_fd() if fd_kind == "closed" else -1
    calls = [
        lambda: syscalls.read(fd, 1),
        lambda: syscalls.readinto(fd, bytearray(1)),
        lambda: syscalls.write(fd, b"x"),
        lambda: syscalls.pread(fd, 1, 0),
        lambda: syscalls.pwrite(fd, b"x", 0),
        lambda: syscalls.recv(fd, 1),
        lambda: syscalls.recv_into(fd, bytearray(1)),
        lambda: syscalls.send(fd, b"x"),
        lambda: syscalls.sendall(fd, b"x"),
        lambda: syscalls.accept(fd),
        lambda: syscalls.connect(fd, ("127.0.0.1", 1)),
    ]
    for i, call in enumerate(calls):
        with pytest.raises(OSError) as info:
            call()
        assert info.value.errno == errno.EBADF, (i, info.value)
    # A closed socket object's fileno() is -1: EBADF as with the stdlib.
    s = socket.socket()
    s.close()
    for call in (lambda: syscalls.recv(s, 1), lambda: syscalls.send(s, b"x"),
                 lambda: syscalls.sendall(s, b"x"), lambda: syscalls.accept(s)):
        with pytest.raises(OSError) as info:
            call()
        assert info.value.errno == errno.EBADF
    # poll: a closed fd is POLLNVAL, a negative one is ignored (like poll(2)).
    if fd >= 0:
        assert syscalls.poll([(fd, POLLIN)], 0) == [(fd, select.POLLNVAL)]
    else:
        assert syscalls.poll([(fd, POLLIN)], 0) == []
    assert fd_count() == before


def test_negative_sizes_raise_valueerror(sockpair, pipe):
    r, w = pipe
    a, b = sockpair
    before = fd_count()
    with pytest.raises(ValueError):
        syscalls.read(r, -1)
    with pytest.raises(ValueError):
        syscalls.pread(r, -1, 0)
    with pytest.raises(ValueError):
        syscalls.recv(a, -1)
    with pytest.raises(ValueError):
        syscalls.recv_into(a, bytearray(4), -1)
    with pytest.raises(ValueError):
        syscalls.recv_into(a, bytearray(4), 5)          # larger than the buffer
    with pytest.raises(ValueError):
        syscalls.sleep(-1)
    with pytest.raises(ValueError):
        syscalls.sleep(float("nan"))
    with pytest.raises(ValueError):
        syscalls.poll([], float("nan"))
    assert fd_count() == before


def test_wrong_types_raise_typeerror(sockpair, pipe):
    r, w = pipe
    a, b = sockpair
    inet = socket.socket()
    before = fd_count()
    bad = [
        lambda: syscalls.read("3", 1),
        lambda: syscalls.read(1.5, 1),
        lambda: syscalls.read(None, 1),
        lambda: syscalls.read(r, "1"),
        lambda: syscalls.read(r, 1.5),
        lambda: syscalls.readinto(r, 5),
        lambda: syscalls.write(w, "text"),
        lambda: syscalls.write(w, 5),
        lambda: syscalls.write(w, None),
        lambda: syscalls.pread(r, 1, "0"),
        lambda: syscalls.pwrite(w, "x", 0),
        lambda: syscalls.recv(a, "1"),
        lambda: syscalls.recv(object(), 1),
        lambda: syscalls.send(a, "text"),
        lambda: syscalls.sendall(a, "text"),
        lambda: syscalls.accept("sock"),
        lambda: syscalls.connect(inet, "not a tuple"),
        lambda: syscalls.connect(inet, ("127.0.0.1", "80")),
        lambda: syscalls.connect(inet, ("127.0.0.1", 80, 0)),
        lambda: syscalls.poll(5),
        lambda: syscalls.poll([("x", POLLIN)]),
        lambda: syscalls.poll([(r, "in")]),
        lambda: syscalls.poll([(r, POLLIN)], "1"),
        lambda: syscalls.sleep("1"),
        lambda: syscalls.sleep(None),
        lambda: syscalls.waitpid("1", 0),
        lambda: syscalls.waitpid(1, None),
    ]
    try:
        for i, call in enumerate(bad):
            try:
                call()
            except TypeError:
                pass
            else:
                pytest.fail(f"case {i} did not raise TypeError")
            assert fd_count() == before, f"case {i} leaked an fd"
    finally:
        inet.close()


def test_readonly_buffers_raise_typeerror(sockpair, pipe):
    r, w = pipe
    a, b = sockpair
    os.write(w, b"data")
    b.sendall(b"data")
    before = fd_count()
    for buf in (b"xxxx", memoryview(b"xxxx"), memoryview(bytearray(4)).toreadonly()):
        with pytest.raises(TypeError):
            syscalls.readinto(r, buf)
        with pytest.raises(TypeError):
            syscalls.recv_into(a, buf)
    # nothing was consumed
    assert os.read(r, 10) == b"data"
    assert a.recv(10) == b"data"
    assert fd_count() == before


def test_bad_state_and_ident_inputs_do_not_leak():
    before = fd_count()
    assert aiocancel.cancel_thread(123456789) is False
    with pytest.raises(ValueError):
        run_in_thread(lambda: aiocancel.setcancelstate(99))
    with pytest.raises(TypeError):
        aiocancel.cancel_thread(None)
    assert fd_count() == before


def test_main_thread_calls_are_plain_syscalls(pipe):
    """The pytest main thread never registered: getcancelstate reports the
    default and the wrappers behave as plain calls."""
    r, w = pipe
    assert aiocancel.cancel_thread(threading.main_thread().ident) is False
    assert syscalls.write(w, b"m") == 1
    assert syscalls.read(r, 1) == b"m"
