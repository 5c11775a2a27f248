"""What an integrator and an attacker meet, through the real server (issue #17).

``leadscore serve`` in a subprocess, as a user starts it: every content type with an
email in the body, and no email (no body) in its log; one request id; the docs page at
``/docs``; and two servers on one BentoML home, each with its own metrics.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from tests.servers import spawn_server, stop_server, wait_until
from tests.serving.conftest import NOW

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEY = "http-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
EMAIL = "grace.pii@example-leads.test"
LEAD = {"lead_id": "L-pii", "created_at": "2026-01-05T09:00:00Z", "email": EMAIL,
        "company_size": 40, "activities": [{"type": "pricing_page_view",
                                            "occurred_at": "2026-02-20T10:00:00Z"}]}
SCORE = json.dumps({"leads": [LEAD], "as_of": NOW.isoformat()}).encode()
EXPLAIN = json.dumps({"lead": LEAD, "as_of": NOW.isoformat()}).encode()
BOUNDARY = "leadscore-test-boundary"
MULTIPART = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\n"
             f"{EMAIL}\r\n--{BOUNDARY}--\r\n").encode()
# pydantic elides the middle of a long input_value in its messages: a short body, with
# a short email at its end, is the one BentoML's traceback would quote whole.
SHORT_EMAIL = "g@pii.io"
SHORT = json.dumps({"leads": [{"lead_id": "x", "created_at": "2026-01-05T09:00:00Z",
                               "email": SHORT_EMAIL}]}).encode()
SHORT_EXPLAIN = json.dumps({"lead": {"lead_id": "x", "created_at": "2026-01-05T09:00:00Z",
                                     "email": SHORT_EMAIL}}).encode()
INVALID = json.dumps({"leads": [{**LEAD, "created_at": f"not a date {EMAIL}"}]}).encode()

# (content type or None, body for /score, body for /explain, expected status)
CASES = [
    ("application/json", SCORE, EXPLAIN, 200),
    ("application/json", INVALID, INVALID, 422),
    ("application/json", f"{{not json {EMAIL}".encode(), b"{", 400),
    (None, SCORE, EXPLAIN, 200),
    ("application/x-www-form-urlencoded", SCORE, EXPLAIN, 415),  # curl -d with JSON
    ("application/x-www-form-urlencoded", SHORT, SHORT_EXPLAIN, 415),
    ("application/x-www-form-urlencoded", f"email={EMAIL}&lead_id=x".encode(),
     f"email={EMAIL}".encode(), 415),
    ("multipart/form-data", SCORE, EXPLAIN, 415),  # no boundary: was a 500
    (f"multipart/form-data; boundary={BOUNDARY}", SCORE, EXPLAIN, 415),
    (f"multipart/form-data; boundary={BOUNDARY}", MULTIPART, MULTIPART, 415),
    (f"multipart/form-data; boundary={BOUNDARY}", SHORT, SHORT_EXPLAIN, 415),
    ("text/plain", SHORT, SHORT_EXPLAIN, 415),
    ("text/plain", SCORE, EXPLAIN, 415),
    ("application/xml", f"<email>{EMAIL}</email>".encode(), b"<lead/>", 415),
    ("garbage", SCORE, EXPLAIN, 415),
    ("\u00ff/\u00fe", SCORE + b"\xff\xfe", EXPLAIN, 415),
]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "LEADSCORE_API_KEY": KEY, "OMP_NUM_THREADS": "1", **extra}


def _ready(base: str, proc) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"the server exited with {proc.returncode}")
    return httpx.get(f"{base}/readyz", timeout=2).status_code == 200


@pytest.fixture
def server(tmp_path: Path):
    log = tmp_path / "server.log"
    base, proc = spawn_server(_env(), log)
    try:
        wait_until(lambda: _ready(base, proc), 120, "the server to be ready")
        yield base, proc, log
    finally:
        stop_server(proc)


def _call(http: httpx.Client, method: str, path: str, **kwargs) -> httpx.Response | str:
    """The response, or what went wrong in transport (a reset connection, say)."""
    try:
        return http.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        return f"{type(exc).__name__}: {exc}"


def _check_error(r: httpx.Response) -> None:
    body = r.json()
    assert set(body) == {"error", "detail", "request_id"}, r.text
    assert body["request_id"] == r.headers["x-request-id"]


def test_no_content_type_puts_a_body_in_the_log_and_errors_keep_their_shape(server):
    base, proc, log = server
    answers = []
    with httpx.Client(base_url=base, timeout=60) as http:
        for content_type, score, explain, want in CASES:
            headers = {**AUTH}
            if content_type is not None:
                headers["content-type"] = content_type.encode("latin-1")
            for path, body in (("/score", score), ("/explain", explain)):
                answers.append((path, content_type, want,
                                _call(http, "POST", path, content=body, headers=headers)))
        # BentoML's own pages for paths and methods it does not serve: our shape too.
        for method, path in (("GET", "/nope"), ("GET", "/score"), ("PUT", "/explain")):
            answers.append((path, method, 405 if path != "/nope" else 404,
                            _call(http, method, path, headers=AUTH)))
    stop_server(proc)

    # The log first: no body, hence no email, whatever the content type.
    text = log.read_text(errors="replace")
    for email in (EMAIL, SHORT_EMAIL):
        assert email not in text, f"an email reached the server log: {email}"
    assert "input_value" not in text and "MultiPartException" not in text
    # The server did log every request: the check above looked at a real log.
    assert text.count("method=POST,path=/score") == len(CASES), text[-2000:]

    for path, content_type, want, r in answers:
        assert isinstance(r, httpx.Response), (path, content_type, r)
        assert r.status_code == want, (path, content_type, r.text[:300])
        assert EMAIL not in r.text and SHORT_EMAIL not in r.text and "Traceback" not in r.text
        assert [k for k in r.headers if "request-id" in k] == ["x-request-id"], r.headers
        if want >= 400:
            _check_error(r)
    assert {want for (_, _, want, _) in answers} == {200, 400, 404, 405, 415, 422}


def test_docs_are_at_docs_with_or_without_the_key_and_load_offline(server):
    base, _, _ = server
    with httpx.Client(base_url=base, timeout=30) as http:
        for headers in ({}, AUTH):
            r = http.get("/docs", headers=headers)
            assert r.status_code == 200 and "swagger-ui" in r.text, r.text[:300]
            assert "https://" not in r.text and "http://" not in r.text
            for asset in ("/static_content/swagger-ui-bundle.js",
                          "/static_content/swagger-initializer.js",
                          "/static_content/swagger-ui.css"):
                assert http.get(asset, headers=headers).status_code == 200, asset
            doc = http.get("/docs.json", headers=headers)
            assert doc.status_code == 200 and doc.json()["info"]["title"] == "leadscore"


SCORED = 'leadscore_scored_leads_total{fallback_reason="no_model",model_version="",' \
         'scored_by="rules"} '


def _scored(base: str) -> str | None:
    """The count of rules/no_model leads on ``base``'s /metrics, or None when absent."""
    text = httpx.get(f"{base}/metrics", headers=AUTH, timeout=10).text
    for line in text.splitlines():
        if line.startswith(SCORED):
            return line[len(SCORED):]
    return None


