"""Two sync views (Django runs them with sync_to_async, thread-sensitive).

``block`` waits for a slow upstream: it connects to AIOCANCEL_UPSTREAM
(host:port) and waits for a reply, or sleeps 30 s if that is unset. When the
client disconnects, Django cancels the view's task; with
``aiocancel.asgiref.install(patch=True)`` (asgi.py) the blocked recv (or
sleep) is interrupted, the view's ``with`` block closes the upstream
connection, and the thread is free for the next request.
"""
import os
import socket
import sys
import threading
import time

from django.http import HttpResponse


def block(request):
    upstream = os.environ.get("AIOCANCEL_UPSTREAM")
    try:
        if upstream:
            host, port = upstream.rsplit(":", 1)
            with socket.create_connection((host, int(port))) as conn:
                reply = conn.recv(100)
        else:
            time.sleep(30)
            reply = b"slept"
    except BaseException as exc:
        print(f"block view freed: {type(exc).__name__}", file=sys.stderr, flush=True)
        raise
    return HttpResponse(reply)


def ping(request):
    return HttpResponse(f"pong from {threading.current_thread().name}")
