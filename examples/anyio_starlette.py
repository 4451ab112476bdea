"""A Starlette app whose sync endpoint blocks on a backend that never answers.

``GET /backend`` connects to a backend socket and waits for its reply with
`aiocancel.syscalls.recv`, in Starlette's thread pool (``run_in_threadpool``,
that is ``anyio.to_thread.run_sync``). With ``aiocancel.anyio.install()``,
cancelling the request's cancel scope interrupts that recv, so the worker
thread is free again at once instead of staying blocked for ever:

* `aiocancel.asgi.CancelOnDisconnect` cancels the request when the client
  goes away;
* `aiocancel.asgi.Deadline` gives each request a time budget and answers 504
  when it runs out.

Run it: ``python examples/anyio_starlette.py [--backend asyncio|uvloop|trio]``
drives the app in-process (as an ASGI server would) through both cases. With
a real server: ``BACKEND_ADDRESS=host:port uvicorn --factory
examples.anyio_starlette:app_from_env`` (``create_app`` calls
``aiocancel.anyio.install()``).
"""
from __future__ import annotations

import argparse
import math
import os
import socket
import sys
import time

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import aiocancel
import aiocancel.anyio
import aiocancel.asgi
from aiocancel import syscalls

def ask_backend(request: Request) -> PlainTextResponse:
    """Sync endpoint: runs on a worker thread, blocked in recv."""
    log = request.app.state.log
    sock = socket.create_connection(request.app.state.backend_address)
    try:
        reply = syscalls.recv(sock, 1024)
    except aiocancel.Cancelled:
        log.append("recv interrupted (aiocancel.Cancelled)")
        raise
    finally:
        sock.close()
    log.append("backend replied")
    return PlainTextResponse(reply)


def create_app(backend_address: tuple[str, int], deadline: float) -> Starlette:
    aiocancel.anyio.install()
    app = Starlette(routes=[Route("/backend", ask_backend)],
                    middleware=[Middleware(aiocancel.asgi.Deadline, seconds=deadline),
                                Middleware(aiocancel.asgi.CancelOnDisconnect)])
    app.state.backend_address = backend_address
    app.state.log = []
    return app


def app_from_env() -> Starlette:
    """The app for a real server: BACKEND_ADDRESS=host:port, DEADLINE=seconds."""
    host, _, port = os.environ.get("BACKEND_ADDRESS", "127.0.0.1:9").rpartition(":")
    return create_app((host, int(port)), float(os.environ.get("DEADLINE", "5")))


async def serve_one(app: Starlette, disconnect_after: float | None) -> list[dict]:
    """Play an ASGI server for one ``GET /backend``: the client disconnects
    after `disconnect_after` seconds (None: it waits for the answer)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/backend",
             "raw_path": b"/backend", "query_string": b"", "headers": [],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
             "root_path": ""}
    pending = [{"type": "http.request", "body": b"", "more_body": False}]
    sent: list[dict] = []

    async def receive() -> dict:
        if pending:
            return pending.pop()
        await anyio.sleep(math.inf if disconnect_after is None else disconnect_after)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def demo(deadline: float, disconnect_after: float) -> bool:
    # A backend that accepts connections (the kernel does, into the listen
    # queue) and never answers.
    backend = socket.create_server(("127.0.0.1", 0))
    app = create_app(backend.getsockname(), deadline)
    limiter = anyio.to_thread.current_default_thread_limiter()
    ok = True
    try:
        for case, after in (("client disconnects", disconnect_after),
                            ("deadline expires", None)):
            t0 = time.perf_counter()
            sent = await serve_one(app, after)
            took = time.perf_counter() - t0
            status = next((m["status"] for m in sent
                           if m["type"] == "http.response.start"), None)
            print(f"{case:20} after {took:.2f} s: response {status}, "
                  f"handler: {app.state.log[-1]}, "
                  f"threads still busy: {limiter.borrowed_tokens}")
            ok &= (app.state.log[-1].startswith("recv interrupted")
                   and limiter.borrowed_tokens == 0
                   and status == (None if after is not None else 504))
    finally:
        backend.close()
        aiocancel.anyio.uninstall()
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["asyncio", "uvloop", "trio"],
                        default="asyncio")
    parser.add_argument("--deadline", type=float, default=0.5)
    parser.add_argument("--disconnect-after", type=float, default=0.2)
    args = parser.parse_args(argv)
    name, options = {"asyncio": ("asyncio", {}),
                     "uvloop": ("asyncio", {"use_uvloop": True}),
                     "trio": ("trio", {})}[args.backend]
    if not aiocancel.SUPPORTED:
        print("aiocancel runs in fallback mode here: blocked calls are not "
              "interrupted", file=sys.stderr)
        return 1
    ok = anyio.run(demo, args.deadline, args.disconnect_after,
                   backend=name, backend_options=options)
    print("worker threads freed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
