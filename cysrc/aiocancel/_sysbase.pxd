# What every cancellable-syscall module shares: the one place a syscall is
# made (_attempt), errno reporting, and argument helpers. Implemented in
# _sysbase.pyx; the syscall modules (_syscalls, _sockets, _files, _waits,
# _futex, _ipc) cimport from here.

from cpython.object cimport PyObject

cdef extern from "Python.h":
    char *PyBytes_AS_STRING(PyObject *)

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

cdef enum:
    KERNEL_SIGSET_SIZE = 8   # the kernel's sigset_t (64 signals), not glibc's
    BAD = -99999   # "exception set" marker of _attempt, outside -4095..-1

cdef long _attempt_once(long nr, long a, long b, long c, long d, long e,
                        long f) except? BAD
cdef long _attempt(long nr, long a, long b, long c, long d, long e,
                   long f) except? BAD
cdef int _raise_errno(long r) except -1
cdef int _raise_errno_path(long r, object path) except -1

cdef inline long _call(long nr, long a, long b, long c, long d, long e,
                       long f) except -1:
    """A cancellable syscall; raises OSError for -errno results."""
    cdef long r = _attempt(nr, a, b, c, d, e, f)
    if r < 0:
        _raise_errno(r)
    return r

cdef int _fd(object obj) except? -1
cdef unsigned long _sigmask(object signals) except? 0
cdef double _now() noexcept nogil
cdef void _to_timespec(double seconds, timespec *ts) noexcept nogil
cdef int _fileno(object obj) except -1
cdef int _get_buffer(object obj, Py_buffer *view, bint writable) except -1

# A bytes result filled by the kernel: allocate n bytes, let the syscall write
# into PyBytes_AS_STRING(buf), then _bytes_finish(buf, r) (steals buf, shrinks
# it to r) or, on error, _bytes_drop(buf).
cdef PyObject *_bytes_alloc(Py_ssize_t n) except NULL
cdef object _bytes_finish(PyObject *buf, Py_ssize_t r)
cdef void _bytes_drop(PyObject *buf) noexcept


cdef class IOVecs:
    """Buffers of a sequence pinned as a C iovec array (readv/writev/...)."""
    cdef Py_buffer *views
    cdef iovec *iov
    cdef Py_ssize_t count
    cdef Py_ssize_t pinned
    cdef Py_ssize_t total
    cdef int fill(self, object buffers, bint writable, str name) except -1
    cdef void release(self) noexcept
