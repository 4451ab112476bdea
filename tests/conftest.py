"""Shared helpers for aiocancel's test-suite (kept framework-neutral).

Import policy: the tests must exercise the BUILT package. If the source tree
at the repository root has no compiled ``_cancel`` extension for this
interpreter, the repository root (and ``''``) are removed from ``sys.path``
before aiocancel is imported, so that an installed copy is used instead of
the unbuilt sources. Unless ``AIOCANCEL_FALLBACK=1``, the compiled core must
then be active (``aiocancel.SUPPORTED``).
"""
from __future__ import annotations

import importlib.machinery
import os
import sys
import threading
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FALLBACK = os.environ.get("AIOCANCEL_FALLBACK", "") not in ("", "0")


def _source_tree_is_built() -> bool:
    pkg = os.path.join(REPO_ROOT, "aiocancel")
    return any(os.path.exists(os.path.join(pkg, "_cancel" + suffix))
               for suffix in importlib.machinery.EXTENSION_SUFFIXES)


def _strip_source_tree() -> None:
    def is_root(entry: str) -> bool:
        if entry in ("", "."):
            return True
        try:
            return os.path.samefile(entry, REPO_ROOT)
        except OSError:
            return False

    sys.path[:] = [p for p in sys.path if not is_root(p)]
    for name in [m for m in sys.modules if m == "aiocancel" or m.startswith("aiocancel.")]:
        del sys.modules[name]


if not _source_tree_is_built():
    _strip_source_tree()

import aiocancel  # noqa: E402
from aiocancel._numbering import numbering  # noqa: E402

if not FALLBACK:
    assert aiocancel.SUPPORTED, (
        f"aiocancel at {aiocancel.__file__} runs in fallback mode; build it "
        "(pip install -e .) or set AIOCANCEL_FALLBACK=1")

import pytest  # noqa: E402

# ---------------------------------------------------------------------------
# syscall numbers, for checking WHERE a thread is blocked

_NR = {
    "x86_64": dict(read=0, write=1, pread64=17, connect=42, sendto=44,
                   recvfrom=45, wait4=61, clock_nanosleep=230, ppoll=271,
                   accept4=288),
    "aarch64": dict(read=63, write=64, pread64=67, connect=203, sendto=206,
                    recvfrom=207, wait4=260, clock_nanosleep=115, ppoll=73,
                    accept4=242),
}


# NR_MACHINE: whose numbers /proc shows (the host's under qemu-user, see
# aiocancel._numbering); EMULATED: True there.
NR_MACHINE, EMULATED = numbering()
NR = dict(_NR.get(NR_MACHINE, {}))

BLOCK_TIMEOUT = 10.0     # generous upper bound for "the thread got there"
JOIN_TIMEOUT = 10.0


def _task_state(native_id: int) -> tuple[str, str]:
    base = f"/proc/self/task/{native_id}"
    with open(f"{base}/stat") as f:
        stat = f.read()
    state = stat[stat.rindex(")") + 2:].split()[0]
    with open(f"{base}/syscall") as f:
        syscall = f.read().strip()
    return state, syscall


def wait_blocked(native_id: int, syscall: str | None = None, arg0: int | None = None,
                 timeout: float = BLOCK_TIMEOUT, alive=None) -> str:
    """Poll until thread `native_id` sleeps ('S') inside a syscall.

    `syscall` (a name from NR) and `arg0` (its first argument, e.g. the fd)
    pin down WHICH syscall; without them any sleeping syscall would do, so
    tests always pass at least `syscall`. `alive` (a callable) lets the
    caller stop early with a clear failure if the thread already finished.
    Fails the test if the condition is not met within `timeout` seconds.
    Returns the /proc syscall line seen."""
    want_nr = NR.get(syscall) if syscall else None
    if syscall and want_nr is None:
        pytest.skip(f"no syscall table for {NR_MACHINE}")
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            pytest.fail(f"thread {native_id} finished instead of blocking in "
                        f"{syscall} (last seen: {last})")
        try:
            state, line = _task_state(native_id)
        except FileNotFoundError:
            pytest.fail(f"thread {native_id} is gone (last seen: {last})")
        last = (state, line)
        fields = line.split()
        if state == "S" and fields and fields[0] not in ("running", "-1"):
            ok = want_nr is None or int(fields[0]) == want_nr
            if ok and arg0 is not None:
                ok = int(fields[1], 16) == (arg0 & 0xFFFFFFFFFFFFFFFF)
            if ok:
                # Confirm: still there on a second look.
                state2, line2 = _task_state(native_id)
                if state2 == "S" and line2.split()[:2] == fields[:2]:
                    return line
        time.sleep(0.001)
    pytest.fail(f"thread {native_id} did not block in {syscall or 'a syscall'} "
                f"within {timeout}s (last seen: {last})")


