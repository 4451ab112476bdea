"""Command line: ``python -m aiocancel {demo,bench,stress} [options]``.

Each command lives in its own module and is imported only when used."""
from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "demo": ("aiocancel.demo", "cancel blocked calls and show how long it took"),
    "bench": ("aiocancel.bench", "measure aiocancel against its peers"),
    "stress": ("aiocancel.stress", "randomized cancellation races with invariants"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print("usage: python -m aiocancel {" + ",".join(COMMANDS) + "} [options]\n")
        for name, (_, text) in COMMANDS.items():
            print(f"  {name:8} {text}")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return module.main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
