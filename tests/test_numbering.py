"""The syscall numbering /proc/self/task/TID/syscall shows here
(aiocancel._numbering): this machine's own natively, the host's under
qemu-user. The harness, the demo and the bench look for blocked calls by
these numbers."""
from __future__ import annotations

import os

import conftest
from conftest import Runner, wait_blocked

from aiocancel._numbering import MACHINE, numbering


def test_numbering_is_this_machines_unless_emulated():
    machine, emulated = numbering()
    assert emulated == (machine != MACHINE)
    assert (machine, emulated) == (conftest.NR_MACHINE, conftest.EMULATED)


def test_a_blocked_read_shows_the_number_the_harness_expects():
    r, w = os.pipe()
    try:
        run = Runner(os.read, r, 1).start()
        line = wait_blocked(run.native_id, "read", arg0=r, alive=run.alive)
        assert int(line.split()[0]) == conftest.NR["read"]
        os.write(w, b"x")
        assert run.outcome() == b"x"
    finally:
        os.close(r)
        os.close(w)
