"""Cancellable syscalls.

Each function is a cancellation point for a registered thread in MASKED or
ENABLE state (aiocancel workers run jobs in MASKED): a pending request makes
it raise `aiocancel.Cancelled` (MASKED) or `aiocancel.ThreadCancelled`
(ENABLE) without entering the kernel, and a request arriving while it blocks
interrupts it the same way, unless the kernel already produced a result,
which is then returned. Elsewhere each behaves as its stdlib counterpart
(``os.read``, ``socket.recv``, ``select.poll``...), with the GIL released and
EINTR retried. ``close`` is never a cancellation point: use ``os.close``.

Files and pipes: read, readinto, write, pread, pwrite, readv, writev, preadv,
pwritev, open, openat, flock, lockf, fcntl, fsync, fdatasync.
Sockets: recv, recv_into, recvfrom, recvfrom_into, recvmsg, send, sendall,
sendto, sendmsg, accept (accept4 flags), connect.
Waiting: poll, ppoll, select, epoll_wait, sleep, waitpid, waitid,
sigtimedwait, sigwaitinfo, futex_wait (and futex_wake, which never blocks).
System V message queues: msgsnd, msgrcv.
"""
from ._core import files as _files
from ._core import futex as _futex
from ._core import ipc as _ipc
from ._core import sockets as _sockets
from ._core import syscalls as _impl
from ._core import waits as _waits

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
ppoll = _impl.ppoll
sleep = _impl.sleep
waitpid = _impl.waitpid

readv = _files.readv
writev = _files.writev
preadv = _files.preadv
pwritev = _files.pwritev
open = _files.open
openat = _files.openat
flock = _files.flock
lockf = _files.lockf
fcntl = _files.fcntl
fsync = _files.fsync
fdatasync = _files.fdatasync

recvfrom = _sockets.recvfrom
recvfrom_into = _sockets.recvfrom_into
recvmsg = _sockets.recvmsg
sendto = _sockets.sendto
sendmsg = _sockets.sendmsg

select = _waits.select
epoll_wait = _waits.epoll_wait
waitid = _waits.waitid
sigtimedwait = _waits.sigtimedwait
sigwaitinfo = _waits.sigwaitinfo

futex_wait = _futex.futex_wait
futex_wake = _futex.futex_wake

msgsnd = _ipc.msgsnd
msgrcv = _ipc.msgrcv

# Written out for type checkers and stubtest (as are the names above); they
# are the syscall table's (aiocancel/_table.py): tests/test_syscall_table.py
# checks both.
__all__ = ["read", "readinto", "write", "pread", "pwrite", "recv",
           "recv_into", "send", "sendall", "accept", "connect", "poll",
           "ppoll", "sleep", "waitpid",
           "readv", "writev", "preadv", "pwritev", "open", "openat", "flock",
           "lockf", "fcntl", "fsync", "fdatasync",
           "recvfrom", "recvfrom_into", "recvmsg", "sendto", "sendmsg",
           "select", "epoll_wait", "waitid", "sigtimedwait", "sigwaitinfo",
           "futex_wait", "futex_wake", "msgsnd", "msgrcv"]
