"""``python -m aiocancel stress``: randomized cancellation races, every
invariant counted.

Usage::

    python -m aiocancel stress [--iterations N | --seconds S] [--seed N]
                               [--scenarios read,accept,...] [--processes P]

Each scenario (aiocancel/_stress_scenarios.py) pairs one long-lived worker,
which runs the same blocking call again and again as fresh jobs
(`aiocancel._corejobs`: the executor's own job protocol, without its
queues), with a driver thread. Per iteration the driver picks a plan at
random: produce what the call waits for, cancel the job, both in either
order with random spins in between, or first aim a request at a job that
already ended (this worker's previous one, or another scenario's). All
scenarios run at once, in one process (or ``--processes`` copies).

Checked at every iteration, and counted:

* no job is cancelled unless a request was aimed at its (slot, generation);
  a request for an ended job never hits (``_corejobs.cancel`` returns False);
* a job raised `Cancelled` exactly when a cancellation point acted;
* the scenario's accounting: what the kernel holds is exactly what the
  results returned so far imply (bytes in the pipe, connections queued,
  children left to reap), so a lost result shows at once;
* every job ends (a job still running 30 s after its plan is a violation).

At the end: every scenario drains and checks its totals, and the process is
back to its baseline of open fds (/proc/self/fd) and threads
(/proc/self/task). Exit status 1 on any violation.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import queue
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from . import _corejobs as jobs
from . import _stress_scenarios as sc
from . import transparent as _transparent
from ._core import SUPPORTED
from ._observe import thread_count

__all__ = ["main", "run", "Report"]

HANG_TIMEOUT = 30.0      # a job not done this long after its plan: stuck
EXIT_TIMEOUT = 10.0      # threads joined must leave /proc/self/task by then
MAX_RECORDED = 20        # violation messages kept (all are counted)

_STOP = object()


@dataclass
class Counts:
    """One scenario's tallies (also summed into the totals)."""

    iterations: int = 0
    results: int = 0          # the call returned
    cancelled: int = 0        # the call raised Cancelled
    requests: int = 0         # requests aimed at the running job
    beaten: int = 0           # ...that the call's result beat (still pending)
    stale: int = 0            # requests aimed at ended jobs (all must miss)
    checks: int = 0           # invariants evaluated
    violations: int = 0

    def add(self, other: "Counts") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class Report:
    """What `run` found; `ok` is True when no invariant failed."""

    seed: int
    seconds: float = 0.0
    scenarios: dict[str, Counts] = field(default_factory=dict)
    totals: dict[str, dict[str, int]] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    core: dict[str, int] = field(default_factory=dict)
    fds: tuple[int, int] = (0, 0)
    threads: tuple[int, int] = (0, 0)
    processes: int = 1

    @property
    def total(self) -> Counts:
        total = Counts()
        for counts in self.scenarios.values():
            total.add(counts)
        return total

    @property
    def ok(self) -> bool:
        return self.total.violations == 0

    def to_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "seconds": self.seconds,
                "scenarios": {k: vars(v) for k, v in self.scenarios.items()},
                "totals": self.totals, "messages": self.messages,
                "core": self.core, "fds": self.fds, "threads": self.threads}

    @classmethod
    def merge(cls, reports: list["Report"]) -> "Report":
        out = cls(seed=reports[0].seed, processes=len(reports))
        out.seconds = max(r.seconds for r in reports)
        for r in reports:
            for name, counts in r.scenarios.items():
                out.scenarios.setdefault(name, Counts()).add(counts)
            for name, produced in r.totals.items():
                summed = out.totals.setdefault(name, {})
                for unit, n in produced.items():
                    summed[unit] = summed.get(unit, 0) + n
            out.messages.extend(r.messages[:MAX_RECORDED - len(out.messages)])
            for name, value in r.core.items():
                out.core[name] = out.core.get(name, 0) + value
        out.fds = reports[0].fds
        out.threads = reports[0].threads
        return out


class _Budget:
    """Hands out iterations until the count or the deadline is reached."""

    def __init__(self, iterations: int | None, seconds: float | None) -> None:
        self._tickets = itertools.count()
        self.iterations = iterations
        self.deadline = None if seconds is None else time.monotonic() + seconds
        self.aborted = False

    def take(self) -> bool:
        if self.aborted:
            return False
        if self.iterations is not None and next(self._tickets) >= self.iterations:
            return False
        return self.deadline is None or time.monotonic() < self.deadline


