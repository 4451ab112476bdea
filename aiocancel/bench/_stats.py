"""Robust statistics for noisy shared machines: medians, percentiles and
ratios of measurements taken side by side (paired per round)."""
from __future__ import annotations

import math
from typing import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks; NaN for
    no values."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be in 0..100, not {q!r}")
    data = sorted(values)
    if not data:
        return math.nan
    pos = (len(data) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def paired_ratios(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """a[i] / b[i] for each round i: both were measured within the same
    round, so a slow phase of the machine inflates both."""
    if len(a) != len(b):
        raise ValueError(f"unpaired samples: {len(a)} vs {len(b)}")
    return [x / y for x, y in zip(a, b) if y > 0]


def rotations(names: Sequence[str], rounds: int) -> list[list[str]]:
    """The order of the contenders in each round: A B C, B C A, C A B, ...
    so that no contender always runs first (cold) or last."""
    n = len(names)
    return [[names[(r + i) % n] for i in range(n)] for r in range(rounds)]
