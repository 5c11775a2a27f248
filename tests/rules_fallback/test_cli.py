"""``leadscore rules check`` and ``leadscore rules score`` through Typer's test runner."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from typer.testing import CliRunner

from features.errors import RulesError
from leadscore.cli import app
from rules_fallback import DEFAULT_RULES_PATH

runner = CliRunner()


def write_dataset(directory: Path) -> Path:
    directory.mkdir()
    pd.DataFrame(
        {
            "lead_id": ["a", "b", "c"],
            "created_at": ["2026-01-01T00:00:00Z", "2026-01-05T00:00:00Z", "2026-02-01T00:00:00Z"],
            "seniority": ["VP", "Student", None],
            "company_size": [300, 10, None],
            "email": ["x@acme.io", "y@gmail.com", None],
        }
    ).to_parquet(directory / "leads.parquet")
    pd.DataFrame(
        {
            "lead_id": ["a", "a", "a", "b", "b"],
            "occurred_at": [
                "2026-02-20T00:00:00Z", "2026-02-25T00:00:00Z", "2026-03-01T00:00:00Z",
                "2026-02-10T00:00:00Z", "2026-02-11T00:00:00Z",
            ],
            "type": ["pricing_page_view", "demo_request", "pricing_page_view", "webinar_attended", "unsubscribe"],
        }
    ).to_parquet(directory / "activities.parquet")
    return directory


def test_check_accepts_the_default_file():
    result = runner.invoke(app, ["rules", "check", str(DEFAULT_RULES_PATH)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("OK ")
    assert "16 rules" in result.stdout


def test_check_rejects_a_broken_file_naming_the_rule_and_line(tmp_path: Path):
    broken = DEFAULT_RULES_PATH.read_text().replace("half_life_days: 45", "half_life_days: -45")
    path = tmp_path / "broken.yaml"
    path.write_text(broken)
    result = runner.invoke(app, ["rules", "check", str(path)])
    assert result.exit_code == 2
    line = broken.splitlines().index("    half_life_days: -45") + 1
    assert "rule 'webinar_attendance'" in result.output
    assert f"line {line}" in result.output
    assert "half_life_days" in result.output


def test_check_rejects_bad_yaml(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nfit_rules: [\n")
    result = runner.invoke(app, ["rules", "check", str(path)])
    assert result.exit_code == 2
    assert "not valid YAML" in result.output


def test_score_writes_scores_with_reasons(tmp_path: Path):
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "out" / "scores.parquet"
    result = runner.invoke(
        app, ["rules", "score", "--data", str(data), "--rules", str(DEFAULT_RULES_PATH), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "scored 3 leads" in result.stdout
    table = pq.read_table(out)
    frame = table.to_pandas()
    assert frame["lead_id"].tolist() == ["a", "b", "c"]
    assert set(frame.columns) >= {
        "lead_id", "points", "probability", "score", "grade", "route", "scored_by", "reasons", "rules_version",
    }
    assert (frame["scored_by"] == "rules").all()
    # Default as_of is the latest timestamp: the visit at 2026-03-01 counts.
    reasons_a = frame["reasons"].iloc[0]
    pricing = [r for r in reasons_a if r["field"] == "pricing_page_visits"][0]
    assert pricing["value"] == "2"
    assert pricing["sentence"] == "Viewed the pricing page twice in the last 30 days"
    assert {"field", "label", "value", "impact", "sentence"} == set(pricing)
    assert frame["score"].iloc[0] > frame["score"].iloc[1]
    assert not list(out.parent.glob(".*.tmp")), "the temporary file must be renamed away"
    assert "acme" not in json.dumps(frame["reasons"].map(list).tolist(), default=str)


def test_score_with_as_of_applies_point_in_time(tmp_path: Path):
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "scores.parquet"
    result = runner.invoke(
        app, ["rules", "score", "--data", str(data), "--out", str(out), "--as-of", "2026-02-15T00:00:00Z"]
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    fields = [r["field"] for r in frame["reasons"].iloc[0]]
    assert "pricing_page_visits" not in fields and "demo_requests" not in fields
    assert str(frame["as_of"].iloc[0]) == "2026-02-15 00:00:00+00:00"


def test_score_names_a_missing_table(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(
        app, ["rules", "score", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o.parquet")]
    )
    assert result.exit_code == 2
    assert "leads.parquet" in result.output


def test_score_with_a_broken_rules_file_writes_nothing(tmp_path: Path):
    data = write_dataset(tmp_path / "data")
    rules = tmp_path / "r.yaml"
    rules.write_text("version: 1\n")
    result = runner.invoke(
        app, ["rules", "score", "--data", str(data), "--rules", str(rules), "--out", str(tmp_path / "o.parquet")]
    )
    # leadscore.cli.main turns LeadscoreError into a message and exit code 2.
    assert isinstance(result.exception, RulesError)
    assert "grading" in str(result.exception)
    assert not (tmp_path / "o.parquet").exists()


def test_plain_output_keeps_each_message_on_one_line(tmp_path: Path, monkeypatch):
    # Not a terminal (CliRunner captures the output): rich must not hard-wrap at 80
    # columns, whatever the length of the path, or a grep for the message misses it.
    monkeypatch.delenv("COLUMNS", raising=False)
    deep = tmp_path.joinpath(*["a-rather-long-directory-name-for-wrapping"] * 4)
    deep.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    for path in (deep / "bad.yaml", Path("bad.yaml")):
        path.write_text("version: 1\nfit_rules: [\n")
        result = runner.invoke(app, ["rules", "check", str(path)])
        assert result.exit_code == 2
        lines = [line for line in result.output.splitlines() if "not valid YAML" in line]
        assert len(lines) == 1, result.output
        assert str(path) in lines[0] and lines[0].startswith("invalid:"), result.output
