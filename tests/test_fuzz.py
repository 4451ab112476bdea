"""Bad input, fuzzed (hypothesis): every `aiocancel.syscalls` function, its
`aiocancel.aio` twin, and the public state/executor API, called with wrong
types, huge and negative sizes, closed fds, half-closed sockets, read-only
and non-contiguous buffers, malformed addresses and poll lists.

Each call must return a well-formed result or raise one of the exceptions
the stdlib counterpart raises for such input (TypeError, ValueError,
OverflowError, BufferError, OSError and its subclasses; MemoryError only for
sizes of 2**31 and more). Never a crash, a hang, `Cancelled` in a thread
that asked for no cancellation, or a leaked fd (checked per example against
/proc/self/fd).

No call can block: fds are non-blocking or have data or room, sockets have
short timeouts, poll lists with no limit always hold a closed fd (POLLNVAL),
waitpid only sees a child of its own that exits at once. The example count
is moderate (AIOCANCEL_FUZZ_EXAMPLES, default 40 per test) so that the file
runs in seconds; `-m stress` runs 20 times more."""
from __future__ import annotations

import array
import asyncio
import errno
import math
import mmap
import os
import socket
import tempfile
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiocancel
from aiocancel import aio, syscalls
from conftest import FALLBACK, JOIN_TIMEOUT, run_in_thread

EXAMPLES = int(os.environ.get("AIOCANCEL_FUZZ_EXAMPLES", "40"))
fuzz_settings = settings(max_examples=EXAMPLES, deadline=None, database=None,
                         suppress_health_check=[HealthCheck.too_slow])
stress_settings = settings(max_examples=EXAMPLES * 20, deadline=None,
                           database=None, suppress_health_check=[HealthCheck.too_slow])

ALLOWED = (TypeError, ValueError, OverflowError, BufferError, OSError)
BIG = 2 ** 31


class _Fileno:
    """An object with fileno(), like a file or socket."""

    def __init__(self, fd):
        self.fd = fd

    def fileno(self):
        return self.fd


