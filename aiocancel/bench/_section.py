"""One bench section in this interpreter: ``python -m aiocancel.bench._section
P3 quick`` prints ``{"title": ..., "rows": [...]}`` as JSON on stdout (the
parent, `aiocancel.bench.run`, starts one per section)."""
from __future__ import annotations

import importlib
import json
import sys

from . import SECTIONS
from ._config import FULL, QUICK


def main(argv: list[str]) -> int:
    name, mode = argv
    module = importlib.import_module(f"{__package__}.{SECTIONS[name]}")
    rows = module.run(QUICK if mode == "quick" else FULL)
    json.dump({"title": module.TITLE, "rows": [r.as_json() for r in rows]}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
