"""install() / uninstall(), run_sync() without installing, and the guard
against anyio versions whose private layout differs."""
from __future__ import annotations

import os
import socket
import threading

import anyio
import anyio.to_thread
import pytest
from anyio._core import _eventloop

import aiocancel
import aiocancel.anyio
from aiocancel.anyio import _compat
from anyio_fixtures import (anyio_backend, reader, wait_event,  # noqa: F401
                            wait_for_request)
from conftest import JOIN_TIMEOUT, requires_core, wait_blocked

ANYIO_CLASSES = {
    name: __import__(f"anyio._backends._{name}", fromlist=["backend_class"]).backend_class
    for name in ("asyncio", "trio")}


@pytest.fixture(autouse=True)
def restore_registry():
    """Leave anyio's registry as the test found it."""
    saved = dict(_eventloop.loaded_backends)
    yield
    aiocancel.anyio.uninstall()
    _eventloop.loaded_backends.clear()
    _eventloop.loaded_backends.update(saved)


def registered() -> dict:
    return {name: _eventloop.get_async_backend(name) for name in ("asyncio", "trio")}


def test_install_is_idempotent_and_uninstall_restores():
    assert registered() == ANYIO_CLASSES
    aiocancel.anyio.install()
    ours = {"asyncio": aiocancel.anyio.AsyncIOBackend,
            "trio": aiocancel.anyio.TrioBackend}
    assert registered() == ours
    aiocancel.anyio.install()
    assert registered() == ours
    aiocancel.anyio.uninstall()
    assert registered() == ANYIO_CLASSES
    aiocancel.anyio.uninstall()
    assert registered() == ANYIO_CLASSES


def test_backend_classes_derive_from_anyio():
    assert issubclass(aiocancel.anyio.AsyncIOBackend, ANYIO_CLASSES["asyncio"])
    assert issubclass(aiocancel.anyio.TrioBackend, ANYIO_CLASSES["trio"])


def test_uninstall_restores_a_backend_replaced_before_install():
    class Custom(ANYIO_CLASSES["asyncio"]):
        pass

    _eventloop.loaded_backends["asyncio"] = Custom
    aiocancel.anyio.install()
    assert _eventloop.get_async_backend("asyncio") is aiocancel.anyio.AsyncIOBackend
    aiocancel.anyio.uninstall()
    assert _eventloop.get_async_backend("asyncio") is Custom


def test_uninstall_leaves_a_later_replacement_alone():
    class Later(ANYIO_CLASSES["trio"]):
        pass

    aiocancel.anyio.install()
    _eventloop.loaded_backends["trio"] = Later
    aiocancel.anyio.uninstall()
    assert _eventloop.get_async_backend("trio") is Later
    assert _eventloop.get_async_backend("asyncio") is ANYIO_CLASSES["asyncio"]


def test_install_before_anyio_loaded_a_backend():
    _eventloop.loaded_backends.pop("trio", None)
    aiocancel.anyio.install()
    assert _eventloop.get_async_backend("trio") is aiocancel.anyio.TrioBackend
    aiocancel.anyio.uninstall()
    assert "trio" not in _eventloop.loaded_backends
    assert _eventloop.get_async_backend("trio") is ANYIO_CLASSES["trio"]


@requires_core
@pytest.mark.parametrize("backend, options", [
    ("asyncio", {}), ("asyncio", {"use_uvloop": True}), ("trio", {})],
    ids=["asyncio", "uvloop", "trio"])
def test_installed_before_anyio_run(backend, options, reader):
    """install() at start-up covers loops that anyio.run() starts later."""
    r = reader()

    async def main():
        with anyio.move_on_after(0.05) as scope:
            await anyio.to_thread.run_sync(r)
        return (scope.cancelled_caught,
                anyio.to_thread.current_default_thread_limiter().borrowed_tokens)

    aiocancel.anyio.install()
    assert anyio.run(main, backend=backend, backend_options=options) == (True, 0)
    assert isinstance(r.exc, aiocancel.Cancelled)


@pytest.mark.anyio
async def test_uninstall_restores_anyio_behaviour(reader):
    """After uninstall() a cancelled call abandons its thread still blocked,
    as anyio does."""
    aiocancel.anyio.install()
    aiocancel.anyio.uninstall()
    r = reader()
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: anyio.to_thread.run_sync(r, abandon_on_cancel=True))
            await wait_event(r.started)
            wait_blocked(r.native_id, "read", r.r, alive=lambda: not r.ended.is_set())
            scope.cancel()
    assert scope.cancelled_caught
    assert not r.ended.is_set()
    wait_blocked(r.native_id, "read", r.r)
    os.write(r.w, b"x")
    await wait_event(r.ended)
    assert r.exc is None


