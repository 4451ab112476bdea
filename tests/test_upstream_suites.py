"""CPython's own thread-pool tests with `aiocancel.Executor` swapped in for
``concurrent.futures.ThreadPoolExecutor`` (issue 16): test.test_concurrent_futures
(test_thread_pool, test_shutdown, test_as_completed, test_wait, test_future;
their process-pool classes left out) and test.test_asyncio.test_threads
(whose default executor is then an aiocancel.Executor).

They run in a child interpreter from the running interpreter's own stdlib
``test`` package (no download): a split package on 3.12+, one module on
3.11. An interpreter built without the ``test`` package skips them (the
pyenv 3.11.7 and 3.12.1 builds here ship test_asyncio but not
test_concurrent_futures). Cost: about 35 s on 2 cores for the 60
concurrent.futures tests (their own timeouts: test_map_timeout alone waits
6 s) and 2 s for test_threads.
anyio's own test_to_thread.py runs in .ci/upstream_tests.sh (it needs the
sdist)."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import pytest

from asyncio_fixtures import child_env

RUNNER = r'''
import sys, unittest
import concurrent.futures, concurrent.futures.thread
import aiocancel

# The swap: every ThreadPoolExecutor the tests (and asyncio's default
# executor) create is an aiocancel.Executor.
concurrent.futures.ThreadPoolExecutor = aiocancel.Executor
concurrent.futures.thread.ThreadPoolExecutor = aiocancel.Executor

def flat(suite):
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            yield from flat(test)
        else:
            yield test

# Left out: tests that start a fresh interpreter in isolated mode (-I) which
# imports the executor class by its name from concurrent.futures: no swap
# reaches it (it would get the abstract concurrent.futures.Executor).
UNREACHABLE = {"test_interpreter_shutdown", "test_submit_after_interpreter_shutdown",
               "test_hang_gh83386"}

loader = unittest.TestLoader()
suite = unittest.TestSuite()
for name in sys.argv[1:]:
    suite.addTests(t for t in flat(loader.loadTestsFromName(name))
                   if "ProcessPool" not in type(t).__name__
                   and t._testMethodName not in UNREACHABLE)
result = unittest.TextTestRunner(verbosity=1).run(suite)
print("\nRAN", result.testsRun, "FAILURES", len(result.failures),
      "ERRORS", len(result.errors), "SKIPPED", len(result.skipped))
sys.exit(not result.wasSuccessful())
'''

_FUTURES = ["test_thread_pool", "test_shutdown", "test_as_completed",
            "test_wait", "test_future"]


def _exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _futures_tests() -> list[str]:
    package = "test.test_concurrent_futures"
    if _exists(f"{package}.test_thread_pool"):          # 3.12+
        return [f"{package}.{name}" for name in _FUTURES]
    if _exists(package):                                 # 3.11: one module
        return [package]
    pytest.skip("this interpreter has no stdlib test.test_concurrent_futures")


def _run(names: list[str]) -> str:
    proc = subprocess.run([sys.executable, "-c", RUNNER, *names],
                          capture_output=True, text=True, env=child_env(),
                          timeout=600)
    summary = re.findall(r"^RAN \d+ FAILURES \d+ ERRORS \d+ SKIPPED \d+$",
                         proc.stdout, re.M)
    assert proc.returncode == 0 and summary, proc.stdout[-3000:] + proc.stderr[-6000:]
    return summary[0]


def test_cpython_concurrent_futures_tests_pass_with_the_swap():
    summary = _run(_futures_tests())
    ran = int(summary.split()[1])
    assert ran > 50, summary
    assert "FAILURES 0 ERRORS 0" in summary, summary


def test_cpython_asyncio_thread_tests_pass_with_the_swap():
    if not _exists("test.test_asyncio.test_threads"):
        pytest.skip("this interpreter has no stdlib test.test_asyncio")
    summary = _run(["test.test_asyncio.test_threads"])
    assert int(summary.split()[1]) > 5, summary
    assert "FAILURES 0 ERRORS 0" in summary, summary
