# cython: language_level=3, boundscheck=False, wraparound=False
"""Per-thread cancellation state, the cancel signal and cancel requests.

The mechanism is musl's (see cancel_core.c); this module is its Python face.
A thread becomes cancellable once it registers (first `setcancelstate` or
`masked()`, or by being an aiocancel worker); `cancel_thread` then sets its
pending flag and signals it. Whether and where the request acts depends on the
thread's state:

* ``CANCEL_MASKED``: the first cancellation point raises `Cancelled` (an
  ``OSError`` with ``errno.ECANCELED``) and the state becomes DISABLE.
* ``CANCEL_ENABLE``: the first cancellation point raises `ThreadCancelled`
  (a ``BaseException``: ``finally`` blocks are the cleanup handlers) and the
  state becomes DISABLE.
* ``CANCEL_DISABLE``: the request stays pending; calls are plain syscalls.

The signal handler is installed on first use — the first registration
(`setcancelstate`, `masked`, a worker), the first request, or
`cancel_signal()` — never by ``import aiocancel``.
"""
import logging as _logging
import os
import signal as _signal
import warnings as _warnings

from cpython.object cimport PyObject
from libc.stdint cimport uint64_t

from aiocancel._errors import Cancelled, ThreadCancelled

CANCEL_ENABLE = AIOC_ENABLE
CANCEL_DISABLE = AIOC_DISABLE
CANCEL_MASKED = AIOC_MASKED


cdef long syscall_cp(long nr, long a, long b, long c, long d, long e, long f,
                     int *acted) noexcept nogil:
    return aioc_syscall_cp(nr, a, b, c, d, e, f, acted)


cdef int raise_cancelled(int acted) except -1:
    if acted == AIOC_ACTED_ENABLE:
        raise ThreadCancelled()
    raise Cancelled()


cdef int the_signal() noexcept nogil:
    """The cancel signal, for modules that do not link the C core."""
    return aioc_signal()


cdef int acted_so_far() noexcept nogil:
    """The calling thread's acted field (see keep_pending)."""
    cdef aioc_slot *s = aioc_self()
    return 0 if s is NULL else s.acted


cdef void keep_pending(int acted, int acted_before) noexcept nogil:
    """Undo a cancellation point that acted (`acted`: how) but then found it
    had consumed a result after all, as pthread_cond_wait does when it
    consumed a signal: the state returns to what it was and the request stays
    pending for the next cancellation point. `acted_before` is the slot's
    acted field as it was before the call."""
    cdef aioc_slot *s = aioc_self()
    if s is not NULL:
        s.state = AIOC_ENABLE if acted == AIOC_ACTED_ENABLE else AIOC_MASKED
        s.acted = acted_before


def _parse_signal(str spec):
    """AIOCANCEL_SIGNAL: a number, or SIGRTMIN+n / SIGRTMAX-n (SIG optional)."""
    text = spec.strip().upper()
    if text.startswith("SIG"):
        text = text[3:]
    for base_name, sign in (("RTMIN", 1), ("RTMAX", -1)):
        if text.startswith(base_name):
            base = int(getattr(_signal, "SIG" + base_name))
            rest = text[len(base_name):]
            if not rest:
                return base
            if rest[0] in "+-":
                return base + int(rest)
            break
    try:
        return int(text)
    except ValueError:
        raise ValueError(
            f"AIOCANCEL_SIGNAL={spec!r}: expected a signal number or "
            f"SIGRTMIN+n / SIGRTMAX-n") from None


def _wanted_signal():
    """AIOCANCEL_SIGNAL, parsed and range-checked (0: pick one)."""
    spec = os.environ.get("AIOCANCEL_SIGNAL", "").strip()
    lo, hi = int(_signal.SIGRTMIN), int(_signal.SIGRTMAX)
    wanted = _parse_signal(spec) if spec else 0
    # Checked here, not only in aioc_init: 0 or a negative number would mean
    # "pick one" there, and a huge one would not fit in a C int.
    if spec and not lo <= wanted <= hi:
        raise ValueError(
            f"AIOCANCEL_SIGNAL={spec!r}: {wanted} is not a real-time signal "
            f"({lo}..{hi})")
    return spec, wanted


def _init():
    """Install the handler (first use); errors say why it cannot be."""
    cdef int r
    if aioc_signal() > 0:
        return
    spec, wanted = _wanted_signal()
    lo, hi = int(_signal.SIGRTMIN), int(_signal.SIGRTMAX)
    r = aioc_init(wanted)
    if r > 0:
        return
    if r == -errno_EINVAL:
        raise ValueError(
            f"AIOCANCEL_SIGNAL={spec!r}: {wanted} is not a real-time signal "
            f"({lo}..{hi})")
    if r == -errno_EBUSY:
        raise RuntimeError(
            f"AIOCANCEL_SIGNAL={spec!r}: signal {wanted} already has a handler "
            f"in this process; choose a free one in {lo}..{hi} or unset it")
    if r == -errno_EAGAIN:
        raise RuntimeError(
            f"aiocancel: every real-time signal ({lo}..{hi}) already has a "
            f"handler; none is left for cancellation")
    raise OSError(-r, os.strerror(-r))

