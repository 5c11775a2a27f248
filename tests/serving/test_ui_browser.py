"""The marketers' page at /ui in a real headless Chromium, against the real server.

A small champion is registered in a tmp MLflow store, ``leadscore serve`` starts in a
subprocess with an API key, and Chromium (Debian's ``chromium`` package, the one
``.ci/run`` installs) loads the page, takes the key, scores a sample lead and renders
the reasons, at desktop and at phone width. Screenshots go to ``tests/artifacts/``
(``ui.png``, ``ui-phone.png``, ``ui-422.png``; git-ignored).
"""

from __future__ import annotations

import json
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


@pytest.fixture(scope="module")
def served(tmp_path_factory, lead_model):
    """(base URL, champion version) of a real server with a champion and an API key.

    One server for the module's tests (it takes most of their time to start). Its store
    and homes are isolated under a tmp directory, as ``isolated_env`` does per test.
    """
    tmp_path = tmp_path_factory.mktemp("ui-server")
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("LEADSCORE_") or key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
                mp.delenv(key, raising=False)
        (tmp_path / "leadscore-home").mkdir()
        mp.setenv("LEADSCORE_HOME", str(tmp_path / "leadscore-home"))
        mp.setenv("BENTOML_HOME", str(tmp_path / "bentoml-home"))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
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


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium, with the flags of a sandboxless container with no network."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def open_page(served, browser):
    """Open /ui/ at a viewport, with the key typed in; after the test, check the page
    reached nothing outside the service and raised no script error."""
    base, _ = served
    pages = []

    def open_(width: int = 1280, height: int = 900, **options):
        page = browser.new_page(viewport={"width": width, "height": height}, **options)
        external: list[str] = []
        errors: list[str] = []
        page.on("request", lambda r: None if r.url.startswith(base) else external.append(r.url))
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{base}/ui/")
        page.fill("#api-key", KEY)
        # Samples load asynchronously; the first engaged lead is the second option.
        page.wait_for_selector("#sample option:nth-child(3)", state="attached")
        pages.append((page, external, errors))
        return page

    yield open_
    for page, external, errors in pages:
        page.close()
        assert not external, f"the page reached outside the service: {external}"
        assert not errors, errors


def _score_sample(page, index: int) -> None:
    """Pick sample ``index`` (option 0 is "paste your own"), click Score, wait for it."""
    page.select_option("#sample", index=index)
    page.click("#score-btn")
    page.wait_for_function(
        "document.getElementById('lead-id').textContent !== ''"
        " && !document.getElementById('score-btn').disabled", timeout=30_000)


def _served_answer(base: str, page) -> dict:
    """What /score answers for the lead in the page's text box."""
    lead = json.loads(page.input_value("#lead-json"))
    return httpx.post(f"{base}/score", json={"leads": [lead]}, timeout=10,
                      headers={"Authorization": f"Bearer {KEY}"}).json()["results"][0]


# Grade -> the cumulative share of the model's validation leads down to that grade.
def _standing(grade: str, shares: dict[str, float]) -> str:
    if grade == "D":
        return f"bottom {shares['D'] * 100:g}% of open leads"
    upto = "ABCD"[: "ABCD".index(grade) + 1]
    return f"top {round(sum(shares[g] for g in upto) * 100, 1):g}% of open leads"


MINUS = "\u2212"


def _impact_text(impact: float) -> str:
    # As the page writes a model's impact: signed, two decimals, one significant digit
    # below 0.005 (so a small impact does not read as a signed zero).
    size = abs(impact)
    return (MINUS if impact < 0 else "+") + (f"{size:.2f}" if size >= 0.005 or size == 0
                                             else f"{size:.1g}")


def _boxes(page, selector: str) -> list[dict]:
    found = page.locator(selector)
    return [found.nth(i).bounding_box() for i in range(found.count())]


def _overlap(a: dict, b: dict) -> bool:
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])


def test_page_is_public_but_scoring_needs_the_key(served):
    base, _ = served
    page = httpx.get(f"{base}/ui/", timeout=5)
    assert page.status_code == 200 and "Score a lead" in page.text
    for asset in ("app.js", "style.css", "samples.json"):
        assert httpx.get(f"{base}/ui/{asset}", timeout=5).status_code == 200, asset
    assert "http" not in page.text.replace("http-equiv", ""), "the page must load nothing external"
    lead = httpx.get(f"{base}/ui/samples.json", timeout=5).json()["samples"][0]["lead"]
    assert httpx.post(f"{base}/score", json={"leads": [lead]}, timeout=10).status_code == 401


