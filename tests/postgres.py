"""A real PostgreSQL server for the tests: started once per session, stopped at its end.

The server is Debian's ``postgresql`` package (binaries under
``/usr/lib/postgresql/<version>/bin``), run as an unprivileged user: PostgreSQL refuses
to run as root, and CI runs the tests as root, so there ``initdb``, ``pg_ctl`` and the
server run as the package's ``postgres`` system user through ``runuser``. It gets a
data directory of its own in a fresh temporary folder (never the package's default
cluster), listens on a free TCP port of 127.0.0.1 only, keeps its unix socket in that
folder, trusts local connections (a throwaway server holding generated data) and is
tuned for speed, not durability (``fsync=off``).

What the tests use (registered as fixtures by ``tests/conftest.py``):

- ``postgres_server`` (session): the running :class:`PostgresServer`;
- ``postgres_url`` (per test): a fresh, empty database on it, as a SQLAlchemy URL
  ``postgresql+psycopg://leadscore@127.0.0.1:PORT/test_N``;
- :func:`load_frames`: write DataFrames into tables of such a database.

Without PostgreSQL installed the fixture fails under CI (``CI=true``: ``.ci/run``
installs the package, so a missing server there is a broken install step, not a reason
to skip) and skips elsewhere, saying how to install it.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # pandas and SQLAlchemy are imported when a test loads frames
    import pandas as pd

__all__ = ["PostgresServer", "find_pg_bin", "load_frames", "postgres_server", "postgres_url",
           "require_pg_bin", "start_server"]

SUPERUSER = "leadscore"
"""The server's superuser (``initdb -U``), which the tests connect as."""

RUN_AS = "postgres"
"""The unprivileged account that runs the server when the tests run as root."""


def find_pg_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` that has initdb and pg_ctl."""
    found = []
    for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        bin_dir = Path(initdb).parent
        try:
            version = int(bin_dir.parent.name)
        except ValueError:
            continue
        if (bin_dir / "pg_ctl").is_file():
            found.append((version, bin_dir))
    return max(found)[1] if found else None


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require_pg_bin() -> Path:
    """:func:`find_pg_bin`, or fail under CI / skip elsewhere, saying how to install it."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        message = ("PostgreSQL is not installed: no /usr/lib/postgresql/<version>/bin/initdb. "
                   "Install Debian's package: apt-get install postgresql")
        if _in_ci():
            pytest.fail(f"{message} (CI=true: .ci/run should have installed it)")
        pytest.skip(message)
    return bin_dir


@dataclass
class PostgresServer:
    """One running server: where it lives, how to reach it, how to stop it."""

    bin_dir: Path
    root: Path
    port: int
    run_as: str | None
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL (psycopg 3 driver) of ``database`` over TCP."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run a PostgreSQL program from ``bin_dir`` as the server's user."""
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        return subprocess.run(command, cwd=self.root, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (``test_N`` unless named); return its URL."""
        import psycopg

        name = name or f"test_{next(self._names)}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER,
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def is_running(self) -> bool:
        return self.run("pg_ctl", "status", "-D", str(self.data_dir)).returncode == 0

    def stop(self) -> None:
        """``pg_ctl stop -m fast``, waiting until the postmaster has exited."""
        if (self.data_dir / "postmaster.pid").exists():
            done = self.run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w",
                            "-t", "60")
            if done.returncode != 0 and self.is_running():
                self.run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "immediate", "-w")
                raise RuntimeError(f"PostgreSQL did not stop fast: {done.stderr.strip()}")


def _server_user() -> str | None:
    """Who runs the server: nobody else when we are not root; ``postgres`` when root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(RUN_AS)
    except KeyError:
        pytest.fail(
            f"the tests run as root and there is no {RUN_AS!r} user to run PostgreSQL as "
            "(Debian's postgresql package creates it); install the package"
        )
    return RUN_AS


def _free_port() -> int:
    from tests.servers import free_port

    return free_port()


def start_server(bin_dir: Path) -> PostgresServer:
    """initdb into a new temporary folder and start a server on a free port."""
    run_as = _server_user()
    root = Path(tempfile.mkdtemp(prefix="leadscore-pg-"))
    server = PostgresServer(bin_dir=bin_dir, root=root, port=0, run_as=run_as)
    server.socket_dir.mkdir()
    if run_as:
        # The folder (and the path to it, /tmp) must be the server user's to write.
        entry = pwd.getpwnam(run_as)
        for path in (root, server.socket_dir):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    init = server.run("initdb", "-D", str(server.data_dir), "-U", SUPERUSER,
                      "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed:\n{init.stdout}\n{init.stderr}")
    options = " ".join([
        "-c listen_addresses=127.0.0.1", f"-k {server.socket_dir}", "-c timezone=UTC",
        "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off",
        "-c max_connections=50",
    ])
    # A free port can be taken between our check and the server's bind: try a few.
    for _ in range(3):
        server.port = _free_port()
        started = server.run("pg_ctl", "start", "-D", str(server.data_dir), "-l",
                             str(server.log_file), "-w", "-t", "60",
                             "-o", f"-p {server.port} {options}")
        if started.returncode == 0:
            return server
        server.stop()
    log = server.log_file.read_text() if server.log_file.exists() else ""
    shutil.rmtree(root, ignore_errors=True)
    raise RuntimeError(f"pg_ctl start failed:\n{started.stderr}\n{log[-3000:]}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session, stopped (``-m fast``) at its end."""
    server = start_server(require_pg_bin())
    try:
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database for one test, as a ``postgresql+psycopg://`` URL."""
    return postgres_server.create_database()


def load_frames(url: str, frames: Mapping[str, pd.DataFrame], *,
                if_exists: str = "fail") -> None:
    """Write each DataFrame into the table named by its key (``{"leads": df, ...}``).

    For a test that reads a CRM from a database, e.g. through a dataset spec whose
    source is a database URL::

        def test_spec_reads_postgres(postgres_url):
            load_frames(postgres_url, {"leads": leads, "activities": activities})
            ...  # a spec with source: postgres_url and the tables' names

    ``if_exists`` is pandas' (``"fail"``, ``"replace"``, ``"append"``); every table is
    written in one transaction.

    Timezone-aware timestamp columns become ``timestamptz``. A naive one is refused:
    written as ``timestamp`` it would be read back in whatever zone a reader assumes,
    which is the shift the data contract forbids; localise it first.
    """
    import pandas as pd
    from sqlalchemy import create_engine
    from sqlalchemy.types import TIMESTAMP

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for table, frame in frames.items():
                dtypes = {}
                for column, dtype in frame.dtypes.items():
                    if pd.api.types.is_datetime64_any_dtype(dtype):
                        if getattr(dtype, "tz", None) is None:
                            raise ValueError(
                                f"load_frames: {table}.{column} holds naive timestamps; "
                                "expected timezone-aware ones (e.g. .dt.tz_localize('UTC'))"
                            )
                        dtypes[column] = TIMESTAMP(timezone=True)
                frame.to_sql(table, conn, index=False, if_exists=if_exists, dtype=dtypes)
    finally:
        engine.dispose()

