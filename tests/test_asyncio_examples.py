"""Each asyncio example runs (as a user would run it) and does what its
docstring says, on asyncio and on uvloop."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from asyncio_fixtures import (LOOPS, child_env, finish_child, uvloop,
                              wait_child_blocked)
from conftest import NR, REPO_ROOT, requires_core

EXAMPLES = os.path.join(REPO_ROOT, "examples")


@pytest.fixture(params=LOOPS)
def loop_flag(request) -> list[str]:
    if request.param == "uvloop" and uvloop is None:
        pytest.skip("uvloop is not installed")
    return ["--uvloop"] if request.param == "uvloop" else []


def start(name: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, os.path.join(EXAMPLES, name), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=child_env(), **kwargs)


@requires_core
def test_fifo_timeout(tmp_path, loop_flag):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    proc = start("asyncio_fifo_timeout.py", "--fifo", str(fifo),
                 "--timeout", "0.5", *loop_flag)
    try:
        assert proc.stdout.readline() == f"reading {fifo}\n"
        # The reader holds the FIFO open for writing too, so this open does
        # not block; write, then see the data echoed before the timeout.
        wait_child_blocked(proc, None, NR["read"])
        fd = os.open(fifo, os.O_WRONLY)
        os.write(fd, b"hello")
        os.close(fd)
        assert proc.stdout.readline() == "got b'hello'\n"
        status, out, err = finish_child(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (status, out, err) == (0, "nothing for 0.5s: done\n", "")


def test_input_answered(loop_flag):
    proc = start("asyncio_input.py", "--timeout", "30", *loop_flag,
                 stdin=subprocess.PIPE)
    out, err = proc.communicate("Ada\nrest\n", timeout=20)
    assert (proc.returncode, out, err) == (0, "Your name? Hello, Ada!\n", "")


@requires_core
def test_input_timeout(loop_flag):
    proc = start("asyncio_input.py", "--timeout", "0.3", *loop_flag,
                 stdin=subprocess.PIPE)
    try:
        status, out, err = finish_child(proc, keep_stdin=True)  # silent
    finally:
        proc.stdin.close()
    assert (status, out, err) == (1, "Your name? \nno answer within 0.3s\n", "")


@requires_core
def test_input_ctrl_c(loop_flag):
    proc = start("asyncio_input.py", *loop_flag, stdin=subprocess.PIPE)
    try:
        assert proc.stdout.read(len("Your name? ")) == "Your name? "
        wait_child_blocked(proc, None, NR["read"], arg0=0)
        proc.send_signal(signal.SIGINT)
        status, out, err = finish_child(proc, keep_stdin=True)
    finally:
        proc.stdin.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (status, out, err) == (130, "\ninterrupted\n", "")


@requires_core
def test_drop_in_executor(loop_flag):
    proc = start("asyncio_drop_in_executor.py", "--timeout", "0.2", *loop_flag)
    status, out, err = finish_child(proc)
    assert (status, out, err) == (
        0, "record b'first'\ntimed out\ntimed out\n", "")