class Kit:
    """The resources of one example, by name. Everything is created at
    entry and closed at exit; `fds_before` is taken first, so a leak by the
    call under test shows as a difference afterwards."""

    def __enter__(self) -> "Kit":
        self.fds_before = set(os.listdir("/proc/self/fd"))
        self.closers = []
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        os.write(w, b"pipe data")
        self.closers += [lambda: os.close(r), lambda: os.close(w)]
        er, ew = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)      # empty pipe
        self.closers += [lambda: os.close(er), lambda: os.close(ew)]
        hr, hw = os.pipe2(os.O_CLOEXEC)                      # writer gone: EOF/HUP
        os.close(hw)
        self.closers.append(lambda: os.close(hr))
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        b.send(b"sock data")
        c, d = socket.socketpair()
        c.setblocking(False)
        d.shutdown(socket.SHUT_WR)           # c reads EOF
        c.shutdown(socket.SHUT_WR)           # c's sends fail: EPIPE
        e, f = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        e.settimeout(0.01)
        f.send(b"datagram " * 10)
        lst = socket.socket(socket.AF_UNIX)
        lst.bind("")
        lst.listen(4)
        lst.setblocking(False)
        lst2 = socket.socket(socket.AF_UNIX)                 # one connection queued
        lst2.bind("")
        lst2.listen(4)
        lst2.settimeout(0.01)
        client = socket.socket(socket.AF_UNIX)
        client.connect(lst2.getsockname())
        tcp = socket.socket(socket.AF_INET)
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(4)
        tcp.settimeout(0.01)
        gone = socket.socket(socket.AF_INET)
        gone.bind(("127.0.0.1", 0))
        self.closed_port = gone.getsockname()[1]
        gone.close()
        self.tcp_port = tcp.getsockname()[1]
        out = socket.socket(socket.AF_INET)
        out.settimeout(0.5)
        out6 = None
        try:
            out6 = socket.socket(socket.AF_INET6)
            out6.settimeout(0.5)
        except OSError:
            pass
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.setblocking(False)
        uout = socket.socket(socket.AF_UNIX)
        uout.settimeout(0.5)
        closed_sock = socket.socket()
        closed_sock.close()
        tmp = tempfile.TemporaryFile()
        tmp.write(b"file data")
        tmp.flush()
        socks = [a, b, c, d, e, f, lst, lst2, client, tcp, out, udp, uout, tmp]
        if out6 is not None:
            socks.append(out6)
        self.closers += [s.close for s in socks]
        self.mm = mmap.mmap(-1, 4096)
        self.mm_ro = mmap.mmap(-1, 4096, prot=mmap.PROT_READ)
        self.closers += [self.mm.close, self.mm_ro.close]
        cfd = os.open(os.devnull, os.O_RDONLY)
        os.close(cfd)                        # a closed fd number (last made)
        self.fd = {
            "pipe_r": r, "pipe_w": w, "empty_r": er, "empty_w": ew, "eof_r": hr,
            "sock": a, "sock_fd": a.fileno(), "eof_sock": c, "dgram": e,
            "listener": lst, "listener_queued": lst2, "tcp_listener": tcp,
            "out": out, "out6": out6 if out6 is not None else out, "udp": udp,
            "unix_out": uout, "file": tmp.fileno(), "file_obj": tmp,
            "fileno_obj": _Fileno(r), "bad_fileno_obj": _Fileno("x"),
            "closed_sock": closed_sock, "closed": cfd, "neg": -1,
            "int_min": -2 ** 31, "huge": BIG, "bigger": 2 ** 64,
            "none": None, "str": "3", "float": 3.0, "bytes": b"3",
        }
        self.closed_fd = cfd
        return self

    def __exit__(self, *exc) -> None:
        for close in reversed(self.closers):
            try:
                close()
            except (OSError, BufferError):
                pass

    def buffer(self, name: str):
        return {
            "bytearray": bytearray(16), "bytearray0": bytearray(0),
            "big": bytearray(70000),
            "mv_rw": memoryview(bytearray(16)),
            "mv_strided": memoryview(bytearray(32))[::2],
            "bytes": b"0123456789", "mv_ro": memoryview(b"0123456789"),
            "array": array.array("i", range(8)), "mmap": self.mm, "mmap_ro": self.mm_ro,
            "str": "text", "none": None, "int": 12, "released": _released(),
        }[name]


def _released():
    m = memoryview(bytearray(8))
    m.release()
    return m


FDS = st.sampled_from(["pipe_r", "pipe_w", "empty_r", "empty_w", "eof_r", "sock",
                       "sock_fd", "eof_sock", "dgram", "listener", "listener_queued",
                       "file", "file_obj", "fileno_obj", "bad_fileno_obj",
                       "closed_sock", "closed", "neg", "int_min", "huge", "bigger",
                       "none", "str", "float", "bytes"])
SOCKS = st.sampled_from(["sock", "sock_fd", "eof_sock", "dgram", "listener",
                         "listener_queued", "tcp_listener", "out", "out6", "udp",
                         "unix_out", "closed_sock", "closed", "pipe_r", "file",
                         "neg", "huge", "none", "str"])
SIZES = st.one_of(st.integers(-3, 70000),
                  st.sampled_from([-2 ** 63 - 1, -2 ** 63, -2 ** 31, BIG, 2 ** 40,
                                   2 ** 62, 2 ** 63 - 1, 2 ** 63, 2 ** 64]),
                  st.sampled_from([None, "8", 8.0, b"8", [8]]))
OFFSETS = st.one_of(st.integers(-5, 100),
                    st.sampled_from([-2 ** 63, 2 ** 62, 2 ** 63, 2 ** 64, None, "0", 0.0]))
FLAGS = st.sampled_from([0, socket.MSG_DONTWAIT, socket.MSG_PEEK, socket.MSG_OOB,
                         socket.MSG_TRUNC, socket.MSG_WAITALL | socket.MSG_DONTWAIT,
                         -1, BIG, 2 ** 40, None, "0", 0.5])
