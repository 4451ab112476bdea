# ---- waits ------------------------------------------------------------------
# Cancellable waits (aiocancel.syscalls): poll, ppoll, select, epoll_wait,
# sleep, waitpid, waitid, sigtimedwait and sigwaitinfo, with the results and
# errors of ``select.poll``, ``select.select``, ``select.epoll.poll``,
# ``time.sleep``, ``os.waitpid``, ``os.waitid`` and
# ``signal.sigtimedwait`` / ``signal.sigwaitinfo``.
#
# Each is a cancellation point (see aiocancel.syscalls). A wait that already
# has a result when the request arrives returns it: a reaped child's status, a
# consumed signal, ready fds. Timeouts are deadlines: an interruption by an
# unrelated signal (retried, PEP 475) never lengthens them.

cdef extern from "<signal.h>" nogil:
    ctypedef struct siginfo_t:
        int si_signo
        int si_code
        int si_errno
        int si_pid
        unsigned int si_uid
        int si_status
        long si_band

cdef extern from "<sys/select.h>" nogil:
    ctypedef struct fd_set:
        pass
    int FD_SETSIZE
    void FD_ZERO(fd_set *)
    void FD_SET(int, fd_set *)
    bint FD_ISSET(int, fd_set *)

cdef extern from "<sys/epoll.h>" nogil:
    ctypedef union epoll_data_t:
        int fd
    struct epoll_event:
        unsigned int events
        epoll_data_t data

cdef enum:
    INT_MAX = 0x7fffffff


# ---- poll and sleep ---------------------------------------------------------

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


def sleep(seconds):
    """Sleep like ``time.sleep``; a cancellation point. The deadline is
    absolute (CLOCK_MONOTONIC), so interruptions never lengthen the sleep."""
    cdef double secs
    cdef double end
    cdef timespec ts
    cdef long r
    if ((isinstance(seconds, float) or isinstance(seconds, int))
            and 0 <= seconds <= TIME_LIMIT):
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


# ---- select, epoll, children and signals ------------------------------------

cdef double _timeout_seconds(object timeout, object probe) except? -1.5:
    """A timeout in seconds, converted as the stdlib converts one. Floats and
    ints in range take the fast path; anything else (NaN, overflow, other
    types) goes to `aiocancel._stdlib_errors.seconds`, which accepts what
    the running interpreter accepts and raises its exception otherwise —
    that of `probe` (a stdlib call taking the value) when given."""
    cdef double value
    if isinstance(timeout, float):
        value = timeout
        if value == value and -TIME_LIMIT <= value <= TIME_LIMIT:
            return value
    elif isinstance(timeout, int) and -TIME_LIMIT <= timeout <= TIME_LIMIT:
        return timeout
    value = _stdlib_errors.seconds(timeout, probe)
    if not (-TIME_LIMIT <= value <= TIME_LIMIT):
        raise OverflowError("timeout out of range")   # the stdlib took it: it cannot get here
    return value


# ---- select -----------------------------------------------------------------

cdef int _fill_set(object seq, fd_set *fds, list objs, list nums) except -2:
    """Fill `fds` from a select() argument; return the highest fd or -1.

    Lists and tuples are walked in place, as select.select does (a fileno()
    that shrinks the list shortens the walk)."""
    cdef int fd, top = -1
    cdef Py_ssize_t i = 0
    if not isinstance(seq, (list, tuple)):
        try:
            seq = list(seq)
        except TypeError:
            raise TypeError("arguments 1-3 must be sequences") from None
    FD_ZERO(fds)
    while i < len(seq):
        obj = seq[i]
        i += 1
        fd = _fileno(obj)
        if fd >= FD_SETSIZE:
            raise ValueError("filedescriptor out of range in select()")
        FD_SET(fd, fds)
        objs.append(obj)
        nums.append(fd)
        if fd > top:
            top = fd
    return top


def select(rlist, wlist, xlist, timeout=None):
    """Wait until some fds are ready, like ``select.select``: return the
    three sub-lists of the objects given (ints or objects with fileno())
    that are ready for reading, writing, or have an exceptional condition.
    `timeout` in seconds; None waits forever. A cancellation point."""
    cdef double limit = -1.0
    cdef double deadline = 0.0
    cdef fd_set wanted[3]
    cdef fd_set ready[3]
    cdef timespec ts
    cdef int top = -1, k
    cdef long r
    if timeout is not None:
        limit = _timeout_seconds(timeout, _stdlib_errors.select_probe)
        if limit < 0:
            raise ValueError("timeout must be non-negative")
        deadline = _now() + limit
    objs = ([], [], [])
    nums = ([], [], [])
    for k, seq in enumerate((rlist, wlist, xlist)):
        top = max(top, _fill_set(seq, &wanted[k], objs[k], nums[k]))
    while True:
        # pselect6 overwrites the sets: start each attempt from the wanted ones.
        memcpy(ready, wanted, sizeof(wanted))
        if limit >= 0:
            _to_timespec(deadline - _now(), &ts)
        r = _attempt_once(SYS_pselect6, top + 1, <long>&ready[0],
                          <long>&ready[1], <long>&ready[2],
                          <long>&ts if limit >= 0 else 0, 0)
        if r != -EINTR:
            break
    if r < 0:
        _raise_errno(r)
    result = ([], [], [])
    for k in range(3):
        for obj, fd in zip(objs[k], nums[k]):
            if FD_ISSET(fd, &ready[k]):
                result[k].append(obj)
    return result


