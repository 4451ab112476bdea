"""Command line: ``python -m aiocancel {demo,bench,stress} [options]``.

Each command lives in its own module and is imported only when used; it
parses its own options. ``--version`` and ``--help`` are answered here, and
a missing or unknown command is an argparse usage error (stderr, exit 2).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Protocol, cast

from ._version import __version__

COMMANDS = {
    "demo": ("aiocancel.demo", "cancel blocked calls and show how long it took"),
    "bench": ("aiocancel.bench", "measure aiocancel against its peers"),
    "stress": ("aiocancel.stress", "randomized cancellation races with invariants"),
}


class _Command(Protocol):
    def main(self, argv: list[str]) -> int | None: ...


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aiocancel",
        description="aiocancel: blocking calls in worker threads that "
                    "cancellation really stops.",
        epilog="Run 'python -m aiocancel COMMAND --help' for a command's options.")
    parser.add_argument("--version", action="version",
                        version=f"aiocancel {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, text) in COMMANDS.items():
        commands.add_parser(name, help=text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command; returns its exit status (argparse exits 2 on misuse)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in COMMANDS:
        module = cast(_Command, importlib.import_module(COMMANDS[argv[0]][0]))
        return module.main(argv[1:]) or 0
    _parser().parse_args(argv)      # --help, --version, or a usage error: exits
    return 2                        # not reached: every other argv is an error


if __name__ == "__main__":
    sys.exit(main())
