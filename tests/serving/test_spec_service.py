"""A model trained through a dataset spec, served: the CRM's own fields in, model answers out.

In process (the scoring core) and against the real BentoML server (``leadscore serve``):
a lead given by the CRM's own column names and activity types is scored by the model,
with that model's version and reasons in the spec's words; the docs list those fields;
a request matching none of them is a 422; a champion of another spec is refused.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from features.errors import DataValidationError
from leadscore.cli import app
from tests.servers import spawn_server, stop_server, wait_until
from tests.serving.test_spec_contract import _payloads
from tests.training.conftest import MLFLOW_WARNINGS
from tests.training.test_from_spec import write_crm

runner = CliRunner(env={"COLUMNS": "300"})

pytestmark = [*MLFLOW_WARNINGS]


def _train(spec: Path, *extra: str) -> dict:
    result = runner.invoke(app, ["train", "--dataset", str(spec), "--num-boost-round", "60",
                                 *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def acme_champion(tmp_path):
    spec = write_crm(tmp_path, n=1200)
    summary = _train(spec, "--promote")
    assert summary["promotion"]["promoted"]
    return spec, summary


def test_the_scoring_core_answers_in_the_specs_words(acme_champion):
    import mlflow
    from features.spec import load_spec, load_tables
    from serving.scorer import Engine, ModelBundle
    from serving.spec_contract import SpecContract
    from serving.spec_scoring import NoSpecModel, score_spec_leads
    from training.from_spec import build_spec_training_set, feature_set_for

    spec, summary = acme_champion
    from rules_fallback import load_rules

    model = mlflow.pyfunc.load_model("models:/lead-scoring@champion").unwrap_python_model().model
    contract = SpecContract.from_model(model)
    assert contract is not None and contract.spec.name == "acme"
    assert model.fit_engagement["n_reference"] > 100
    assert set(model.fit_engagement["groups"].values()) == {"fit", "engagement"}
    bundle = ModelBundle(model, "lead-scoring", "1", "champion", "models:/lead-scoring/1",
                         datetime.now(UTC))
    # Policy "model": the model answers every lead, cold starts too, for the equality.
    engine = Engine(bundle, load_rules(None), "model")
    tables = load_tables(load_spec(spec))
    frame, _ = build_spec_training_set(tables, feature_set_for(tables))
    rows = frame.sample(25, random_state=3)
    payloads = _payloads(spec.parent, sorted(set(rows["lead_id"])))
    for _, row in rows.iterrows():
        lead = contract.lead_model.model_validate(payloads[row["lead_id"]])
        out = score_spec_leads([lead], row["as_of"].to_pydatetime(), engine, contract,
                               top_reasons=50)[0]
        assert (out["scored_by"], out["model_version"]) == ("model", "1")
        # Training shipped the fit/engagement split: its groups and training distribution.
        assert out["fit"]["score"] is not None and out["matrix_route"] is not None
        # The same probability the model gives the training row of that lead and as_of.
        want = model.predict_proba(frame.loc[[row.name], model.feature_names])[0]
        assert out["probability"] == pytest.approx(want, abs=1e-12)
        labels = {r.label for r in out["reasons"]}
        assert labels <= {"Lead source", "Company size", "Lead age", "Recent activity",
                          "Web", "Email", "Call", "Webinar", "Engagement score",
                          "Activity trend", "Active days"}, labels
    sentences = " | ".join(r.sentence for r in out["reasons"])
    assert "Lead source: " in sentences
    lead = contract.lead_model.model_validate(next(iter(payloads.values())))

    # Policy "auto": a lead with no activity goes where training found it better; the
    # rules that answer it are the starter rules fitted on the training window, shipped
    # with the model.
    assert model.cold_start["rules"] == "the spec's starter rules, fitted on the training window"
    assert "acme" in model.cold_start_rules and "points" in model.cold_start_rules
    quiet = contract.lead_model.model_validate({**payloads[rows["lead_id"].iloc[0]],
                                                "activities": []})
    auto = score_spec_leads([quiet], datetime.now(UTC), Engine(bundle, load_rules(None), "auto"),
                            contract)[0]
    if model.cold_start["preferred"] == "rules":
        assert (auto["scored_by"], auto["fallback_reason"]) == ("rules", "cold_start")
    else:
        assert (auto["scored_by"], auto["fallback_reason"]) == ("model", None)
    forced = score_spec_leads([quiet, lead], datetime.now(UTC),
                              Engine(bundle, load_rules(None), "rules"), contract)
    assert [(x["scored_by"], x["fallback_reason"]) for x in forced] == [
        ("rules", "cold_start"), ("model", None)]  # in order, each by who answered it
    assert forced[0]["rules_version"] == forced[1]["rules_version"] != "none"
    assert forced[0]["reasons"] and forced[0]["model_version"] is None
    with pytest.raises(DataValidationError, match="duplicate"):
        score_spec_leads([lead, lead], datetime.now(UTC), engine, contract)
    with pytest.raises(NoSpecModel, match="acme"):
        score_spec_leads([lead], datetime.now(UTC), Engine(None, load_rules(None)), contract)

    # With the spec's own rules (rules init), no model means the rules answer, in its words.
    from rules_fallback import SpecVocabulary, load_spec_rules

    rules_path = spec.parent / "rules.yaml"
    made = runner.invoke(app, ["rules", "init", "--dataset", str(spec), "--out", str(rules_path)])
    assert made.exit_code == 0, made.output
    rules = load_spec_rules(rules_path, SpecVocabulary.from_spec(load_spec(spec)))
    out = score_spec_leads([lead], datetime.now(UTC), Engine(None, load_rules(None)), contract,
                           rules=rules)[0]
    assert (out["scored_by"], out["fallback_reason"], out["model_version"]) == (
        "rules", "no_model", None)
    assert 0 <= out["probability"] <= 1 and out["rules_version"] != "none"


@pytest.mark.integration
@pytest.mark.slow
def _the_page_scores_a_sample_in_the_specs_words(base: str, key: str) -> None:
    """/ui in headless Chromium: the sample is the CRM's own lead, the model answers, and
    the reasons on the page are the spec's labels and kinds (as /score gives them)."""
    from playwright.sync_api import sync_playwright

    from tests.serving.test_ui_browser import ARTIFACTS, CHROMIUM_ARGS, _chromium

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{base}/ui/")
            page.fill("#api-key", key)
            page.wait_for_selector("#sample option:nth-child(2)", state="attached")
            page.select_option("#sample", index=1)
            lead = json.loads(page.input_value("#lead-json"))
            assert "Lead Source" in lead and "Employees" in lead, lead
            # Spelt as the CRM spells it, not as the model keys it (case-folded).
            assert lead["Lead Source"] in {"Google", "Referral", "Olark Chat"}, lead
            page.click("#score-btn")
            page.wait_for_selector("#chart .reason", timeout=30_000)
            assert page.text_content("#answered-by") == "Answered by the model."
            assert page.text_content("#model") == "lead-scoring version 1"
            shown = page.locator("#chart .reason .label").all_text_contents()
            served = httpx.post(f"{base}/score", json={"leads": [lead]}, timeout=30,
                                headers={"Authorization": f"Bearer {key}"}).json()["results"][0]
            assert shown == [r["sentence"] for r in served["reasons"]], (shown, served)
            assert any(s.startswith(("Lead source: ", "Company size")) for s in shown), shown
            # The matrix and the decay line in the spec's case too (its kinds are not
            # marked actionable: no actions to show).
            assert page.locator("#matrix td.here").get_attribute("data-route") == \
                served["matrix_route"]
            assert page.text_content("#decay").startswith("Without new activity this lead ")
            assert page.is_hidden("#actions-box")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "ui-spec.png"), full_page=True)
            assert not errors, errors
        finally:
            browser.close()


