"""asyncio.run() / uvloop.run() exits when its task, blocked in a worker's
read on an empty pipe, is cancelled by Ctrl-C or a timeout. Without
aiocancel the worker stays blocked and the exit hangs (300 s on 3.12+, for
ever on 3.11)."""
from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from asyncio_fixtures import (LOOPS, SIGINT_STATUS, child_env, finish_child,
                              uvloop, wait_child_blocked)
from conftest import NR, requires_core

pytestmark = requires_core

CHILD = r'''
import asyncio, os, sys, threading
import aiocancel
from aiocancel import syscalls

loop_kind, how, trigger = sys.argv[1:4]
r, w = os.pipe()                      # nobody ever writes

def job():
    print("worker", threading.get_native_id(), flush=True)
    return syscalls.read(r, 1)

async def main():
    if how == "install":
        aiocancel.install()
        call = asyncio.to_thread      # the unchanged asyncio program
    else:
        call = aiocancel.to_thread
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(None) as cm:
            # The parent writes a line once the worker is blocked: expire.
            def expire():
                loop.remove_reader(0)
                cm.reschedule(loop.time())
            loop.add_reader(0, expire)
            await call(job)
    except TimeoutError:
        print("timed out", flush=True)

if loop_kind == "uvloop":
    import uvloop
    uvloop.run(main())
else:
    asyncio.run(main())
'''


@pytest.mark.parametrize("loop_kind", LOOPS)
@pytest.mark.parametrize("how", ["aiocancel.to_thread", "install"])
@pytest.mark.parametrize("trigger", ["sigint", "timeout"])
def test_run_exits_when_blocked_task_is_cancelled(loop_kind, how, trigger):
    if loop_kind == "uvloop" and uvloop is None:
        pytest.skip("uvloop is not installed")
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, loop_kind,
         "install" if how == "install" else "to_thread", trigger],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=child_env())
    try:
        line = proc.stdout.readline()
        assert line.startswith("worker "), (line, proc.stderr.read())
        wait_child_blocked(proc, int(line.split()[1]), NR["read"])
        if trigger == "sigint":
            proc.send_signal(signal.SIGINT)
        else:
            proc.stdin.write("expire\n")
            proc.stdin.flush()
        status, out, err = finish_child(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if trigger == "sigint":
        assert status == SIGINT_STATUS, err
        assert "KeyboardInterrupt" in err
    else:
        assert status == 0, err
        assert out == "timed out\n"
        assert err == ""