def test_a_second_server_leaves_the_first_ones_metrics_alone(tmp_path: Path):
    # Both servers share one BENTOML_HOME (the test's), as two `leadscore serve` of one
    # user do; each its own TMPDIR, to see the metrics directory removed at the end.
    servers = []
    try:
        for name in ("first", "second"):
            tmp = tmp_path / f"tmp-{name}"
            tmp.mkdir()
            base, proc = spawn_server(_env(TMPDIR=str(tmp)), tmp_path / f"{name}.log")
            servers.append((base, proc, tmp))
            wait_until(lambda b=base, p=proc: _ready(b, p), 120, f"the {name} server")
            if name == "first":
                r = httpx.post(f"{base}/score", content=SCORE, timeout=60,
                               headers={**AUTH, "content-type": "application/json"})
                assert r.status_code == 200, r.text
                assert _scored(base) == "1.0"
        first, second = servers[0][0], servers[1][0]
        assert _scored(first) == "1.0", "the second server wiped the first one's metrics"
        assert _scored(second) is None
        httpx.post(f"{first}/score", content=SCORE, timeout=60,
                   headers={**AUTH, "content-type": "application/json"})
        assert _scored(first) == "2.0" and _scored(second) is None
    finally:
        for _, proc, _ in servers:
            stop_server(proc)
    for _, _, tmp in servers:
        assert not list(tmp.glob("leadscore-metrics-*")), "a metrics directory was left"


