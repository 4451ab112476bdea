"""Reading a line from stdin without leaving a blocked thread behind: the
low-level reader behind `aiocancel.ainput` (``_ainput``) and the ``input()``
that `aiocancel.patch` installs for workers.

Both read stdin's file descriptor directly with cancellable reads, one line
at a time and never past its newline: one read(2) per line on a terminal in
canonical mode (the kernel hands out a line at a time), one byte per read
elsewhere (pipes, files), so that whatever follows the line stays in the fd
for the next reader, whoever it is. Bytes of a line whose read was cancelled
are kept and start the next line read here, so nothing typed is lost.

What they do not see: data that ``sys.stdin`` itself already buffered (a
``sys.stdin.readline()`` on a pipe reads ahead). Do not interleave them with
``sys.stdin`` reads on a pipe; on a terminal that read-ahead does not occur.
No line editing (GNU readline) is offered.
"""
from __future__ import annotations

import locale
import os
import sys

from . import syscalls as _sc
from ._core import futex as _futex

try:
    import termios
except ImportError:             # Windows: no terminal modes to ask about
    termios = None  # type: ignore[assignment]

__all__ = ["worker_input"]

# A cancellable lock: a second reader waiting for the first can be cancelled.
_reader = _futex.Waiter()
_partial: dict[int, bytearray] = {}


def _line_at_a_time(fd: int) -> bool:
    """Whether one read(2) on fd returns at most one line (a terminal in
    canonical mode)."""
    if termios is None:
        return False
    try:
        return bool(termios.tcgetattr(fd)[3] & termios.ICANON)
    except termios.error:
        return False


def _read_line(fd: int) -> bytes:
    """One line from fd, newline included (b"" at end of file); a
    cancellation point in every read."""
    with _reader:
        line = _partial.pop(fd, bytearray())
        size = 4096 if _line_at_a_time(fd) else 1
        try:
            while not line.endswith(b"\n"):
                chunk = _sc.read(fd, size)
                if not chunk:
                    break
                line += chunk
        except BaseException:
            if line:
                _partial[fd] = line
            raise
        return bytes(line)


def _stdin_fd() -> int:
    if sys.stdin is None:
        raise RuntimeError("input(): lost sys.stdin")
    return sys.stdin.fileno()


def _decode(line: bytes) -> str:
    if not line:
        raise EOFError("EOF when reading a line")
    stdin = sys.stdin
    encoding = getattr(stdin, "encoding", None) or locale.getpreferredencoding(False)
    text = line.decode(encoding, getattr(stdin, "errors", None) or "strict")
    if text.endswith("\n"):
        text = text[:-1]
        if text.endswith("\r"):
            text = text[:-1]
    return text


def _prompt(prompt: object) -> None:
    stdout = sys.stdout
    if stdout is None:
        raise RuntimeError("input(): lost sys.stdout")
    if prompt != "":
        stdout.write(str(prompt))
    stdout.flush()


def worker_input(prompt: object = "") -> str:
    """``input()`` for a worker (installed by `aiocancel.patch`): write the
    prompt, then read a line of stdin with cancellable reads (see the module
    docstring). Raises EOFError at end of file; a cancellation raises
    `Cancelled` and keeps the part of the line already read for the next
    read."""
    _prompt(prompt)
    return _decode(_read_line(_stdin_fd()))
