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
import socket as _socket

from cpython.buffer cimport (PyObject_GetBuffer, PyBuffer_Release,
                             PyBUF_SIMPLE, PyBUF_WRITABLE)
from cpython.exc cimport PyErr_CheckSignals, PyErr_SetFromErrno
from cpython.object cimport PyObject
from libc.errno cimport errno, EINTR, EAGAIN, EINPROGRESS, EINVAL
from libc.string cimport memset, memcpy, strlen
from libc.math cimport isfinite

from aiocancel._cancel cimport syscall_cp, raise_cancelled

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

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    struct timespec:
        time_t tv_sec
        long tv_nsec
    int CLOCK_MONOTONIC
    int TIMER_ABSTIME
    int clock_gettime(int, timespec *)

cdef extern from "<poll.h>" nogil:
    struct pollfd:
        int fd
        short events
        short revents
    short POLLIN, POLLOUT

cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    ctypedef unsigned short sa_family_t
    struct sockaddr:
        sa_family_t sa_family
    struct sockaddr_storage:
        sa_family_t ss_family
    int AF_INET, AF_INET6, AF_UNIX, SOL_SOCKET, SO_DOMAIN, SO_ERROR
    int SOCK_CLOEXEC, SOCK_STREAM
    int getsockopt(int, int, int, void *, socklen_t *)

cdef extern from "<sys/un.h>" nogil:
    struct sockaddr_un:
        sa_family_t sun_family
        char sun_path[108]

cdef extern from "<netinet/in.h>" nogil:
    struct sockaddr_in:
        pass
    struct sockaddr_in6:
        unsigned int sin6_flowinfo
        unsigned int sin6_scope_id
    unsigned short htons(unsigned short)
    unsigned short ntohs(unsigned short)
    unsigned int htonl(unsigned int)
    unsigned int ntohl(unsigned int)

cdef extern from "<netdb.h>" nogil:
    struct addrinfo:
        int ai_family
        int ai_socktype
        int ai_flags
        socklen_t ai_addrlen
        sockaddr *ai_addr
    int getaddrinfo(const char *, const char *, const addrinfo *, addrinfo **)
    void freeaddrinfo(addrinfo *)
    const char *gai_strerror(int)
    int getnameinfo(const sockaddr *, socklen_t, char *, socklen_t, char *,
                    socklen_t, int)
    int NI_NUMERICHOST, NI_NUMERICSERV, NI_MAXHOST

cdef extern from *:
    """
    #include <netinet/in.h>
    #include <sys/un.h>
    #include <stddef.h>
    static unsigned short aioc_port(const struct sockaddr *a) {
        return ntohs(a->sa_family == AF_INET6
            ? ((const struct sockaddr_in6 *)a)->sin6_port
            : ((const struct sockaddr_in *)a)->sin_port);
    }
    static void aioc_set_port(struct sockaddr *a, unsigned short port) {
        if (a->sa_family == AF_INET6)
            ((struct sockaddr_in6 *)a)->sin6_port = htons(port);
        else
            ((struct sockaddr_in *)a)->sin_port = htons(port);
    }
    #define AIOC_SUN_PATH_OFFSET offsetof(struct sockaddr_un, sun_path)
    """
    unsigned short aioc_port(const sockaddr *) nogil
    void aioc_set_port(sockaddr *, unsigned short) nogil
    size_t AIOC_SUN_PATH_OFFSET

cdef enum:
    BAD = -99999   # "exception set" marker of _attempt, outside -4095..-1


# ---- the one place a syscall is made ---------------------------------------

cdef long _attempt(long nr, long a, long b, long c, long d, long e,
                   long f) except? BAD:
    """Run a cancellable syscall; return its result (>= 0 or -errno).

    Raises Cancelled/ThreadCancelled when cancellation acted, and whatever a
    Python signal handler raised; EINTR is retried after running them.
    """
    cdef long r
    cdef int acted
    while True:
        with nogil:
            r = syscall_cp(nr, a, b, c, d, e, f, &acted)
        if acted:
            raise_cancelled(acted)
        if r != -EINTR:
            return r
        if PyErr_CheckSignals() < 0:
            return BAD


cdef int _raise_errno(long r) except -1:
    global errno
    errno = <int>-r
    PyErr_SetFromErrno(OSError)
    return -1


cdef inline long _call(long nr, long a, long b, long c, long d, long e,
                       long f) except -1:
    cdef long r = _attempt(nr, a, b, c, d, e, f)
    if r < 0:
        _raise_errno(r)
    return r


# ---- argument helpers -------------------------------------------------------

cdef int _fd(object obj) except? -1:
    """An int fd, or obj.fileno(); a closed socket's -1 reaches the kernel
    and becomes EBADF, as with the stdlib."""
    if isinstance(obj, int):
        return obj
    fileno = getattr(obj, "fileno", None)
    if fileno is None:
        raise TypeError(f"expected a file descriptor (int) or an object with "
                        f"fileno(), not {type(obj).__name__}")
    return fileno()


