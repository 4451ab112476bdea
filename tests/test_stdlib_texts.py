"""Bad (or unusual) arguments get the running interpreter's own outcome:
CPython changes the texts, limits and accepted types between releases
(fcntl's buffer limit and text, seconds conversions taking any real number
in 3.15, the timestamp overflow texts), so each case is compared with what
the stdlib function itself does with the same input, never with a text."""
from __future__ import annotations

import fcntl
import os
import select
import signal
import socket
import threading
import time
from decimal import Decimal
from fractions import Fraction

import pytest
from patch_fixtures import patched  # noqa: F401  (fixture)
from syscall_fixtures import same_outcome

from aiocancel import syscalls

# Values each seconds-taking call gets: wrong types, NaN, overflow, and real
# numbers that only some versions accept (all short, so an accepted one
# returns at once).
SECONDS = ["x", None, b"1", float("nan"), 1e300, -1e300, 10**30,
           Fraction(1, 1000), Decimal("0.001")]


@pytest.fixture
def pipe():
    r, w = os.pipe()
    yield r, w
    os.close(r)
    os.close(w)


@pytest.mark.parametrize("size", [1024, 1025, 4096])
def test_fcntl_buffer_sizes(pipe, size):
    r, _ = pipe
    same_outcome(lambda: syscalls.fcntl(r, fcntl.F_GETFD, bytes(size)),
                 lambda: fcntl.fcntl(r, fcntl.F_GETFD, bytes(size)))


@pytest.mark.parametrize("arg", [1.5, None, [1], object()])
def test_fcntl_bad_argument(pipe, arg):
    r, _ = pipe
    same_outcome(lambda: syscalls.fcntl(r, fcntl.F_GETFD, arg),
                 lambda: fcntl.fcntl(r, fcntl.F_GETFD, arg))


@pytest.mark.parametrize("value", SECONDS + [-1, Fraction(-1, 2)], ids=repr)
def test_sleep(value):
    same_outcome(lambda: syscalls.sleep(value), lambda: time.sleep(value))


@pytest.mark.parametrize("value", SECONDS[:1] + SECONDS[2:], ids=repr)
def test_select_timeout(value):
    same_outcome(lambda: syscalls.select([], [], [], value),
                 lambda: select.select([], [], [], value))


@pytest.mark.parametrize("value", SECONDS[:1] + SECONDS[2:], ids=repr)
def test_epoll_timeout(value):
    with select.epoll() as ep:
        same_outcome(lambda: syscalls.epoll_wait(ep, value), lambda: ep.poll(value))


@pytest.mark.parametrize("value", SECONDS, ids=repr)
def test_sigtimedwait_timeout(value):
    # In a thread with SIGUSR1 blocked, so nothing is taken from the process.
    errors: list[BaseException] = []

    def run():
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        try:
            same_outcome(lambda: syscalls.sigtimedwait([signal.SIGUSR1], value),
                         lambda: signal.sigtimedwait([signal.SIGUSR1], value))
        except BaseException as exc:   # noqa: BLE001 - re-raised below
            errors.append(exc)
    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    assert not t.is_alive()
    if errors:
        raise errors[0]


@pytest.mark.parametrize("item", [5, (1, 2), (1, 2, 3, 4), "abc"], ids=repr)
def test_sendmsg_bad_ancillary_item(item):
    a, b = socket.socketpair()
    with a, b:
        same_outcome(lambda: syscalls.sendmsg(a, [b"x"], [item]),
                     lambda: a.sendmsg([b"x"], [item]))


def test_bad_input_under_patch_mode_asks_the_original(patched):
    """Patch mode replaces select.select, time.sleep... with stand-ins that
    call aiocancel's versions; the outcome for bad input must still come
    from the stdlib's own function, not loop back through the stand-in. In
    masked state, the stand-ins route to aiocancel's calls."""
    import aiocancel
    cases = [(select.select, ([], [], [], "x")), (time.sleep, ("x",)),
             (time.sleep, (-1,)), (signal.sigtimedwait, ([signal.SIGUSR1], "x"))]
    with aiocancel.masked():
        for fn, args in cases:
            assert hasattr(fn, "__wrapped__"), fn   # really patched
            same_outcome(lambda: fn(*args), lambda: fn.__wrapped__(*args))
