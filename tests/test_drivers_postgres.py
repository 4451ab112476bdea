"""psycopg2 and psycopg 3 under aiocancel: a cancelled query is cancelled on
the server, the driver raises its own QueryCanceled, and the connection
stays in step (every later query returns its own rows), with and without
transparent mode. Needs PostgreSQL's server binaries (see pg_fixtures)."""
from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any, Callable, Iterator

import pytest

import aiocancel
from job_helpers import cancelled_before
from pg_fixtures import pg_dsn  # noqa: F401

psycopg2 = pytest.importorskip("psycopg2", reason="psycopg2-binary is not installed")
psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")
import psycopg2.errors  # noqa: E402
import psycopg2.extras  # noqa: E402

DEADLINE = 5.0     # "within a second", on a loaded 2-core machine


def connect(driver: str, dsn: str, autocommit: bool = True) -> Any:
    if driver == "psycopg2":
        conn = psycopg2.connect(dsn)
        conn.autocommit = autocommit
        return conn
    return psycopg.connect(dsn, autocommit=autocommit)


def query_canceled(driver: str) -> type[BaseException]:
    return (psycopg2.errors.QueryCanceled if driver == "psycopg2"
            else psycopg.errors.QueryCanceled)


def query(conn: Any, sql: str, params: tuple = ()) -> list:
    cur = conn.cursor()
    try:
        cur.execute(sql, params or None)
        return cur.fetchall()
    finally:
        cur.close()


def running(monitor: Any, sql: str) -> int:
    rows = query(monitor, "SELECT count(*) FROM pg_stat_activity "
                 "WHERE query = %s AND state = 'active'", (sql,))
    return rows[0][0]


def wait_gone(monitor: Any, sql: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while running(monitor, sql):
        assert time.monotonic() < deadline, f"{sql!r} still runs on the server"
        time.sleep(0.02)


class Recorder:
    """Runs queries on one connection in a job, keeping what each raised."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.raised: list[BaseException] = []

    def __call__(self, sql: str) -> list:
        try:
            return query(self.conn, sql)
        except BaseException as exc:
            self.raised.append(exc)
            raise


@contextlib.contextmanager
def session(driver: str, dsn: str) -> Iterator[tuple[Recorder, Any, str]]:
    """A connection to run (and cancel) queries on, wrapped in a Recorder; a
    second one to watch the server with; a pg_sleep query unique to the
    test (so pg_stat_activity shows only its own)."""
    conn = connect(driver, dsn)
    monitor = connect(driver, dsn)
    try:
        yield Recorder(conn), monitor, f"SELECT pg_sleep(30) /* {uuid.uuid4()} */"
    finally:
        conn.close()
        monitor.close()


FRONTS: dict[str, Callable[..., Any]] = {
    "asyncio.to_thread": asyncio.to_thread,
    "aiocancel.to_thread": aiocancel.to_thread,
}


async def cancelled_by_timeout(driver: str, dsn: str, transparent: bool,
                               front: str) -> None:
    # One worker: "the worker is free" is "the next job runs".
    aiocancel.install(executor=aiocancel.Executor(1, transparent=transparent))
    to_thread = FRONTS[front]
    with session(driver, dsn) as (run, monitor, sleep):
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await to_thread(run, sleep)
        assert time.monotonic() - start < DEADLINE
        free = await asyncio.wait_for(to_thread(lambda: "free"), DEADLINE)
        assert free == "free"
        assert len(run.raised) == 1
        assert isinstance(run.raised[0], query_canceled(driver)), run.raised
        wait_gone(monitor, sleep)
        for i in range(1, 6):
            assert await to_thread(run, f"SELECT {i}") == [(i,)]
        assert len(run.raised) == 1


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        uvloop = pytest.importorskip("uvloop", reason="uvloop is not installed")
        return uvloop.new_event_loop
    return asyncio.new_event_loop


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("front", list(FRONTS))
@pytest.mark.parametrize("transparent", [False, True], ids=["masked", "transparent"])
@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_pg_sleep_cancelled_on_server(pg_dsn: str, driver: str, transparent: bool,  # noqa: F811
                                      front: str, loop: str) -> None:
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        runner.run(cancelled_by_timeout(driver, pg_dsn, transparent, front))


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_anyio_plugin_cancels_on_server(pg_dsn: str, driver: str,  # noqa: F811
                                        backend: str) -> None:
    """The same through aiocancel.anyio.install() (Starlette and FastAPI
    sync endpoints), transparent mode on, under an anyio cancel scope."""
    anyio = pytest.importorskip("anyio")
    import aiocancel.anyio

    async def main() -> None:
        with session(driver, pg_dsn) as (run, monitor, sleep):
            start = time.monotonic()
            with anyio.move_on_after(0.3) as scope:
                await anyio.to_thread.run_sync(run, sleep)
            assert scope.cancelled_caught
            assert time.monotonic() - start < DEADLINE
            assert isinstance(run.raised[0], query_canceled(driver)), run.raised
            wait_gone(monitor, sleep)
            for i in range(1, 4):
                assert await anyio.to_thread.run_sync(run, f"SELECT {i}") == [(i,)]

    aiocancel.anyio.install(transparent=True)
    try:
        anyio.run(main, backend=backend)
    finally:
        aiocancel.anyio.uninstall()


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_cancel_in_transaction_then_rollback(pg_dsn: str, driver: str) -> None:  # noqa: F811
    async def main() -> None:
        aiocancel.install(executor=aiocancel.Executor(1, transparent=True))
        conn = connect(driver, pg_dsn, autocommit=False)
        try:
            run = Recorder(conn)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await aiocancel.to_thread(run, "SELECT pg_sleep(30)")
            assert isinstance(run.raised[0], query_canceled(driver))
            await aiocancel.to_thread(conn.rollback)
            assert await aiocancel.to_thread(run, "SELECT 7") == [(7,)]
            await aiocancel.to_thread(conn.commit)
        finally:
            conn.close()
    asyncio.run(main())


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_request_pending_before_query_sends_nothing(pg_dsn: str, driver: str) -> None:  # noqa: F811
    """A job cancelled before its query starts raises Cancelled at the query
    (nothing is sent) and the connection stays usable."""
    conn = connect(driver, pg_dsn)
    sent: list[str] = []

    def step() -> list:
        sent.append("query")
        return query(conn, "SELECT 42")

    future = cancelled_before(step)
    outcome = None if future.cancelled() else future.exception()
    assert future.cancelled() or outcome is not None
    assert sent == ["query"]
    assert not isinstance(outcome, query_canceled(driver))
    assert query(conn, "SELECT 43") == [(43,)]
    conn.close()


def test_psycopg2_factories_kept(pg_dsn: str) -> None:  # noqa: F811
    """The guarded subclasses keep the connection and cursor factories the
    application asked for, and named cursors fetch through the guard."""
    with aiocancel.Executor(1):
        pass                                  # activates the driver hooks
    conn = psycopg2.connect(pg_dsn, connection_factory=psycopg2.extras.DictConnection)
    try:
        assert isinstance(conn, psycopg2.extras.DictConnection)
        cur = conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)
        assert isinstance(cur, psycopg2.extras.RealDictCursor)
        cur.execute("SELECT 1 AS one")
        assert cur.fetchall() == [{"one": 1}]
        named = conn.cursor("named")
        named.execute("SELECT generate_series(1, 5)")
        assert [row[0] for row in named] == [1, 2, 3, 4, 5]
        named.close()
        conn.rollback()
    finally:
        conn.close()
