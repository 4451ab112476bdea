"""pytest plugin for anyio's own test suite: runs it with aiocancel's anyio
backends installed (see .ci/upstream_tests.sh)."""
import aiocancel.anyio


def pytest_configure(config):
    aiocancel.anyio.install()
