"""Cancel ``urllib.request.urlopen`` stuck on a server that never answers.

The script starts a local HTTP "server" that accepts connections and reads
requests but never replies, then fetches from it through
``asyncio.to_thread`` with a timeout. With ``aiocancel.install(patch=True)``
the socket read inside http.client is a cancellation point: the timeout
cancels it, urllib closes the connection (the server sees it go), and the
worker thread is free again; asyncio.run() then exits at once instead of
waiting forever for the stuck thread.

    python examples/urllib_hang.py
"""
from __future__ import annotations

import asyncio
import socket
import threading
import urllib.request

import aiocancel


def silent_server() -> tuple[socket.socket, threading.Event]:
    """A listener that reads requests and never answers; the event is set
    when the client closes its connection."""
    srv = socket.create_server(("127.0.0.1", 0))
    closed = threading.Event()

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            while conn.recv(4096):
                pass                    # read the request, answer nothing
        closed.set()

    threading.Thread(target=serve, daemon=True).start()
    return srv, closed


async def main() -> None:
    aiocancel.install(executor=aiocancel.Executor(max_workers=1), patch=True)
    srv, closed = silent_server()
    host, port = srv.getsockname()
    try:
        async with asyncio.timeout(0.5):
            await asyncio.to_thread(urllib.request.urlopen, f"http://{host}:{port}/")
    except TimeoutError:
        print("urlopen cancelled by the timeout")
    print("worker free:", await asyncio.to_thread(lambda: "yes"))
    print("server saw the connection closed:",
          await asyncio.to_thread(closed.wait, 10))
    srv.close()


if __name__ == "__main__":
    asyncio.run(main())
