"""aiocancel.syscalls file calls: readv, writev, preadv, pwritev, open,
openat, flock, lockf, fcntl (F_SETLKW, F_OFD_SETLKW), fsync, fdatasync.

For each: the result (and the error for bad input) matches the stdlib
function's, and a call blocked in the kernel is cancelled without losing
anything (blocking ones), or a pending request acts at entry (fsync)."""
from __future__ import annotations

import errno
import fcntl
import os
import struct
import subprocess
import sys

import pytest
from conftest import fd_count, pipe_pending, requires_core
from syscall_fixtures import (Pending, assert_cancelled, cancel_when_blocked,
                              same_outcome)

from aiocancel import Cancelled, syscalls


@pytest.fixture
def datafile(tmp_path):
    path = tmp_path / "data"
    path.write_bytes(b"0123456789abcdef")
    fd = os.open(path, os.O_RDWR)
    yield fd
    os.close(fd)


# ---- readv / writev / preadv / pwritev ------------------------------------

def test_readv_matches_os(pipe):
    r, w = pipe
    os.write(w, b"hello w")
    ours = [bytearray(3), bytearray(4)]
    assert syscalls.readv(r, ours) == 7
    os.write(w, b"hello w")
    theirs = [bytearray(3), bytearray(4)]
    assert os.readv(r, theirs) == 7
    assert ours == theirs == [bytearray(b"hel"), bytearray(b"lo w")]


@pytest.mark.parametrize("bufs", [5, None, [b"read-only"], ["str"], [1]])
def test_readv_bad_buffers_match_os(pipe, bufs):
    r, _ = pipe
    same_outcome(lambda: syscalls.readv(r, bufs), lambda: os.readv(r, bufs))


def test_readv_bad_fd_matches_os():
    exc = same_outcome(lambda: syscalls.readv(-1, [bytearray(1)]),
                       lambda: os.readv(-1, [bytearray(1)]))
    assert exc.errno == errno.EBADF


def test_writev_matches_os(pipe):
    r, w = pipe
    assert syscalls.writev(w, [b"ab", bytearray(b"cd"), memoryview(b"ef")]) == 6
    assert os.writev(w, [b"ab", bytearray(b"cd"), memoryview(b"ef")]) == 6
    assert pipe_pending(r) == b"abcdef" * 2
    same_outcome(lambda: syscalls.writev(w, 3), lambda: os.writev(w, 3))
    same_outcome(lambda: syscalls.writev(-1, [b"x"]), lambda: os.writev(-1, [b"x"]))


def test_preadv_pwritev_match_os(datafile):
    a, b = [bytearray(4), bytearray(2)], [bytearray(4), bytearray(2)]
    assert syscalls.preadv(datafile, a, 3) == os.preadv(datafile, b, 3) == 6
    assert a == b == [bytearray(b"3456"), bytearray(b"78")]
    assert os.lseek(datafile, 0, os.SEEK_CUR) == 0   # position untouched
    assert syscalls.pwritev(datafile, [b"XY", b"Z"], 10) == 3
    assert os.pread(datafile, 16, 0) == b"0123456789XYZdef"
    # flags select preadv2/pwritev2
    a, b = [bytearray(2)], [bytearray(2)]
    assert syscalls.preadv(datafile, a, 0, os.RWF_HIPRI) == \
        os.preadv(datafile, b, 0, os.RWF_HIPRI)
    assert a == b
    same_outcome(lambda: syscalls.preadv(datafile, [bytearray(1)], -2),
                 lambda: os.preadv(datafile, [bytearray(1)], -2))
    same_outcome(lambda: syscalls.pwritev(datafile, [b"x"], 0, 0x7fff0000),
                 lambda: os.pwritev(datafile, [b"x"], 0, 0x7fff0000))


@requires_core
def test_readv_cancelled_while_blocked(pipe):
    r, w = pipe
    bufs = [bytearray(4), bytearray(4)]
    before = fd_count()
    run = cancel_when_blocked(syscalls.readv, r, bufs, syscall="readv", arg0=r)
    assert_cancelled(run)
    assert bufs == [bytearray(4), bytearray(4)]
    os.write(w, b"after")               # nothing was consumed: pipe intact
    assert os.read(r, 10) == b"after"
    assert fd_count() == before


def _fill(w: int) -> int:
    """Fill pipe write end `w`; return how many bytes went in."""
    os.set_blocking(w, False)
    filled = 0
    try:
        while True:
            filled += os.write(w, b"x" * 65536)
    except BlockingIOError:
        pass
    os.set_blocking(w, True)
    return filled


@requires_core
def test_writev_cancelled_while_blocked_on_full_pipe(pipe):
    r, w = pipe
    filled = _fill(w)
    run = cancel_when_blocked(syscalls.writev, w, [b"y" * 10], syscall="writev",
                              arg0=w)
    assert_cancelled(run)
    assert pipe_pending(r) == b"x" * filled      # no "y" went in


