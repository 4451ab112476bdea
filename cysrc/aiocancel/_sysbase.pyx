# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Shared core of the cancellable-syscall modules (see _sysbase.pxd).

Every cancellable syscall in aiocancel is made by `_attempt`, which goes
through the trampoline (aiocancel._cancel.syscall_cp) with the GIL released.
"""
from cpython.buffer cimport (PyObject_GetBuffer, PyBuffer_Release,
                             PyBUF_SIMPLE, PyBUF_WRITABLE)
from cpython.exc cimport (PyErr_CheckSignals, PyErr_SetFromErrno,
                          PyErr_SetFromErrnoWithFilenameObject)
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from cpython.sequence cimport PySequence_Check
from libc.errno cimport errno, EINTR

from aiocancel._cancel cimport syscall_cp, raise_cancelled, the_signal

cdef extern from "<signal.h>":
    int NSIG

cdef extern from "Python.h":
    int PyObject_AsFileDescriptor(object) except -1
    PyObject *PyBytes_FromStringAndSize_raw "PyBytes_FromStringAndSize" (
        const char *, Py_ssize_t) except NULL
    Py_ssize_t PyBytes_GET_SIZE(PyObject *)
    int _PyBytes_Resize(PyObject **, Py_ssize_t) except -1
    void Py_XDECREF_raw "Py_XDECREF" (PyObject *)


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
