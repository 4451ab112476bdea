"""The cancellation core's own C tests (tests/c/core_test.c), built against
this machine's libc with the native trampoline and run: blocked read
cancelled, pending-before-call, one-off / DISABLE / ENABLE, job generations,
EINTR-style and restarted calls, the nested handler, the no-lost-result
races, requests racing thread exits, the shared-syscall-site interleaving
(forced through the core's test hook: a futex never gets ECANCELED), fork.

Also against musl (musl-gcc, Debian's musl-tools) when it is installed;
.ci/musl.sh runs that build with more iterations."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from aiocancel._arch import machine

ROOT = Path(__file__).resolve().parent.parent
ARCH = machine()
SOURCES = ([ROOT / "tests" / "c" / "core_test.c"] + sorted((ROOT / "cysrc").glob("*.c"))
           + [ROOT / "asm" / ARCH / "syscall_cp.S"])
ITERATIONS = "2000"

pytestmark = pytest.mark.skipif(
    not (ROOT / "asm" / ARCH / "syscall_cp.S").exists() or not ROOT.joinpath("cysrc").is_dir(),
    reason=f"no trampoline for {ARCH} in this checkout")


def _build_and_run(cc: str, tmp_path: Path) -> str:
    exe = tmp_path / "core_test"
    subprocess.run([cc, "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-pthread",
                    f"-I{ROOT / 'cysrc'}", *map(str, SOURCES), "-o", str(exe)],
                   check=True, capture_output=True, text=True)
    done = subprocess.run([str(exe), ITERATIONS], capture_output=True, text=True,
                          timeout=600, env={k: v for k, v in os.environ.items()
                                            if k != "AIOC_CORE_TEST_QEMU"})
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _lines(out: str) -> dict[str, str]:
    return {line.split()[0]: line for line in out.splitlines() if line and " " in line}


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc")
def test_core_c_tests_pass_with_this_libc(tmp_path):
    out = _build_and_run("gcc", tmp_path)
    lines = _lines(out)
    for name in ("blocked_read_cancelled", "nested_handler", "read_race",
                 "accept_race", "exit_race", "shared_site", "shared_site_libc", "fork"):
        assert name in lines, out
    # The forced interleaving really shared one site and the futex kept EINTR.
    assert "same_pc=1 futex_eintr=1 futex_ecanceled=0" in lines["shared_site"]
    assert "all core tests passed" in out


@pytest.mark.skipif(shutil.which("musl-gcc") is None or ARCH != "x86_64",
                    reason="musl-gcc (musl-tools) not installed")
def test_core_c_tests_pass_with_musl(tmp_path):
    out = _build_and_run("musl-gcc", tmp_path)
    lines = _lines(out)
    # musl returns every cancellable call (poll, the futex of a cond wait)
    # through one syscall instruction: the libc variant shares the site too.
    assert "same_pc=1 futex_eintr=1 futex_ecanceled=0" in lines["shared_site"]
    assert "same_pc=1" in lines["shared_site_libc"]
    assert "futex_ecanceled=0" in lines["shared_site_libc"]
    assert "all core tests passed" in out
