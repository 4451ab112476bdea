"""Cancellable message socket calls (compiled: cysrc/aiocancel/_sockets.pyx); see aiocancel.syscalls."""
from typing import Any, Iterable, Unpack, overload

from _typeshed import ReadableBuffer, WriteableBuffer

from ._syscalls import _FD

def recvfrom(sock: _FD, n: int, flags: int = ...) -> tuple[bytes, Any]: ...
def recvfrom_into(sock: _FD, buffer: WriteableBuffer, nbytes: int = ...,
                  flags: int = ...) -> tuple[int, Any]: ...
def recvmsg(sock: _FD, bufsize: int, ancbufsize: int = ...,
            flags: int = ...) -> tuple[bytes, list[tuple[int, int, bytes]], int, Any]: ...
# As socket.sendto: (data, address) or (data, flags, address), positionally.
@overload
def sendto(sock: _FD, data: ReadableBuffer, *args: Unpack[tuple[Any]]) -> int: ...
@overload
def sendto(sock: _FD, data: ReadableBuffer, *args: Unpack[tuple[int, Any]]) -> int: ...
def sendmsg(sock: _FD, buffers: Iterable[ReadableBuffer],
            ancdata: Iterable[tuple[int, int, ReadableBuffer]] = ...,
            flags: int = ..., address: Any = ...) -> int: ...
