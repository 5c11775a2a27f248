"""``leadscore spec check``: validates a spec and, given data, summarises the table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from features.errors import SpecError
from leadscore.cli import app

runner = CliRunner()

SPEC = """\
version: 1
source: t.csv
columns:
  id: id
  label: won
  categorical: [channel]
  numeric: [visits]
  pii: [email]
"""
CSV = "id,won,channel,visits,email\na,yes,web,3,a@x.com\nb,no,event,1,b@x.com\n"


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    (tmp_path / "t.csv").write_text(CSV, encoding="utf-8")
    path = tmp_path / "s.yaml"
    path.write_text(SPEC, encoding="utf-8")
    return path


def test_check_without_data_validates_the_spec_only(spec_file: Path) -> None:
    result = runner.invoke(app, ["spec", "check", str(spec_file)])
    assert result.exit_code == 0, result.output
    assert "spec is valid (2 feature columns" in result.output


def test_check_with_data_prints_the_summary_as_json(spec_file: Path) -> None:
    result = runner.invoke(app, ["spec", "check", str(spec_file), "--load", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == 2 and summary["label_rate"] == 0.5
    assert summary["categorical"] == ["channel"] and summary["pii"] == ["email"]
    assert "a@x.com" not in result.output  # PII is never printed


def test_check_with_data_names_roles_rows_and_label_rate(spec_file: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.csv"
    other.write_text(CSV, encoding="utf-8")
    result = runner.invoke(app, ["spec", "check", str(spec_file), "--data", str(other)])
    assert result.exit_code == 0, result.output
    assert "fits other.csv" in result.output
    assert "label rate 50.0%" in result.output
    assert "none: training uses a stratified random hold-out" in result.output


def test_bad_spec_raises_the_spec_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\ncolumns:\n  id: a\n  numeric: [x]\n", encoding="utf-8")
    result = runner.invoke(app, ["spec", "check", str(path)])
    assert isinstance(result.exception, SpecError)
    assert "spec.columns: no outcome" in str(result.exception)


def test_shipped_spec_by_name() -> None:
    result = runner.invoke(app, ["spec", "check", "x-education", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["features"] == 25


# --------------------------------------------------------------------------- version 2

SPEC_V2 = """\
version: 2
tables:
  leads:
    source: {file: leads.csv}
    columns: {id: id, created_at: created, converted_at: won_at, categorical: [channel], pii: [email]}
  activities:
    source: {sql: "SELECT * FROM read_csv('events.csv')"}
    columns: {lead_id: lead, occurred_at: at, type: what, values: {count: n}}
    kinds:
      page_view: {types: [Visit Webpage], label: visited the website}
      form: {types: [Form Submit], label: filled in a form, key_action: true}
policies: {activity_unknown_lead: drop}
training: {horizon: 30d, snapshots: {anchor: start, offsets: [7d]}, censoring: resolved}
"""


@pytest.fixture
def v2_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    (data / "leads.csv").write_text(
        "id,created,won_at,channel,email,start\n"
        "a,2026-01-01T00:00:00Z,2026-01-20T00:00:00Z,web,a@x.com,2026-01-01T00:00:00Z\n"
        "b,2026-01-02T00:00:00Z,,event,b@x.com,2026-01-01T00:00:00Z\n",
        encoding="utf-8",
    )
    (data / "events.csv").write_text(
        "lead,at,what,n\n"
        "a,2026-01-02T00:00:00Z,Visit Webpage,2\n"
        "a,2026-01-03T00:00:00Z,Visit Webpage,1\n"
        "b,2026-01-03T00:00:00Z,Form Submit,1\n"
        "b,2026-01-04T00:00:00Z,Chat,1\n"
        "z,2026-01-04T00:00:00Z,Chat,1\n",
        encoding="utf-8",
    )
    spec = SPEC_V2.replace("categorical: [channel]", "time: [start], categorical: [channel]")
    (tmp_path / "v2.yaml").write_text(spec, encoding="utf-8")
    return tmp_path


def test_v2_check_prints_tables_kinds_unmapped_types_and_policies(v2_dir: Path) -> None:
    result = runner.invoke(
        app, ["spec", "check", str(v2_dir / "v2.yaml"), "--data", str(v2_dir / "data")]
    )
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())  # no test depends on where lines break
    assert "table leads 2 rows from csv file" in out
    assert "table activities 4 rows (5 read) from DuckDB SQL over" in out
    assert "page_view 2 visited the website" in out
    assert "form 1 filled in a form (weight 1, key action; types: Form Submit)" in out
    assert "unmapped types 1: Chat (1)" in out
    assert "activity_unknown_lead drop 1 rows dropped" in out
    assert "activity_after_outcome keep 0 rows after the outcome, kept" in out
    assert "training horizon 30d, snapshots at start + 7d, censoring resolved" in out
    assert "a@x.com" not in result.output


def test_v2_check_finds_the_data_folder_in_the_environment(
    v2_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = runner.invoke(app, ["spec", "check", str(v2_dir / "v2.yaml")])
    assert isinstance(result.exception, SpecError)
    assert "spec.tables.leads.source.file: 'leads.csv': no such file" in str(result.exception)
    monkeypatch.setenv("LEADSCORE_SPEC_DATA", str(v2_dir / "data"))
    result = runner.invoke(app, ["spec", "check", str(v2_dir / "v2.yaml"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["tables"]["leads"]["rows"] == 2
    assert summary["unmapped_types"] == {"Chat": 1}
    assert [k["events"] for k in summary["kinds"]] == [2, 1]
    assert summary["policies"]["activity_unknown_lead"] == {"action": "drop", "rows": 1}


def test_v2_check_spec_only(v2_dir: Path) -> None:
    result = runner.invoke(app, ["spec", "check", str(v2_dir / "v2.yaml"), "--spec-only"])
    assert result.exit_code == 0, result.output
    assert (
        "spec is valid (version 2; tables leads, activities; 1 feature columns, 2 activity kinds)"
        in " ".join(result.output.split())
    )