BUFFERS = st.sampled_from(["bytearray", "bytearray0", "big", "mv_rw", "mv_strided",
                           "bytes", "mv_ro", "array", "mmap", "mmap_ro", "str",
                           "none", "int", "released"])
EXTRA = st.lists(st.sampled_from([0, None, "x", 1.5]), max_size=2)


def _sizes_huge(*values) -> bool:
    return any(isinstance(v, int) and not isinstance(v, bool) and v >= BIG
               for v in values)


def _judge(kit: Kit, call, *values):
    """Run `call()`; check it raised only allowed exceptions (MemoryError
    only with a huge size among `values`), never Cancelled; return the
    result or None."""
    try:
        result = call()
    except aiocancel.Cancelled as exc:             # an OSError: check first
        pytest.fail(f"Cancelled in a thread that asked for nothing: {exc!r}")
    except MemoryError:
        assert _sizes_huge(*values), "MemoryError without a huge size"
        return None
    except ALLOWED:
        return None
    return result


def _no_leak(kit: Kit) -> None:
    after = set(os.listdir("/proc/self/fd"))
    assert after == kit.fds_before, (
        f"fds leaked: {sorted(after - kit.fds_before)}, "
        f"lost: {sorted(kit.fds_before - after)}")


# ---- files and pipes -----------------------------------------------------------

@fuzz_settings
@given(fd=FDS, n=SIZES, extra=EXTRA)
def test_read(fd, n, extra):
    with Kit() as kit:
        out = _judge(kit, lambda: syscalls.read(kit.fd[fd], n, *extra), n)
        if out is not None:
            assert isinstance(out, bytes) and not extra and len(out) <= n
    _no_leak(kit)


@fuzz_settings
@given(fd=FDS, buf=BUFFERS)
def test_readinto(fd, buf):
    with Kit() as kit:
        b = kit.buffer(buf)
        out = _judge(kit, lambda: syscalls.readinto(kit.fd[fd], b))
        if out is not None:
            assert buf not in ("bytes", "mv_ro", "mmap_ro", "str"), "wrote into a read-only buffer"
            assert 0 <= out <= memoryview(b).nbytes
    _no_leak(kit)


@fuzz_settings
@given(fd=FDS, buf=BUFFERS, big=st.booleans())
def test_write(fd, buf, big):
    with Kit() as kit:
        data = bytes(1 << 20) if big else kit.buffer(buf)
        out = _judge(kit, lambda: syscalls.write(kit.fd[fd], data))
        if out is not None:
            assert 0 <= out <= memoryview(data).nbytes
    _no_leak(kit)


@fuzz_settings
@given(fd=FDS, n=SIZES, offset=OFFSETS)
def test_pread(fd, n, offset):
    with Kit() as kit:
        out = _judge(kit, lambda: syscalls.pread(kit.fd[fd], n, offset), n)
        if out is not None:
            assert isinstance(out, bytes) and len(out) <= n
    _no_leak(kit)


@fuzz_settings
@given(fd=FDS, buf=BUFFERS, offset=OFFSETS)
def test_pwrite(fd, buf, offset):
    with Kit() as kit:
        data = kit.buffer(buf)
        out = _judge(kit, lambda: syscalls.pwrite(kit.fd[fd], data, offset))
        if out is not None:
            assert 0 <= out <= memoryview(data).nbytes
    _no_leak(kit)


# ---- sockets -------------------------------------------------------------------------

@fuzz_settings
@given(sock=SOCKS, n=SIZES, flags=FLAGS)
def test_recv(sock, n, flags):
    with Kit() as kit:
        out = _judge(kit, lambda: syscalls.recv(kit.fd[sock], n, flags), n)
        if out is not None:
            assert isinstance(out, bytes)
            if not (isinstance(flags, int) and flags & socket.MSG_TRUNC):
                assert len(out) <= n       # MSG_TRUNC: the datagram's size, as stdlib
    _no_leak(kit)


