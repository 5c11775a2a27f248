"""The real OULAD export through its shipped spec: files, and the same tables in PostgreSQL.

Skipped, saying why, when ``../shared/data/oulad/`` is not beside the checkout.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from features.spec import example_spec_path, load_spec, load_tables
from training.from_spec import build_spec_training_set, feature_set_for

OULAD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "oulad"

pytestmark = pytest.mark.oulad


@pytest.fixture(scope="module")
def oulad_tables():
    if not (OULAD / "studentInfo.csv").is_file():
        pytest.skip(f"OULAD export not found at {OULAD}; see features/specs/oulad.yaml")
    return load_tables(load_spec(example_spec_path("oulad")), data_path=OULAD)


def test_the_spec_alone_gives_the_trained_feature_set(oulad_tables):
    from training.from_spec import spec_feature_set

    assert spec_feature_set(oulad_tables.spec).version == feature_set_for(oulad_tables).version


def test_snapshots_at_day_30_and_60_of_still_registered_enrolments(oulad_tables):
    frame, used = build_spec_training_set(oulad_tables)
    assert used["snapshots"] == "presentation_start + 30d, 60d"
    leads = oulad_tables.leads.set_index("lead_id")
    start = leads.loc[frame["lead_id"], "presentation_start"].to_numpy()
    offsets = pd.to_datetime(frame["as_of"]).to_numpy() - start
    assert set(pd.to_timedelta(offsets).days) == {30, 60}
    # Eligible: registered before as_of, not yet withdrawn (nor passed or failed) before it.
    out = leads.loc[frame["lead_id"], "disqualified_at"].to_numpy()
    assert (pd.isna(out) | (out >= frame["as_of"].to_numpy())).all()
    # Every outcome is known by the module's end: no snapshot is censored.
    n_eligible = sum((leads["created_at"] < leads["presentation_start"] + pd.Timedelta(days=d))
                     & ~(leads["disqualified_at"] < leads["presentation_start"]
                         + pd.Timedelta(days=d)) for d in (30, 60))
    assert len(frame) == int(n_eligible.sum())
    assert 0.55 < frame["label"].mean() < 0.65
    # Leads with no clicks are kept: 243 enrolments have none (README).
    assert (frame["activity_count_90d"] == 0).sum() > 0


@pytest.mark.integration
def test_the_same_spec_with_its_tables_in_postgresql(oulad_tables, tmp_path, postgres_url,
                                                     monkeypatch):
    """The spec's DuckDB queries run once here, their results go into PostgreSQL, and the
    same spec reading those tables by database URL gives the same training set."""
    import duckdb

    from tests.postgres import load_frames

    document = yaml.safe_load(example_spec_path("oulad").read_text(encoding="utf-8"))
    frames = {}
    with duckdb.connect() as con:
        con.execute(f"SET file_search_path = '{OULAD}'")
        for table in ("leads", "activities"):
            raw = con.execute(document["tables"][table]["source"]["sql"]).df()
            for column in raw.columns:
                if pd.api.types.is_datetime64_any_dtype(raw[column]):
                    raw[column] = raw[column].dt.tz_localize("UTC")
            frames[f"oulad_{table}"] = raw
    load_frames(postgres_url, frames)
    for table in ("leads", "activities"):
        document["tables"][table]["source"] = {"url": "${OULAD_DB}", "table": f"oulad_{table}"}
    document.pop("data_dir", None)
    path = tmp_path / "oulad-postgres.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    monkeypatch.setenv("OULAD_DB", postgres_url)

    from_db = load_tables(load_spec(path))
    assert feature_set_for(from_db).feature_names() == feature_set_for(oulad_tables).feature_names()
    files_frame, _ = build_spec_training_set(oulad_tables)
    db_frame, _ = build_spec_training_set(from_db)
    pd.testing.assert_frame_equal(db_frame, files_frame)
    assert from_db.unmapped_types == oulad_tables.unmapped_types
    assert "postgresql" in json.dumps(from_db.sources)
