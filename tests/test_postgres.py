"""The PostgreSQL test fixture itself: who runs the server, where, and that it stops."""

from __future__ import annotations

import os
import pwd
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from tests.postgres import SUPERUSER, load_frames, require_pg_bin, start_server

pytestmark = pytest.mark.integration


def _postmaster_pid(data_dir) -> int:
    return int((data_dir / "postmaster.pid").read_text().splitlines()[0])


def _alive(pid: int) -> bool:
    """True while ``pid`` runs; an exited process awaiting its reaper (state Z) is not."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        if state == "Z":
            return False
        time.sleep(0.1)
    return True


def _proc_user(pid: int) -> str:
    return pwd.getpwuid(os.stat(f"/proc/{pid}").st_uid).pw_name


def test_server_runs_unprivileged_on_loopback_with_its_own_data_dir(postgres_server,
                                                                     postgres_url):
    pid = _postmaster_pid(postgres_server.data_dir)
    assert _proc_user(pid) != "root"
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            settings = dict(conn.execute(text(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('data_directory', 'listen_addresses', 'port', 'unix_socket_directories')"
            )).all())
            user = conn.execute(text("SELECT current_user")).scalar_one()
    finally:
        engine.dispose()
    assert settings == {
        "data_directory": str(postgres_server.data_dir),
        "listen_addresses": "127.0.0.1",
        "port": str(postgres_server.port),
        "unix_socket_directories": str(postgres_server.socket_dir),
    }
    assert user == SUPERUSER
    assert postgres_url.startswith(f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:")


def test_each_test_gets_a_fresh_database(postgres_server, postgres_url):
    other = postgres_server.create_database()
    assert other != postgres_url
    load_frames(postgres_url, {"t": pd.DataFrame({"x": [1]})})
    engine = create_engine(other)
    try:
        with engine.connect() as conn:
            tables = conn.execute(text(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            )).scalar_one()
    finally:
        engine.dispose()
    assert tables == 0


def test_load_frames_writes_timestamptz_that_read_back_equal(postgres_url):
    leads = pd.DataFrame({
        "lead_id": pd.array(["L1", "L2", "L3"], dtype="string"),
        "created_at": pd.to_datetime(["2026-01-01T09:30:00Z", "2026-01-02T00:00:00+02:00",
                                      "2026-01-03T23:59:59Z"], utc=True),
        "company_size": [5.0, None, 500.0],
    })
    activities = pd.DataFrame({
        "lead_id": ["L1", "L1", "L3"],
        "occurred_at": pd.to_datetime(["2026-01-01T10:00:00Z", "2026-01-05T00:00:00Z",
                                       "2026-01-04T00:00:00Z"], utc=True),
        "type": ["page_view", "demo_request", "email_open"],
    })
    load_frames(postgres_url, {"leads": leads, "activities": activities})
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            types = dict(conn.execute(text(
                "SELECT table_name || '.' || column_name, data_type FROM "
                "information_schema.columns WHERE column_name IN ('created_at', 'occurred_at')"
            )).all())
            back = pd.read_sql("SELECT * FROM leads ORDER BY lead_id", conn)
            n_acts = conn.execute(text("SELECT count(*) FROM activities")).scalar_one()
    finally:
        engine.dispose()
    assert types == {"leads.created_at": "timestamp with time zone",
                     "activities.occurred_at": "timestamp with time zone"}
    assert n_acts == 3
    pd.testing.assert_series_equal(
        pd.to_datetime(back["created_at"], utc=True).dt.as_unit("ns"),
        leads["created_at"].dt.as_unit("ns"), check_names=False,
    )
    assert back["company_size"].isna().tolist() == [False, True, False]


def test_load_frames_refuses_naive_timestamps(postgres_url):
    naive = pd.DataFrame({"lead_id": ["L1"], "created_at": pd.to_datetime(["2026-01-01"])})
    with pytest.raises(ValueError, match=r"leads\.created_at holds naive timestamps"):
        load_frames(postgres_url, {"leads": naive})


def test_a_started_server_stops_and_leaves_no_process():
    server = start_server(require_pg_bin())
    try:
        pid = _postmaster_pid(server.data_dir)
        assert server.is_running()
        server.stop()
        assert not _alive(pid), "the postmaster outlived pg_ctl stop"
        assert not server.is_running()
        assert not (server.data_dir / "postmaster.pid").exists()
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)