# preadv2/pwritev2 with offset -1 use the file position, so they work (and
# block) on pipes; the flag is one pipes ignore.
@requires_core
def test_preadv_cancelled_while_blocked(pipe):
    r, w = pipe
    bufs = [bytearray(2)]
    run = cancel_when_blocked(syscalls.preadv, r, bufs, -1, os.RWF_HIPRI,
                              syscall="preadv2", arg0=r)
    assert_cancelled(run)
    os.write(w, b"ok")
    assert syscalls.preadv(r, bufs, -1, os.RWF_HIPRI) == 2 and bufs == [b"ok"]


@requires_core
def test_pwritev_cancelled_while_blocked(pipe):
    r, w = pipe
    filled = _fill(w)
    run = cancel_when_blocked(syscalls.pwritev, w, [b"y"], -1, os.RWF_HIPRI,
                              syscall="pwritev2", arg0=w)
    assert_cancelled(run)
    assert pipe_pending(r) == b"x" * filled


@pytest.mark.parametrize("name", ["preadv", "pwritev"])
def test_positioned_vectored_pending_request_acts_at_entry(name, datafile):
    buf = bytearray(1) if name == "preadv" else b"x"
    run = Pending().run(getattr(syscalls, name), datafile, [buf], 0)
    assert isinstance(run.exc, Cancelled)


# ---- open / openat ----------------------------------------------------------

