"""Cancellable syscalls.

Each function is a cancellation point for a registered thread in MASKED or
ENABLE state (aiocancel workers run jobs in MASKED): a pending request makes
it raise `aiocancel.Cancelled` (MASKED) or `aiocancel.ThreadCancelled`
(ENABLE) without entering the kernel, and a request arriving while it blocks
interrupts it the same way, unless the kernel already produced a result,
which is then returned. Elsewhere each behaves as its stdlib counterpart
(``os.read``, ``socket.recv``, ``select.poll``...), with the GIL released and
EINTR retried. ``close`` is never a cancellation point: use ``os.close``.
"""
from ._backend import syscalls as _impl

read = _impl.read
readinto = _impl.readinto
write = _impl.write
pread = _impl.pread
pwrite = _impl.pwrite
recv = _impl.recv
recv_into = _impl.recv_into
send = _impl.send
sendall = _impl.sendall
accept = _impl.accept
connect = _impl.connect
poll = _impl.poll
sleep = _impl.sleep
waitpid = _impl.waitpid

__all__ = ["read", "readinto", "write", "pread", "pwrite", "recv",
           "recv_into", "send", "sendall", "accept", "connect", "poll",
           "sleep", "waitpid"]
