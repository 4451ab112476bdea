"""`python -m aiocancel stress`: the race harness, a short slice in the
default run and long variants behind the `stress` marker.

The harness is tested both ways: it finds no violation in the real core, and
it does find the violations planted by scenarios that lose a result or
invent a cancellation (so its counts are checks, not decorations)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import aiocancel
from aiocancel import _stress_scenarios as sc
from aiocancel import stress
from aiocancel._errors import Cancelled

SLICE = 3000


def _assert_clean(report: stress.Report) -> None:
    assert report.messages == []
    assert report.ok
    total = report.total
    assert total.checks > total.iterations       # several per iteration
    assert report.fds[0] == report.fds[1]
    assert report.threads[1] <= report.threads[0]


def test_slice_holds_every_invariant():
    report = stress.run(iterations=SLICE, seed=1234)
    _assert_clean(report)
    names = {k.name for k in sc.all_scenarios(aiocancel.SUPPORTED)}
    assert set(report.scenarios) == names | {"(process)"}
    assert report.total.iterations == SLICE
    for name in names:
        assert report.scenarios[name].iterations > 0, name
    assert report.total.results > 0
    assert report.total.stale > 0                 # requests for ended jobs, all missed
    if aiocancel.SUPPORTED:
        assert report.total.cancelled > 0
        assert report.core["send_esrch"] == 0


def test_scenario_subset_by_name():
    report = stress.run(iterations=300, seed=5, names=["read", "sleep"])
    _assert_clean(report)
    assert set(report.scenarios) == {"read", "sleep", "(process)"}


def test_unknown_scenario_is_a_value_error():
    with pytest.raises(ValueError, match="nope"):
        stress.run(iterations=10, names=["nope"])


# ---- the harness catches what it claims to catch ------------------------------

class _LosesBytes(sc.PipeRead):
    """A broken cancellation point: consumes the bytes, then reports
    Cancelled (the classic lost result)."""

    name = "loses-bytes"

    def op(self, arg):
        data = os.read(self.r, 65536)
        if len(data) > 1:
            raise Cancelled()
        return data


class _CancelsUnasked(sc.Sleep):
    """Cancelled with no request aimed at the job."""

    name = "cancels-unasked"

    def op(self, arg):
        raise Cancelled()


def test_harness_detects_a_lost_result():
    report = stress.run(iterations=400, seed=9, classes=[_LosesBytes])
    assert not report.ok
    assert any("written" in m or "wrong" in m for m in report.messages), report.messages


def test_harness_detects_a_cancel_without_request():
    report = stress.run(iterations=400, seed=9, classes=[_CancelsUnasked])
    assert not report.ok
    assert any("no request" in m for m in report.messages), report.messages


# ---- the command -------------------------------------------------------------

def _cli(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aiocancel", "stress", *args],
                          capture_output=True, text=True, timeout=300, env=env)


def test_cli_prints_counts_and_exits_zero():
    done = _cli("--iterations", "1500", "--seed", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "aiocancel stress: 1500 race iterations" in out
    assert "violations: 0" in out
    assert "open fds" in out and "threads" in out
    for name in ("read", "accept", "write", "waitpid", "sleep"):
        assert f"\n{name} " in out


def test_cli_processes_split_the_iterations():
    done = _cli("--iterations", "1000", "--processes", "2", "--seed", "4",
                "--scenarios", "read,write")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1000 race iterations" in done.stdout
    assert "2 process(es)" in done.stdout


@pytest.mark.parametrize("args", [["--iterations", "0"], ["--seconds", "-1"],
                                  ["--scenarios", "bogus"], ["--processes", "0"],
                                  ["--iterations", "5", "--seconds", "5"]])
def test_cli_rejects_bad_arguments(args):
    done = _cli(*args)
    assert done.returncode == 2
    assert "usage" in done.stderr


def test_cli_in_fallback_mode():
    env = dict(os.environ, AIOCANCEL_FALLBACK="1")
    done = _cli("--iterations", "800", "--seed", "6", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FALLBACK mode" in done.stdout
    assert "violations: 0" in done.stdout


# ---- long variants -------------------------------------------------------------

@pytest.mark.stress
def test_stress_half_million_iterations():
    report = stress.run(iterations=500_000)
    print(stress.format_report(report))
    _assert_clean(report)


@pytest.mark.stress
def test_stress_two_processes_two_minutes():
    done = _cli("--seconds", "120", "--processes", "2")
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
