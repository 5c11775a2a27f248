"""The marketers' page at /ui in a real headless Chromium, against the real server.

A small champion is registered in a tmp MLflow store, ``leadscore serve`` starts in a
subprocess with an API key, and Chromium (Debian's ``chromium`` package, the one
``.ci/run`` installs) loads the page, takes the key, scores a sample lead and renders
the reasons. The screenshot goes to ``tests/artifacts/ui.png`` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from tests.servers import register_model, spawn_server, stop_server

pytestmark = [
    pytest.mark.integration, pytest.mark.browser, pytest.mark.slow,
    # Registering the champion: MLflow warns that LeadScoringModel.predict's `Any` hints
    # disable its input validation (deliberate: the pyfunc takes frames of any width),
    # and its SQLAlchemy store uses a loader strategy SQLAlchemy 2.1 deprecates.
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning"),
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
]

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
KEY = "ui-test-key"
# Chromium flags for a sandboxless CI container with no network: nothing phones home.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def _chromium() -> str:
    # A missing browser is a broken CI machine, not a reason to skip the page's only test.
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if path is None:
        pytest.fail("Chromium is not installed: run `apt-get install chromium` "
                    "(.ci/run does it when it is missing)")
    return path


@pytest.fixture
def served(tmp_path, isolated_env, lead_model):
    """(base URL, champion version) of a real server with a champion and an API key."""
    version = register_model(lead_model, tmp_path, experiment="ui-browser")
    env = {**os.environ, "LEADSCORE_API_KEY": KEY, "OMP_NUM_THREADS": "1"}
    log_path = tmp_path / "server.log"
    base, proc = spawn_server(env, log_path)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                ready = httpx.get(f"{base}/readyz", timeout=2)
                if ready.status_code == 200 and ready.json()["status"] == "ready":
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the server did not become ready:\n{log_path.read_text()}")
            time.sleep(0.5)
        yield base, version
    finally:
        stop_server(proc)


def test_page_is_public_but_scoring_needs_the_key(served):
    base, _ = served
    page = httpx.get(f"{base}/ui/", timeout=5)
    assert page.status_code == 200 and "Score a lead" in page.text
    for asset in ("app.js", "style.css", "samples.json"):
        assert httpx.get(f"{base}/ui/{asset}", timeout=5).status_code == 200, asset
    assert "http" not in page.text.replace("http-equiv", ""), "the page must load nothing external"
    lead = httpx.get(f"{base}/ui/samples.json", timeout=5).json()["samples"][0]["lead"]
    assert httpx.post(f"{base}/score", json={"leads": [lead]}, timeout=10).status_code == 401


def test_marketer_scores_a_sample_lead_in_chromium(served):
    from playwright.sync_api import sync_playwright

    base, version = served
    executable = _chromium()
    external: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda r: None if r.url.startswith(base) else external.append(r.url))
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{base}/ui/")
            page.fill("#api-key", KEY)
            # Samples load asynchronously; the first engaged lead is the second option.
            page.wait_for_selector("#sample option:nth-child(3)", state="attached")
            page.select_option("#sample", index=1)
            assert '"lead_id"' in page.input_value("#lead-json")
            page.click("#score-btn")
            page.wait_for_selector("#chart svg", timeout=30_000)

            score = int(page.text_content("#score"))
            assert 0 <= score <= 100
            assert page.text_content("#grade") in {"A", "B", "C", "D"}
            assert page.text_content("#route").split()[0] in {"sales", "nurture"}
            assert page.text_content("#model") == f"lead-scoring version {version}"
            assert page.text_content("#answered-by") == "Answered by the model."
            sentences = page.locator("#chart text.label").all_text_contents()
            assert sentences and all(len(s) > 10 for s in sentences), sentences
            bars = page.locator("#chart rect")
            assert bars.count() == len(sentences)
            widths = [float(bars.nth(i).get_attribute("width")) for i in range(bars.count())]
            assert all(w > 0 for w in widths)
            assert page.locator("#chart rect.bar-pos").count() >= 1
            assert page.is_hidden("#trend-row"), "no score history is configured: no trend"
            assert page.evaluate("sessionStorage.getItem('leadscore.apiKey')") == KEY
            assert page.is_hidden("#error")
            assert not errors, errors
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "ui.png"), full_page=True)

            # A lead with one hour of history: the page says who answered and why.
            page.select_option("#sample", index=5)
            page.click("#score-btn")
            page.wait_for_function(
                "document.getElementById('lead-id').textContent !== ''"
                " && !document.getElementById('score-btn').disabled")
            answered = page.text_content("#answered-by")
            assert answered.startswith(("Answered by the model", "Answered by the rules (")), answered
        finally:
            browser.close()
    assert not external, f"the page reached outside the service: {external}"