@fuzz_settings
@given(sock=SOCKS, buf=BUFFERS, nbytes=SIZES, flags=FLAGS)
def test_recv_into(sock, buf, nbytes, flags):
    with Kit() as kit:
        b = kit.buffer(buf)
        out = _judge(kit, lambda: syscalls.recv_into(kit.fd[sock], b, nbytes, flags), nbytes)
        if out is not None:
            assert isinstance(out, int) and out >= 0
    _no_leak(kit)


@fuzz_settings
@given(sock=SOCKS, buf=BUFFERS, flags=FLAGS, all_=st.booleans())
def test_send_and_sendall(sock, buf, flags, all_):
    with Kit() as kit:
        data = kit.buffer(buf)
        fn = syscalls.sendall if all_ else syscalls.send
        try:
            out = fn(kit.fd[sock], data, flags)
        except aiocancel.Cancelled:
            pytest.fail("Cancelled")
        except ALLOWED as exc:
            if all_ and isinstance(exc, OSError) and not FALLBACK:
                assert isinstance(getattr(exc, "bytes_sent", 0), int)
            out = None
        if out is not None:
            assert not all_ and 0 <= out <= memoryview(data).nbytes
    _no_leak(kit)


def test_recv_on_a_socket_that_polls_ready_but_never_has_data_times_out():
    """Found by test_recv: an unconnected TCP socket polls ready (POLLHUP)
    while recv(MSG_ERRQUEUE) keeps failing with EAGAIN; the socket's timeout
    must end the call (it used to spin forever), as in the socket module."""
    with socket.socket() as s:
        s.settimeout(0.05)
        with pytest.raises(TimeoutError):
            s.recv(1, socket.MSG_ERRQUEUE)
        with pytest.raises(TimeoutError):
            syscalls.recv(s, 1, socket.MSG_ERRQUEUE)


ACCEPT_FLAGS = st.sampled_from([socket.SOCK_CLOEXEC, socket.SOCK_NONBLOCK,
                                socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK, 0,
                                -1, 1, BIG, 2 ** 40, None, "x"])


@fuzz_settings
@given(sock=SOCKS, flags=st.one_of(st.none(), ACCEPT_FLAGS))
def test_accept(sock, flags):
    with Kit() as kit:
        args = () if flags is None else (flags,)
        out = _judge(kit, lambda: syscalls.accept(kit.fd[sock], *args))
        if out is not None:
            fd, _addr = out
            assert isinstance(fd, int) and fd >= 0
            os.close(fd)                   # ours now: the leak check counts it
    _no_leak(kit)


def _addresses(kit: Kit):
    return st.sampled_from([
        ("127.0.0.1", kit.tcp_port), ("127.0.0.1", kit.closed_port), ("127.0.0.1", 0),
        ("127.0.0.1", -1), ("127.0.0.1", 65536), ("127.0.0.1", 2 ** 70),
        ("127.0.0.1", "80"), ("127.0.0.1",), ("127.0.0.1", 1, 2, 3, 4),
        ("::1", kit.closed_port), ("::1", kit.closed_port, 0, 0),
        ("", kit.closed_port), (None, kit.closed_port), (123, 80),
        (b"127.0.0.1", kit.closed_port), ("1.2.3.4\x00", 80), ("<broadcast>", 9),
        "\0aiocancel-fuzz-nobody", "", b"", "/nonexistent/socket/path",
        "x" * 108, "x" * 200, b"\0" * 108, 123, None, ["127.0.0.1", 80],
    ])


def _stdlib_rejects(sock, address):
    """The exception class the socket module raises for `address` on a fresh
    socket like `sock` before any syscall (TypeError, ValueError,
    OverflowError...), or None if it accepts the address."""
    if not isinstance(sock, socket.socket) or sock.fileno() < 0:
        return None
    with socket.socket(sock.family, sock.type) as fresh:
        fresh.settimeout(0.5)
        try:
            fresh.connect(address)
        except (TypeError, ValueError, OverflowError) as exc:
            return type(exc)
        except OSError:
            return None
    return None


