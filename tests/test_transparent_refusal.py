"""Where transparent mode is not supported (aarch64 for now) turning it on
raises NotImplementedError with a one-line reason, before any state changes;
everything else keeps working."""
from __future__ import annotations

import re

import pytest

import aiocancel
from aiocancel import transparent
from aiocancel._arch import machine
from conftest import run_in_thread

ON_AARCH64 = machine() == "aarch64"


def test_reason_names_the_machine_where_it_refuses():
    if ON_AARCH64:
        assert transparent.UNSUPPORTED_REASON is not None
        assert "aarch64" in transparent.UNSUPPORTED_REASON
        assert "\n" not in transparent.UNSUPPORTED_REASON
    else:
        assert transparent.UNSUPPORTED_REASON is None


@pytest.fixture
def refusing(monkeypatch):
    """Transparent mode refusing, as it does on aarch64 (the real reason
    there, a stand-in elsewhere)."""
    reason = transparent.UNSUPPORTED_REASON or "not supported on this machine (test)"
    monkeypatch.setattr(transparent, "UNSUPPORTED_REASON", reason)
    return reason


def test_enable_refuses_and_leaves_the_thread_alone(refusing):
    def attempt():
        with pytest.raises(NotImplementedError) as info:
            transparent.enable()
        transparent.enable(False)            # switching off always works
        return str(info.value), transparent.enabled()

    assert run_in_thread(attempt) == (refusing, False)


def test_executor_refuses_in_the_callers_thread(refusing):
    with pytest.raises(NotImplementedError, match="^" + re.escape(refusing) + "$"):
        aiocancel.Executor(max_workers=1, transparent=True)
    with pytest.raises(NotImplementedError, match="^" + re.escape(refusing) + "$"):
        transparent.initializer()


def test_plain_executor_still_works(refusing):
    with aiocancel.Executor(max_workers=1) as ex:
        assert ex.submit(sum, (1, 2)).result(timeout=10) == 3
