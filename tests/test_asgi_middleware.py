"""aiocancel.asgi: CancelOnDisconnect and Deadline around a Starlette app
whose sync endpoint blocks in recv, driven as an ASGI server drives it."""
from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any, Iterator

import pytest

import aiocancel
from conftest import requires_core
from job_helpers import installed_with_patch
import aiocancel.anyio
from aiocancel.asgi import CancelOnDisconnect, Deadline

starlette = pytest.importorskip("starlette", reason="starlette is not installed")
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import PlainTextResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

DEADLINE = 5.0


@pytest.fixture
def installed() -> Iterator[None]:
    with installed_with_patch(aiocancel.anyio.install, aiocancel.anyio.uninstall):
        yield


class Blocker:
    """A sync endpoint blocked in a plain socket recv (patched)."""

    def __init__(self) -> None:
        self.a, self.b = socket.socketpair()
        self.entered = threading.Event()
        self.raised: list[BaseException] = []

    def endpoint(self, request: Request) -> PlainTextResponse:
        self.entered.set()
        try:
            return PlainTextResponse(self.a.recv(1).decode())
        except BaseException as exc:
            self.raised.append(exc)
            raise

    def assert_freed(self) -> None:
        """Nothing reads the socket any more: a byte written now is ours."""
        self.b.send(b"x")
        self.a.settimeout(DEADLINE)
        assert self.a.recv(1) == b"x"

    def close(self) -> None:
        self.a.close()
        self.b.close()


def http_scope(path: str, method: str = "GET") -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": b"", "root_path": "", "headers": [],
            "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2)}


class Client:
    """The server side of one request: a body, then http.disconnect when
    `disconnect` is set."""

    def __init__(self, body: list[bytes] | None = None) -> None:
        self.body = list(body or [b""])
        self.disconnect = asyncio.Event()
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        if self.body:
            chunk = self.body.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(self.body)}
        await self.disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


async def wait_event(event: threading.Event) -> None:
    deadline = time.monotonic() + DEADLINE
    while not event.is_set():
        assert time.monotonic() < deadline, "the endpoint did not start"
        await asyncio.sleep(0.005)


@requires_core
def test_disconnect_cancels_sync_endpoint(installed: None) -> None:
    blocker = Blocker()
    app = CancelOnDisconnect(Starlette(routes=[Route("/block", blocker.endpoint)]))

    async def main() -> None:
        client = Client()
        call = asyncio.create_task(app(http_scope("/block"), client.receive, client.send))
        await wait_event(blocker.entered)
        start = time.monotonic()
        client.disconnect.set()
        await asyncio.wait_for(call, DEADLINE)
        assert time.monotonic() - start < DEADLINE
        assert not [m for m in client.sent if m["type"] == "http.response.start"]

    try:
        asyncio.run(main())
        assert len(blocker.raised) == 1
        assert isinstance(blocker.raised[0], aiocancel.Cancelled)
        blocker.assert_freed()
    finally:
        blocker.close()


def test_body_passes_through_and_completed_response_not_cancelled() -> None:
    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse((await request.body()).decode())

    app = CancelOnDisconnect(Starlette(routes=[Route("/echo", echo, methods=["POST"])]))

    async def main() -> None:
        client = Client([b"hello ", b"world"])
        call = asyncio.create_task(app(http_scope("/echo", "POST"), client.receive,
                                       client.send))
        await asyncio.wait_for(call, DEADLINE)
        client.disconnect.set()
        assert client.sent[0]["status"] == 200
        assert b"".join(m.get("body", b"") for m in client.sent[1:]) == b"hello world"

    asyncio.run(main())


@requires_core
def test_deadline_answers_504_and_frees_the_worker(installed: None) -> None:
    blocker = Blocker()
    app = Deadline(Starlette(routes=[Route("/block", blocker.endpoint)]), 0.3)

    async def main() -> None:
        client = Client()
        start = time.monotonic()
        await asyncio.wait_for(app(http_scope("/block"), client.receive, client.send),
                               DEADLINE)
        assert time.monotonic() - start < DEADLINE
        assert client.sent[0]["status"] == 504

    try:
        asyncio.run(main())
        assert isinstance(blocker.raised[0], aiocancel.Cancelled)
        blocker.assert_freed()
    finally:
        blocker.close()


def test_server_cancellation_still_reaches_the_handler() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def main() -> None:
        client = Client()
        call = asyncio.create_task(CancelOnDisconnect(app)(http_scope("/"), client.receive,
                                                           client.send))
        await asyncio.sleep(0.05)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

    asyncio.run(main())
    assert seen == ["cancelled"]


@pytest.mark.parametrize("seconds, error", [(0, ValueError), (-1, ValueError),
                                            (float("nan"), ValueError),
                                            ("1", TypeError), (True, TypeError)])
def test_deadline_rejects_bad_seconds(seconds: Any, error: type) -> None:
    with pytest.raises(error):
        Deadline(lambda *a: None, seconds)  # type: ignore[arg-type]


@pytest.mark.parametrize("wrap", [CancelOnDisconnect, lambda app: Deadline(app, 5)],
                         ids=["CancelOnDisconnect", "Deadline"])
def test_app_exception_propagates_unwrapped(wrap: Any) -> None:
    """The server sees the app's own exception (not an ExceptionGroup)."""
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise ValueError("app bug")

    async def main() -> None:
        client = Client()
        with pytest.raises(ValueError, match="app bug"):
            await wrap(app)(http_scope("/"), client.receive, client.send)

    asyncio.run(main())