def _spin(n: int) -> None:
    for _ in range(n):
        pass


class _Pair:
    """One scenario's worker and driver threads, and their bookkeeping."""

    def __init__(self, scenario: sc.Scenario, seed: int, budget: _Budget,
                 ended: list[Any], index: int, messages: list[str]) -> None:
        self.s = scenario
        self.seed = seed
        self.budget = budget
        self.ended = ended          # per scenario: last ended (slot, gen)
        self.index = index
        self.messages = messages
        self.counts = Counts()
        self.to_worker: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.to_driver: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.worker = threading.Thread(target=self._worker, daemon=True,
                                       name=f"stress-{scenario.name}-worker")
        self.driver = threading.Thread(target=self._driver, daemon=True,
                                       name=f"stress-{scenario.name}-driver")

    # ---- worker: the jobs ------------------------------------------------

    def _worker(self) -> None:
        s = self.s
        jobs.register_worker()
        init = getattr(s, "worker_init", None)
        if init is not None:
            init()
        rng = random.Random(self.seed ^ 0x5eed)
        get, put = self.to_worker.get, self.to_driver.put
        job_begin, job_end = jobs.begin, jobs.end
        clock = time.monotonic
        while True:
            arg = get()
            if arg is _STOP:
                return
            put(job_begin())
            if rng.random() < 0.5:
                _spin(rng.randrange(40))
            exc = None
            result = None
            t0 = clock()
            try:
                result = s.op(arg)
            except BaseException as e:      # noqa: BLE001 - judged by the driver
                exc = e
            elapsed = clock() - t0
            acted = job_end()
            if exc is None:
                try:
                    result = s.after(arg, result)
                except BaseException as e:  # noqa: BLE001
                    exc = e
            put((result, exc, acted, elapsed))

    # ---- driver: plans and checks ------------------------------------------

    def _violation(self, text: str) -> None:
        self.counts.violations += 1
        if len(self.messages) < MAX_RECORDED:
            self.messages.append(f"{self.s.name}: {text}")

    def _outcome(self, arg: Any) -> tuple[Any, ...] | None:
        try:
            outcome: tuple[Any, ...] = self.to_driver.get(timeout=HANG_TIMEOUT)
            return outcome
        except queue.Empty:
            pass
        self._violation(f"a job was still running {HANG_TIMEOUT:.0f} s after "
                        "its plan (a request or a result was lost)")
        try:
            self.s.rescue(arg)
            rescued: tuple[Any, ...] = self.to_driver.get(timeout=HANG_TIMEOUT)
            return rescued
        except (queue.Empty, Exception):  # noqa: BLE001
            self.budget.aborted = True
            return None

    def _driver(self) -> None:
        s, c = self.s, self.counts
        rng = random.Random(self.seed)
        interruptible = SUPPORTED or s.completes_alone
        cancel_job = jobs.cancel
        prev = None
        others = [i for i in range(len(self.ended)) if i != self.index]
        try:
            while self.budget.take():
                arg = s.prepare(rng)
                self.to_worker.put(arg)
                slot, gen = self.to_driver.get()
                plan = rng.randrange(8)
                requested = False
                if plan == 6 and prev is not None:
                    c.stale += 1
                    if cancel_job(*prev):
                        self._violation(f"a request for ended job {prev} hit")
                elif plan == 7 and others:
                    target = self.ended[rng.choice(others)]
                    if target is not None:
                        c.stale += 1
                        if cancel_job(*target):
                            self._violation(f"a request for another scenario's "
                                            f"ended job {target} hit")
                produce = plan not in (1, 2) or not interruptible
                cancel = plan != 0
                cancel_first = plan in (2, 4) or (plan >= 6 and rng.random() < 0.5)
                for step in (0, 1):
                    if plan != 2:
                        _spin(rng.randrange(120))
                    if (step == 0) == cancel_first:
                        if cancel:
                            requested = True
                            c.requests += 1
                            cancel_job(slot, gen)
                    elif produce:
                        s.produce(arg, rng)
                outcome = self._outcome(arg)
                if outcome is None:
                    return
                self._judge(arg, outcome, requested)
                prev = (slot, gen)
                self.ended[self.index] = prev
        except sc.Violation as v:
            self._violation(str(v))
            self.budget.aborted = True
        except Exception as e:     # noqa: BLE001 - a broken harness is a failure
            self._violation(f"driver failed: {e!r}")
            self.budget.aborted = True
        finally:
            self.to_worker.put(_STOP)

    def _judge(self, arg: Any, outcome: tuple[Any, ...], requested: bool) -> None:
        s, c = self.s, self.counts
        result, exc, acted, elapsed = outcome
        c.iterations += 1
        cancelled = sc.is_cancellation(exc, acted)
        if exc is not None and not cancelled:
            self._violation(f"the call raised {exc!r}")
            raise sc.Violation(f"unexpected exception {exc!r}")
        c.checks += 3
        if cancelled:
            c.cancelled += 1
            if not requested:
                self._violation("a job was cancelled though no request was "
                                "aimed at it")
            if not acted:
                self._violation("Cancelled raised but no cancellation point acted")
        else:
            c.results += 1
            if requested:
                c.beaten += 1
            if acted:
                self._violation("a cancellation point acted but the call "
                                "returned a result")
        c.checks += s.account(arg, cancelled, result, elapsed)


