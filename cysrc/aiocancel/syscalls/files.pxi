# ---- files ------------------------------------------------------------------
# Cancellable file calls (aiocancel.syscalls): read/write, vectored I/O,
# open (a FIFO open blocks until the other end opens), file locks, and syncing.
#
# Results and errors are those of ``os.read``, ``os.write``, ``os.pread``,
# ``os.pwrite``, ``os.readv``, ``os.writev``, ``os.preadv``,
# ``os.pwritev``, ``os.open``, ``fcntl.flock``, ``fcntl.lockf``,
# ``fcntl.fcntl``, ``os.fsync`` and ``os.fdatasync``. Each is a cancellation
# point (see aiocancel.syscalls): a request acts before the call or while it
# blocks (a FIFO open, a lock wait), never after the kernel produced a result,
# so an opened fd or a granted lock is always returned to the caller. fsync and
# fdatasync wait for the disk uninterruptibly: for them a request acts only at
# entry.

cdef extern from "<fcntl.h>":
    int AT_FDCWD, O_CLOEXEC, F_SETLK, F_SETLKW, F_RDLCK, F_WRLCK, F_UNLCK
    cdef struct c_flock "flock":
        short l_type
        short l_whence
        long l_start
        long l_len
        int l_pid

cdef extern from "<sys/file.h>":
    int LOCK_SH, LOCK_EX, LOCK_NB, LOCK_UN

cdef enum:
    FCNTL_BUFSZ = 1024     # the fcntl module's limit for a bytes argument


# ---- read and write ---------------------------------------------------------

cdef object _buffer_call(long nr, object fd, object buffer, bint writable,
                         long long offset):
    """``nr(fd, buffer, len(buffer), offset)`` with the buffer pinned:
    write/pwrite, or read into it (readinto)."""
    cdef int f = _fd(fd)
    cdef Py_buffer view
    _get_buffer(buffer, &view, writable)
    try:
        return _call(nr, f, <long>view.buf, view.len, offset, 0, 0)
    finally:
        PyBuffer_Release(&view)


def read(fd, Py_ssize_t n):
    """Read up to `n` bytes from `fd`, like ``os.read``; a cancellation point."""
    cdef int f = _fd(fd)
    if n < 0:
        raise ValueError("negative size in read")
    return _bytes_call(None, f, 0, SYS_read, n, 0, 0, 0)


def readinto(fd, buffer):
    """Read into a writable buffer; return the byte count. A cancellation point."""
    return _buffer_call(SYS_read, fd, buffer, True, 0)


def write(fd, data):
    """Write bytes-like `data` to `fd`, like ``os.write``; a cancellation point.

    Cancelled only if no byte was written; a partial write is returned."""
    return _buffer_call(SYS_write, fd, data, False, 0)


def pread(fd, Py_ssize_t n, long long offset):
    """Read up to `n` bytes at `offset`, like ``os.pread``; a cancellation point."""
    cdef int f = _fd(fd)
    if n < 0:
        raise ValueError("negative size in pread")
    return _bytes_call(None, f, 0, SYS_pread64, n, offset, 0, 0)


def pwrite(fd, data, long long offset):
    """Write `data` at `offset`, like ``os.pwrite``; a cancellation point."""
    return _buffer_call(SYS_pwrite64, fd, data, False, offset)


# ---- vectored I/O -----------------------------------------------------------

cdef long _vectored(long nr, object fd, object buffers, bint writable,
                    str name, long long offset, int flags,
                    bint positioned) except -1:
    cdef int f = _fd(fd)
    cdef IOVecs iovs = IOVecs()
    iovs.fill(buffers, writable, name)
    try:
        if positioned:
            # preadv/pwritev take the offset as (low, high) longs; on 64-bit
            # kernels the low one holds all of it.
            return _call(nr, f, <long>iovs.iov, iovs.count, <long>offset, 0,
                         flags)
        return _call(nr, f, <long>iovs.iov, iovs.count, 0, 0, 0)
    finally:
        iovs.release()


def readv(fd, buffers):
    """Read into a sequence of writable buffers, filling each in turn, like
    ``os.readv``; return the total byte count. A cancellation point."""
    return _vectored(SYS_readv, fd, buffers, True, "readv() arg 2", 0, 0, False)


def writev(fd, buffers):
    """Write a sequence of bytes-like objects, like ``os.writev``; return
    the byte count. A cancellation point (cancelled only if nothing was
    written; a partial write is returned)."""
    return _vectored(SYS_writev, fd, buffers, False, "writev() arg 2", 0, 0, False)


# preadv2/pwritev2, as os.preadv/os.pwritev call them: offset -1 means the
# file position (so they also work on pipes), `flags` are os.RWF_*.

def preadv(fd, buffers, long long offset, int flags=0):
    """``os.preadv``: readv at `offset` (the file position is unchanged;
    -1 reads at and advances it). A cancellation point."""
    return _vectored(SYS_preadv2, fd, buffers, True, "preadv() arg 2", offset,
                     flags, True)


def pwritev(fd, buffers, long long offset, int flags=0):
    """``os.pwritev``: writev at `offset` (-1: at the file position). A
    cancellation point."""
    return _vectored(SYS_pwritev2, fd, buffers, False, "pwritev() arg 2",
                     offset, flags, True)


# ---- open -------------------------------------------------------------------

cdef bytes _path_bytes(object path):
    cdef bytes raw
    if not isinstance(path, (str, bytes, _os.PathLike)):
        raise TypeError(f"open: path should be string, bytes or os.PathLike, "
                        f"not {type(path).__name__}")
    raw = _os.fsencode(path)
    if b"\0" in raw:
        # os.open's own text (before 3.13 a str path's NUL was reported by
        # the encoder, a bytes path's by the path converter).
        raise (_stdlib_errors.open_path_error(path)
               or ValueError("open: embedded null character in path"))
    return raw


