"""Jobs at the core's level: the small internal API under `aiocancel._job.Job`.

A worker thread registers once (`register_worker`); each job it runs is
bracketed by `begin`, which returns the job's id, a (slot, generation) pair
naming this thread's slot and a generation that no earlier job had, and
`end`, which says whether a cancellation point acted on the job. `cancel`
aims a request at one job by its id, from any thread: it hits only while that
very job runs (True), and misses a job that has ended (False), so a late
request never reaches the worker's next job.

The names are the compiled core's (or the fallback's) functions themselves,
not wrappers: the stress harness calls them in its hot loop. Used by the
stress harness (aiocancel/stress.py), which drives jobs without an
executor's queues, and by `aiocancel._job.Job`.
"""
from __future__ import annotations

from ._core import SUPPORTED
from ._core import cancel as _cancel

__all__ = ["JobId", "begin", "end", "cancel", "register_worker", "stats",
           "describe_core"]

JobId = tuple[int, int]
"""(slot, generation): one job of one worker thread."""

#: Register the calling thread as a worker (idempotent); returns its slot.
register_worker = _cancel._worker_slot
#: Start a job in the calling (registered) thread; returns its `JobId`.
begin = _cancel._job_begin
#: End the calling thread's job; True if a cancellation point acted on it.
end = _cancel._job_end
#: Request the cancel of job ``(slot, generation)``; False if it has ended.
cancel = _cancel._cancel_job


def stats() -> dict[str, int]:
    """The core's counters (signals sent, deferred, ...); empty in fallback
    mode, which keeps none."""
    counters = getattr(_cancel, "_stats", None)
    return dict(counters()) if counters is not None else {}


def describe_core() -> str:
    """One phrase for reports: which core runs (and its cancel signal)."""
    if SUPPORTED:
        return f"compiled core, cancel signal {_cancel.cancel_signal()}"
    return "FALLBACK mode"
