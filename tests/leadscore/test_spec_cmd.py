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