def test_open_matches_os(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    fd = syscalls.open(path, os.O_RDONLY)
    try:
        assert isinstance(fd, int)
        assert not os.get_inheritable(fd)         # O_CLOEXEC as os.open
        assert os.read(fd, 10) == b"abc"
    finally:
        os.close(fd)
    fd = syscalls.open(str(path).encode(), os.O_WRONLY | os.O_APPEND)
    os.close(fd)
    missing = tmp_path / "missing"
    exc = same_outcome(lambda: syscalls.open(missing, os.O_RDONLY),
                       lambda: os.open(missing, os.O_RDONLY))
    assert isinstance(exc, FileNotFoundError) and exc.filename == str(missing)
    for bad in ("a\0b", b"a\0b"):
        same_outcome(lambda: syscalls.open(bad, os.O_RDONLY),
                     lambda: os.open(bad, os.O_RDONLY))
    same_outcome(lambda: syscalls.open(12, os.O_RDONLY),
                 lambda: os.open(12, os.O_RDONLY))
    created = tmp_path / "new"
    fd = syscalls.open(created, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    assert created.stat().st_mode & 0o777 == 0o600


def test_openat_relative_to_dir_fd(tmp_path):
    (tmp_path / "g").write_bytes(b"xyz")
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = syscalls.openat(dfd, "g", os.O_RDONLY)
        assert os.read(fd, 3) == b"xyz"
        os.close(fd)
        fd = syscalls.open("g", os.O_RDONLY, dir_fd=dfd)
        os.close(fd)
        exc = same_outcome(lambda: syscalls.open("nope", os.O_RDONLY, dir_fd=dfd),
                           lambda: os.open("nope", os.O_RDONLY, dir_fd=dfd))
        assert exc.errno == errno.ENOENT
    finally:
        os.close(dfd)


@requires_core
def test_fifo_open_cancelled_while_blocked(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    before = fd_count()
    run = cancel_when_blocked(syscalls.open, fifo, os.O_RDONLY, syscall="openat")
    assert_cancelled(run)
    assert fd_count() == before                   # no fd half-opened
    # The FIFO still works: a fresh open pair meets.
    w = os.open(fifo, os.O_RDWR)
    r = syscalls.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    os.close(r)
    os.close(w)


# ---- flock / lockf / fcntl locks -------------------------------------------

def test_flock_matches_fcntl(tmp_path):
    path = tmp_path / "lock"
    path.touch()
    with open(path) as f1, open(path) as f2:
        assert syscalls.flock(f1, fcntl.LOCK_EX) is None
        same_outcome(lambda: syscalls.flock(f2, fcntl.LOCK_EX | fcntl.LOCK_NB),
                     lambda: fcntl.flock(f2, fcntl.LOCK_EX | fcntl.LOCK_NB))
        syscalls.flock(f1.fileno(), fcntl.LOCK_UN)
        syscalls.flock(f2, fcntl.LOCK_SH | fcntl.LOCK_NB)
    same_outcome(lambda: syscalls.flock(-1, fcntl.LOCK_EX),
                 lambda: fcntl.flock(-1, fcntl.LOCK_EX))
    same_outcome(lambda: syscalls.flock("x", fcntl.LOCK_EX),
                 lambda: fcntl.flock("x", fcntl.LOCK_EX))


@requires_core
def test_flock_cancelled_while_waiting(tmp_path):
    path = tmp_path / "lock"
    path.touch()
    with open(path) as holder, open(path) as waiter:
        fcntl.flock(holder, fcntl.LOCK_EX)
        run = cancel_when_blocked(syscalls.flock, waiter, fcntl.LOCK_EX,
                                  syscall="flock", arg0=waiter.fileno())
        assert_cancelled(run)
        # The cancelled waiter holds nothing: after the holder lets go, a
        # non-blocking attempt by a third description succeeds.
        fcntl.flock(holder, fcntl.LOCK_UN)
        with open(path) as third:
            fcntl.flock(third, fcntl.LOCK_EX | fcntl.LOCK_NB)


_HOLD_LOCK = """
import fcntl, sys
f = open(sys.argv[1], "r+")
fcntl.lockf(f, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def locked_by_child(tmp_path):
    """A file whose whole range another process holds (POSIX locks of this
    process would never block it)."""
    path = tmp_path / "plock"
    path.write_bytes(b"x" * 10)
    child = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(path)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdout.readline() == b"locked\n"
    yield path
    child.stdin.close()
    child.wait(timeout=10)
    child.stdout.close()


def test_lockf_matches_fcntl(tmp_path, locked_by_child):
    with open(locked_by_child, "r+") as f:
        same_outcome(lambda: syscalls.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB),
                     lambda: fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB))
        same_outcome(lambda: syscalls.lockf(f, 0), lambda: fcntl.lockf(f, 0))
    path = tmp_path / "free"
    path.write_bytes(b"y")
    with open(path, "r+") as f:
        assert syscalls.lockf(f, fcntl.LOCK_EX, 1, 0, os.SEEK_SET) is None
        assert syscalls.lockf(f, fcntl.LOCK_UN) is None


@requires_core
def test_lockf_cancelled_while_waiting(locked_by_child):
    with open(locked_by_child, "r+") as f:
        run = cancel_when_blocked(syscalls.lockf, f, fcntl.LOCK_EX,
                                  syscall="fcntl", arg0=f.fileno())
        assert_cancelled(run)


def _flock_struct(kind: int) -> bytes:
    # struct flock on Linux 64-bit: short type, short whence, off_t start,
    # off_t len, pid_t pid (+ padding)
    return struct.pack("hhqqi4x", kind, os.SEEK_SET, 0, 0, 0)


def test_fcntl_matches_fcntl(pipe, tmp_path):
    r, _ = pipe
    assert syscalls.fcntl(r, fcntl.F_GETFD) == fcntl.fcntl(r, fcntl.F_GETFD)
    assert syscalls.fcntl(r, fcntl.F_GETFL, 0) == fcntl.fcntl(r, fcntl.F_GETFL, 0)
    path = tmp_path / "ofd"
    path.write_bytes(b"z")
    with open(path, "r+") as f:
        arg = _flock_struct(fcntl.F_WRLCK)
        ours = syscalls.fcntl(f, fcntl.F_OFD_GETLK, arg)
        theirs = fcntl.fcntl(f, fcntl.F_OFD_GETLK, arg)
        assert type(ours) is bytes and ours == theirs
    same_outcome(lambda: syscalls.fcntl(r, fcntl.F_GETFD, b"x" * 1025),
                 lambda: fcntl.fcntl(r, fcntl.F_GETFD, b"x" * 1025))
    same_outcome(lambda: syscalls.fcntl(-1, fcntl.F_GETFD),
                 lambda: fcntl.fcntl(-1, fcntl.F_GETFD))


@requires_core
def test_fcntl_ofd_setlkw_cancelled_while_waiting(tmp_path):
    path = tmp_path / "ofd"
    path.write_bytes(b"z")
    with open(path, "r+") as holder, open(path, "r+") as waiter:
        fcntl.fcntl(holder, fcntl.F_OFD_SETLK, _flock_struct(fcntl.F_WRLCK))
        run = cancel_when_blocked(syscalls.fcntl, waiter, fcntl.F_OFD_SETLKW,
                                  _flock_struct(fcntl.F_WRLCK),
                                  syscall="fcntl", arg0=waiter.fileno())
        assert_cancelled(run)
        fcntl.fcntl(holder, fcntl.F_OFD_SETLK, _flock_struct(fcntl.F_UNLCK))
        # the waiter got no lock: a third description can take it
        with open(path, "r+") as third:
            fcntl.fcntl(third, fcntl.F_OFD_SETLK, _flock_struct(fcntl.F_WRLCK))


@requires_core
def test_fcntl_setlkw_cancelled_while_waiting(locked_by_child):
    with open(locked_by_child, "r+") as f:
        run = cancel_when_blocked(syscalls.fcntl, f, fcntl.F_SETLKW,
                                  _flock_struct(fcntl.F_WRLCK),
                                  syscall="fcntl", arg0=f.fileno())
        assert_cancelled(run)


# ---- fsync / fdatasync ------------------------------------------------------

@pytest.mark.parametrize("name", ["fsync", "fdatasync"])
def test_sync_matches_os(name, datafile, tmp_path):
    ours, theirs = getattr(syscalls, name), getattr(os, name)
    assert ours(datafile) is None
    with open(tmp_path / "s", "w") as f:
        assert ours(f) is None                    # objects with fileno()
    same_outcome(lambda: ours(-1), lambda: theirs(-1))
    same_outcome(lambda: ours("x"), lambda: theirs("x"))


@pytest.mark.parametrize("name", ["fsync", "fdatasync"])
def test_sync_pending_request_acts_at_entry(name, datafile):
    run = Pending().run(getattr(syscalls, name), datafile)
    assert isinstance(run.exc, Cancelled)