def test_favicon_is_a_small_local_icon(served):
    # Browsers ask for /favicon.ico on their own; the page links the same icon.
    base, _ = served
    for url in (f"{base}/favicon.ico", f"{base}/ui/favicon.ico"):
        icon = httpx.get(url, timeout=5)
        assert icon.status_code == 200, url
        assert icon.headers["content-type"] in ("image/x-icon", "image/vnd.microsoft.icon"), url
        assert icon.content[:4] == b"\x00\x00\x01\x00" and len(icon.content) < 4096, url
    assert 'rel="icon" href="favicon.ico"' in httpx.get(f"{base}/ui/", timeout=5).text


def test_marketer_scores_a_sample_lead_in_chromium(served, open_page):
    base, version = served
    page = open_page()
    page.select_option("#sample", index=1)
    assert '"lead_id"' in page.input_value("#lead-json")
    page.click("#score-btn")
    page.wait_for_selector("#chart .reason", timeout=30_000)

    score = int(page.text_content("#score"))
    assert 0 <= score <= 100
    assert page.text_content("#grade") in {"A", "B", "C", "D"}
    assert page.text_content("#route").split()[0] in {"sales", "nurture"}
    assert page.text_content("#model") == f"lead-scoring version {version}"
    assert page.text_content("#answered-by") == "Answered by the model."
    sentences = page.locator("#chart .reason .label").all_text_contents()
    assert sentences and all(len(s) > 10 for s in sentences), sentences
    bars = page.locator("#chart .bar")
    assert bars.count() == len(sentences)
    assert all(b["width"] > 0 for b in _boxes(page, "#chart .bar"))
    assert page.locator("#chart .bar-pos").count() >= 1
    assert page.is_hidden("#trend-row"), "no score history is configured: no trend"
    assert page.evaluate("sessionStorage.getItem('leadscore.apiKey')") == KEY
    assert page.is_hidden("#error")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui.png"), full_page=True)

    # A lead with one hour of history: the page says who answered and why.
    _score_sample(page, 5)
    answered = page.text_content("#answered-by")
    assert answered.startswith(("Answered by the model", "Answered by the rules (")), answered


def test_the_page_shows_the_matrix_the_next_actions_and_the_decay_line(served, open_page):
    base, _ = served
    page = open_page()
    _score_sample(page, 1)  # a recently engaged lead
    lead = json.loads(page.input_value("#lead-json"))
    served_answer = httpx.post(f"{base}/score", json={"leads": [lead], "actions": 3,
                                                      "decay": True}, timeout=30,
                               headers={"Authorization": f"Bearer {KEY}"}).json()["results"][0]
    assert page.is_visible("#matrix")
    marked = page.locator("#matrix td.here")
    assert marked.count() == 1
    assert marked.get_attribute("data-route") == served_answer["matrix_route"]
    fit, engagement = served_answer["fit"], served_answer["engagement"]
    assert page.text_content("#parts").startswith(
        f"Fit {fit['score']} ({fit['level']}) · Engagement {engagement['score']} "
        f"({engagement['level']})")
    shown = page.locator("#actions li").all_text_contents()
    assert shown == [a["sentence"] for a in served_answer["actions"]] and len(shown) == 3
    assert "not a causal promise" in page.inner_text("#actions-note")
    assert page.is_visible("#actions-note")
    assert page.text_content("#decay") == served_answer["decay"]["sentence"]
    assert page.text_content("#decay").startswith("Without new activity this lead ")
    assert "+7 days: " in page.text_content("#decay-points")
    page.screenshot(path=str(ARTIFACTS / "ui-matrix.png"), full_page=True)


