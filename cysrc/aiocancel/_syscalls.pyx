# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cancellable syscalls (aiocancel.syscalls) and patch mode's stand-ins.

Each function releases the GIL around the syscall and, in a registered
thread whose state is MASKED or ENABLE, is a cancellation point: a pending
request makes it fail without entering the kernel, and a request that arrives
while it blocks makes it fail with `Cancelled` (MASKED) or `ThreadCancelled`
(ENABLE). Either way the kernel produced nothing: a result the kernel did
produce is always returned. Elsewhere they are plain syscalls, retried on
EINTR as PEP 475 does, with results matching the stdlib functions.

One extension, one source file per concept (uvloop's layout): this file holds
the imports, and the concepts are textually included from syscalls/*.pxi in
dependency order. The per-thread state they act on lives in aiocancel._cancel
(the only module that links the C core), reached through _cancel.pxd.
"""
import _thread
import operator as _operator
import os as _os
import signal as _signal
import socket as _socket
import sys as _sys

from aiocancel import _stdlib_errors
from aiocancel._errors import Cancelled

from cpython.buffer cimport (PyObject_GetBuffer, PyBuffer_Release,
                             PyBUF_SIMPLE, PyBUF_WRITABLE)
from cpython.exc cimport (PyErr_CheckSignals, PyErr_SetFromErrno,
                          PyErr_SetFromErrnoWithFilenameObject)
from cpython.mem cimport PyMem_Calloc, PyMem_Malloc, PyMem_Free
from cpython.object cimport PyObject
from cpython.sequence cimport PySequence_Check
from libc.errno cimport errno, EAGAIN, EINPROGRESS, EINTR, EINVAL, ETIMEDOUT
from libc.string cimport memcpy, memset, strlen
from posix.unistd cimport close

from aiocancel._cancel cimport (syscall_cp, raise_cancelled, keep_pending,
                                acted_so_far, the_signal, cp_mode)

include "syscalls/base.pxi"       # _attempt, errno, arguments, bytes results
include "syscalls/sockbase.pxi"   # socket timeouts and addresses
include "syscalls/files.pxi"      # read/write, vectored I/O, open, locks, sync
include "syscalls/sockets.pxi"    # stream, datagram and message sockets
include "syscalls/waits.pxi"      # poll, select, epoll, sleep, child, signal
include "syscalls/futex.pxi"      # futex_wait/futex_wake and Waiter
include "syscalls/ipc.pxi"        # System V message queues
include "syscalls/standin.pxi"    # patch mode's compiled stand-ins