@pytest.mark.browser
def test_the_real_server_speaks_the_champions_spec(acme_champion, tmp_path, synthetic_dir):
    spec, summary = acme_champion
    env = {**os.environ, "LEADSCORE_API_KEY": "k", "OMP_NUM_THREADS": "1",
           "LEADSCORE_POLL_INTERVAL_S": "1"}
    log = tmp_path / "server.log"
    base, proc = spawn_server(env, log)
    auth = {"Authorization": "Bearer k"}
    try:
        wait_until(lambda: httpx.get(f"{base}/readyz", timeout=2).json()["status"] == "ready",
                   120, "the server to load the champion")
        info = httpx.get(f"{base}/model", headers=auth, timeout=10).json()
        assert info["serves_spec"] == "acme" and info["model_version"] == "1"
        assert info["speaks_feature_set"].startswith("spec:acme:")
        doc = httpx.get(f"{base}/docs.json", timeout=10).json()
        lead_schema = doc["components"]["schemas"]["Lead"]
        assert {"Lead Source", "Employees", "created_at", "activities"} <= set(
            lead_schema["properties"])
        assert "industry" not in lead_schema["properties"]

        payload = next(iter(_payloads(spec.parent, ["A00007"]).values()))
        as_of = "2026-01-01T00:00:00Z"
        r = httpx.post(f"{base}/score", headers=auth, timeout=30,
                       json={"leads": [payload], "as_of": as_of, "top_reasons": 5})
        assert r.status_code == 200, r.text
        x = r.json()["results"][0]
        assert (x["lead_id"], x["scored_by"], x["model_version"]) == ("A00007", "model", "1")
        assert x["fallback_reason"] is None and 0 <= x["probability"] <= 1
        assert any(reason["sentence"].startswith("Lead source: ") for reason in x["reasons"])
        assert "x-request-id" in r.headers

        # The page's sample leads speak the spec, and each is scored by the model.
        samples = httpx.get(f"{base}/ui/samples.json", timeout=10).json()["samples"]
        assert len(samples) == 3 and "Lead Source" in samples[0]["lead"]
        assert {a["type"] for a in samples[0]["lead"]["activities"]} <= {
            "Visit Webpage", "Opened Email", "Booked Call", "Webinar"}
        r = httpx.post(f"{base}/score", headers=auth, timeout=30,
                       json={"leads": [s["lead"] for s in samples]})
        assert r.status_code == 200, r.text
        # The "no activity yet" sample is a cold start: /model says who answers those.
        cold = info["cold_start_effective"]
        assert [x["scored_by"] for x in r.json()["results"]] == ["model", cold, "model"]
        _the_page_scores_a_sample_in_the_specs_words(base, "k")

        # None of the spec's fields: a broken mapping, named.
        r = httpx.post(f"{base}/score", headers=auth, timeout=30, json={"leads": [
            {"lead_id": "x", "created_at": "2025-06-01T00:00:00Z", "source": "Google"}]})
        assert r.status_code == 422, r.text
        assert "Lead Source" in " ".join(r.json()["detail"]) and r.json()["request_id"]
        # A field of the wrong type names the CRM's own field.
        bad = {**payload, "Employees": "many"}
        r = httpx.post(f"{base}/score", headers=auth, timeout=30, json={"leads": [bad]})
        assert r.status_code == 422 and "Employees" in " ".join(r.json()["detail"]), r.text
        r = httpx.post(f"{base}/explain", headers=auth, timeout=30,
                       json={"lead": payload, "as_of": as_of})
        assert r.status_code == 200, r.text
        explained = r.json()
        total = explained["base_value"] + sum(c["contribution"] for c in explained["contributions"])
        assert total == pytest.approx(explained["raw_margin"], abs=1e-9)
        assert explained["result"]["probability"] == pytest.approx(x["probability"], abs=1e-12)
        assert {c["feature"] for c in explained["contributions"]} >= {"lead_source", "call_count_7d"}

        # A champion of another spec (the built-in one) is refused, and /model says so.
        trained = runner.invoke(app, ["train", "--data", str(synthetic_dir),
                                      "--num-boost-round", "30"])
        assert trained.exit_code == 0, trained.output
        # The gate cannot compare models of two feature sets: an operator forces it.
        promoted = runner.invoke(app, ["promote", "--version", "2", "--force"])
        assert promoted.exit_code == 0, promoted.output
        refusal = wait_until(lambda: httpx.get(f"{base}/model", headers=auth,
                                               timeout=5).json()["last_refusal"],
                             60, "the service to refuse the built-in champion")
        assert "2026.11.1" in refusal["reason"] and "spec:acme:" in refusal["reason"]
        info = httpx.get(f"{base}/model", headers=auth, timeout=10).json()
        assert info["model_version"] == "1" and info["serves_spec"] == "acme"
    finally:
        stop_server(proc)
    text = log.read_text()
    assert "person7@example.com" not in text, "an email address reached the log"


