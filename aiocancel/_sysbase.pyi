"""Shared C helpers of the syscall modules (compiled: cysrc/aiocancel/_sysbase.pyx); no Python API."""
from typing_extensions import disjoint_base

@disjoint_base
class IOVecs: ...
