# ---- System V message queues ------------------------------------------------
# Cancellable System V message queue calls (aiocancel.syscalls): msgsnd
# and msgrcv. The stdlib has no binding; they follow msgsnd(2)/msgrcv(2), with
# errors as OSError. Both are cancellation points: a message the kernel took
# (msgsnd) or handed over (msgrcv) is never lost to a cancellation.


def msgsnd(int msqid, long mtype, data, int flags=0):
    """Put `data` on queue `msqid` as a message of type `mtype` (> 0),
    waiting while the queue is full unless `flags` has IPC_NOWAIT. A
    cancellation point."""
    cdef Py_buffer view
    cdef char *msg
    _get_buffer(data, &view, False)
    try:
        msg = <char *>PyMem_Malloc(sizeof(long) + view.len)
        if msg is NULL:
            raise MemoryError()
        try:
            memcpy(msg, &mtype, sizeof(long))
            memcpy(msg + sizeof(long), view.buf, view.len)
            _call(SYS_msgsnd, msqid, <long>msg, view.len, flags, 0, 0)
        finally:
            PyMem_Free(msg)
    finally:
        PyBuffer_Release(&view)


def msgrcv(int msqid, Py_ssize_t maxsize, long mtype=0, int flags=0):
    """Take a message from queue `msqid`: the first one (`mtype` 0), the
    first of type `mtype` (> 0), or of the lowest type <= -`mtype` (< 0),
    waiting until there is one unless `flags` has IPC_NOWAIT. Return
    ``(type, data)``; a message longer than `maxsize` is an error (E2BIG)
    unless `flags` has MSG_NOERROR (then truncated). A cancellation point."""
    cdef char *msg
    cdef long got_type
    cdef long r
    if maxsize < 0:
        raise ValueError("negative maxsize in msgrcv")
    msg = <char *>PyMem_Malloc(sizeof(long) + maxsize)
    if msg is NULL:
        raise MemoryError()
    try:
        r = _call(SYS_msgrcv, msqid, <long>msg, maxsize, mtype, flags, 0)
        memcpy(&got_type, msg, sizeof(long))
        return (got_type, msg[sizeof(long):sizeof(long) + r])
    finally:
        PyMem_Free(msg)
