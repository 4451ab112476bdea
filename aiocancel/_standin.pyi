"""Compiled patch-mode stand-ins (cysrc/aiocancel/_standin.pyx)."""
from typing import Any, Callable

from typing_extensions import disjoint_base

@disjoint_base
class StandIn:
    original: Callable[..., Any]
    cancellable: Callable[..., Any]
    def __init__(self, original: Callable[..., Any], cancellable: Callable[..., Any],
                 keep_cancelled: bool = ...) -> None: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
    def __get__(self, instance: Any, owner: Any = None, /) -> Any: ...