def _write_run(out: Path, run_id: str, shift: float) -> dict:
    """A committed run's _health.json as rescore writes it (features.drift's report)."""
    import json

    import numpy as np
    import pandas as pd

    from features.drift import Reference

    rng = np.random.default_rng(0)
    train = pd.DataFrame({"visits": rng.poisson(3, 4000).astype(float),
                          "source": rng.choice(["Google", "Event"], 4000)})
    ref = Reference.fit(train, ["source"], rng.beta(2, 5, 4000))
    now = pd.DataFrame({"visits": rng.poisson(3 + shift, 4000).astype(float),
                        "source": rng.choice(["Google", "Event"], 4000)})
    from serving.batch import run_estimate

    scores = rng.beta(2 + shift, 5, 4000)
    health = {"run_id": run_id, "as_of": "2026-06-01T00:00:00+00:00", "model": "lead-scoring/1",
              **ref.report(ref.counts(now, scores)), "estimate": run_estimate(scores)}
    run = out / "runs" / run_id
    run.mkdir(parents=True)
    (run / "_health.json").write_text(json.dumps(health))
    link = out / ".scores.tmp"
    link.symlink_to(Path("runs") / run_id)
    link.replace(out / "scores")  # one rename, as the batch job swaps it
    return health


def _gauge(base: str, name: str) -> str | None:
    for line in httpx.get(f"{base}/metrics", headers=AUTH, timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return line.split()[-1]
    return None


def test_a_drifted_batch_run_shows_on_model_and_metrics(tmp_path: Path):
    out = tmp_path / "scores-out"
    drifted = _write_run(out, "20260601T000000Z-aaaa", shift=3.0)
    assert drifted["n_drifted"] == 1 and drifted["score_level"] == "major"
    base, proc = spawn_server(_env(LEADSCORE_BATCH_DIR=str(out), LEADSCORE_POLL_INTERVAL_S="1"),
                              tmp_path / "server.log")
    try:
        wait_until(lambda: _ready(base, proc), 120, "the server to be ready")
        info = httpx.get(f"{base}/model", headers=AUTH, timeout=10).json()["batch_health"]
        assert info["run_id"] == "20260601T000000Z-aaaa" and info["n_drifted"] == 1
        assert [d["feature"] for d in info["drifted"]] == ["visits"]
        assert info["score_psi"] == pytest.approx(drifted["score_psi"])
        # The run's label-free estimate, with the assumption it rests on.
        assert info["estimate"]["expected_roc_auc"] == pytest.approx(
            drifted["estimate"]["expected_roc_auc"])
        assert info["estimate"]["n"] == 4000 and "calibration" in info["estimate"]["assumption"]
        assert float(_gauge(base, "leadscore_batch_drifted_features")) == 1.0
        assert float(_gauge(base, "leadscore_batch_score_psi")) == pytest.approx(
            drifted["score_psi"])
        # The next committed run (no drift) replaces it within a poll interval.
        calm = _write_run(out, "20260701T000000Z-bbbb", shift=0.0)
        assert calm["n_drifted"] == 0
        seen = wait_until(lambda: httpx.get(f"{base}/model", headers=AUTH, timeout=10)
                          .json()["batch_health"]["run_id"] == "20260701T000000Z-bbbb",
                          20, "the service to read the new run")
        assert seen
        assert float(_gauge(base, "leadscore_batch_drifted_features")) == 0.0
    finally:
        stop_server(proc)