# ---- the run ---------------------------------------------------------------

def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _start_resender() -> None:
    """Transparent mode's re-sender is a thread the core starts once, at the
    first transparent request, and keeps: start it before the baseline."""
    def kick() -> None:
        _transparent.enable(True)
        jobs.cancel(*jobs.begin())
        jobs.end()
    thread = threading.Thread(target=kick)
    thread.start()
    thread.join()
    _gone(thread.native_id)


def _gone(native_id: int | None) -> None:
    """Wait until a joined thread has left /proc/self/task (join returns
    before the kernel thread exits)."""
    deadline = time.monotonic() + EXIT_TIMEOUT
    while (os.path.exists(f"/proc/self/task/{native_id}")
           and time.monotonic() < deadline):
        time.sleep(0.001)


def _settle(baseline: int) -> int:
    deadline = time.monotonic() + EXIT_TIMEOUT
    while thread_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.001)
    return thread_count()


def run(iterations: int | None = None, seconds: float | None = None,
        seed: int | None = None, names: list[str] | None = None,
        progress: Callable[[str], None] | None = None,
        classes: list[type[sc.Scenario]] | None = None) -> Report:
    """Run the races in this process until `iterations` (in total) or
    `seconds` are used up; return the `Report`. `names` selects scenarios;
    `classes` replaces them (tests of the harness itself)."""
    if iterations is None and seconds is None:
        iterations = 200_000
    seed = random.randrange(1 << 32) if seed is None else seed
    if classes is None:
        classes = sc.all_scenarios(SUPPORTED)
    if names:
        unknown = set(names) - {k.name for k in classes}
        if unknown:
            raise ValueError(f"unknown scenario(s): {', '.join(sorted(unknown))}")
        classes = [k for k in classes if k.name in names]
    if any(getattr(k, "transparent", False) for k in classes):
        _start_resender()
    report = Report(seed=seed)
    fds0, threads0 = _fds(), thread_count()
    stats0 = jobs.stats()
    scenarios = [k() for k in classes]
    for s in scenarios:
        s.setup()
    budget = _Budget(iterations, seconds)
    ended: list[Any] = [None] * len(scenarios)
    pairs = [_Pair(s, seed + i, budget, ended, i, report.messages)
             for i, s in enumerate(scenarios)]
    t0 = time.monotonic()
    for p in pairs:
        p.worker.start()
        p.driver.start()
    for p in pairs:
        while p.driver.is_alive():
            p.driver.join(1.0)
            if progress is not None:
                progress(f"{sum(q.counts.iterations for q in pairs)} iterations")
        p.worker.join(HANG_TIMEOUT)
    report.seconds = time.monotonic() - t0
    for p in pairs:
        report.scenarios[p.s.name] = p.counts
        if p.worker.is_alive():
            p._violation("the worker thread did not exit")
            continue
        try:
            p.counts.checks += p.s.finish()
        except sc.Violation as v:
            p._violation(str(v))
        p.s.close()
        report.totals[p.s.name] = p.s.totals()
    report.core = {k: v - stats0.get(k, 0) for k, v in jobs.stats().items()}
    threads1 = _settle(threads0)
    fds1 = _fds()
    report.fds = (len(fds0), len(fds1))
    report.threads = (threads0, threads1)
    process = Counts(checks=2)
    for bad, text in ((fds1 != fds0, f"open fds changed: +{sorted(fds1 - fds0)} "
                                     f"-{sorted(fds0 - fds1)}"),
                      (threads1 > threads0, f"{threads1 - threads0} thread(s) "
                                            "more than at the start")):
        if bad:
            process.violations += 1
            report.messages.append(f"process: {text}")
    report.scenarios["(process)"] = process
    return report


