# ---- the base of every call -------------------------------------------------
# Every cancellable syscall in aiocancel is made by `_attempt`, which goes
# through the trampoline (aiocancel._cancel.syscall_cp) with the GIL released.
# Here too: errno reporting, argument helpers, bytes results, pinned iovecs.

cdef extern from "<signal.h>":
    int NSIG

cdef extern from "Python.h":
    int PyObject_AsFileDescriptor(object) except -1
    PyObject *PyBytes_FromStringAndSize_raw "PyBytes_FromStringAndSize" (
        const char *, Py_ssize_t) except NULL
    char *PyBytes_AS_STRING(PyObject *)
    Py_ssize_t PyBytes_GET_SIZE(PyObject *)
    int _PyBytes_Resize(PyObject **, Py_ssize_t) except -1
    void Py_XDECREF_raw "Py_XDECREF" (PyObject *)

cdef extern from "<errno.h>":
    int EWOULDBLOCK

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
    short POLLIN, POLLOUT, POLLPRI, POLLERR, POLLHUP, POLLNVAL

cdef extern from "<sys/uio.h>" nogil:
    struct iovec:
        void *iov_base
        size_t iov_len

# The one table of syscall numbers (aioc_sysnums.h adds the ones older
# kernel headers lack).
cdef extern from "aioc_sysnums.h" nogil:
    long SYS_read, SYS_write, SYS_pread64, SYS_pwrite64
    long SYS_readv, SYS_writev, SYS_preadv2, SYS_pwritev2
    long SYS_openat, SYS_flock, SYS_fcntl, SYS_fsync, SYS_fdatasync
    long SYS_recvfrom, SYS_sendto, SYS_recvmsg, SYS_sendmsg
    long SYS_accept4, SYS_connect
    long SYS_ppoll, SYS_pselect6, SYS_epoll_pwait, SYS_clock_nanosleep
    long SYS_wait4, SYS_waitid, SYS_rt_sigtimedwait
    long SYS_futex
    long SYS_msgsnd, SYS_msgrcv

cdef enum:
    KERNEL_SIGSET_SIZE = 8   # the kernel's sigset_t (64 signals), not glibc's
    BAD = -99999   # "exception set" marker of _attempt, outside -4095..-1

# _PyTime_t holds nanoseconds in 64 bits: the stdlib's limit for timeouts
# and time.sleep.
cdef double TIME_LIMIT = 9223372036.854775


cdef long _attempt_once(long nr, long a, long b, long c, long d, long e,
                        long f) except? BAD:
    """Run a cancellable syscall once; return its result (>= 0 or -errno).

    Raises Cancelled/ThreadCancelled when cancellation acted, and whatever a
    Python signal handler raised when the call was interrupted (-EINTR is
    returned otherwise, for callers that recompute a timeout).
    """
    cdef long r
    cdef int acted
    with nogil:
        r = syscall_cp(nr, a, b, c, d, e, f, &acted)
    if acted:
        raise_cancelled(acted)
    if r == -EINTR and PyErr_CheckSignals() < 0:
        return BAD
    return r


cdef long _attempt(long nr, long a, long b, long c, long d, long e,
                   long f) except? BAD:
    """As `_attempt_once`, retrying EINTR (PEP 475)."""
    cdef long r
    while True:
        r = _attempt_once(nr, a, b, c, d, e, f)
        if r != -EINTR:
            return r


cdef inline long _call(long nr, long a, long b, long c, long d, long e,
                       long f) except -1:
    """A cancellable syscall; raises OSError for -errno results."""
    cdef long r = _attempt(nr, a, b, c, d, e, f)
    if r < 0:
        _raise_errno(r)
    return r


cdef int _raise_errno(long r) except -1:
    global errno
    errno = <int>-r
    PyErr_SetFromErrno(OSError)
    return -1


cdef int _raise_errno_path(long r, object path) except -1:
    """As `_raise_errno`, with the file name in the exception (os.open's)."""
    global errno
    errno = <int>-r
    PyErr_SetFromErrnoWithFilenameObject(OSError, path)
    return -1


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


cdef int _fileno(object obj) except -1:
    """An fd exactly as the stdlib's select/fcntl/os.fsync convert one
    (PyObject_AsFileDescriptor): same errors for negative or bad values."""
    return PyObject_AsFileDescriptor(obj)


cdef unsigned long _sigmask(object signals) except? 0:
    """A kernel sigset (64 bits) from an iterable of signal numbers, checked
    as the signal module checks them; aiocancel's cancel signal is left out:
    it must stay deliverable and must never be consumed by a wait."""
    cdef unsigned long mask = 0
    cdef long signum
    cdef int cancel_sig = the_signal()
    for sig in signals:
        signum = sig
        if signum <= 0 or signum >= NSIG:
            raise ValueError(f"signal number {signum} out of range "
                             f"[1; {NSIG - 1}]")
        if signum != cancel_sig:
            mask |= 1UL << (signum - 1)
    return mask


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


# A bytes result filled by the kernel: allocate n bytes, let the syscall write
# into PyBytes_AS_STRING(buf), then _bytes_finish(buf, r) (steals buf, shrinks
# it to r) or, on error, _bytes_drop(buf).
cdef PyObject *_bytes_alloc(Py_ssize_t n) except NULL:
    return PyBytes_FromStringAndSize_raw(NULL, n)


cdef object _bytes_finish(PyObject *buf, Py_ssize_t r):
    if r != PyBytes_GET_SIZE(buf):
        _PyBytes_Resize(&buf, r)      # frees buf itself if it fails
    result = <object>buf
    Py_XDECREF_raw(buf)
    return result


cdef void _bytes_drop(PyObject *buf) noexcept:
    Py_XDECREF_raw(buf)


cdef class IOVecs:
    """The buffers of a sequence, pinned, as the iovec array readv(2),
    writev(2) and sendmsg(2) take. `release()` (or deallocation) unpins."""
    cdef Py_buffer *views
    cdef iovec *iov
    cdef Py_ssize_t count
    cdef Py_ssize_t pinned
    cdef Py_ssize_t total

    cdef int fill(self, object buffers, bint writable, str name) except -1:
        cdef Py_ssize_t i
        if not PySequence_Check(buffers):
            raise TypeError(f"{name} must be a sequence")
        buffers = list(buffers)
        self.count = len(buffers)
        self.views = <Py_buffer *>PyMem_Calloc(self.count or 1, sizeof(Py_buffer))
        self.iov = <iovec *>PyMem_Calloc(self.count or 1, sizeof(iovec))
        if self.views is NULL or self.iov is NULL:
            raise MemoryError()
        for i in range(self.count):
            # Errors as os.readv / os.writev report them (BufferError for a
            # read-only buffer given to a read).
            PyObject_GetBuffer(buffers[i], &self.views[i],
                               PyBUF_WRITABLE if writable else PyBUF_SIMPLE)
            self.pinned = i + 1
            self.iov[i].iov_base = self.views[i].buf
            self.iov[i].iov_len = self.views[i].len
            self.total += self.views[i].len
        return 0

    cdef void release(self) noexcept:
        cdef Py_ssize_t i
        for i in range(self.pinned):
            PyBuffer_Release(&self.views[i])
        self.pinned = 0
        PyMem_Free(self.views)
        PyMem_Free(self.iov)
        self.views = NULL
        self.iov = NULL

    def __dealloc__(self):
        self.release()