def blocked_in(native_id: int, syscall: str) -> bool:
    """One look: is thread `native_id` sleeping in `syscall` right now?"""
    try:
        state, line = _task_state(native_id)
    except FileNotFoundError:
        return False
    fields = line.split()
    return (state == "S" and bool(fields) and fields[0].isdigit()
            and int(fields[0]) == NR.get(syscall))


def wait_until(predicate, timeout: float = BLOCK_TIMEOUT, what: str = "condition"):
    """Poll `predicate` until true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.001)
    pytest.fail(f"timed out waiting for {what}")


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def open_fds() -> set[int]:
    return {int(x) for x in os.listdir("/proc/self/fd")}


class Runner:
    """A daemon thread running `fn(*args)`, capturing result or exception.

    Daemon, so a thread the core failed to wake cannot hang interpreter exit;
    tests still always join it (with a timeout) and assert it finished."""

    def __init__(self, fn, *args, name="aiocancel-test"):
        self.fn = fn
        self.args = args
        self.result = None
        self.exc: BaseException | None = None
        self.started = threading.Event()
        self.native_id: int | None = None
        self.ident: int | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self):
        self.native_id = threading.get_native_id()
        self.ident = threading.get_ident()
        self.started.set()
        try:
            self.result = self.fn(*self.args)
        except BaseException as e:  # noqa: BLE001 - reported to the test
            self.exc = e

    def start(self) -> "Runner":
        self.thread.start()
        assert self.started.wait(JOIN_TIMEOUT)
        return self

    def alive(self) -> bool:
        return self.thread.is_alive()

    def join(self, timeout: float = JOIN_TIMEOUT) -> "Runner":
        self.thread.join(timeout)
        assert not self.thread.is_alive(), (
            f"thread {self.thread.name} still running after {timeout}s")
        return self

    def outcome(self, timeout: float = JOIN_TIMEOUT):
        """Join, then return the result or re-raise the thread's exception."""
        self.join(timeout)
        if self.exc is not None:
            raise self.exc
        return self.result


def run_in_thread(fn, *args, timeout: float = JOIN_TIMEOUT):
    """Run `fn` in a fresh (unregistered) thread; return or raise its outcome.

    State tests run there so that the pytest main thread never registers."""
    return Runner(fn, *args).start().outcome(timeout)


@pytest.fixture
def runner():
    """Factory for Runner threads; every thread is joined at teardown."""
    made: list[Runner] = []

    def make(fn, *args, **kw) -> Runner:
        r = Runner(fn, *args, **kw)
        made.append(r)
        return r.start()

    yield make
    for r in made:
        r.thread.join(JOIN_TIMEOUT)
    stuck = [r.thread.name for r in made if r.thread.is_alive()]
    assert not stuck, f"threads still running at teardown: {stuck}"


@pytest.fixture
def pipe():
    """A pipe (r, w); both ends closed at teardown if still open."""
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass


@pytest.fixture
def fast_switch():
    """Shorten the GIL switch interval so that ping-pong between the main
    thread and a worker does not wait 5 ms per hand-over."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(2e-5)
    yield
    sys.setswitchinterval(old)


def pipe_pending(fd: int) -> bytes:
    """Everything currently buffered in pipe read end `fd` (non-blocking)."""
    was = os.get_blocking(fd)
    os.set_blocking(fd, False)
    chunks = []
    try:
        while True:
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.set_blocking(fd, was)
    return b"".join(chunks)


requires_core = pytest.mark.skipif(
    FALLBACK or not aiocancel.SUPPORTED,
    reason="needs the compiled trampoline core (not the fallback)")