# ---- epoll ------------------------------------------------------------------

cdef int _ceil_ms(double seconds) except? -2:
    cdef double ms = seconds * 1000.0
    cdef double whole = <double><long long>ms
    if whole < ms:
        whole += 1
    if whole > INT_MAX:
        raise OverflowError("timeout is too large")
    return <int>whole


def epoll_wait(epfd, timeout=None, int maxevents=-1):
    """Wait for events on an epoll instance (a ``select.epoll`` or its fd),
    like ``select.epoll.poll``: return a list of ``(fd, events)``. `timeout`
    in seconds, None or negative for no limit; `maxevents` -1 for the
    stdlib's default. A cancellation point."""
    cdef double limit = -1.0
    cdef double deadline = 0.0
    cdef int ms = -1
    cdef int f
    cdef long r
    cdef epoll_event *events
    if timeout is not None:
        limit = _timeout_seconds(timeout, _stdlib_errors.epoll_probe)
        if limit >= 0:
            ms = _ceil_ms(limit)
            deadline = _now() + limit
    if maxevents == -1:
        maxevents = FD_SETSIZE - 1
    elif maxevents < 1:
        raise ValueError(f"maxevents must be greater than 0, got {maxevents}")
    f = _fileno(epfd)
    cdef bytearray storage = bytearray(maxevents * sizeof(epoll_event))
    events = <epoll_event *><char *>storage
    while True:
        r = _attempt_once(SYS_epoll_pwait, f, <long>events, maxevents, ms, 0,
                          KERNEL_SIGSET_SIZE)
        if r != -EINTR:
            break
        if limit >= 0:
            if _now() >= deadline:
                r = 0
                break
            ms = _ceil_ms(deadline - _now())
    if r < 0:
        _raise_errno(r)
    return [(events[k].data.fd, events[k].events) for k in range(r)]


# ---- children -----------------------------------------------------------------

def waitid(int idtype, long id, int options):
    """Wait for a child's state change, like ``os.waitid``: return an
    ``os.waitid_result``, or None if WNOHANG found none. A cancellation
    point: a child the kernel reaped is always reported."""
    cdef siginfo_t si
    memset(&si, 0, sizeof(si))
    _call(SYS_waitid, idtype, id, <long>&si, options, 0, 0)
    if si.si_pid == 0:
        return None
    return _os.waitid_result((si.si_pid, si.si_uid, si.si_signo,
                              si.si_status, si.si_code))


# ---- signals ------------------------------------------------------------------

cdef object _siginfo(siginfo_t *si):
    return _signal.struct_siginfo((si.si_signo, si.si_code, si.si_errno,
                                   si.si_pid, si.si_uid, si.si_status,
                                   si.si_band))


cdef object _sigwait(object sigset, double limit):
    cdef unsigned long mask = _sigmask(sigset)
    cdef double deadline = _now() + limit
    cdef siginfo_t si
    cdef timespec ts
    cdef long r
    memset(&si, 0, sizeof(si))
    while True:
        if limit >= 0:
            _to_timespec(deadline - _now(), &ts)
        r = _attempt_once(SYS_rt_sigtimedwait, <long>&mask, <long>&si,
                          <long>&ts if limit >= 0 else 0, KERNEL_SIGSET_SIZE,
                          0, 0)
        if r != -EINTR:
            break
        if limit >= 0 and _now() >= deadline:
            return None
    if r == -EAGAIN:
        return None
    if r < 0:
        _raise_errno(r)
    return _siginfo(&si)


def sigtimedwait(sigset, timeout):
    """Wait for one of the signals in `sigset` (which should be blocked),
    like ``signal.sigtimedwait``: return a ``signal.struct_siginfo``, or None
    when `timeout` (seconds) passes. A cancellation point: a signal the
    kernel handed over is always returned. aiocancel's own cancel signal is
    never waited for."""
    cdef double limit = _timeout_seconds(timeout, _stdlib_errors.sigtimedwait_probe)
    if limit < 0:
        raise ValueError("timeout must be non-negative")
    return _sigwait(sigset, limit)


def sigwaitinfo(sigset):
    """``signal.sigwaitinfo``: `sigtimedwait` without a timeout."""
    return _sigwait(sigset, -1.0)
