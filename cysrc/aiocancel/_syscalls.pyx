# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cancellable syscalls (aiocancel.syscalls).

Each function releases the GIL around the syscall and, in a registered
thread whose state is MASKED or ENABLE, is a cancellation point: a pending
request makes it fail without entering the kernel, and a request that arrives
while it blocks makes it fail with `Cancelled` (MASKED) or `ThreadCancelled`
(ENABLE). Either way the kernel produced nothing: a result the kernel did
produce is always returned. Elsewhere they are plain syscalls, retried on
EINTR as PEP 475 does, with results matching the stdlib functions.
"""

from cpython.buffer cimport PyBuffer_Release
from cpython.exc cimport PyErr_CheckSignals
from cpython.object cimport PyObject
from libc.errno cimport EINTR, EAGAIN, EINPROGRESS
from libc.string cimport memset
from aiocancel import _stdlib_errors

from aiocancel._sysbase cimport (BAD, _attempt, _call, _raise_errno, _fd,
                                 _now, _to_timespec, _get_buffer, timespec,
                                 pollfd, POLLIN, POLLOUT, CLOCK_MONOTONIC,
                                 TIMER_ABSTIME, KERNEL_SIGSET_SIZE, _sigmask)
from aiocancel._sockbase cimport (_timeout, _wait_fd, _sock_call,
                                  _decode_addr, _family, _encode_addr,
                                  _connect_result, _pin_recv_buffer,
                                  sockaddr_storage,
                                  socklen_t, SOCK_CLOEXEC)

cdef extern from "Python.h":
    PyObject *PyBytes_FromStringAndSize_raw "PyBytes_FromStringAndSize" (
        const char *, Py_ssize_t) except NULL
    char *PyBytes_AS_STRING(PyObject *)
    int _PyBytes_Resize(PyObject **, Py_ssize_t) except -1
    void Py_XDECREF_raw "Py_XDECREF" (PyObject *)

cdef extern from "<errno.h>":
    int EWOULDBLOCK

cdef extern from "<sys/syscall.h>":
    long SYS_read, SYS_write, SYS_pread64, SYS_pwrite64, SYS_recvfrom
    long SYS_sendto, SYS_accept4, SYS_connect, SYS_ppoll
    long SYS_clock_nanosleep, SYS_wait4


# ---- files and pipes --------------------------------------------------------

def read(fd, Py_ssize_t n):
    """Read up to `n` bytes from `fd`, like ``os.read``; a cancellation point."""
    cdef int f = _fd(fd)
    cdef PyObject *buf
    cdef long r
    if n < 0:
        raise ValueError("negative size in read")
    buf = PyBytes_FromStringAndSize_raw(NULL, n)
    try:
        r = _call(SYS_read, f, <long>PyBytes_AS_STRING(buf), n, 0, 0, 0)
        if r != n:
            _PyBytes_Resize(&buf, r)
        result = <object>buf
    finally:
        Py_XDECREF_raw(buf)
    return result


def readinto(fd, buffer):
    """Read into a writable buffer; return the byte count. A cancellation point."""
    cdef int f = _fd(fd)
    cdef Py_buffer view
    _get_buffer(buffer, &view, True)
    try:
        return _call(SYS_read, f, <long>view.buf, view.len, 0, 0, 0)
    finally:
        PyBuffer_Release(&view)


def write(fd, data):
    """Write bytes-like `data` to `fd`, like ``os.write``; a cancellation point.

    Cancelled only if no byte was written; a partial write is returned."""
    cdef int f = _fd(fd)
    cdef Py_buffer view
    _get_buffer(data, &view, False)
    try:
        return _call(SYS_write, f, <long>view.buf, view.len, 0, 0, 0)
    finally:
        PyBuffer_Release(&view)


def pread(fd, Py_ssize_t n, long long offset):
    """Read up to `n` bytes at `offset`, like ``os.pread``; a cancellation point."""
    cdef int f = _fd(fd)
    cdef PyObject *buf
    cdef long r
    if n < 0:
        raise ValueError("negative size in pread")
    buf = PyBytes_FromStringAndSize_raw(NULL, n)
    try:
        r = _call(SYS_pread64, f, <long>PyBytes_AS_STRING(buf), n, offset, 0, 0)
        if r != n:
            _PyBytes_Resize(&buf, r)
        result = <object>buf
    finally:
        Py_XDECREF_raw(buf)
    return result


def pwrite(fd, data, long long offset):
    """Write `data` at `offset`, like ``os.pwrite``; a cancellation point."""
    cdef int f = _fd(fd)
    cdef Py_buffer view
    _get_buffer(data, &view, False)
    try:
        return _call(SYS_pwrite64, f, <long>view.buf, view.len, offset, 0, 0)
    finally:
        PyBuffer_Release(&view)


# ---- sockets ----------------------------------------------------------------

def recv(sock, Py_ssize_t n, int flags=0):
    """Receive up to `n` bytes, like ``socket.recv``; a cancellation point.

    `sock` is a socket object (its timeout is honoured) or an fd."""
    cdef int f = _fd(sock)
    cdef PyObject *buf
    cdef long r
    if n < 0:
        raise ValueError("negative buffersize in recv")
    if n == 0:
        return b""   # as socket.recv: no syscall (recv of 0 blocks on AF_UNIX)
    buf = PyBytes_FromStringAndSize_raw(NULL, n)
    try:
        r = _sock_call(sock, f, POLLIN, SYS_recvfrom, f,
                       <long>PyBytes_AS_STRING(buf), n, flags, 0, 0)
        if r != n:
            _PyBytes_Resize(&buf, r)
        result = <object>buf
    finally:
        Py_XDECREF_raw(buf)
    return result


def recv_into(sock, buffer, Py_ssize_t nbytes=0, int flags=0):
    """Receive into a writable buffer, like ``socket.recv_into``."""
    cdef int f = _fd(sock)
    cdef Py_buffer view
    nbytes = _pin_recv_buffer(buffer, &view, nbytes, "recv_into",
                              "buffer too small for requested bytes")
    try:
        return _sock_call(sock, f, POLLIN, SYS_recvfrom, f, <long>view.buf,
                          nbytes, flags, 0, 0)
    finally:
        PyBuffer_Release(&view)


def send(sock, data, int flags=0):
    """Send bytes, like ``socket.send``; return how many were sent."""
    cdef int f = _fd(sock)
    cdef Py_buffer view
    _get_buffer(data, &view, False)
    try:
        return _sock_call(sock, f, POLLOUT, SYS_sendto, f, <long>view.buf,
                          view.len, flags, 0, 0)
    finally:
        PyBuffer_Release(&view)


def sendall(sock, data, int flags=0):
    """Send all of `data`, like ``socket.sendall``.

    On cancellation the raised `Cancelled` has ``bytes_sent``: the part of
    `data` that did reach the kernel before the request acted."""
    cdef int f = _fd(sock)
    cdef Py_buffer view
    cdef Py_ssize_t done = 0
    cdef double timeout = _timeout(sock)
    cdef double deadline = _now() + timeout
    cdef long r
    _get_buffer(data, &view, False)
    try:
        while done < view.len:
            try:
                if timeout < 0:
                    r = _call(SYS_sendto, f, <long>view.buf + done,
                              view.len - done, flags, 0, 0)
                else:
                    r = _attempt(SYS_sendto, f, <long>view.buf + done,
                                 view.len - done, flags, 0, 0)
                    if r == -EAGAIN or r == -EWOULDBLOCK:
                        if timeout == 0:
                            _raise_errno(r)
                        _wait_fd(f, POLLOUT, deadline)
                        continue
                    if r < 0:
                        _raise_errno(r)
                done += r
                # A send interrupted by a signal returns a partial count, not
                # EINTR: run the Python handlers before sending more, as
                # socket.sendall does.
                if done < view.len:
                    PyErr_CheckSignals()
            except OSError as exc:
                exc.bytes_sent = done
                raise
    finally:
        PyBuffer_Release(&view)


def accept(sock, int flags=SOCK_CLOEXEC):
    """Accept a connection; return ``(fd, address)`` like ``socket._accept``.

    A cancellation point: cancelled only before the kernel accepted, so an
    accepted connection is always returned. The new fd is close-on-exec, as
    with the socket module; `flags` are accept4's (SOCK_CLOEXEC,
    SOCK_NONBLOCK)."""
    cdef int f = _fd(sock)
    cdef sockaddr_storage ss
    cdef socklen_t length = sizeof(ss)
    cdef long r
    memset(&ss, 0, sizeof(ss))
    r = _sock_call(sock, f, POLLIN, SYS_accept4, f, <long>&ss, <long>&length,
                   flags, 0, 0)
    try:
        return (<int>r, _decode_addr(&ss, length))
    except BaseException:
        import os
        os.close(r)
        raise


def connect(sock, address):
    """Connect, like ``socket.connect``; a cancellation point.

    Host names are resolved first (getaddrinfo, not cancellable). If the
    request acts while the handshake is in flight, the socket is left
    connecting: close it."""
    cdef int f = _fd(sock)
    cdef sockaddr_storage ss
    cdef socklen_t length = _encode_addr(_family(f), address, &ss)
    cdef double timeout = _timeout(sock)
    cdef double deadline = _now() + timeout
    cdef long r = _attempt(SYS_connect, f, <long>&ss, length, 0, 0, 0)
    if r == 0:
        return None
    if r == -EINPROGRESS and timeout != 0:
        # A socket with a timeout (non-blocking underneath): wait for the
        # handshake as socket.connect does, cancellably.
        if timeout > 0:
            _wait_fd(f, POLLOUT, deadline)
        else:
            _wait_fd(f, POLLOUT, 1e300)
        _connect_result(f)
        return None
    _raise_errno(r)


# ---- waiting ----------------------------------------------------------------

cdef list _poll(object fds, object timeout, unsigned long *sigmask):
    cdef list items = list(fds)
    cdef Py_ssize_t n = len(items), i
    cdef double limit = -1.0 if timeout is None else <double>timeout   # str: TypeError, as select.poll
    cdef double deadline
    cdef timespec ts
    cdef long r
    cdef pollfd *p
    if limit != limit:
        raise ValueError("Invalid value NaN (not a number)")
    deadline = _now() + limit
    cdef bytearray storage = bytearray(n * sizeof(pollfd) or 1)
    p = <pollfd *><char *>storage
    for i in range(n):
        fd, events = items[i]
        p[i].fd = _fd(fd)
        p[i].events = events
        p[i].revents = 0
    while True:
        if limit >= 0:
            _to_timespec(deadline - _now(), &ts)
        r = _attempt(SYS_ppoll, <long>p, n, <long>&ts if limit >= 0 else 0,
                     <long>sigmask, KERNEL_SIGSET_SIZE if sigmask else 0, 0)
        if r >= 0:
            break
        if r != -EINTR:
            _raise_errno(r)
    return [(p[i].fd, p[i].revents) for i in range(n) if p[i].revents]


def poll(fds, timeout=None):
    """Wait for events, like ``select.poll().poll()``; a cancellation point.

    `fds` is a sequence of ``(fd, eventmask)`` (fd: int or object with
    fileno()); `timeout` is in seconds, None or negative for no limit.
    Returns a list of ``(fd, revents)`` for the fds with events."""
    return _poll(fds, timeout, NULL)


def ppoll(fds, timeout=None, sigmask=None):
    """`poll` with ppoll(2)'s signal mask: the signals in `sigmask` (an
    iterable of signal numbers) are blocked, and the others unblocked, for
    the duration of the wait only; None keeps the thread's mask. The cancel
    signal is never blocked by it. A cancellation point."""
    cdef unsigned long mask
    if sigmask is None:
        return _poll(fds, timeout, NULL)
    mask = _sigmask(sigmask)
    return _poll(fds, timeout, &mask)


# _PyTime_t's range in seconds: time.sleep's own limit.
cdef double SLEEP_LIMIT = 9223372036.854775


def sleep(seconds):
    """Sleep like ``time.sleep``; a cancellation point. The deadline is
    absolute (CLOCK_MONOTONIC), so interruptions never lengthen the sleep."""
    cdef double secs
    cdef double end
    cdef timespec ts
    cdef long r
    if ((isinstance(seconds, float) or isinstance(seconds, int))
            and 0 <= seconds <= SLEEP_LIMIT):
        secs = seconds
    else:
        # NaN, negative, out of range, other types: as the running
        # interpreter's time.sleep takes or refuses them (texts and accepted
        # types differ between CPython versions).
        secs = _stdlib_errors.sleep_seconds(seconds)
    end = _now() + secs
    _to_timespec(end, &ts)
    while True:
        r = _attempt(SYS_clock_nanosleep, CLOCK_MONOTONIC, TIMER_ABSTIME,
                     <long>&ts, 0, 0, 0)
        if r == 0:
            return None
        if r != -EINTR:
            _raise_errno(r)


def waitpid(int pid, int options):
    """Wait for a child, like ``os.waitpid``: return ``(pid, status)``.
    A cancellation point: a reaped child's status is never lost."""
    cdef int status = 0
    cdef long r = _call(SYS_wait4, pid, <long>&status, options, 0, 0, 0)
    return (<int>r, status if r else 0)
