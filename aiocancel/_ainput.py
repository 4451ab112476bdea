"""`ainput`: ``input()`` for asyncio, on the cancellable stdin reader of
`aiocancel._stdin` (kept apart from it: the reader is what the patched
``input()`` of workers uses, and must not import the asyncio front end)."""
from __future__ import annotations

from ._asyncio import to_thread
from ._stdin import _decode, _prompt, _read_line, _stdin_fd

__all__ = ["ainput"]


async def ainput(prompt: object = "") -> str:
    """``input()`` for asyncio: write `prompt` to stdout, read a line of
    stdin on an aiocancel worker and return it without its newline; raise
    EOFError at end of file.

    Cancelling the awaiting task cancels the read itself, so no thread stays
    blocked on stdin (``asyncio.to_thread(input)`` would leave one, keeping
    ``asyncio.run()`` from exiting). Characters of a line that was being
    read when the cancellation acted are kept for the next ``ainput``.
    """
    _prompt(prompt)
    fd = _stdin_fd()
    return _decode(await to_thread(_read_line, fd))
