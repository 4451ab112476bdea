"""CPython's own tests, run with aiocancel.patch() installed.

Two modes, each a ``python -m test`` run in a subprocess whose
``sitecustomize`` installs the patch first (so regrtest's worker processes
get it too):

* plain: the patch installed, nothing registered. Outside workers every
  patched call must behave exactly as the stdlib's: the slice must pass.
* divert: the patch installed and the main thread put in MASKED state, so
  every patched call the tests make from the main thread runs aiocancel's
  cancellable implementation instead of the stdlib's (nobody cancels it):
  their results and errors must pass the stdlib's own assertions.

By hand (from any directory)::

    mkdir -p /tmp/aioc-site && printf 'import aiocancel\\naiocancel.patch()\\n' \\
        > /tmp/aioc-site/sitecustomize.py
    PYTHONPATH=/tmp/aioc-site python -m test -j2 test_select test_poll \\
        test_epoll test_selectors test_fcntl test_time test_queue
    PYTHONPATH=/tmp/aioc-site python -m test test_socket -i '*VSOCK*' \\
        -m GeneralModuleTests -m BasicTCPTest ...   (SOCKET_CLASSES below)

(add ``aiocancel.setcancelstate(aiocancel.CANCEL_MASKED)`` to the
sitecustomize for divert mode). VSOCK tests are left out: they hang without
aiocancel too on hosts with a vsock device but no peer (e.g. Firecracker
VMs). The default runs take about 25 s and 15 s on two cores;
``-m stress`` runs the whole of test_socket, test_threading, test_signal,
test_subprocess, test_queue, test_time and test_selectors in both modes
(several minutes).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import aiocancel

FILES = ["test_select", "test_poll", "test_epoll", "test_selectors",
         "test_fcntl", "test_time", "test_queue"]
DIVERT_FILES = ["test_select", "test_poll", "test_epoll", "test_fcntl"]
# test_socket's classes about the patched methods (blocking, timeouts,
# non-blocking, makefile, sendmsg/recvmsg with fds): a third of its run time.
SOCKET_CLASSES = [
    "GeneralModuleTests", "BasicTCPTest", "BasicUDPTest", "BasicSocketPairTest",
    "NonBlockingTCPTests", "FileObjectClassTestCase",
    "UnbufferedFileObjectClassTestCase", "NetworkConnectionNoServer",
    "NetworkConnectionAttributesTest", "TCPTimeoutTest", "UDPTimeoutTest",
    "InterruptedRecvTimeoutTest", "InterruptedSendTimeoutTest",
    "SendmsgUDPTest", "RecvmsgUDPTest", "RecvmsgIntoUDPTest",
    "RecvmsgSCMRightsStreamTest", "RecvmsgIntoSCMRightsStreamTest",
    "SendrecvmsgUnixStreamTestBase", "ContextManagersTest", "InheritanceTest"]
SOCKET_SLICE = ["test_socket", *(a for c in SOCKET_CLASSES for a in ("-m", c))]
SLOW = ["test_threading", "test_signal", "test_subprocess", "test_socket",
        "test_queue", "test_time", "test_selectors"]
IGNORE = ["-i", "*VSOCK*"]

_SITECUSTOMIZE = """
import os
try:
    import aiocancel
except ImportError as exc:
    # aiocancel's compiled modules load in one interpreter per process;
    # test_threading & co. start subinterpreters, which go unpatched.
    if "interpreter" not in str(exc):
        raise
else:
    aiocancel.patch()
    if os.environ.get("AIOCANCEL_TEST_DIVERT") == "1":
        aiocancel.setcancelstate(aiocancel.CANCEL_MASKED)
    marker = os.environ.get("AIOCANCEL_TEST_MARKER")
    if marker:
        with open(marker, "a", encoding="utf-8") as f:
            f.write(f"{aiocancel.is_patched()} {aiocancel.getcancelstate()}\\n")
"""


def run_slice(tmp_path, tests, divert, jobs=2, timeout=600):
    site = tmp_path / "site"
    site.mkdir(parents=True)
    (site / "sitecustomize.py").write_text(textwrap.dedent(_SITECUSTOMIZE))
    marker = tmp_path / "marker"
    env = dict(os.environ,
               PYTHONPATH=os.pathsep.join(
                   [str(site)] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
               AIOCANCEL_TEST_MARKER=str(marker),
               AIOCANCEL_TEST_DIVERT="1" if divert else "0")
    cmd = [sys.executable, "-m", "test", *([f"-j{jobs}"] if jobs > 1 else []),
           *tests, *IGNORE]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=timeout)
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{out[-6000:]}"
    assert "Tests result: SUCCESS" in out, out[-3000:]
    # The patch was really on, in every process that ran tests.
    lines = marker.read_text().split()
    state = str(aiocancel.CANCEL_MASKED if divert else aiocancel.CANCEL_ENABLE)
    assert lines and lines[0::2] == ["True"] * (len(lines) // 2)
    assert set(lines[1::2]) == {state}
    return out


@pytest.mark.skipif(not aiocancel.SUPPORTED,
                    reason="the stand-ins are the same in fallback mode; run once")
def test_stdlib_slice_passes_with_patch(tmp_path):
    run_slice(tmp_path / "files", FILES, divert=False)
    run_slice(tmp_path / "socket", SOCKET_SLICE, divert=False, jobs=1)


@pytest.mark.skipif(not aiocancel.SUPPORTED,
                    reason="divert mode exercises the compiled calls")
def test_stdlib_slice_passes_through_aiocancels_calls(tmp_path):
    run_slice(tmp_path / "files", DIVERT_FILES, divert=True)
    run_slice(tmp_path / "socket", SOCKET_SLICE, divert=True, jobs=1)


@pytest.mark.stress
@pytest.mark.skipif(not aiocancel.SUPPORTED,
                    reason="the stand-ins are the same in fallback mode; run once")
@pytest.mark.parametrize("divert", [False, True], ids=["plain", "divert"])
def test_stdlib_long_slice(tmp_path, divert):
    run_slice(tmp_path, SLOW, divert=divert, timeout=1800)