cdef double _timeout(object sock) except? -2.0:
    """A socket object's timeout in seconds, -1.0 for blocking (or an fd)."""
    if isinstance(sock, int):
        return -1.0
    gettimeout = getattr(sock, "gettimeout", None)
    if gettimeout is None:
        return -1.0
    t = gettimeout()
    return -1.0 if t is None else t


cdef double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef void _to_timespec(double seconds, timespec *ts) noexcept nogil:
    if seconds < 0:
        seconds = 0
    ts.tv_sec = <time_t>seconds
    ts.tv_nsec = <long>((seconds - ts.tv_sec) * 1e9)
    if ts.tv_nsec >= 1000000000:
        ts.tv_sec += 1
        ts.tv_nsec -= 1000000000


cdef int _get_buffer(object obj, Py_buffer *view, bint writable) except -1:
    if writable:
        try:
            PyObject_GetBuffer(obj, view, PyBUF_WRITABLE)
        except (BufferError, TypeError):
            raise TypeError(f"a writable bytes-like object is required, "
                            f"not {type(obj).__name__}") from None
    else:
        PyObject_GetBuffer(obj, view, PyBUF_SIMPLE)
    return 0


cdef int _wait_fd(int fd, short events, double deadline) except -1:
    """Cancellable wait for `events` on fd until the monotonic `deadline`;
    raises socket.timeout (TimeoutError) when it passes, as socket does."""
    cdef pollfd p
    cdef timespec ts
    cdef long r
    while True:
        # Checked first too: a socket can poll ready (POLLHUP, POLLERR) while
        # its call keeps failing with EAGAIN (recv with MSG_ERRQUEUE on an
        # unconnected socket): the timeout must still end the loop, as in
        # the socket module.
        if _now() >= deadline:
            raise _socket.timeout("timed out")
        p.fd = fd
        p.events = events
        p.revents = 0
        _to_timespec(deadline - _now(), &ts)
        r = _call(SYS_ppoll, <long>&p, 1, <long>&ts, 0, 0, 0)
        if r > 0:
            return 0


cdef long _sock_call(object sock, int fd, short events, long nr, long a,
                     long b, long c, long d, long e, long f) except -1:
    """A socket syscall honouring the socket object's timeout: blocking
    sockets block in the syscall; sockets with a timeout wait in ppoll."""
    cdef double timeout = _timeout(sock)
    cdef double deadline
    cdef long r
    if timeout < 0:
        return _call(nr, a, b, c, d, e, f)
    deadline = _now() + timeout
    while True:
        r = _attempt(nr, a, b, c, d, e, f)
        if r >= 0:
            return r
        if (r != -EAGAIN and r != -EWOULDBLOCK) or timeout == 0:
            _raise_errno(r)
        _wait_fd(fd, events, deadline)


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
    if nbytes < 0:
        raise ValueError("negative buffersize in recv_into")
    _get_buffer(buffer, &view, True)
    try:
        if nbytes == 0:
            nbytes = view.len
        elif nbytes > view.len:
            raise ValueError("buffer too small for requested bytes")
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
            except OSError as exc:
                exc.bytes_sent = done
                raise
            done += r
    finally:
        PyBuffer_Release(&view)


cdef object _decode_addr(sockaddr_storage *ss, socklen_t length):
    """A sockaddr as the socket module returns it."""
    cdef char host[1025]
    cdef sockaddr *sa = <sockaddr *>ss
    cdef sockaddr_un *un
    cdef sockaddr_in6 *in6
    cdef size_t pathlen
    cdef int err
    if length == 0:
        return None
    if sa.sa_family == AF_INET or sa.sa_family == AF_INET6:
        err = getnameinfo(sa, length, host, sizeof(host), NULL, 0, NI_NUMERICHOST)
        if err:
            raise _socket.gaierror(err, gai_strerror(err).decode())
        if sa.sa_family == AF_INET:
            return (host.decode("ascii"), aioc_port(sa))
        in6 = <sockaddr_in6 *>ss
        return (host.decode("ascii"), aioc_port(sa), ntohl(in6.sin6_flowinfo),
                in6.sin6_scope_id)
    if sa.sa_family == AF_UNIX:
        un = <sockaddr_un *>ss
        pathlen = length - AIOC_SUN_PATH_OFFSET if length > AIOC_SUN_PATH_OFFSET else 0
        if pathlen > 0 and un.sun_path[0] == 0:
            return un.sun_path[:pathlen]   # Linux abstract namespace: bytes
        import os
        return os.fsdecode(un.sun_path[:strlen(un.sun_path)])
    return (<char *>ss)[:length]


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


