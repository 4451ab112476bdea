"""The races `python -m aiocancel stress` runs (see aiocancel/stress.py).

A scenario is one blocking call that a worker makes again and again, each
time as a fresh job, while a driver thread produces what the call waits for
(bytes, a connection, room in a pipe, an exiting child) and cancels the job,
in a random order with random spins. Each scenario accounts for everything
the kernel produced: after every iteration the driver checks that the kernel
state is exactly what the results returned so far imply, so a result lost to
cancellation (or invented, or duplicated) shows at the iteration it happens.

Hooks, with the thread that runs them:

* `prepare` (driver, before the job): the job's argument.
* `op` (worker, inside the job, MASKED): the cancellable call.
* `after` (worker, after the job ended, DISABLE): consume the result
  (close an accepted fd...) and return what the driver checks.
* `produce` (driver, racing with `op`): make `op` able to complete.
* `account` (driver, after the job): check the kernel state; returns the
  number of invariants it checked.
* `rescue` (driver): unblock a job that failed to end (a violation).
* `finish` (driver, at the end): drain and check the totals.
"""
from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
import termios
import time
from typing import Any

from . import syscalls
from . import transparent as _transparent

# A numbered byte stream (period 251, prime) so that loss, duplication and
# reordering of bytes all change what the reader sees.
_PERIOD = 251
_STREAM = bytes(i % _PERIOD for i in range(_PERIOD + 65536 + 8192))


def stream(pos: int, n: int) -> bytes:
    """Bytes pos..pos+n of the numbered stream."""
    start = pos % _PERIOD
    return _STREAM[start:start + n]


def pending(fd: int) -> int:
    """Bytes queued in a pipe or socket (FIONREAD)."""
    count: int = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    return count


class Violation(Exception):
    """An invariant failed; the message says which."""


def check(cond: bool, message: str) -> int:
    """One invariant: raise Violation unless `cond`; count 1 otherwise."""
    if not cond:
        raise Violation(message)
    return 1


class Scenario:
    """Base: no production, nothing to account (see the module docstring)."""

    name = ""
    #: Can a blocked `op` complete without `produce`? (Then a cancel-only
    #: plan is safe in fallback mode, where blocked calls are not
    #: interrupted.)
    completes_alone = False

    def setup(self) -> None:
        pass

    def prepare(self, rng: Any) -> Any:
        return None

    def op(self, arg: Any) -> Any:
        raise NotImplementedError

    def after(self, arg: Any, result: Any) -> Any:
        return result

    def produce(self, arg: Any, rng: Any) -> None:
        pass

    def account(self, arg: Any, cancelled: bool, value: Any,
                elapsed: float) -> int:
        return 0

    def rescue(self, arg: Any) -> None:
        self.produce(arg, None)

    def finish(self) -> int:
        return 0

    def close(self) -> None:
        pass

    def totals(self) -> dict[str, int]:
        """What the scenario produced, by unit (``{"bytes": 12702}``): summed
        across processes and printed by the harness."""
        return {}


class _Pipe(Scenario):
    """Base of the pipe scenarios: one pipe, the bytes written into it."""

    def setup(self) -> None:
        self.r, self.w = os.pipe()
        self.written = 0

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)

    def totals(self) -> dict[str, int]:
        return {"bytes": self.written}


class PipeRead(_Pipe):
    """`syscalls.read` on a pipe against a writer: every byte written is read
    exactly once, in order; a cancelled read consumed nothing."""

    name = "read"

    def setup(self) -> None:
        super().setup()
        self.read = 0

    def op(self, arg: Any) -> bytes:
        return syscalls.read(self.r, 65536)

    def produce(self, arg: Any, rng: Any) -> None:
        # Never block the driver: a core that cancelled every read would
        # fill the pipe (it then reports violations, not a hang).
        if rng is not None and self.written - self.read > 32768:
            return
        n = rng.randrange(1, 65) if rng is not None else 1
        os.write(self.w, stream(self.written, n))
        self.written += n

    def account(self, arg: Any, cancelled: bool, value: Any,
                elapsed: float) -> int:
        checks = 0
        if not cancelled:
            checks += check(len(value) > 0, "read returned EOF")
            checks += check(value == stream(self.read, len(value)),
                            f"bytes {self.read}..{self.read + len(value)} "
                            "of the stream are wrong")
            self.read += len(value)
        left = pending(self.r)
        checks += check(self.written == self.read + left,
                        f"{self.written} bytes written, {self.read} read, "
                        f"{left} still queued")
        return checks

    def finish(self) -> int:
        os.set_blocking(self.r, False)
        tail = b""
        try:
            while True:
                tail += os.read(self.r, 65536)
        except BlockingIOError:
            pass
        checks = check(tail == stream(self.read, len(tail)),
                       "the bytes left in the pipe are wrong")
        self.read += len(tail)
        return checks + check(self.read == self.written,
                              f"{self.written} written, {self.read} read")


