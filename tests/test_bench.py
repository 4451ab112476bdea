"""`python -m aiocancel bench`: the quick run produces every row, with finite
figures, and the invariants the rows report hold (every cancelled worker
freed, threads and fds back to baseline). No timing is asserted."""
from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest

import aiocancel
from aiocancel import bench
from aiocancel.bench import _loops
from aiocancel.bench._report import Row, render_markdown, render_text
from aiocancel.bench._stats import median, paired_ratios, percentile, rotations

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
RUN_TIMEOUT = 300     # the quick run takes ~10 s; generous for a busy CI box


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One `bench --quick` run in a subprocess (its own threads and signal
    state), with --plot when matplotlib is installed."""
    tmp = tmp_path_factory.mktemp("bench")
    cmd = [sys.executable, "-m", "aiocancel", "bench", "--quick",
           "--json", str(tmp / "out.json"), "--markdown", str(tmp / "out.md")]
    if HAS_MATPLOTLIB:
        cmd += ["--plot", str(tmp / "out.png")]
    proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    with open(tmp / "out.json") as f:
        data = json.load(f)
    return proc, data, tmp


def _rows(data):
    return {r["key"]: r for r in data["rows"]}


def _expected_keys() -> set[str]:
    names = ["aiocancel.to_thread", "asyncio.to_thread", "anyio.to_thread.run_sync",
             "aiocancel.anyio.run_sync"]
    keys = {"P1/os.read", "P1/aiocancel.syscalls.read", "P1/poll(fd, eventfd) + os.read"}
    for kind in _loops.loop_kinds():
        for conc in (1, 64):
            keys |= {f"P2/{kind}/{conc}/{name}" for name in names}
            keys.add(f"P2/{kind}/{conc}/aiocancel.to_thread/cpu")
        keys |= {f"P3/{kind}/aiocancel.to_thread/cancel",
                 f"P3/{kind}/aiocancel.to_thread/natural"}
    keys |= {"P3/asyncio/asyncio.to_thread/cancel", "P3/asyncio/asyncio.to_thread/natural",
             "P3/asyncio/anyio.to_thread.run_sync(abandon_on_cancel=True)/cancel",
             "P3/asyncio/aiocancel.anyio.run_sync/cancel"}
    for n in (64, 256, 1000):
        keys |= {f"P4/{n}/aiocancel.to_thread", f"P4/{n}/asyncio.to_thread"}
    for what in ("idle_worker", "blocked_job"):
        keys |= {f"MEM/{what}/aiocancel", f"MEM/{what}/threadpool"}
    return keys


def test_quick_run_produces_every_row(quick_run):
    proc, data, _ = quick_run
    rows = _rows(data)
    missing = _expected_keys() - set(rows)
    assert not missing, f"rows missing: {sorted(missing)}"
    assert data["quick"] is True
    assert set(data["titles"]) == set(bench.SECTIONS)
    for row in rows.values():
        assert row["case"] in proc.stdout, row["case"]
        if row["value"] is None:
            # Not measurable here: the row must say why.
            assert row["note"].startswith("n/a ("), row
            continue
        assert math.isfinite(row["value"]) and row["value"] > 0, row
        if row["ratio"] is not None:
            assert math.isfinite(row["ratio"]) and row["ratio"] > 0, row
        if row["target"] is not None:
            assert row["ratio"] is not None and row["met"] in (True, False), row


def test_quick_run_rows_without_measurement_say_why(quick_run):
    _, data, _ = quick_run
    rows = _rows(data)
    reasons = {k: r["note"] for k, r in rows.items() if r["value"] is None}
    if aiocancel.SUPPORTED:
        assert all("aiocancel.anyio" in k or "anyio" in reasons[k] for k in reasons), reasons
    else:
        for key in ("P3/asyncio/aiocancel.to_thread/cancel", "P4/64/aiocancel.to_thread"):
            assert "fallback" in reasons[key]
    if importlib.util.find_spec("aiocancel.anyio") is None:
        assert "aiocancel.anyio not available" in rows["P2/asyncio/1/aiocancel.anyio.run_sync"]["note"]


def test_quick_run_cancel_invariants(quick_run):
    """What P3/P4 report as counts must hold exactly: every aiocancel cancel
    freed its worker; every peer cancel left its worker blocked; after a
    storm every task was cancelled and threads/fds came back."""
    _, data, _ = quick_run
    for row in data["rows"]:
        extra = row["extra"]
        if row["section"] == "P3" and row["key"].endswith("/cancel") and row["value"]:
            tries = len(extra["samples_us"])
            if "aiocancel" in row["key"]:
                assert extra["freed"] == tries and extra["swallowed"] == 0, row
            else:
                assert extra["freed"] + extra["swallowed"] == tries, row
        if row["section"] == "P4" and "runs" in extra:
            n = extra["n"]
            for run in extra["runs"]:
                assert run["fds_delta"] == 0, row
                assert run["threads_delta"] <= 0, row
                if "aiocancel" in row["key"]:
                    assert run["cancelled"] == n and run["still_blocked"] == 0, row
                else:
                    assert run["still_blocked"] == n, row


def test_quick_run_outputs(quick_run):
    proc, data, tmp = quick_run
    assert proc.stdout.startswith("aiocancel ")
    for section, title in data["titles"].items():
        assert f"{section}  {title}" in proc.stdout
    markdown = (tmp / "out.md").read_text()
    assert "| **P3** |" in markdown and "aiocancel.to_thread" in markdown
    if HAS_MATPLOTLIB:
        assert (tmp / "out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        bench.main(["--only", "P9"])
    assert info.value.code == 2
    assert "unknown section" in capsys.readouterr().err


def test_plot_without_matplotlib_fails_before_measuring(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))
    monkeypatch.setattr(bench, "run", lambda *a, **k: pytest.fail("measured anyway"))
    with pytest.raises(SystemExit) as info:
        bench.main(["--quick", "--plot", os.devnull])
    assert info.value.code == 2
    assert "pip install 'aiocancel[plot]'" in capsys.readouterr().err


def test_stats():
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    assert math.isnan(median([]))
    with pytest.raises(ValueError):
        percentile([1.0], 101)
    assert paired_ratios([2.0, 6.0], [1.0, 3.0]) == [2.0, 2.0]
    with pytest.raises(ValueError):
        paired_ratios([1.0], [1.0, 2.0])
    order = rotations(["a", "b", "c"], 4)
    assert order == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]


def test_report_rendering():
    rows = [Row("S/a", "S", "alpha", 10.0, "us"),
            Row("S/b", "S", "beta", 8.0, "us", ratio=0.8, versus="alpha",
                spread=(0.7, 0.9), target=0.9),
            Row("S/c", "S", "gamma", None, "us", note="n/a (not here)")]
    assert rows[1].met is True and rows[0].met is None
    text = render_text(rows, {"S": "a section"})
    assert "S  a section" in text and "0.80x alpha [0.70-0.90]" in text
    assert "<= 0.9x met" in text and "n/a (not here)" in text
    md = render_markdown(rows, {"S": "a section"})
    assert md.count("\n") == len(rows) + 2     # header, rule, section, rows
