"""The fallback (aiocancel/_fallback.py) offers what the compiled modules
offer, with the same parameters: every ``aiocancel.syscalls`` function, the
per-thread state functions of ``_cancel``, and the classes. mypy.stubtest
holds the compiled modules to their stubs (tests/test_typing.py), so the
stubs describe the fallback too."""
from __future__ import annotations

import inspect

import pytest

import aiocancel
from aiocancel import _fallback, syscalls

pytestmark = pytest.mark.skipif(
    not aiocancel.SUPPORTED, reason="compares the fallback with the compiled modules")

CANCEL_FUNCTIONS = [
    "setcancelstate", "getcancelstate", "cancel_thread", "testcancel",
    "cancel_signal", "_worker_slot", "_job_begin", "_job_end", "_cancel_job",
    "_cp_mode", "_pending", "_set_transparent", "_transparent", "_stats"]


def _params(func: object) -> list[tuple[str, object]]:
    return [(p.name, p.kind) for p in inspect.signature(func).parameters.values()]


@pytest.mark.parametrize("name", syscalls.__all__)
def test_fallback_syscall_has_the_compiled_parameters(name):
    assert _params(getattr(_fallback, name)) == _params(getattr(syscalls, name))


@pytest.mark.parametrize("name", CANCEL_FUNCTIONS)
def test_fallback_state_function_has_the_compiled_parameters(name):
    from aiocancel import _cancel
    assert _params(getattr(_fallback, name)) == _params(getattr(_cancel, name))


def test_fallback_constants_and_classes():
    from aiocancel import _cancel, _syscalls
    for name in ("CANCEL_ENABLE", "CANCEL_DISABLE", "CANCEL_MASKED"):
        assert getattr(_fallback, name) == getattr(_cancel, name)
    for module, name, args in ((_cancel, "masked", ()), (_syscalls, "Waiter", ()),
                               (_syscalls, "StandIn", (len, len))):
        compiled = getattr(module, name)(*args)
        fallback = getattr(_fallback, name)(*args)
        public = {n for n in dir(compiled) if not n.startswith("_")}
        assert public <= set(dir(fallback)), (name, public - set(dir(fallback)))
        for method in ("__enter__", "__exit__", "__call__", "__get__"):
            assert hasattr(compiled, method) == hasattr(fallback, method), (name, method)
