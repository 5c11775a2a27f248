"""``leadscore report --dataset SPEC``: the funnel report in a CRM's own terms.

Two CRMs: "acme" (dated leads, a deals table and an activity log in its own words,
from :func:`tests.training.test_from_spec.write_crm`) and a flat export with a bare
label and no time at all. Each figure the page shows is checked against a naive
computation from the raw files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from features.errors import DataValidationError
from features.spec import load_spec, load_tables
from leadscore.cli import app
from leadscore.report import build_report, render_report_html
from leadscore.spec_report import spec_report_inputs, write_spec_report
from tests.training.test_from_spec import write_crm

runner = CliRunner(env={"COLUMNS": "300"})

SCORED_AS_OF = pd.Timestamp("2025-06-01", tz="UTC")


def _grade(p: np.ndarray) -> np.ndarray:
    return np.select([p >= 0.6, p >= 0.4, p >= 0.2], ["A", "B", "C"], "D")


def _acme_scores(spec: Path, path: Path) -> pd.DataFrame:
    """A score for every lead open at SCORED_AS_OF, higher for leads that booked a call."""
    folder = spec.parent
    leads = pd.read_csv(folder / "leads.csv")
    deals = pd.read_csv(folder / "deals.csv")
    acts = pd.read_csv(folder / "activities.csv")
    created = pd.to_datetime(leads["Created On"]).dt.tz_localize("UTC")
    won = pd.to_datetime(deals.set_index("Lead")["Won On"]).dt.tz_localize("UTC")
    won_at = leads["Lead Number"].map(won)
    open_ = (created < SCORED_AS_OF) & ~(won_at <= SCORED_AS_OF)
    called = set(acts.loc[(acts["Activity"] == "Booked Call")
                          & (pd.to_datetime(acts["When"]).dt.tz_localize("UTC") < SCORED_AS_OF),
                          "Lead"])
    ids = leads.loc[open_, "Lead Number"]
    p = np.where(ids.isin(called), 0.7, 0.1) + np.random.default_rng(0).uniform(0, 0.05, len(ids))
    frame = pd.DataFrame({"lead_id": ids.to_numpy(), "as_of": SCORED_AS_OF, "probability": p,
                          "score": (p * 100).round(), "grade": _grade(p),
                          "route": np.where(p >= 0.4, "sales", "nurture"), "scored_by": "model"})
    frame.to_parquet(path)
    return frame


def test_a_crm_report_speaks_the_spec_and_follows_scores_forward(tmp_path):
    spec = write_crm(tmp_path, n=600)
    scores = _acme_scores(spec, tmp_path / "scores.parquet")
    out = tmp_path / "acme.html"
    result = runner.invoke(app, ["report", "--dataset", str(spec), "--out", str(out),
                                 "--scores", str(tmp_path / "scores.parquet")])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "600 leads" in result.output
    page = out.read_text(encoding="utf-8")
    assert "Conversion by Lead source" in page  # the spec's label of its source field
    assert "Sales-ready action (booked a call)" in page  # the one key_action kind, by label
    assert "Activity types the spec maps to no kind" in page and "Sales Ping" in page

    inputs = spec_report_inputs(load_tables(load_spec(spec)),
                                tmp_path / "scores.parquet")
    assert inputs.horizon == pd.Timedelta(days=60)  # the spec's training horizon
    report = build_report(inputs.leads, inputs.activities, inputs.scores,
                          horizon=inputs.horizon, terms=inputs.terms)
    # The funnel's key-action stage is every lead with a "Booked Call" by the report date.
    acts = pd.read_csv(tmp_path / "activities.csv")
    when = pd.to_datetime(acts["When"]).dt.tz_localize("UTC")
    called = acts.loc[(acts["Activity"] == "Booked Call") & (when <= report.as_of), "Lead"]
    funnel = report.funnel.set_index("stage")["leads"]
    assert funnel["sales_ready"] == called.nunique() > 0
    assert "disqualified" not in funnel.index  # acme records no disqualification
    # Each score is followed forward from its as_of, for the spec's 60 days.
    deals = pd.read_csv(tmp_path / "deals.csv")
    won = pd.to_datetime(deals.set_index("Lead")["Won On"]).dt.tz_localize("UTC")
    won_at = scores["lead_id"].map(won)
    expected = ((won_at > SCORED_AS_OF) & (won_at <= SCORED_AS_OF + pd.Timedelta(days=60)))
    outcomes = report.outcomes.frame.set_index("lead_id")["converted"]
    assert report.outcomes.fully_observed
    assert outcomes.loc[scores["lead_id"]].to_numpy().tolist() == expected.tolist()
    assert expected.sum() > 5
    by_source = report.sources.set_index("source")["leads"]
    raw = pd.read_csv(tmp_path / "leads.csv")["Lead Source"].value_counts()
    assert by_source.sort_index().to_dict() == raw.sort_index().to_dict()


def _flat_export(folder: Path, n: int = 400) -> Path:
    rng = np.random.default_rng(3)
    channel = rng.choice(["Web", "Partner", "Event"], n)
    won = rng.uniform(size=n) < np.where(channel == "Partner", 0.6, 0.2)
    pd.DataFrame({"Key": [f"K{i}" for i in range(n)], "Channel": channel,
                  "Visits": rng.poisson(3, n), "Won": np.where(won, "yes", "no")}
                 ).to_csv(folder / "flat.csv", index=False)
    spec = {"version": 1, "name": "flat", "source": "flat.csv",
            "columns": {"id": "Key", "label": {"column": "Won", "positive": ["yes"],
                                               "negative": ["no"]},
                        "categorical": [{"column": "Channel", "label": "Sales channel"}],
                        "numeric": ["Visits"]}}
    path = folder / "flat.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def test_a_label_only_export_compares_latest_scores_with_the_label(tmp_path):
    spec = _flat_export(tmp_path)
    raw = pd.read_csv(tmp_path / "flat.csv")
    # Two runs: the second scores every lead again; only a lead's latest score counts.
    rng = np.random.default_rng(1)
    runs = []
    for day, noise in (("2026-01-01", 0.3), ("2026-02-01", 0.0)):
        p = np.clip(np.where(raw["Won"] == "yes", 0.55, 0.25) + rng.uniform(-noise, noise, len(raw)),
                    0.01, 0.99)
        runs.append(pd.DataFrame({"lead_id": raw["Key"], "as_of": pd.Timestamp(day, tz="UTC"),
                                  "probability": p, "score": (p * 100).round(),
                                  "grade": _grade(p), "route": "nurture", "scored_by": "model"}))
    pd.concat(runs).to_parquet(tmp_path / "scores.parquet")

    out = tmp_path / "flat.html"
    report = write_spec_report(spec, out, scores_path=tmp_path / "scores.parquet")
    latest = runs[1].set_index("lead_id")
    frame = report.outcomes.frame.set_index("lead_id")
    assert frame["probability"].equals(latest["probability"].loc[frame.index])
    assert frame["converted"].tolist() == (raw.set_index("Key")["Won"] == "yes").loc[frame.index].tolist()
    assert report.outcomes.excluded == {"an earlier score of a lead scored again": len(raw)}
    assert report.overall["converted"] == int((raw["Won"] == "yes").sum())
    assert report.velocity.empty and report.days_to_convert.empty

    page = out.read_text(encoding="utf-8")
    assert "Data as the export records it (no dates)" in page
    assert "2000-01-01" not in page  # the stand-in time of a flat export never shows
    assert "in-sample" in page and "Conversion by Sales channel" in page
    assert "Engaged" not in page  # no activity log, no engagement stages
    assert render_report_html(report) == page  # the same inputs give the same bytes


def test_report_dataset_refuses_what_does_not_apply(tmp_path):
    spec = _flat_export(tmp_path)
    out = tmp_path / "r.html"
    cases = {
        ("--as-of", "2026-01-01"): "report.--as-of: '2026-01-01T00:00:00+00:00' is given, but the spec 'flat' has no created_at",
        ("--by", "Nope"): "report.--by: 'Nope' is not a field of the spec; expected a categorical one of ['Channel']",
        ("--by", "visits"): "report.--by: 'visits' is numeric; expected a categorical field",
    }
    for extra, message in cases.items():
        result = runner.invoke(app, ["report", "--dataset", str(spec), "--out", str(out), *extra])
        # The CLI's main() prints a LeadscoreError as "error: ..." and exits 1.
        assert isinstance(result.exception, DataValidationError), result.output
        assert message in " ".join(str(result.exception).split())
    both = runner.invoke(app, ["report", "--dataset", str(spec), "--data", str(tmp_path),
                               "--out", str(out)])
    assert both.exit_code == 2 and "exactly one of --data DIR or --dataset SPEC" in both.output
    alone = runner.invoke(app, ["report", "--data", str(tmp_path), "--by", "Channel",
                                "--out", str(out)])
    assert alone.exit_code == 2 and "only applies with --dataset SPEC" in alone.output
    assert not out.exists()  # nothing half-written by any refusal


def test_scores_of_other_leads_are_refused_naming_the_lead(tmp_path):
    spec = _flat_export(tmp_path)
    pd.DataFrame({"lead_id": ["nobody"], "probability": [0.5], "score": [50], "grade": ["B"],
                  "route": ["sales"]}).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(DataValidationError) as err:
        write_spec_report(spec, tmp_path / "r.html", scores_path=tmp_path / "bad.parquet")
    assert "bad.parquet).lead_id: 'nobody' is not a known lead" in str(err.value)
    assert "is not a known lead" in str(err.value)
    assert not (tmp_path / "r.html").exists()


def test_the_report_shows_the_runs_drift_when_the_scores_carry_it(tmp_path):
    import json

    from features.drift import Reference

    spec = write_crm(tmp_path, n=300)
    run = tmp_path / "scores"
    run.mkdir()
    _acme_scores(spec, run / "part-00000.parquet")
    plain = write_spec_report(spec, tmp_path / "plain.html", scores_path=run)
    assert plain.health is None
    assert "Needs the scores of a batch run" in (tmp_path / "plain.html").read_text()

    rng = np.random.default_rng(0)
    ref = Reference.fit(pd.DataFrame({"employees": rng.lognormal(4, 1, 2000)}), [])
    health = {"run_id": "r1", "scope": "leads scored by the model",
              **ref.report(ref.counts(pd.DataFrame({"employees": rng.lognormal(6, 1, 2000)})),
                           labels={"employees": "Company size"})}
    (run / "_health.json").write_text(json.dumps(health))
    report = write_spec_report(spec, tmp_path / "drift.html", scores_path=run)
    page = (tmp_path / "drift.html").read_text()
    assert report.health["n_drifted"] == 1
    assert "Drift against the training window" in page and "Company size" in page
    assert f"{health['features'][0]['psi']:.3f}" in page and "major" in page