@fuzz_settings
@given(sock=SOCKS, data=st.data())
def test_connect(sock, data):
    """Also differential: an address the socket module rejects as a bad
    argument is rejected with the same exception class (a host name with a
    NUL once connected to the name cut at the NUL)."""
    with Kit() as kit:
        address = data.draw(_addresses(kit))
        s = kit.fd[sock]
        expected = _stdlib_rejects(s, address)
        try:
            syscalls.connect(s, address)
            got = None
        except aiocancel.Cancelled:
            pytest.fail("Cancelled")
        except (TypeError, ValueError, OverflowError) as exc:
            got = type(exc)
        except OSError:
            got = None
        if expected is not None:
            assert got is not None and issubclass(got, expected), (
                f"socket rejects {address!r} with {expected.__name__}, "
                f"aiocancel: {got}")
    _no_leak(kit)


# ---- waiting --------------------------------------------------------------------------

EVENTS = st.sampled_from([0, 1, 4, 0x20, -1, 0x7FFF, 0x8000, 0xFFFF, 0x10000,
                          2 ** 40, None, "1", 1.0])
TIMEOUTS = st.sampled_from([None, -1, -0.5, 0, 0.001, 0.01, math.nan, math.inf,
                            -math.inf, 1e300, -1e300, 2 ** 70, -2 ** 70, "1",
                            b"1", [1], True])


@fuzz_settings
@given(items=st.lists(st.one_of(st.tuples(FDS, EVENTS),
                                st.sampled_from(["not a pair", None, 3,
                                                 ("a", 1, 2), ("pipe_r",)])),
                      max_size=5),
       timeout=TIMEOUTS, as_iter=st.booleans())
def test_poll(items, timeout, as_iter):
    with Kit() as kit:
        fds = [(kit.fd[i[0]], i[1]) if isinstance(i, tuple) and len(i) == 2 else i
               for i in items]
        # No limit, or no readiness: a closed fd (POLLNVAL, even with no
        # events asked) makes sure the call returns.
        fds.append((kit.closed_fd, 0))
        arg = iter(fds) if as_iter else fds
        out = _judge(kit, lambda: syscalls.poll(arg, timeout))
        if out is not None:
            assert all(isinstance(fd, int) and isinstance(ev, int) for fd, ev in out)
    _no_leak(kit)


@fuzz_settings
@given(seconds=st.one_of(st.floats(min_value=0, max_value=1e-3),
                         st.sampled_from([-1, -1e-9, math.nan, math.inf, -math.inf,
                                          1e13, 2 ** 70, None, "0.001", b"0",
                                          [0], 0, False])))
def test_sleep(seconds):
    with Kit() as kit:
        _judge(kit, lambda: syscalls.sleep(seconds))
    _no_leak(kit)


@fuzz_settings
@given(which=st.sampled_from(["child", "group", "self", "init", "absent",
                              "huge", "tiny", "bigger", "none", "str"]),
       options=st.sampled_from([0, os.WNOHANG, os.WUNTRACED, os.WNOHANG | os.WUNTRACED,
                                -1, 0x40000000, BIG, None, "0"]))
def test_waitpid(which, options):
    """Only a child of this example's own (in its own process group, exiting
    at once) can be waited for: never another test's child."""
    pid = os.posix_spawn("/bin/sh", ["sh", "-c", "exit 3"], {}, setpgroup=0)
    try:
        with Kit() as kit:
            target = {"child": pid, "group": -pid, "self": os.getpid(), "init": 1,
                      "absent": 2 ** 22 + 12345, "huge": BIG, "tiny": -2 ** 31 - 1,
                      "bigger": 2 ** 64, "none": None, "str": "1"}[which]
            out = _judge(kit, lambda: syscalls.waitpid(target, options))
            if out is not None:
                got, status = out
                assert got in (0, pid)
                if got == pid:
                    assert os.waitstatus_to_exitcode(status) == 3
                    pid = 0
        _no_leak(kit)
    finally:
        if pid:
            os.waitpid(pid, 0)


# ---- aio twins: the same validation through to_thread ---------------------------------