@pytest.mark.anyio
@requires_core
async def test_run_sync_without_install(reader):
    assert _eventloop.get_async_backend() in ANYIO_CLASSES.values()
    r = reader()
    limiter = anyio.CapacityLimiter(1)
    with anyio.move_on_after(0.05) as scope:
        await aiocancel.anyio.run_sync(r, limiter=limiter)
    assert scope.cancelled_caught
    assert isinstance(r.exc, aiocancel.Cancelled)
    assert limiter.borrowed_tokens == 0
    assert await aiocancel.anyio.run_sync(lambda a, b: a * b, 6, 7) == 42


@pytest.mark.anyio
@pytest.mark.parametrize("callback", ["recorded", "default"])
async def test_run_sync_abandoned_result_goes_to_callback(callback):
    """A result that arrives after the task abandoned the call is handed to
    on_abandoned_result; by default a socket is closed."""
    started = threading.Event()
    made: list[socket.socket] = []
    handed: list[object] = []

    def work() -> socket.socket:
        started.set()
        wait_for_request()
        made.append(socket.socket())
        return made[-1]

    kwargs = {"on_abandoned_result": handed.append} if callback == "recorded" else {}
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: aiocancel.anyio.run_sync(
                work, abandon_on_cancel=True, **kwargs))
            await wait_event(started)
            scope.cancel()
    assert scope.cancelled_caught
    with anyio.fail_after(JOIN_TIMEOUT):
        while not made or (callback == "recorded" and not handed):
            await anyio.sleep(0.001)
    sock = made[0]
    if callback == "recorded":
        assert handed == [sock]
        sock.close()
    else:
        with anyio.fail_after(JOIN_TIMEOUT):
            while sock.fileno() != -1:
                await anyio.sleep(0.001)


# ---- the guard -------------------------------------------------------------

@pytest.fixture
def recheck(monkeypatch):
    """Make the next install()/run_sync() check the layout again."""
    monkeypatch.setattr(_compat, "_checked", set())
    return monkeypatch


@pytest.mark.parametrize("version", ["5.0.0", "4.3.0", "3.7.1"])
def test_unsupported_anyio_version_is_refused(recheck, version):
    real = _compat._version
    recheck.setattr(_compat, "_version",
                    lambda dist: version if dist == "anyio" else real(dist))
    with pytest.raises(aiocancel.anyio.UnsupportedAnyioError) as info:
        aiocancel.anyio.install()
    message = str(info.value)
    assert aiocancel.anyio.SUPPORTED_ANYIO in message and version in message
    assert isinstance(info.value, ImportError) and isinstance(info.value, RuntimeError)
    assert registered() == ANYIO_CLASSES


def test_unsupported_anyio_refused_by_run_sync(recheck):
    recheck.setattr(_compat, "_version", lambda dist: "5.1.0")

    async def main():
        with pytest.raises(aiocancel.anyio.UnsupportedAnyioError, match=r">=4\.4,<5"):
            await aiocancel.anyio.run_sync(int)

    anyio.run(main)


def test_changed_anyio_layout_is_refused(recheck):
    recheck.delattr(_eventloop, "loaded_backends")
    with pytest.raises(aiocancel.anyio.UnsupportedAnyioError,
                       match=r"(?s)>=4\.4,<5.*loaded_backends"):
        aiocancel.anyio.install()


def test_changed_worker_signature_is_refused(recheck):
    async def run_sync_in_worker_thread(cls, func, args, cancellable=False, limiter=None):
        raise AssertionError("not called")

    recheck.setattr(ANYIO_CLASSES["asyncio"], "run_sync_in_worker_thread",
                    classmethod(run_sync_in_worker_thread))
    with pytest.raises(aiocancel.anyio.UnsupportedAnyioError, match="cancellable"):
        aiocancel.anyio.install()


def test_changed_trio_layout_is_refused(recheck):
    import trio._threads
    recheck.delattr(trio._threads, "RunSync")
    with pytest.raises(aiocancel.anyio.UnsupportedAnyioError,
                       match=r"(?s)>=0\.23.*RunSync"):
        aiocancel.anyio.install()
    assert registered() == ANYIO_CLASSES


def test_release_parsing():
    assert _compat._release("4.16.0") == (4, 16, 0)
    assert _compat._release("5.0.0rc1") == (5, 0, 0)
    assert _compat._release("4.4.0.post1") == (4, 4, 0)
    assert _compat._release("dev") == ()
