"""A throwaway PostgreSQL cluster for the driver tests.

`pg_dsn` (session scope) runs initdb and pg_ctl from the newest
/usr/lib/postgresql/*/bin (Debian's ``postgresql`` package) on a unix socket
in a temporary directory, with no TCP listener, and removes it afterwards.
initdb refuses to run as root: as root, the server runs as the ``postgres``
user (runuser). Without a PostgreSQL installation the tests are skipped with
that reason, or fail if ``AIOCANCEL_REQUIRE_POSTGRES=1`` (CI sets it).
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from typing import Iterator

import pytest


def _pg_bin() -> str | None:
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                  key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0)
    for d in reversed(dirs):
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    return None


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--"] + argv


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A libpq connection string to a fresh cluster's ``postgres`` database."""
    bindir = _pg_bin()
    if bindir is None:
        missing = ("PostgreSQL server binaries not found in "
                   "/usr/lib/postgresql/*/bin (apt-get install postgresql)")
        if os.environ.get("AIOCANCEL_REQUIRE_POSTGRES", "") not in ("", "0"):
            pytest.fail(missing)     # CI: never skip these silently
        pytest.skip(missing)
    if os.geteuid() == 0:
        try:
            server_user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no 'postgres' user to run the server")
    top = tempfile.mkdtemp(prefix="aiocancel-pg-")
    data, sock, log = (os.path.join(top, n) for n in ("data", "sock", "log"))
    os.mkdir(sock)
    if os.geteuid() == 0:
        for path in (top, sock):
            os.chown(path, server_user.pw_uid, server_user.pw_gid)
    try:
        subprocess.run(
            _as_server_user([os.path.join(bindir, "initdb"), "-D", data, "-A",
                             "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]),
            check=True, capture_output=True, timeout=120)
        subprocess.run(
            _as_server_user([os.path.join(bindir, "pg_ctl"), "-D", data, "-l", log,
                             "-w", "-t", "60", "-o",
                             f"-k {sock} -c listen_addresses='' -F", "start"]),
            check=True, capture_output=True, timeout=120)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(top, ignore_errors=True)
        raise RuntimeError(f"starting PostgreSQL failed: {exc.stderr.decode()}") from exc
    try:
        yield f"host={sock} dbname=postgres user=postgres"
    finally:
        subprocess.run(
            _as_server_user([os.path.join(bindir, "pg_ctl"), "-D", data, "-m",
                             "immediate", "-w", "stop"]),
            capture_output=True, timeout=60)
        shutil.rmtree(top, ignore_errors=True)