@fuzz_settings
@given(name=st.sampled_from(["read", "pread", "write", "recv", "sleep_blocking",
                             "poll", "waitpid", "accept"]),
       fd=FDS, n=SIZES)
def test_aio_twins(name, fd, n):
    with Kit() as kit:
        f = kit.fd[fd]
        calls = {
            "read": lambda: aio.read(f, n), "pread": lambda: aio.pread(f, n, 0),
            "write": lambda: aio.write(f, n), "recv": lambda: aio.recv(f, n),
            "sleep_blocking": lambda: aio.sleep_blocking(n if not isinstance(n, int) or n < 0 else 0),
            "poll": lambda: aio.poll([(f, n), (kit.closed_fd, 0)], 0),
            "waitpid": lambda: aio.waitpid(n if isinstance(n, int) and n > 2 ** 22 else 2 ** 22 + 7,
                                           os.WNOHANG),
            "accept": lambda: aio.accept(f),
        }

        async def main():
            out = await calls[name]()
            if name == "accept":
                os.close(out[0])
            return out

        _judge(kit, lambda: asyncio.run(main()), n)
    _no_leak(kit)


# ---- the public API ------------------------------------------------------------------

ANY = st.one_of(st.integers(-2 ** 70, 2 ** 70), st.sampled_from(
    [None, "0", 1.5, math.nan, b"", [], object(), True, aiocancel.CANCEL_MASKED]))


@fuzz_settings
@given(state=ANY)
def test_setcancelstate(state):
    def body():
        try:
            old = aiocancel.setcancelstate(state)
        except (TypeError, ValueError, OverflowError):
            return "rejected"
        assert old == aiocancel.CANCEL_ENABLE
        return aiocancel.getcancelstate()

    out = run_in_thread(body)
    valid = (aiocancel.CANCEL_ENABLE, aiocancel.CANCEL_DISABLE, aiocancel.CANCEL_MASKED)
    if out != "rejected":
        assert out == state and state in valid
    elif isinstance(state, int) and not isinstance(state, bool):
        assert state not in valid


@fuzz_settings
@given(ident=ANY, live=st.booleans())
def test_cancel_thread(ident, live):
    if live:
        ident = threading.get_ident()     # this thread: unregistered, so False
    try:
        out = aiocancel.cancel_thread(ident)
    except TypeError:
        assert not isinstance(ident, int)
        return
    assert out is False


@fuzz_settings
@given(workers=ANY, prefix=st.sampled_from(["", "x", "\0", "é" * 50, None, 3]),
       initializer=st.sampled_from([None, print, 3, "x"]))
def test_executor_constructor(workers, prefix, initializer):
    try:
        ex = aiocancel.Executor(workers, prefix, initializer)
    except (TypeError, ValueError, OverflowError):
        return
    try:
        if initializer is None:
            assert ex.submit(lambda: 5).result(JOIN_TIMEOUT) == 5
    finally:
        ex.shutdown(wait=True)


def test_submit_after_shutdown_is_a_runtime_error():
    ex = aiocancel.Executor(1)
    ex.shutdown()
    with pytest.raises(RuntimeError):
        ex.submit(print)


# ---- long variant ---------------------------------------------------------------------

@pytest.mark.stress
@stress_settings
@given(fd=FDS, n=SIZES, buf=BUFFERS, flags=FLAGS, offset=OFFSETS)
def test_many_more_mixed_calls(fd, n, buf, flags, offset):
    with Kit() as kit:
        f = kit.fd[fd]
        for call in (lambda: syscalls.read(f, n), lambda: syscalls.pread(f, n, offset),
                     lambda: syscalls.readinto(f, kit.buffer(buf)),
                     lambda: syscalls.write(f, kit.buffer(buf)),
                     lambda: syscalls.recv(f, n, flags),
                     lambda: syscalls.recv_into(f, kit.buffer(buf), 0, flags),
                     lambda: syscalls.send(f, kit.buffer(buf), flags)):
            _judge(kit, call, n)
    _no_leak(kit)
