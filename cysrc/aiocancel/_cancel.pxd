# Per-thread cancel state: the C core's declarations and what _syscalls cimports.
from libc.stdint cimport uint64_t

cdef extern from "cancel_core.h" nogil:
    ctypedef struct aioc_slot:
        int cancel
        int index
        uint64_t serial
        int transparent
        int state
        int acted
    int AIOC_ENABLE
    int AIOC_DISABLE
    int AIOC_MASKED
    int AIOC_ACTED_NONE
    int AIOC_ACTED_MASKED
    int AIOC_ACTED_ENABLE
    int aioc_init(int sig)
    int aioc_signal()
    aioc_slot *aioc_self()
    aioc_slot *aioc_slot_at(int index)
    aioc_slot *aioc_register()
    void aioc_unregister(aioc_slot *s, uint64_t serial)
    int aioc_setstate(aioc_slot *s, int state)
    int aioc_cancel_ident(unsigned long ident)
    int aioc_cancel_job(int index, uint64_t generation)
    uint64_t aioc_job_begin(aioc_slot *s, int state)
    int aioc_job_end(aioc_slot *s)
    int aioc_testcancel()
    void aioc_settle(aioc_slot *s)
    int aioc_handler_intact()
    int aioc_take_send_failure_note()
    int AIOC_REQ_REPLACED
    void aioc_set_transparent(aioc_slot *s, int on)
    int AIOC_NSTATS
    void aioc_stats(unsigned long *out)
    long aioc_syscall_cp(long nr, long a, long b, long c, long d, long e,
                         long f, int *acted)

cdef long syscall_cp(long nr, long a, long b, long c, long d, long e, long f,
                     int *acted) noexcept nogil
cdef int raise_cancelled(int acted) except -1
cdef void keep_pending(int acted, int acted_before) noexcept nogil
cdef int acted_so_far() noexcept nogil
cdef int the_signal() noexcept nogil
cdef int cp_mode() noexcept nogil
