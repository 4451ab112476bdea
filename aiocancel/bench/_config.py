"""How much each section measures: the full run, and --quick (which must
finish in well under a minute on 2 busy cores)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Config:
    quick: bool
    p1_rounds: int          # interleaved rounds of each contender
    p1_calls: int           # calls per round (bounded by the pipe's size)
    p2_rounds: int
    p2_calls: int           # awaited calls per round and contender
    p2_concurrency: tuple[int, ...]
    p3_tries: int           # cancels, and as many natural completions
    p3_peer_tries: int
    p4_sizes: tuple[int, ...]
    p4_repeats: int
    mem_workers: int


FULL = Config(quick=False, p1_rounds=61, p1_calls=50_000, p2_rounds=61,
              p2_calls=640, p2_concurrency=(1, 64), p3_tries=3_000,
              p3_peer_tries=500, p4_sizes=(64, 256, 1000), p4_repeats=5,
              mem_workers=200)

QUICK = Config(quick=True, p1_rounds=11, p1_calls=20_000, p2_rounds=15,
               p2_calls=256, p2_concurrency=(1, 64), p3_tries=500,
               p3_peer_tries=50, p4_sizes=(64, 256, 1000), p4_repeats=1,
               mem_workers=100)