def openat(dir_fd, path, int flags, int mode=0o777):
    """Open `path` relative to directory fd `dir_fd`; see `open`."""
    cdef int d = _fd(dir_fd) if dir_fd is not None else AT_FDCWD
    cdef bytes raw = _path_bytes(path)
    cdef long r = _attempt(SYS_openat, d, <long><char *>raw,
                           flags | O_CLOEXEC, mode, 0, 0)
    if r < 0:
        _raise_errno_path(r, _os.fspath(path))
    return <int>r


def open(path, int flags, int mode=0o777, *, dir_fd=None):
    """Open a file, like ``os.open`` (the fd is non-inheritable, errors name
    the file); return the fd. A cancellation point: an open that blocks (a
    FIFO waiting for its other end, a lease break) is interrupted; an fd the
    kernel opened is always returned."""
    return openat(dir_fd, path, flags, mode)


# ---- locks ------------------------------------------------------------------

def flock(fd, int operation):
    """Apply or remove an advisory lock, like ``fcntl.flock`` (LOCK_SH,
    LOCK_EX, LOCK_UN, | LOCK_NB). A cancellation point: a blocked lock wait
    is interrupted; a granted lock is kept (the call returns).

    Converting a lock is not atomic on Linux: an upgrade (LOCK_SH held,
    LOCK_EX requested) or downgrade first drops the lock held, then waits
    for the new one. A cancelled conversion therefore raises `Cancelled`
    with *no* lock held on that open file description — the shared lock is
    gone, exactly as after an upgrade interrupted by a signal (EINTR) or
    failed with LOCK_NB (EWOULDBLOCK). Take the lock again if you still
    need it."""
    _call(SYS_flock, _fileno(fd), operation, 0, 0, 0, 0)


def lockf(fd, int cmd, long long len=0, long long start=0, int whence=0):
    """POSIX record lock, like ``fcntl.lockf`` (cmd LOCK_UN, LOCK_SH or
    LOCK_EX, | LOCK_NB to fail instead of waiting). A cancellation point
    while it waits for the lock."""
    cdef int f = _fileno(fd)
    cdef c_flock lk
    memset(&lk, 0, sizeof(lk))
    if cmd == LOCK_UN:
        lk.l_type = F_UNLCK
    elif cmd & LOCK_SH:
        lk.l_type = F_RDLCK
    elif cmd & LOCK_EX:
        lk.l_type = F_WRLCK
    else:
        raise ValueError("unrecognized lockf argument")
    lk.l_start = start
    lk.l_len = len
    lk.l_whence = whence
    _call(SYS_fcntl, f, F_SETLK if cmd & LOCK_NB else F_SETLKW, <long>&lk,
          0, 0, 0)


def fcntl(fd, int cmd, arg=0):
    """``fcntl.fcntl``: with an int `arg` return the call's int result; with
    a bytes-like (or str) `arg` (at most 1024 bytes, e.g. a packed struct
    flock for F_SETLKW / F_OFD_SETLKW) return the buffer as the kernel left
    it. An int `arg` is taken modulo 2**32 as the stdlib's is (-1 and
    0x80000000 are accepted). A cancellation point: F_SETLKW and
    F_OFD_SETLKW waits are interrupted."""
    cdef int f = _fileno(fd)
    cdef char buf[FCNTL_BUFSZ]
    cdef char *data = buf
    cdef Py_buffer view
    cdef Py_ssize_t n
    if isinstance(arg, int):
        # fcntl.fcntl parses it with "I": an unsigned int, wrapped without
        # an overflow check, handed to fcntl(2) as a C int.
        return <int>_call(SYS_fcntl, f, cmd,
                          <long><unsigned int>(arg & 0xFFFFFFFF), 0, 0, 0)
    if isinstance(arg, str):
        arg = arg.encode()
    try:
        _get_buffer(arg, &view, False)
    except TypeError:
        # The stdlib's own text for this argument (it differs by version).
        raise (_stdlib_errors.fcntl_arg_error(arg) or TypeError(
            "fcntl() argument 3 must be an integer, a bytes-like object, "
            "or a string")) from None
    n = view.len
    try:
        if n > FCNTL_BUFSZ:
            # Up to 3.14 the stdlib refuses more than 1024 bytes (with a text
            # that changed in 3.14); 3.15 takes any length.
            err = _stdlib_errors.fcntl_arg_error(bytes(n))
            if err is not None:
                raise err
            data = <char *>PyMem_Malloc(n)
            if data is NULL:
                raise MemoryError()
        else:
            memset(buf, 0, FCNTL_BUFSZ)
        memcpy(data, view.buf, n)
    finally:
        PyBuffer_Release(&view)
    try:
        _call(SYS_fcntl, f, cmd, <long>data, 0, 0, 0)
        return data[:n]
    finally:
        if data != buf:
            PyMem_Free(data)


# ---- sync -------------------------------------------------------------------

def fsync(fd):
    """Flush `fd`'s data and metadata to disk, like ``os.fsync``. A
    cancellation point at entry only (the disk wait is uninterruptible)."""
    _call(SYS_fsync, _fileno(fd), 0, 0, 0, 0, 0)


def fdatasync(fd):
    """Flush `fd`'s data to disk, like ``os.fdatasync``. A cancellation
    point at entry only."""
    _call(SYS_fdatasync, _fileno(fd), 0, 0, 0, 0, 0)