cdef extern from "errno.h":
    int errno_EINVAL "EINVAL"
    int errno_EBUSY "EBUSY"
    int errno_EAGAIN "EAGAIN"

# A malformed AIOCANCEL_SIGNAL is still an error at import (it changes no
# disposition to say so); the handler itself waits for the first use.
_wanted_signal()

_log = _logging.getLogger("aiocancel")


def cancel_signal():
    """The real-time signal number aiocancel uses to interrupt threads.

    Chosen, and its handler installed, on first use (this call, the first
    thread registration or the first request; never at import):
    ``AIOCANCEL_SIGNAL`` if set (a number, or SIGRTMIN+n / SIGRTMAX-n; an
    error if it is not a real-time signal or already has a handler), else the
    first real-time signal that has no handler (nor SIG_IGN) at that moment,
    so a library that took SIGRTMIN first keeps it.

    A thread that blocks this signal (``signal.pthread_sigmask``) is not
    interrupted while blocked in a syscall: the request stays pending and
    acts at its next cancellation point (the flag check at the start of
    every `aiocancel.syscalls` call, `testcancel`). aiocancel's workers
    unblock it again at the start of each job.

    If another handler replaces aiocancel's for this signal later
    (``signal.signal``, a C library's ``sigaction``), every request from
    then on emits a ``RuntimeWarning`` saying so and sends no signal (which
    could kill the process or reach the other handler): blocked calls are no
    longer interrupted; a request still acts at the next cancellation
    point's flag check. ``signal.getsignal()`` does not show aiocancel's
    handler (CPython only knows the handlers it installed)."""
    _init()
    return aioc_signal()


cdef int _after_request(int r) except -1:
    """Says what a request could not do: the handler was replaced (a
    warning, every time), or a signal could not be queued (logged once per
    process; the core retries until it is delivered or the job ends)."""
    if r == AIOC_REQ_REPLACED:
        _warnings.warn(
            f"aiocancel: the handler of signal {aioc_signal()} (the cancel "
            "signal) was replaced by another one; blocked calls can no "
            "longer be interrupted (the request acts at the next "
            "cancellation point only). Choose another signal for the other "
            "user, or AIOCANCEL_SIGNAL for aiocancel.", RuntimeWarning,
            stacklevel=3)
    if aioc_take_send_failure_note():
        _log.warning(
            "aiocancel: a cancel signal could not be queued (EAGAIN: the "
            "user's RLIMIT_SIGPENDING is used up); it is retried until it is "
            "delivered or the job ends. Logged once.")
    return 0


cdef class _Registration:
    """Kept in the thread's state dict, which CPython clears in that thread
    before Thread.join() returns; the pthread-key destructor comes later
    (after join() on 3.11), and a request in between would signal a thread
    that Python already considers gone."""
    cdef aioc_slot *slot
    cdef uint64_t serial

    def __dealloc__(self):
        aioc_unregister(self.slot, self.serial)


cdef extern from "Python.h":
    PyObject *PyThreadState_GetDict()     # borrowed; NULL without a thread state


cdef aioc_slot *_registered() except NULL:
    cdef aioc_slot *s = aioc_self()
    cdef _Registration owner
    cdef PyObject *tdict
    if s is not NULL:
        return s
    _init()
    s = aioc_register()
    if s is NULL:
        raise MemoryError("aiocancel: cannot register this thread")
    owner = _Registration.__new__(_Registration)
    owner.slot = s
    owner.serial = s.serial
    tdict = PyThreadState_GetDict()
    if tdict is not NULL:
        (<dict>tdict)["aiocancel.registration"] = owner
    return s


def setcancelstate(state):
    """Set the calling thread's cancel state; return the previous one.

    Registers the thread, so that `cancel_thread` can target it from then on.
    """
    # Not `int state`: Cython would truncate a float (1.5 -> DISABLE).
    if not isinstance(state, int):
        raise TypeError(f"cancel state must be an int, not {type(state).__name__}")
    if state != AIOC_ENABLE and state != AIOC_DISABLE and state != AIOC_MASKED:
        raise ValueError(f"invalid cancel state {state!r}; expected "
                         "CANCEL_ENABLE, CANCEL_DISABLE or CANCEL_MASKED")
    cdef aioc_slot *s = _registered()
    old = aioc_setstate(s, state)
    aioc_settle(s)
    return old


def getcancelstate():
    """The calling thread's cancel state (CANCEL_ENABLE if never registered)."""
    cdef aioc_slot *s = aioc_self()
    return AIOC_ENABLE if s is NULL else s.state


cdef class masked:
    """Context manager: run the block in CANCEL_MASKED state, then restore.

    Inside, a pending or arriving cancel request makes the first cancellation
    point raise `Cancelled`; the state is DISABLE from then until the block
    exits. Registers the thread.
    """
    cdef int _old

    def __enter__(self):
        self._old = aioc_setstate(_registered(), AIOC_MASKED)
        return self

    def __exit__(self, *exc_info):
        cdef aioc_slot *s = _registered()
        aioc_setstate(s, self._old)
        aioc_settle(s)       # never leave the block with the signal blocked
        return False


