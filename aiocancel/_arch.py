"""The one architecture probe: which CPU this is, in the names aiocancel's
trampolines (``asm/<arch>/``) and syscall tables use.

Self-contained on purpose (standard library only, no package imports):
setup.py, which cannot import the package it builds, runs this file by path
and uses `canonical` on the build target's platform tag.
"""
from __future__ import annotations

import platform

__all__ = ["ALIASES", "SUPPORTED", "canonical", "machine"]

# Other spellings of the supported architectures (BSD/Windows/Debian names).
ALIASES = {"x86_64": "x86_64", "amd64": "x86_64",
           "aarch64": "aarch64", "arm64": "aarch64"}
# Architectures with a trampoline in asm/ (the compiled core's targets).
SUPPORTED = ("x86_64", "aarch64")


def canonical(name: str) -> str:
    """`name` (``platform.machine()``, a platform tag's last part) in
    aiocancel's spelling: ``x86_64`` or ``aarch64`` for theirs and their
    aliases, otherwise lower-cased as given."""
    name = name.lower()
    return ALIASES.get(name, name)


def machine() -> str:
    """This interpreter's CPU architecture, `canonical` (``platform.machine()``;
    under qemu-user the emulated one)."""
    return canonical(platform.machine())
