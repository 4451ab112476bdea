"""Reading stdin without leaving a blocked thread behind: aiocancel.ainput,
and input() in a worker under aiocancel.patch().

Each runs in a child process whose stdin the test drives (a pipe, or a
pseudo-terminal in canonical mode). The child cancels a first read, then
reads again: the characters typed before and after the cancellation make up
the second line (nothing is lost), EOF raises EOFError, no thread is left
blocked reading stdin and the child exits on its own."""
from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import JOIN_TIMEOUT, NR, requires_core

# Generous: each line needs one round trip through a freshly started child.
LINE_TIMEOUT = 30.0

_CHILD = """
import asyncio, os, sys, threading, time
import aiocancel

MODE = sys.argv[1]

async def read(prompt):
    if MODE == "ainput":
        return await aiocancel.ainput(prompt)
    return await asyncio.to_thread(input, prompt)

def readers_of_stdin():
    # Threads sleeping in read(0, ...): what must not be left behind. With
    # install() + asyncio.to_thread, asyncio releases the task as soon as
    # it is cancelled, while the worker is still on its way out of read():
    # give it a (generous) while before calling it left behind.
    deadline = time.monotonic() + 10
    while True:
        found = []
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/syscall") as f:
                    fields = f.read().split()
            except (FileNotFoundError, ProcessLookupError):
                continue                # a thread that just exited
            if fields[:2] == [sys.argv[2], "0x0"]:
                found.append(tid)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.01)

async def main():
    if MODE == "input":
        aiocancel.install(patch=True)
    try:
        async with asyncio.timeout(0.3):
            await read("first? ")
    except TimeoutError:
        print("cancelled", readers_of_stdin(), flush=True)
    line = await read("second? ")
    print("got", repr(line), flush=True)
    try:
        await read("")
    except EOFError:
        print("eof", flush=True)

asyncio.run(main())
print("exited", readers_of_stdin(), flush=True)
"""


def _child(mode: str, stdin) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_CHILD), mode, str(NR["read"])],
        stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _expect(proc: subprocess.Popen, text: bytes) -> bytes:
    """The child's next output line, which must be `text`. Read with a
    deadline: a child stuck in a read that nothing will satisfy (a cancelled
    read that ate the line instead) fails the test instead of hanging it."""
    line = b""
    deadline = time.monotonic() + LINE_TIMEOUT
    fd = proc.stdout.fileno()
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            proc.kill()
            pytest.fail(f"no line {text!r} within {LINE_TIMEOUT} s; got {line!r}; "
                        f"stderr: {proc.stderr.read()!r}")
        chunk = os.read(fd, 1)
        if not chunk:
            break
        line += chunk
    assert line == text, (line, proc.stderr.read() if not line.endswith(b"\n") else b"")
    return line


@requires_core      # the fallback cannot interrupt the blocked read
@pytest.mark.skipif("read" not in NR, reason="no syscall table for this machine")
@pytest.mark.parametrize("mode", ["ainput", "input"])
@pytest.mark.parametrize("terminal", [False, True], ids=["pipe", "pty"])
def test_cancelled_read_loses_nothing_and_leaves_no_thread(mode, terminal):
    if terminal:
        master, slave = pty.openpty()
        proc = _child(mode, slave)
        os.close(slave)
        write = lambda data: os.write(master, data)   # noqa: E731
        eof = lambda: os.write(master, b"\x04")        # noqa: E731  (^D)
    else:
        proc = _child(mode, subprocess.PIPE)
        write = lambda data: (proc.stdin.write(data), proc.stdin.flush())  # noqa: E731
        eof = proc.stdin.close
    try:
        write(b"hel")                           # part of a line, then cancel
        _expect(proc, b"first? cancelled []\n")
        write(b"lo\n")
        _expect(proc, b"second? got 'hello'\n")
        eof()
        _expect(proc, b"eof\n")
        _expect(proc, b"exited []\n")
        assert proc.wait(JOIN_TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if terminal:
            os.close(master)
        for f in (proc.stdin, proc.stdout, proc.stderr):
            if f:
                f.close()


@pytest.mark.parametrize("mode", ["ainput", "input"])
def test_lines_and_eof(mode):
    code = textwrap.dedent("""
        import asyncio, sys, aiocancel
        async def main():
            aiocancel.install(patch=True)
            read = (aiocancel.ainput if sys.argv[1] == "ainput"
                    else lambda p: asyncio.to_thread(input, p))
            print(repr(await read("a> ")))
            print(repr(await read("b> ")))
            try:
                await read("c> ")
            except EOFError as exc:
                print("EOFError", exc)
        asyncio.run(main())
    """)
    out = subprocess.run([sys.executable, "-c", code, mode],
                         input="one\r\ntwo \u00e9\n".encode(),
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode() == ("a> 'one'\nb> 'two \u00e9'\n"
                                   "c> EOFError EOF when reading a line\n")


def test_input_outside_workers_is_the_builtin():
    code = ("import aiocancel, builtins; aiocancel.patch(); "
            "print(input('p> ')); print(builtins.input.__wrapped__ is not None)")
    out = subprocess.run([sys.executable, "-c", code], input=b"line\n",
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"p> line\nTrue\n"
