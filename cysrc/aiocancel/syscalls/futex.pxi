# ---- futex ------------------------------------------------------------------
# Cancellable futex waits: `futex_wait` / `futex_wake` on a 32-bit word in
# a writable buffer (aiocancel.syscalls), and `Waiter`, the lock that
# aiocancel.threading builds cancellable Condition / Event / queue waits on.
#
# Waits use FUTEX_WAIT_BITSET with an absolute CLOCK_MONOTONIC deadline, so a
# restart after an unrelated signal never lengthens them.

cdef extern from "<unistd.h>" nogil:    # syscall(2); the numbers: base.pxi
    long syscall(long, ...)

cdef extern from "<linux/futex.h>" nogil:
    int FUTEX_WAIT_BITSET, FUTEX_WAKE, FUTEX_PRIVATE_FLAG
    int FUTEX_BITSET_MATCH_ANY

cdef extern from *:
    """
    static inline int aioc_xchg(int *p, int v)
    { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
    static inline int aioc_cas(int *p, int expected, int desired)
    { return __atomic_compare_exchange_n(p, &expected, desired, 0,
                                         __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); }
    static inline int aioc_load(int *p)
    { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
    """
    int aioc_xchg(int *p, int v) nogil
    bint aioc_cas(int *p, int expected, int desired) nogil
    int aioc_load(int *p) nogil

cdef double TIMEOUT_MAX = _thread.TIMEOUT_MAX


cdef int _wait_op(bint private) noexcept nogil:
    return FUTEX_WAIT_BITSET | (FUTEX_PRIVATE_FLAG if private else 0)


cdef long _wake(int *word, int n, bint private) noexcept nogil:
    # FUTEX_WAKE never blocks: a plain syscall, not a cancellation point.
    return syscall(SYS_futex, word, FUTEX_WAKE | (FUTEX_PRIVATE_FLAG if private else 0),
                   n, NULL, NULL, 0)


cdef int *_word(Py_buffer *view, Py_ssize_t offset) except NULL:
    if offset < 0 or offset + 4 > view.len:
        raise ValueError(f"offset {offset} leaves no 4-byte futex word in a "
                         f"buffer of {view.len} bytes")
    if (<size_t>view.buf + offset) % 4:
        raise ValueError("the futex word must be 4-byte aligned")
    return <int *>(<char *>view.buf + offset)


def futex_wait(buffer, long long expected, timeout=None, *,
               Py_ssize_t offset=0, bint private=True):
    """Sleep while the 32-bit word at `offset` of writable `buffer` (a
    bytearray, an mmap shared with other processes when private=False...)
    equals `expected` (FUTEX_WAIT). Return False if `timeout` seconds (None:
    no limit) passed, True otherwise: woken, the word differed, or a spurious
    wake-up; re-check the word. A cancellation point."""
    cdef Py_buffer view
    cdef double limit = -1.0 if timeout is None else float(timeout)
    cdef timespec ts
    cdef long r
    cdef int *word
    if limit != limit:
        raise ValueError("Invalid value NaN (not a number)")
    _get_buffer(buffer, &view, True)
    try:
        word = _word(&view, offset)
        if limit >= 0:
            _to_timespec(_now() + limit, &ts)
        r = _attempt(SYS_futex, <long>word, _wait_op(private),
                     <int>(expected & 0xFFFFFFFF),
                     <long>&ts if limit >= 0 else 0, 0, FUTEX_BITSET_MATCH_ANY)
    finally:
        PyBuffer_Release(&view)
    if r == -ETIMEDOUT:
        return False
    if r < 0 and r != -EAGAIN:
        _raise_errno(r)
    return True


def futex_wake(buffer, int n=1, *, Py_ssize_t offset=0, bint private=True):
    """Wake up to `n` threads waiting on the word at `offset` of `buffer`
    (FUTEX_WAKE); return how many were woken. Never blocks."""
    cdef Py_buffer view
    cdef long r
    _get_buffer(buffer, &view, True)
    try:
        r = _wake(_word(&view, offset), n, private)
    finally:
        PyBuffer_Release(&view)
    if r < 0:
        PyErr_SetFromErrno(OSError)
    return r


cdef class Waiter:
    """A lock (``acquire``/``release``/``locked``, a context manager) whose
    blocking ``acquire`` is a cancellation point; any thread may release it.
    threading.Condition uses one such lock per waiting thread ("waiter"), so
    this is what makes Condition, Event and queue waits cancellable.

    A request that acts while ``acquire`` sleeps raises `Cancelled` (MASKED)
    or `ThreadCancelled` (ENABLE) unless the lock was released meanwhile: then
    ``acquire`` returns True and the request stays pending for the next
    cancellation point, so a release (a notify) is never lost.

    The word holds 0 (free), 1 (locked) or 2 (locked, maybe with sleepers):
    Drepper's "Futexes Are Tricky" mutex, so release skips the wake syscall
    when nobody sleeps.
    """
    cdef int word

    def acquire(self, blocking=True, timeout=-1):
        """As ``_thread.lock.acquire``: return True once acquired, False if
        non-blocking and taken, or when `timeout` (seconds, -1: none)
        passed."""
        cdef bint block = blocking
        cdef double secs
        if ((type(timeout) is float or type(timeout) is int)
                and (timeout == -1 or (block and 0 <= timeout <= TIMEOUT_MAX))):
            secs = timeout
        else:
            # Everything else is judged by the stdlib's own lock (checks,
            # their order and texts differ between CPython versions).
            secs = _stdlib_errors.lock_timeout(blocking, timeout)
        if aioc_cas(&self.word, 0, 1):
            return True
        if not block:
            return False
        return self._sleep(_now() + secs if secs >= 0 else -1.0)

    cdef bint _sleep(self, double deadline) except -1:
        cdef int *word = &self.word
        cdef int op = _wait_op(True)
        cdef int acted
        cdef int before = acted_so_far()
        cdef timespec ts
        cdef timespec *tsp = NULL
        cdef long r
        if deadline >= 0:
            _to_timespec(deadline, &ts)
            tsp = &ts
        while aioc_xchg(word, 2) != 0:
            with nogil:
                r = syscall_cp(SYS_futex, <long>word, op, 2, <long>tsp, 0,
                               FUTEX_BITSET_MATCH_ANY, &acted)
            if acted:
                if aioc_xchg(word, 2) == 0:
                    # Released while the request acted: keep the lock (the
                    # notify it stands for), leave the request pending.
                    keep_pending(acted, before)
                    return True
                raise_cancelled(acted)
            if r == -ETIMEDOUT:
                return False
            if r == -EINTR:
                PyErr_CheckSignals()
        return True

    def release(self):
        """Release the lock (from any thread); RuntimeError if unlocked."""
        cdef int old = aioc_xchg(&self.word, 0)
        if old == 0:
            raise RuntimeError("release unlocked lock")
        if old == 2:
            _wake(&self.word, 1, True)

    def locked(self):
        """Whether the lock is held."""
        return aioc_load(&self.word) != 0

    def __enter__(self):
        self.acquire()
        return True

    def __exit__(self, *exc_info):
        self.release()

    def __repr__(self):
        return (f"<{'locked' if self.locked() else 'unlocked'} "
                f"aiocancel.threading.Waiter object at {id(self):#x}>")