class TransparentRead(PipeRead):
    """Plain ``os.read`` (not aiocancel's wrapper) in a transparent-mode
    worker: the same accounting as `PipeRead` for libc's own syscall."""

    name = "read-transparent"
    transparent = True

    def worker_init(self) -> None:
        _transparent.enable(True)

    def op(self, arg: Any) -> bytes:
        return os.read(self.r, 65536)


class Accept(Scenario):
    """`syscalls.accept` on a listening socket against connecting clients:
    every connection is accepted exactly once, in order (each client sends
    its number); a cancelled accept took none."""

    name = "accept"
    max_backlog = 256

    def setup(self) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind("")                  # autobind: abstract address
        self.listener.listen(1024)
        self.address = self.listener.getsockname()
        self.connected = self.accepted = 0

    def op(self, arg: Any) -> tuple[int, Any]:
        return syscalls.accept(self.listener)

    def after(self, arg: Any, result: Any) -> int:
        fd = result[0]
        try:
            data = os.read(fd, 8)       # the client sent it before closing
        finally:
            os.close(fd)
        return struct.unpack("q", data)[0] if len(data) == 8 else -1

    def produce(self, arg: Any, rng: Any) -> None:
        if self.connected - self.accepted >= self.max_backlog and rng is not None:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(self.address)
            client.sendall(struct.pack("q", self.connected))
        self.connected += 1

    def account(self, arg: Any, cancelled: bool, value: Any,
                elapsed: float) -> int:
        if cancelled:
            return 0
        checks = check(value == self.accepted,
                       f"accepted client {value}, expected {self.accepted}")
        self.accepted += 1
        return checks + check(self.accepted <= self.connected,
                              "accepted more connections than were made")

    def finish(self) -> int:
        self.listener.setblocking(False)
        checks = 0
        while True:
            try:
                fd, _ = self.listener._accept()  # type: ignore[attr-defined]  # the fd, no socket object
            except BlockingIOError:
                break
            checks += check(self.after(None, (fd, None)) == self.accepted,
                            "a queued connection is missing or out of order")
            self.accepted += 1
        return checks + check(self.accepted == self.connected,
                              f"{self.connected} connections, "
                              f"{self.accepted} accepted")

    def close(self) -> None:
        self.listener.close()

    def totals(self) -> dict[str, int]:
        return {"connections": self.connected}


class PipeWrite(_Pipe):
    """`syscalls.write` of up to PIPE_BUF bytes (atomic: all or nothing) into
    a one-page pipe that the driver drains: every byte a write reported is in
    the pipe or was drained, in order; a cancelled write wrote nothing."""

    name = "write"

    def setup(self) -> None:
        super().setup()
        try:
            fcntl.fcntl(self.w, fcntl.F_SETPIPE_SZ, 4096)
        except OSError:
            pass
        os.set_blocking(self.r, False)
        self.drained = 0

    def prepare(self, rng: Any) -> bytes:
        n = rng.randrange(1, 4097)
        return stream(self.written, n)

    def op(self, arg: bytes) -> int:
        return syscalls.write(self.w, arg)

    def produce(self, arg: Any, rng: Any) -> None:
        # Drain everything: room for any write of up to PIPE_BUF bytes.
        while True:
            try:
                data = os.read(self.r, 65536)
            except BlockingIOError:
                return
            if data != stream(self.drained, len(data)):
                raise Violation(f"drained bytes {self.drained}.. are wrong")
            self.drained += len(data)

    def account(self, arg: bytes, cancelled: bool, value: Any,
                elapsed: float) -> int:
        checks = 0
        if not cancelled:
            checks += check(value == len(arg),
                            f"write of {len(arg)} bytes returned {value}")
            self.written += value
        left = pending(self.r)
        return checks + check(
            self.written == self.drained + left,
            f"{self.written} bytes written, {self.drained} drained, "
            f"{left} in the pipe")

    def finish(self) -> int:
        self.produce(None, None)
        return check(self.drained == self.written,
                     f"{self.written} written, {self.drained} drained")