def cancel_thread(ident):
    """Request cancellation of thread `ident` (a `threading.get_ident()`).

    Returns True if the thread is registered and alive (the request is then
    pending until a cancellation point acts on it), False otherwise. A request
    racing with the thread's exit never signals a dead or reused thread.
    """
    cdef unsigned long value
    if not isinstance(ident, int):
        raise TypeError(f"thread ident must be an int, not {type(ident).__name__}")
    if ident < 0 or ident.bit_length() > 8 * sizeof(unsigned long):
        return False
    cdef int r
    value = ident
    _init()
    with nogil:    # as in _cancel_job: the woken thread may need the GIL
        r = aioc_cancel_ident(value)
    _after_request(r)
    return bool(r)


def testcancel():
    """A cancellation point without a syscall.

    Raises `Cancelled` (MASKED) or `ThreadCancelled` (ENABLE) if a request is
    pending, switching the state to DISABLE; otherwise returns None.
    """
    cdef int acted = aioc_testcancel()
    if acted:
        raise_cancelled(acted)


# ---- worker protocol (aiocancel.executor, aiocancel.anyio) -----------------

def _worker_slot():
    """Register the calling thread as a worker; return its slot index."""
    cdef aioc_slot *s = _registered()
    aioc_setstate(s, AIOC_DISABLE)
    return s.index


def _job_begin():
    """Start a job in MASKED state; return ``(slot, generation)``, the
    address `_cancel_job` takes."""
    cdef aioc_slot *s = _registered()
    return (s.index, aioc_job_begin(s, AIOC_MASKED))


def _job_end():
    """End the current job; return whether a cancellation point acted."""
    cdef aioc_slot *s = aioc_self()
    acted = s is not NULL and bool(aioc_job_end(s))
    _after_request(0)     # a send that failed in the re-sender: log it once
    return acted


def _cancel_job(int slot, uint64_t generation):
    """Request cancellation of job `generation` on worker `slot`."""
    cdef int r
    if aioc_signal() <= 0:
        return False          # no worker ever registered: no such job
    # Without the GIL: the signal wakes the worker, which needs the GIL to
    # raise Cancelled; holding it here would make the worker wait for the
    # rest of the canceller's Python code (measured: +10 us per cancel).
    with nogil:
        r = aioc_cancel_job(slot, generation)
    _after_request(r)
    return bool(r)


def _set_transparent(bint on):
    """Make the calling thread's (a worker's) foreign syscalls cancellation
    points too; see aiocancel.transparent."""
    aioc_set_transparent(_registered(), on)


def _transparent():
    """Whether the calling thread is in transparent mode."""
    cdef aioc_slot *s = aioc_self()
    return s is not NULL and bool(s.transparent)


cdef int cp_mode() noexcept nogil:
    """How aiocancel.patch's stand-ins treat the calling thread: 0 (call the
    original: unregistered, or DISABLE), 1 (call the cancellable version:
    registered, MASKED or ENABLE), 2 (raise Cancelled: DISABLE because a
    cancellation point acted on a request that is still pending, i.e. a
    cancelled job whose code went on)."""
    cdef aioc_slot *s = aioc_self()
    if s is NULL:
        return 0
    if s.state != AIOC_DISABLE:
        return 1
    return 2 if s.acted and s.cancel else 0


def _cp_mode():
    """`cp_mode` for Python code."""
    return cp_mode()


def _pending():
    """Whether the calling thread has a pending request (tests, diagnostics)."""
    cdef aioc_slot *s = aioc_self()
    return s is not NULL and s.cancel != 0


_STAT_NAMES = ("sent", "send_esrch", "send_failed", "handled", "redirected",
               "deferred", "ignored", "foreign", "replaced", "retried",
               "held", "nested")


def _stats():
    """Counters of the core since import (tests and `python -m aiocancel
    stress`): requests that sent the signal (``sent``), sends that failed
    because the thread no longer existed (``send_esrch``, always 0: requests
    hold the registry lock that a thread's exit takes) or otherwise
    (``send_failed``), and handler runs (``handled``) split into
    ``redirected`` (the thread was before or in its syscall: cancel path),
    ``deferred`` (re-queued: the syscall had returned, or a signal handler was
    running), ``ignored`` (no pending request, DISABLE, stale slot) and
    ``foreign`` (transparent mode failed a foreign syscall); ``replaced``
    (requests and re-sends not sent because another handler replaced
    aiocancel's), ``retried`` (sends that went out on a retry after EAGAIN),
    ``held`` (sends skipped because one instance was still pending: at most
    one per thread) and ``nested`` (transparent mode: a request deferred
    inside a foreign signal handler)."""
    cdef unsigned long out[16]
    assert AIOC_NSTATS <= 16
    aioc_stats(out)
    return {name: out[i] for i, name in enumerate(_STAT_NAMES)}
