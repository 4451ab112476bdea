"""``python -m aiocancel bench``: aiocancel measured against what one would
use instead, in one run on one machine.

Sections (each a module here): P1 per-call overhead of a cancellation point
(`overhead`), P2 dispatch round trip (`dispatch`), P3 cancel latency
(`latency`), P4 cancel storm (`storm`), memory (`memory`). Contenders run
interleaved, several rounds, and ratios are taken between measurements made
side by side, because shared machines are noisy: read the ratios, not the
absolute figures. ``--quick`` runs every row with fewer rounds (well under a
minute on two cores)."""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from typing import Any, Sequence

from . import _machine
from ._config import FULL, QUICK, Config
from ._report import Row, render_markdown, render_text

SECTIONS = {"P1": "overhead", "P2": "dispatch", "P3": "latency", "P4": "storm",
            "MEM": "memory"}

SECTION_TIMEOUT = 1800   # seconds: a hung section is a bug, not a slow machine

__all__ = ["main", "run", "SECTIONS"]


def run(cfg: Config, sections: Sequence[str] = tuple(SECTIONS),
        progress: Any = None) -> tuple[list[Row], dict[str, str]]:
    """Measure the given sections, each in a fresh interpreter (so that one
    section's threads, pools and garbage do not weigh on the next); return
    (rows, section -> title)."""
    rows: list[Row] = []
    titles: dict[str, str] = {}
    for name in sections:
        t0 = time.monotonic()
        if progress:
            print(f"[bench] {name} ...", file=progress, flush=True)
        proc = subprocess.run(
            [sys.executable, "-m", f"{__name__}._section", name,
             "quick" if cfg.quick else "full"],
            stdout=subprocess.PIPE, text=True, timeout=SECTION_TIMEOUT)
        if proc.returncode != 0:
            raise RuntimeError(f"bench section {name} failed (exit {proc.returncode}); "
                               f"its traceback is above")
        data = json.loads(proc.stdout)
        rows += [Row.from_json(r) for r in data["rows"]]
        titles[name] = data["title"]
        if progress:
            print(f"[bench] {name} done in {time.monotonic() - t0:.1f} s",
                  file=progress, flush=True)
    return rows, titles


def _sections(text: str) -> list[str]:
    names = [x.strip().upper() for x in text.split(",") if x.strip()]
    unknown = [x for x in names if x not in SECTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown section(s) {', '.join(unknown) or text!r}; "
            f"choose from {', '.join(SECTIONS)}")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m aiocancel bench",
        description="Measure aiocancel against asyncio.to_thread, anyio and "
                    "hand-written alternatives; print one table of medians "
                    "and side-by-side ratios.")
    parser.add_argument("--quick", action="store_true",
                        help="every row, fewer rounds (under a minute)")
    parser.add_argument("--json", metavar="FILE", help="also write all rows and samples as JSON")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="draw P3 latency distributions and P4 growth "
                             "(needs matplotlib: pip install 'aiocancel[plot]')")
    parser.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    parser.add_argument("--only", metavar="P1,P2,...", type=_sections,
                        default=list(SECTIONS),
                        help=f"run only these sections ({','.join(SECTIONS)})")
    args = parser.parse_args(argv)
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        parser.error("--plot needs matplotlib: pip install 'aiocancel[plot]'")

    cfg = QUICK if args.quick else FULL
    started = time.monotonic()
    before = _machine.describe(sys.argv[2:] if argv is None else argv)
    rows, titles = run(cfg, args.only, progress=sys.stderr)
    elapsed = time.monotonic() - started
    header = _machine.header(before, cfg, elapsed)
    print(header)
    print(render_text(rows, titles))
    missed = [r.case for r in rows if r.met is False]
    if missed:
        print(f"\ntargets missed: {len(missed)} (see README 'Performance' for why)")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(header.replace("\n", "  \n") + "\n\n" + render_markdown(rows, titles) + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": before, "quick": cfg.quick, "seconds": elapsed,
                       "titles": titles, "rows": [r.as_json() for r in rows]}, f, indent=1)
    if args.plot:
        from . import _plot
        _plot.draw(rows, args.plot)
        print(f"plot written to {os.path.abspath(args.plot)}")
    return 0
