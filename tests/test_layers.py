"""One fork hook, one architecture probe (ARCHITECTURE.md, "Across the
layers"): each rule lives in one module, and that module does what it says."""
from __future__ import annotations

import ast
import os
import platform
import sys
from pathlib import Path

import pytest

import aiocancel
from aiocancel import _arch, _fork, _outcome
from aiocancel import _asyncio as front
from aiocancel.anyio import _pool as anyio_pool

PACKAGE = Path(aiocancel.__file__).resolve().parent

# The core layer keeps its own after-fork reset (ARCHITECTURE.md): the C core
# in pthread_atfork, the fallback (its Python stand-in) in this file.
CORE_LAYER = {"_fallback.py"}


def _calls(path: Path, attr: str, owner: str | None = None) -> int:
    """How many calls ``<owner>.<attr>(...)`` module `path` makes (any
    owner if None)."""
    tree = ast.parse(path.read_text())
    return sum(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
               and n.func.attr == attr
               and (owner is None or (isinstance(n.func.value, ast.Name)
                                      and n.func.value.id == owner))
               for n in ast.walk(tree))


def test_one_module_registers_the_after_fork_hook():
    registering = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                   if _calls(p, "register_at_fork")}
    assert registering - CORE_LAYER == {"_fork.py"}


def test_the_layers_resets_are_registered_in_layer_order():
    resets = [f"{r.__module__}.{r.__name__}" for r in _fork._resets]
    assert resets == ["aiocancel._outcome._reset_after_fork",
                      "aiocancel._asyncio._forget_module_pool",
                      "aiocancel.anyio._pool._forget_pools"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_forked_child_runs_every_reset():
    """In a child of a process whose layers hold threads, the watchdog, the
    module-level pool and the anyio pools are new or forgotten."""
    async def use_the_layers() -> None:
        await aiocancel.to_thread(int)
    import asyncio
    asyncio.run(use_the_layers())
    _outcome.start_watchdog()
    key = type("Loop", (), {})()
    pool = anyio_pool.pool_for(key, lambda fn: None)
    watchdog = _outcome._watchdog
    assert front._module_pool is not None and key in anyio_pool._pools
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                           # the child
        try:
            ok = (_outcome._watchdog is not watchdog and front._module_pool is None
                  and len(anyio_pool._pools) == 0)
            os.write(w, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(w)
    try:
        answer = os.read(r, 1)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
        del anyio_pool._pools[key]
        pool.shutdown()
    assert answer == b"1"
    assert _outcome._watchdog is watchdog                  # the parent keeps its own


def test_after_fork_in_child_runs_resets_in_registration_order(monkeypatch):
    monkeypatch.setattr(_fork, "_resets", [])
    ran: list[int] = []
    assert _fork.after_fork_in_child(lambda: ran.append(1)) is not None
    _fork.after_fork_in_child(lambda: ran.append(2))
    _fork._run_resets()
    assert ran == [1, 2]


# ---- the architecture probe ----------------------------------------------------

def test_one_module_asks_which_cpu_this_is():
    """Outside `_arch`, only the bench's report of the machine, which prints
    the raw name, reads ``platform.machine``."""
    asking = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
              if _calls(p, "machine", "platform")}
    assert asking - {"bench/_machine.py"} == {"_arch.py"}


@pytest.mark.parametrize("name,expected", [
    ("x86_64", "x86_64"), ("AMD64", "x86_64"), ("amd64", "x86_64"),
    ("aarch64", "aarch64"), ("arm64", "aarch64"), ("ARM64", "aarch64"),
    ("riscv64", "riscv64"), ("", "")])
def test_canonical_names(name, expected):
    assert _arch.canonical(name) == expected


def test_machine_is_this_cpu():
    assert _arch.machine() == _arch.canonical(platform.machine())
    if sys.platform.startswith("linux") and aiocancel.SUPPORTED:
        assert _arch.machine() in _arch.SUPPORTED


def test_setup_reads_the_same_probe():
    """setup.py cannot import the package: it runs _arch.py by path."""
    text = (PACKAGE.parent / "setup.py").read_text()
    assert '"_arch.py"' in text and "canonical" in text
    assert "arm64" not in text.split('"""', 2)[2]          # no alias table of its own
