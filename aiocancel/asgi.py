"""Ready-made ASGI middleware that cancels request handlers.

uvicorn and Starlette never cancel a handler whose client went away, and a
deadline needs its own middleware. Both cancel the handler's task; with
aiocancel installed (``aiocancel.anyio.install()`` for Starlette/FastAPI,
``aiocancel.asgiref.install()`` for Django) that also frees the worker
thread of a sync endpoint::

    aiocancel.anyio.install(patch=True)
    app = aiocancel.asgi.CancelOnDisconnect(app)

Pure ASGI, on any server and event loop anyio supports (asyncio, uvloop,
trio: uvicorn, hypercorn, granian...); needs anyio, which Starlette and
FastAPI bring. Other scope types (websocket, lifespan) pass through
untouched. The server's own cancellation (shutdown) still reaches the
handler and propagates as usual.
"""
from __future__ import annotations

import math
from typing import Any, Awaitable, Callable, Coroutine, MutableMapping

__all__ = ["CancelOnDisconnect", "Deadline"]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Coroutine[Any, Any, None]]

_TIMEOUT_BODY = b"Gateway Timeout"


class _Response:
    """Wraps `send` to know whether the response started and completed."""

    __slots__ = ("send_", "started", "complete", "on_complete")

    def __init__(self, send: Send) -> None:
        self.send_ = send
        self.started = False
        self.complete = False
        self.on_complete: Callable[[], object] | None = None

    async def send(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "http.response.start":
            self.started = True
        elif (kind == "http.response.body" and not message.get("more_body", False)) \
                or kind == "http.response.pathsend":
            self.complete = True
            if self.on_complete is not None:
                self.on_complete()
        await self.send_(message)


class _Relay:
    """Reads the server's `receive` ahead of the app by one message, to see
    ``http.disconnect`` while the handler is busy. One message at most is
    buffered (the server's flow control is kept): a disconnect is seen once
    the app has taken the request body's messages but the last one, which
    covers requests whose body fits in one message and handlers that read
    their body first (form and JSON endpoints)."""

    def __init__(self, receive: Receive, on_disconnect: Callable[[], None]) -> None:
        import anyio
        self.receive_ = receive
        self.on_disconnect = on_disconnect
        self.to_app, self.inbox = anyio.create_memory_object_stream[Message](1)
        self.final: Message | None = None

    async def watch(self) -> None:
        while True:
            message = await self.receive_()
            if message.get("type") == "http.disconnect":
                self.final = message
                self.on_disconnect()
                await self.to_app.send(message)
                return
            await self.to_app.send(message)

    async def receive(self) -> Message:
        import anyio
        try:
            return self.inbox.receive_nowait()
        except anyio.WouldBlock:
            if self.final is not None:
                return self.final      # ASGI: disconnect, again and again
        return await self.inbox.receive()


async def _run(app: ASGIApp, scope: MutableMapping[str, Any], receive: Receive,
               send: Send, *, watch: bool, seconds: float | None) -> None:
    import anyio

    stopped: list[str] = []
    failure: BaseException | None = None
    response = _Response(send)
    async with anyio.create_task_group() as group:
        # Cancelling the group's scope stops the handler (run in this task,
        # inside the scope) and the watcher; the group absorbs that
        # cancellation, while one from outside (server shutdown) propagates.
        def stop(reason: str) -> None:
            if not response.complete and not stopped:
                stopped.append(reason)
                group.cancel_scope.cancel()

        relay = _Relay(receive, lambda: stop("client disconnected")) if watch else None
        if relay is not None:
            group.start_soon(relay.watch)
        with anyio.CancelScope() as timer:
            if seconds is not None:
                timer.deadline = anyio.current_time() + seconds
                # A completed response is not cancelled (background tasks).
                response.on_complete = lambda: setattr(timer, "deadline", math.inf)
            try:
                await app(scope, relay.receive if relay else receive, response.send)
            except anyio.get_cancelled_exc_class():
                raise
            except BaseException as exc:   # noqa: BLE001 - re-raised below
                # Raised after the group, not wrapped in an ExceptionGroup:
                # the server sees the app's own exception.
                failure = exc
        if timer.cancelled_caught:
            stopped.append("deadline")
        group.cancel_scope.cancel()        # the watcher, if any
    if failure is not None:
        try:
            raise failure
        finally:
            del failure
    if stopped == ["deadline"] and not response.started:
        await _gateway_timeout(send)


async def _gateway_timeout(send: Send) -> None:
    await send({"type": "http.response.start", "status": 504,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(_TIMEOUT_BODY)).encode())]})
    await send({"type": "http.response.body", "body": _TIMEOUT_BODY})


class CancelOnDisconnect:
    """ASGI middleware: cancel the HTTP handler when the client disconnects
    before its response is complete.

    The request body is passed through to the app unchanged. A cancelled
    handler sends nothing more (nobody is listening); a handler that
    already completed its response is never cancelled (background tasks
    run on after the response)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive,
                       send: Send) -> None:
        if scope.get("type") != "http":
            return await self.app(scope, receive, send)
        await _run(self.app, scope, receive, send, watch=True, seconds=None)


class Deadline:
    """ASGI middleware: cancel an HTTP handler still running `seconds` after
    the request arrived; if it had not started its response, answer 504
    Gateway Timeout."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise TypeError(f"seconds must be a number, not {type(seconds).__name__}")
        if not (seconds > 0 and math.isfinite(seconds)):
            raise ValueError(f"seconds must be positive and finite, not {seconds!r}")
        self.app = app
        self.seconds = float(seconds)

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive,
                       send: Send) -> None:
        if scope.get("type") != "http":
            return await self.app(scope, receive, send)
        await _run(self.app, scope, receive, send, watch=False, seconds=self.seconds)