@pytest.mark.xeducation
@pytest.mark.integration
def test_the_real_server_gives_an_x_education_lead_fit_engagement_and_a_matrix_route(
    xeducation_csv, tmp_path
):
    """The real export, trained by the CLI and served by ``leadscore serve``: a lead sent
    in X Education's own column names comes back with its two part scores and its cell
    of the matrix, and base + fit part + engagement part is the model's margin."""
    import pandas as pd

    from features.spec import example_spec_path

    summary = _train(example_spec_path("x-education"), "--dataset-file", str(xeducation_csv),
                     "--promote")
    assert summary["promotion"]["promoted"]
    raw = pd.read_csv(xeducation_csv, dtype=str)
    row = raw.iloc[7]
    payload = {"lead_id": row["Prospect ID"], "Lead Origin": row["Lead Origin"],
               "Lead Source": row["Lead Source"],
               "TotalVisits": float(row["TotalVisits"]),
               "Total Time Spent on Website": float(row["Total Time Spent on Website"]),
               "Page Views Per Visit": float(row["Page Views Per Visit"])}
    env = {**os.environ, "LEADSCORE_API_KEY": "k", "OMP_NUM_THREADS": "1"}
    base, proc = spawn_server(env, tmp_path / "server.log")
    auth = {"Authorization": "Bearer k"}
    try:
        wait_until(lambda: httpx.get(f"{base}/readyz", timeout=2).json()["status"] == "ready",
                   120, "the server to load the champion")
        info = httpx.get(f"{base}/model", headers=auth, timeout=10).json()
        assert info["serves_spec"] == "x-education"
        matrix = info["matrix"]
        assert matrix["fit_features"] > 0 and matrix["engagement_features"] == 3
        r = httpx.post(f"{base}/score", headers=auth, timeout=30, json={"leads": [payload]})
        assert r.status_code == 200, r.text
        x = r.json()["results"][0]
        assert x["scored_by"] == "model" and x["model_version"] == summary["model_version"]
        for part in ("fit", "engagement"):
            assert 0 <= x[part]["score"] <= 100 and x[part]["level"] in ("high", "low")
        high = {p: x[p]["score"] >= matrix[f"{p}_threshold"] for p in ("fit", "engagement")}
        want = {(True, True): "sales", (True, False): "targeted_nurture",
                (False, True): "review", (False, False): "recycle"}
        assert x["matrix_route"] == want[high["fit"], high["engagement"]]
        r = httpx.post(f"{base}/explain", headers=auth, timeout=30, json={"lead": payload})
        assert r.status_code == 200, r.text
        explained = r.json()
        parts = explained["result"]["fit"]["part"] + explained["result"]["engagement"]["part"]
        assert explained["base_value"] + parts == pytest.approx(explained["raw_margin"],
                                                                 abs=1e-9)
        assert explained["result"]["probability"] == pytest.approx(x["probability"], abs=1e-12)
    finally:
        stop_server(proc)