# ---- output ------------------------------------------------------------------

def format_report(report: Report) -> str:
    t = report.total
    rate = t.iterations / report.seconds if report.seconds else 0.0
    lines = [
        f"aiocancel stress: {t.iterations} race iterations in "
        f"{report.seconds:.1f} s ({rate:.0f}/s), seed {report.seed}, "
        f"{report.processes} process(es), "
        f"{jobs.describe_core()}",
        f"{'scenario':18}{'iterations':>11}{'results':>10}{'cancelled':>10}"
        f"{'requests':>10}{'beaten':>9}{'stale':>8}{'checks':>10}{'viol.':>6}  accounted",
    ]
    for name, c in report.scenarios.items():
        lines.append(f"{name:18}{c.iterations:>11}{c.results:>10}{c.cancelled:>10}"
                     f"{c.requests:>10}{c.beaten:>9}{c.stale:>8}{c.checks:>10}"
                     f"{c.violations:>6}  {_units(report.totals.get(name, {}))}")
    lines.append(f"{'total':18}{t.iterations:>11}{t.results:>10}{t.cancelled:>10}"
                 f"{t.requests:>10}{t.beaten:>9}{t.stale:>8}{t.checks:>10}"
                 f"{t.violations:>6}")
    if report.core:
        lines.append("core: " + ", ".join(f"{k}={v}" for k, v in report.core.items()))
    lines.append(f"open fds {report.fds[0]} -> {report.fds[1]}, "
                 f"threads {report.threads[0]} -> {report.threads[1]}")
    lines.extend(f"VIOLATION {m}" for m in report.messages)
    lines.append(f"invariants checked: {t.checks}, violations: {t.violations}")
    return "\n".join(lines)


def _units(produced: dict[str, int]) -> str:
    return ", ".join(f"{unit}={n}" for unit, n in produced.items())


def _child_args(args: argparse.Namespace, share: int | None, seed: int) -> list[str]:
    out = [sys.executable, "-m", "aiocancel", "stress", "--json",
           "--seed", str(seed)]
    if share is not None:
        out += ["--iterations", str(share)]
    if args.seconds is not None:
        out += ["--seconds", str(args.seconds)]
    if args.scenarios:
        out += ["--scenarios", args.scenarios]
    return out


def _from_json(data: dict[str, Any]) -> Report:
    report = Report(seed=data["seed"], seconds=data["seconds"],
                    totals=data["totals"], messages=data["messages"],
                    core=data["core"], fds=tuple(data["fds"]),
                    threads=tuple(data["threads"]))
    report.scenarios = {k: Counts(**v) for k, v in data["scenarios"].items()}
    return report


def _run_processes(args: argparse.Namespace, seed: int) -> Report:
    n = args.processes
    shares = None
    if args.iterations is not None:
        shares = [args.iterations // n + (i < args.iterations % n) for i in range(n)]
    procs = [subprocess.Popen(_child_args(args, None if shares is None else shares[i],
                                          seed + 1000 * i),
                              stdout=subprocess.PIPE, text=True)
             for i in range(n)]
    reports = []
    for p in procs:
        out, _ = p.communicate()
        reports.append(_from_json(json.loads(out)))
    return Report.merge(reports)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m aiocancel stress",
        description="Randomized cancellation races with every result "
                    "accounted for (see aiocancel/stress.py).")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--iterations", type=int, default=None,
                        help="total race iterations (default 200000)")
    budget.add_argument("--seconds", type=float, default=None,
                        help="run for this long instead")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--scenarios", default="",
                        help="comma-separated subset of: " + ",".join(
                            k.name for k in sc.all_scenarios(True)))
    parser.add_argument("--processes", type=int, default=1,
                        help="run this many copies in parallel (own GIL each)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.iterations is not None and args.iterations < 1:
        parser.error("--iterations must be positive")
    if args.seconds is not None and args.seconds <= 0:
        parser.error("--seconds must be positive")
    if args.processes < 1:
        parser.error("--processes must be positive")
    seed = random.randrange(1 << 32) if args.seed is None else args.seed
    names = [n for n in args.scenarios.split(",") if n]
    if args.processes > 1:
        report = _run_processes(args, seed)
    else:
        try:
            report = run(args.iterations, args.seconds, seed, names)
        except ValueError as e:
            parser.error(str(e))
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        print(format_report(report))
    return 0 if report.ok else 1