class Waitpid(Scenario):
    """`syscalls.waitpid` of a child that exits when the driver closes its
    stdin: every child is reaped exactly once, by the job or (after a
    cancelled wait) by the driver, with exit status 0."""

    name = "waitpid"

    def setup(self) -> None:
        self.devnull = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        self.spawned = self.reaped = 0
        self.cat = "/bin/cat" if os.path.exists("/bin/cat") else "/usr/bin/cat"

    def prepare(self, rng: Any) -> list[Any]:
        r, w = os.pipe()
        try:
            pid = os.posix_spawn(self.cat, ["cat"], {}, file_actions=[
                (os.POSIX_SPAWN_DUP2, r, 0),
                (os.POSIX_SPAWN_DUP2, self.devnull, 1)])
        finally:
            os.close(r)
        self.spawned += 1
        return [pid, w]           # w: the child's stdin; closing it ends it

    def op(self, arg: list[Any]) -> tuple[int, int]:
        return syscalls.waitpid(arg[0], 0)

    def produce(self, arg: list[Any], rng: Any) -> None:
        if arg[1] >= 0:
            os.close(arg[1])
            arg[1] = -1

    def account(self, arg: list[Any], cancelled: bool, value: Any,
                elapsed: float) -> int:
        pid = arg[0]
        checks = 0
        if cancelled:
            # The child was not reaped: it must still be ours to reap.
            self.produce(arg, None)
            try:
                value = os.waitpid(pid, 0)
            except ChildProcessError:
                raise Violation(f"child {pid}: a cancelled waitpid reaped it "
                                "and lost its status") from None
        else:
            self.produce(arg, None)
        checks += check(value[0] == pid, f"waitpid returned {value}, not {pid}")
        checks += check(os.WIFEXITED(value[1]) and os.WEXITSTATUS(value[1]) == 0,
                        f"child {pid} status {value[1]:#x}")
        self.reaped += 1
        return checks + check(self.reaped == self.spawned,
                              f"{self.spawned} children, {self.reaped} reaped")

    def close(self) -> None:
        os.close(self.devnull)

    def totals(self) -> dict[str, int]:
        return {"children": self.spawned}


class Sleep(Scenario):
    """`syscalls.sleep` of 0-200 us against cancels: a sleep that returned
    lasted at least what was asked (absolute deadline; 1 us of rounding)."""

    name = "sleep"
    completes_alone = True

    def setup(self) -> None:
        self.slept = 0

    def prepare(self, rng: Any) -> float:
        return 0.0 if rng.random() < 0.1 else rng.random() * 2e-4

    def op(self, arg: float) -> None:
        return syscalls.sleep(arg)

    def account(self, arg: float, cancelled: bool, value: Any,
                elapsed: float) -> int:
        if cancelled:
            return 0
        self.slept += 1
        return check(elapsed >= arg - 1e-6,
                     f"sleep({arg:.6f}) returned after {elapsed:.6f} s")

    def totals(self) -> dict[str, int]:
        return {"sleeps": self.slept}


class TransparentSleep(Sleep):
    """Plain ``time.sleep`` (libc's clock_nanosleep, an EINTR-style call) in
    a transparent-mode worker. After every sleep the worker takes the GIL
    back, a futex wait that glibc >= 2.41 and musl return through the same
    syscall instruction as the sleep: a cancel aimed at the sleep must never
    turn that futex's EINTR into ECANCELED (glibc aborts). A sleep that
    returned lasted at least what was asked."""

    name = "sleep-transparent"
    transparent = True

    def worker_init(self) -> None:
        _transparent.enable(True)

    def op(self, arg: float) -> None:
        return time.sleep(arg)


def all_scenarios(supported: bool) -> list[type[Scenario]]:
    """The scenario classes to run: transparent mode needs the compiled core
    (a plain os.read cannot be interrupted otherwise) and a machine where it
    is supported (not aarch64 yet: `aiocancel.transparent.UNSUPPORTED_REASON`)."""
    found: list[type[Scenario]] = [PipeRead, Accept, PipeWrite, Waitpid, Sleep]
    if supported and _transparent.UNSUPPORTED_REASON is None:
        found.insert(1, TransparentRead)
        found.append(TransparentSleep)
    return found


def is_cancellation(exc: BaseException | None, acted: bool) -> bool:
    """How a job ended cancelled: `Cancelled`, or (transparent mode) libc's
    ECANCELED surfacing as an OSError after a cancellation point acted."""
    if exc is None:
        return False
    from ._errors import Cancelled
    return isinstance(exc, Cancelled) or (
        acted and isinstance(exc, OSError) and exc.errno == errno.ECANCELED)


def monotonic() -> float:
    return time.monotonic()
