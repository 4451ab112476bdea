"""Run aiocancel as it would import on macOS or Windows (a subprocess script).

``python tests/platform_sim.py {macos,windows}``: the stdlib modules aiocancel
needs are imported first (as they behave here), then the module set of the
simulated platform is imposed before ``import aiocancel``: modules that do not
exist there cannot be imported, attributes that do not exist there are
deleted, ``sys.platform`` is the platform's, and aiocancel's compiled
extensions cannot be imported (no wheel exists there). Then the script
imports aiocancel, checks fallback mode and runs jobs through an
``Executor``, ``to_thread``, an ``aio`` awaitable and a cancelled job, and
prints ``OK <fallback reason>``.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.abc
import os
import select
import selectors
import signal
import socket
import sys
import time
from typing import Sequence

# What each platform's CPython lacks compared to Linux's (the parts aiocancel
# could touch). Windows: no POSIX-only modules at all. (os.sched_getaffinity
# stays: os.process_cpu_count, 3.13, looks it up among os's globals.)
MISSING_MODULES = {
    "macos": set(),
    "windows": {"fcntl", "termios", "tty", "pty", "resource", "grp", "pwd",
                "posix", "_posixsubprocess", "_posixshmem"},
}
MISSING_ATTRS = {
    "macos": {
        select: ["epoll", "EPOLLIN", "EPOLLOUT", "EPOLLET"],
        os: ["pipe2", "fdatasync", "preadv", "pwritev",
             "RWF_HIPRI", "memfd_create", "eventfd"],
        signal: ["sigtimedwait", "sigwaitinfo", "SIGRTMIN", "SIGRTMAX"],
        socket: ["SOCK_CLOEXEC", "SOCK_NONBLOCK"],
    },
    "windows": {
        select: ["epoll", "poll", "POLLIN", "POLLOUT", "POLLERR", "POLLHUP",
                 "POLLNVAL", "POLLPRI", "kqueue", "devpoll"],
        os: ["register_at_fork", "fork", "pipe2", "fdatasync", "readv",
             "writev", "pread", "pwrite", "preadv", "pwritev", "waitid",
             "WNOHANG", "P_PID", "P_ALL", "WEXITED",
             "getuid", "kill", "killpg", "memfd_create", "eventfd",
             "get_blocking", "set_blocking"],
        signal: ["pthread_sigmask", "pthread_kill", "sigtimedwait",
                 "sigwaitinfo", "sigpending", "SIGRTMIN", "SIGRTMAX",
                 "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGKILL", "SIGCHLD",
                 "SIG_BLOCK", "SIG_SETMASK", "SIG_UNBLOCK", "siginterrupt",
                 "setitimer", "alarm"],
        socket: ["SOCK_CLOEXEC", "SOCK_NONBLOCK", "CMSG_LEN",
                 "CMSG_SPACE", "sethostname", "if_nameindex"],
    },
}
PLATFORM = {"macos": "darwin", "windows": "win32"}


class _Blocker(importlib.abc.MetaPathFinder):
    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: object = None) -> None:
        compiled = fullname.startswith("aiocancel._") and fullname[10:] in {
            "_cancel", "_syscalls", "_testhelper"}
        if fullname in self.names or compiled:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


def impose(kind: str) -> None:
    """Make this interpreter look like `kind`'s to code imported from now on."""
    for name in MISSING_MODULES[kind]:
        sys.modules.pop(name, None)
    sys.meta_path.insert(0, _Blocker(MISSING_MODULES[kind]))
    for module, attrs in MISSING_ATTRS[kind].items():
        for attr in attrs:
            if hasattr(module, attr):
                delattr(module, attr)
    sys.platform = PLATFORM[kind]
    # asyncio's loop there uses kqueue (macOS) or select()/IOCP (Windows):
    # here, select(), which this interpreter still has.
    selectors.DefaultSelector = selectors.SelectSelector  # type: ignore[misc]


def run_jobs() -> str:
    import aiocancel
    from aiocancel import aio

    assert aiocancel.SUPPORTED is False, aiocancel.SUPPORTED
    reason = aiocancel.FALLBACK_REASON
    assert reason and "\n" not in reason, reason

    with aiocancel.Executor(max_workers=2) as executor:
        assert executor.submit(pow, 2, 10).result(timeout=30) == 1024

    async def main() -> None:
        assert await aiocancel.to_thread(sum, [1, 2, 3]) == 6
        assert await aio.sleep_blocking(0) is None
        # A job that keeps reaching cancellation points ends once cancelled.
        steps = []

        def polling() -> None:
            while True:
                steps.append(1)
                aiocancel.testcancel()
                time.sleep(0.001)

        task = asyncio.ensure_future(aiocancel.to_thread(polling))
        while not steps:
            await asyncio.sleep(0.001)
        task.cancel()
        try:
            await asyncio.wait_for(task, 30)
        except asyncio.CancelledError:
            pass
        else:
            raise AssertionError("the cancelled job returned")

    # The simulated sys.platform would make asyncio.run build the platform's
    # own loop (3.14 picks the Windows proactor, which needs _overlapped):
    # ask for the selector loop the test means to run on.
    with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
        runner.run(main())
    return reason


if __name__ == "__main__":
    impose(sys.argv[1])
    print("OK", run_jobs())