def test_headline_says_the_chance_and_the_rank_apart(served, open_page):
    # "11/100 · Grade B · sales" read as a contradiction: the score is the lead's own
    # chance, the grade its rank among leads. The page says each for what it is, the
    # rank from the grading /model ships (the shares the thresholds were cut to hold).
    base, _ = served
    model = httpx.get(f"{base}/model", headers={"Authorization": f"Bearer {KEY}"},
                      timeout=5).json()
    grading = model["grading"]
    assert grading["shares"] == {"A": 0.10, "B": 0.15, "C": 0.25, "D": 0.50}
    assert grading["sales_grades"] == ["A", "B"]
    assert 100 >= grading["a"] >= grading["b"] >= grading["c"] >= 1
    page = open_page()
    seen = set()
    for index in (1, 2, 3):
        _score_sample(page, index)
        answer = _served_answer(base, page)
        assert answer["scored_by"] == "model"
        score, grade = answer["score"], answer["grade"]
        assert page.text_content("#score") == str(score)
        headline = " ".join(page.inner_text("#result .headline").split())
        assert headline == f"{score}% likely to convert within the model's horizon"
        standing = " ".join(page.inner_text("#result .standing").split())
        assert standing == f"{_standing(grade, grading['shares'])} · Grade {grade}", standing
        route = " ".join(page.inner_text("#result .route").split())
        assert route == ("Route sales (call now) (grades A and B go to sales)"
                         if grade in "AB" else "Route nurture (grades A and B go to sales)"), route
        assert "/100" not in page.inner_text("#result")
        legend = page.text_content("#grade-legend")
        assert "A is the top 10%, B the next 15%, C the next 25%, D the other 50%" in legend
        seen.add(grade)
    assert len(seen) >= 2, f"the samples should reach two grades at least; saw {seen}"


def test_each_bar_shows_its_signed_impact(served, open_page):
    base, _ = served
    page = open_page()
    _score_sample(page, 1)
    answer = _served_answer(base, page)
    values = page.locator("#chart .reason .value").all_text_contents()
    assert values == [_impact_text(r["impact"]) for r in answer["reasons"]], values
    rows = page.locator("#chart .reason")
    assert rows.count() == len(values)
    for i in range(rows.count()):
        positive = rows.nth(i).locator(".bar-pos").count() == 1
        assert values[i].startswith("+" if positive else MINUS), (i, values[i])
        assert rows.nth(i).locator(".value").is_visible()
    assert "signed impact (log-odds of the model)" in page.text_content("#chart-hint")


def test_an_error_clears_the_previous_answer(served, open_page):
    page = open_page()
    _score_sample(page, 1)
    assert page.is_visible("#result") and page.locator("#chart .reason").count() > 0
    lead = json.loads(page.input_value("#lead-json"))
    page.fill("#lead-json", json.dumps({**lead, "created_at": "not a date"}))
    page.click("#score-btn")
    page.wait_for_selector("#error", state="visible", timeout=30_000)
    page.wait_for_function("!document.getElementById('score-btn').disabled")
    assert "leads[0].created_at" in page.text_content("#error")
    assert page.is_hidden("#result"), "the previous lead's answer is still on screen"
    assert page.locator("#chart *").count() == 0
    for field in ("#score", "#grade", "#standing", "#lead-id", "#model"):
        assert page.text_content(field) == "", field
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-422.png"), full_page=True)
    # And the next good lead shows again, with no error left over.
    _score_sample(page, 1)
    assert page.is_hidden("#error") and page.is_visible("#result")


def test_reasons_read_on_a_phone(served, open_page):
    # 375 px: every sentence at a readable size, inside the screen, on its own lines;
    # each value beside its bar; nothing overlaps and the page does not scroll sideways.
    width = 375
    page = open_page(width, 812, device_scale_factor=2, is_mobile=True, has_touch=True)
    _score_sample(page, 1)
    page.wait_for_selector("#chart .reason")
    labels = _boxes(page, "#chart .label")
    assert labels
    line = page.locator("#chart .label").first.evaluate(
        "e => parseFloat(getComputedStyle(e).fontSize)")
    for box in labels:
        # A drawing scaled down to the screen shrinks its text; text must keep its size.
        assert box["height"] >= line, (box, line)
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, box
    assert line >= 13
    values = _boxes(page, "#chart .value")
    bars = _boxes(page, "#chart .bar")
    assert len(labels) == len(values) == len(bars)
    for box in values + bars:
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, box
    texts = labels + values
    for i, a in enumerate(texts):
        for b in texts[i + 1:]:
            assert not _overlap(a, b), (a, b)
    for value, bar in zip(values, bars, strict=True):
        assert not _overlap(value, bar), (value, bar)
    for selector in ("#result .headline", "#result .standing", "#result .route"):
        box = page.locator(selector).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, (selector, box)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-phone.png"), full_page=True)