cdef int _family(int fd) except -1:
    cdef int family = 0
    cdef socklen_t size = sizeof(family)
    if getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &size) != 0:
        PyErr_SetFromErrno(OSError)
        return -1
    return family


cdef socklen_t _encode_addr(int family, object address,
                            sockaddr_storage *ss) except 0:
    """Fill `ss` from a socket-module address; resolve host names."""
    cdef addrinfo hints
    cdef addrinfo *res = NULL
    cdef sockaddr_un *un
    cdef sockaddr_in6 *in6
    cdef bytes path, host_b
    cdef const char *host_p
    cdef socklen_t length
    cdef int err
    memset(ss, 0, sizeof(sockaddr_storage))
    if family == AF_UNIX:
        import os
        path = os.fsencode(address) if not isinstance(address, bytes) else address
        if len(path) > sizeof(un.sun_path):
            raise OSError(EINVAL, "AF_UNIX path too long")
        un = <sockaddr_un *>ss
        un.sun_family = AF_UNIX
        memcpy(un.sun_path, <char *>path, len(path))
        if len(path) and path[0] == 0:
            return <socklen_t>(AIOC_SUN_PATH_OFFSET + len(path))
        return <socklen_t>(AIOC_SUN_PATH_OFFSET + len(path) + 1)
    if family != AF_INET and family != AF_INET6:
        raise OSError(EINVAL, f"unsupported address family {family}")
    if not isinstance(address, tuple) or not 2 <= len(address) <= (
            4 if family == AF_INET6 else 2):
        raise TypeError(f"{'AF_INET6' if family == AF_INET6 else 'AF_INET'} "
                        f"address must be a tuple (host, port"
                        f"{'[, flowinfo[, scope_id]]' if family == AF_INET6 else ''})")
    host, port = address[0], address[1]
    if not isinstance(port, int):
        raise TypeError(f"port must be an int, not {type(port).__name__}")
    if not 0 <= port <= 65535:
        raise OverflowError("port must be 0-65535.")
    if host == "" or host == b"":
        host_b = b"::" if family == AF_INET6 else b"0.0.0.0"
    elif host == "<broadcast>":
        host_b = b"255.255.255.255"
    elif isinstance(host, str):
        host_b = host.encode("idna")
    elif isinstance(host, (bytes, bytearray)):
        host_b = bytes(host)
    else:
        raise TypeError(f"str, bytes or bytearray expected, not {type(host).__name__}")
    if b"\0" in host_b:
        # getaddrinfo would stop at the NUL and connect somewhere else.
        raise TypeError("host name must not contain null character")
    host_p = host_b
    memset(&hints, 0, sizeof(hints))
    hints.ai_family = family
    hints.ai_socktype = SOCK_STREAM
    with nogil:
        err = getaddrinfo(host_p, NULL, &hints, &res)
    if err:
        raise _socket.gaierror(err, gai_strerror(err).decode())
    try:
        length = res.ai_addrlen
        memcpy(ss, res.ai_addr, length)
    finally:
        freeaddrinfo(res)
    aioc_set_port(<sockaddr *>ss, port)
    if family == AF_INET6:
        in6 = <sockaddr_in6 *>ss
        if len(address) > 2:
            in6.sin6_flowinfo = htonl(address[2])
        if len(address) > 3:
            in6.sin6_scope_id = address[3]
    return length


cdef int _connect_result(int fd) except -1:
    cdef int err = 0
    cdef socklen_t size = sizeof(err)
    if getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &size) != 0:
        PyErr_SetFromErrno(OSError)
        return -1
    if err:
        _raise_errno(-err)
    return 0


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

def poll(fds, timeout=None):
    """Wait for events, like ``select.poll().poll()``; a cancellation point.

    `fds` is a sequence of ``(fd, eventmask)`` (fd: int or object with
    fileno()); `timeout` is in seconds, None or negative for no limit.
    Returns a list of ``(fd, revents)`` for the fds with events."""
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
        r = _attempt(SYS_ppoll, <long>p, n, <long>&ts if limit >= 0 else 0, 0, 0, 0)
        if r >= 0:
            break
        if r != -EINTR:
            _raise_errno(r)
    return [(p[i].fd, p[i].revents) for i in range(n) if p[i].revents]


def sleep(seconds):
    """Sleep like ``time.sleep``; a cancellation point. The deadline is
    absolute (CLOCK_MONOTONIC), so interruptions never lengthen the sleep."""
    cdef double secs = seconds
    cdef double end
    cdef timespec ts
    cdef long r
    if secs != secs:
        raise ValueError("Invalid value NaN (not a number)")
    if secs < 0:
        raise ValueError("sleep length must be non-negative")
    if not isfinite(secs) or secs > 1e12:
        raise OverflowError("sleep length is too large")
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
