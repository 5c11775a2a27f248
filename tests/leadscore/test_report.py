"""Funnel report: hand-made frames with answers worked out by hand, then the page itself.

The frames (as of 2026-04-15, horizon 40 days, so leads created by 2026-03-06 are
"mature"):

====  ==========  =======  ==========  ================  =========================
lead  created     source   converted   disqualified      activities (by as_of)
====  ==========  =======  ==========  ================  =========================
L1    01-05       web      01-15 (10d)                   page_view, demo_request 01-08
L2    01-10       web                                    email_open
L3    01-20       ads      02-19 (30d)                   trial_signup 01-25, demo 02-02
L4    02-01       ads                  02-10             unsubscribe
L5    02-15       web      03-07 (20d)                   trial_signup 02-20
L6    03-01       event                                  demo_request 03-05, 03-06
L7    03-10       event    05-01 (after as_of)           page_view (demo 04-20 is after)
L8    05-01       web      (created after as_of: left out)
====  ==========  =======  ==========  ================  =========================
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.errors import DataValidationError
from features.schema import validate_activities, validate_leads
from leadscore import report as rpt

AS_OF = pd.Timestamp("2026-04-15T00:00:00Z")
HORIZON = pd.Timedelta(days=40)
SECTION_TITLES = [title for _, title in rpt._SECTIONS]


def ts(text: str | None) -> pd.Timestamp:
    return pd.NaT if text is None else pd.Timestamp(f"2026-{text}T00:00:00Z")


@pytest.fixture
def leads() -> pd.DataFrame:
    rows = [
        ("L1", "01-05", "web", "01-15", None),
        ("L2", "01-10", "web", None, None),
        ("L3", "01-20", "ads", "02-19", None),
        ("L4", "02-01", "ads", None, "02-10"),
        ("L5", "02-15", "web", "03-07", None),
        ("L6", "03-01", "event", None, None),
        ("L7", "03-10", "event", "05-01", None),
        ("L8", "05-01", "web", None, None),
    ]
    frame = pd.DataFrame(
        {
            "lead_id": [r[0] for r in rows],
            "created_at": [ts(r[1]) for r in rows],
            "source": [r[2] for r in rows],
            "converted_at": [ts(r[3]) for r in rows],
            "disqualified_at": [ts(r[4]) for r in rows],
        }
    )
    return validate_leads(frame)


@pytest.fixture
def activities(leads: pd.DataFrame) -> pd.DataFrame:
    rows = [
        ("L1", "01-06", "page_view"),
        ("L1", "01-08", "demo_request"),
        ("L2", "01-11", "email_open"),
        ("L3", "01-25", "trial_signup"),
        ("L3", "02-02", "demo_request"),
        ("L4", "02-05", "unsubscribe"),
        ("L5", "02-20", "trial_signup"),
        ("L6", "03-05", "demo_request"),
        ("L6", "03-06", "demo_request"),
        ("L7", "03-11", "page_view"),
        ("L7", "04-20", "demo_request"),
        ("L8", "05-02", "demo_request"),
    ]
    frame = pd.DataFrame(
        {"lead_id": [r[0] for r in rows], "occurred_at": [ts(r[1]) for r in rows],
         "type": [r[2] for r in rows]}
    )
    return validate_activities(frame, lead_ids=leads["lead_id"]).frame


def scores_frame(rows: list[tuple[str, str | None, float, str]]) -> pd.DataFrame:
    """Scores as batch rescoring writes them: (lead_id, scored_at, probability, grade)."""
    probability = [r[2] for r in rows]
    return pd.DataFrame(
        {
            "lead_id": [r[0] for r in rows],
            "probability": probability,
            "score": [round(p * 100) for p in probability],
            "grade": [r[3] for r in rows],
            "route": ["sales" if r[3] in ("A", "B") else "nurture" for r in rows],
            "scored_by": ["model"] * len(rows),
            "scored_at": [ts(r[1]) for r in rows],
        }
    )


@pytest.fixture
def scores(leads: pd.DataFrame) -> pd.DataFrame:
    # At 02-01: L1 already converted (left out), L5 not created yet (left out); L2, L3, L4
    # are followed for 40 days (to 03-13, before as_of). L6 at 04-01 has only 14 days and
    # L7 at 04-20 is after as_of: both left out.
    frame = scores_frame(
        [
            ("L1", "02-01", 0.9, "A"),
            ("L2", "02-01", 0.2, "C"),
            ("L3", "02-01", 0.8, "A"),
            ("L4", "02-01", 0.1, "D"),
            ("L5", "02-01", 0.5, "B"),
            ("L6", "04-01", 0.6, "B"),
            ("L7", "04-20", 0.3, "C"),
        ]
    )
    return rpt.validate_scores(frame, lead_ids=leads["lead_id"])


def write_data(directory: Path, leads: pd.DataFrame, activities: pd.DataFrame) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    leads.to_parquet(directory / "leads.parquet")
    activities.to_parquet(directory / "activities.parquet")
    return directory


# ----------------------------------------------------------------------- known answers


def test_default_as_of_is_latest_timestamp(leads, activities):
    assert rpt.default_as_of(leads, activities) == ts("05-02")


def test_funnel_counts_by_hand(leads, activities):
    funnel = rpt.funnel_counts(leads, activities, AS_OF).set_index("stage")
    # L4 only unsubscribed; L7's demo request is after as_of; L8 was created after it.
    assert funnel["leads"].to_dict() == {
        "created": 7, "engaged": 6, "sales_ready": 4, "converted": 3, "disqualified": 1,
    }
    assert funnel.loc["converted", "share_of_created"] == pytest.approx(3 / 7)


def test_overall_conversion_by_hand(leads):
    overall = rpt.overall_conversion(leads, AS_OF, HORIZON)
    assert overall["leads"] == 7
    assert overall["converted"] == 3
    assert overall["rate"] == pytest.approx(3 / 7)
    # Mature = created by 03-06: L1..L6; L1, L3, L5 converted within 40 days.
    assert overall["mature_leads"] == 6
    assert overall["rate_within_horizon"] == pytest.approx(3 / 6)


def test_conversion_by_cohort_marks_recent_cohorts_immature(leads):
    cohorts = rpt.conversion_by_cohort(leads, AS_OF, HORIZON)
    assert [str(m) for m in cohorts["month"]] == ["2026-01", "2026-02", "2026-03"]
    assert cohorts["leads"].tolist() == [3, 2, 2]
    assert cohorts["converted"].tolist() == [2, 1, 0]
    np.testing.assert_allclose(cohorts["rate"], [2 / 3, 1 / 2, 0.0])
    assert cohorts["mature"].tolist() == [True, True, False]
    assert cohorts["rate_within_horizon"].iloc[0] == pytest.approx(2 / 3)
    assert np.isnan(cohorts["rate_within_horizon"].iloc[2])
    # March's youngest lead (L7, 03-10) has 36 days of follow-up.
    assert cohorts["min_follow_up_days"].iloc[2] == pytest.approx(36.0)


def test_lead_velocity_by_hand(leads, activities):
    qualified = rpt.qualified_at_from_actions(leads, activities, AS_OF)
    assert qualified.to_dict() == {
        "L1": ts("01-08"), "L3": ts("01-25"), "L5": ts("02-20"), "L6": ts("03-05"),
    }
    velocity = rpt.lead_velocity(qualified, AS_OF)
    assert [str(m) for m in velocity["month"]] == ["2026-01", "2026-02", "2026-03", "2026-04"]
    assert velocity["qualified"].tolist() == [2, 1, 1, 0]
    # Feb: (1 - 2) / 2; Mar: (1 - 1) / 1; Apr is partial.
    np.testing.assert_allclose(velocity["lvr"], [np.nan, -0.5, 0.0, -1.0])
    assert velocity["partial"].tolist() == [False, False, False, True]


def test_lead_velocity_undefined_after_an_empty_month():
    qualified = pd.Series([ts("01-10"), ts("03-10"), ts("03-11")])
    velocity = rpt.lead_velocity(qualified, pd.Timestamp("2026-03-31T23:59:59.999999999Z"))
    assert velocity["qualified"].tolist() == [1, 0, 2]
    assert np.isnan(velocity["lvr"].iloc[2])  # growth from zero is not a rate
    assert not velocity["partial"].any()  # as_of at the very end of March completes it


def test_conversion_by_source_by_hand(leads):
    sources = rpt.conversion_by_source(leads, AS_OF, HORIZON).set_index("source")
    assert sources.index.tolist() == ["web", "ads", "event"]  # largest first, then by name
    assert sources["leads"].tolist() == [3, 2, 2]
    np.testing.assert_allclose(sources["rate"], [2 / 3, 1 / 2, 0.0])
    assert sources.loc["web", "median_days_to_convert"] == pytest.approx(15.0)
    assert sources.loc["ads", "median_days_to_convert"] == pytest.approx(30.0)
    assert (sources["ci_low"] <= sources["rate"]).all()
    assert (sources["rate"] <= sources["ci_high"]).all()


def test_unknown_source_is_named(leads):
    blank = leads.assign(source=leads["source"].where(leads["lead_id"] != "L6"))
    sources = rpt.conversion_by_source(blank, AS_OF, HORIZON)
    assert rpt.UNKNOWN_SOURCE in sources["source"].tolist()


def test_time_to_conversion_by_hand(leads):
    days = rpt.time_to_conversion_days(leads, AS_OF)
    assert days.to_dict() == {"L1": 10.0, "L3": 30.0, "L5": 20.0}
    assert days.median() == 20.0


# ----------------------------------------------------------------------- score outcomes


def test_score_outcomes_compare_only_with_later_conversions(leads, scores):
    outcomes = rpt.score_outcomes(scores, leads, as_of=AS_OF, horizon=HORIZON)
    assert outcomes.fully_observed
    frame = outcomes.frame.set_index("lead_id")
    assert frame.index.tolist() == ["L2", "L3", "L4"]
    assert frame["converted"].to_dict() == {"L2": False, "L3": True, "L4": False}
    assert outcomes.excluded == {
        "already converted at scoring time": 1,
        "lead not yet created at scoring time": 1,
        "scored at or after the report date": 1,
        "fewer than 40 days of follow-up yet": 1,
    }
    metrics = rpt.calibration_metrics(outcomes.frame)
    assert metrics["base_rate"] == pytest.approx(1 / 3)
    assert metrics["auc"] == pytest.approx(1.0)
    assert metrics["brier"] == pytest.approx((0.2**2 + 0.2**2 + 0.1**2) / 3)


def test_conversion_after_the_horizon_is_not_counted(leads):
    # L5 scored the day it was created converts 20 days later: a hit within 30 days,
    # a miss within 10.
    scores = rpt.validate_scores(scores_frame([("L5", "02-15", 0.5, "B")]))
    hit = rpt.score_outcomes(scores, leads, as_of=AS_OF, horizon=pd.Timedelta(days=30))
    miss = rpt.score_outcomes(scores, leads, as_of=AS_OF, horizon=pd.Timedelta(days=10))
    assert hit.frame["converted"].tolist() == [True]
    assert miss.frame["converted"].tolist() == [False]


def test_partial_window_is_flagged_not_faked(leads):
    # Scored 04-01: only 14 of 40 days have passed by as_of.
    scores = rpt.validate_scores(scores_frame([("L6", "04-01", 0.6, "B"), ("L7", "04-01", 0.3, "C")]))
    outcomes = rpt.score_outcomes(scores, leads, as_of=AS_OF, horizon=HORIZON)
    assert not outcomes.fully_observed
    assert outcomes.median_window_days == pytest.approx(14.0)
    # L7 converts 05-01, after as_of: not known yet, so not counted.
    assert outcomes.frame["converted"].tolist() == [False, False]


def test_scores_after_as_of_are_not_observable(leads, activities):
    scores = rpt.validate_scores(scores_frame([("L6", "04-15", 0.6, "B")]))
    report = rpt.build_report(leads, activities, scores, as_of=AS_OF, horizon=HORIZON)
    assert not report.outcomes.observable
    page = rpt.render_report_html(report)
    assert "not observable" in page


def test_scored_at_option_fills_missing_times(leads):
    rules = scores_frame([("L2", None, 0.2, "C"), ("L3", None, 0.8, "A")]).drop(
        columns=["scored_at", "scored_by"]
    )
    scores = rpt.validate_scores(rules)
    without = rpt.score_outcomes(scores, leads, as_of=AS_OF, horizon=HORIZON)
    assert not without.observable
    assert without.excluded == {"no scored_at (pass --scored-at)": 2}
    with_time = rpt.score_outcomes(scores, leads, as_of=AS_OF, horizon=HORIZON, scored_at=ts("02-01"))
    assert with_time.frame["converted"].tolist() == [False, True]


def test_calibration_table_deciles_and_capture():
    n = 100
    frame = pd.DataFrame(
        {
            "lead_id": [f"L{i:03d}" for i in range(n)],
            "scored_at": ts("01-01"),
            "probability": np.linspace(0.99, 0.0, n),
            # The 10 highest scores hold 5 of the 10 conversions.
            "converted": [i < 5 or i % 20 == 10 for i in range(n)],
        }
    )
    table = rpt.calibration_table(frame)
    assert table["leads"].tolist() == [10] * 10
    assert table["observed_rate"].iloc[0] == pytest.approx(0.5)
    assert table["lift"].iloc[0] == pytest.approx(0.5 / 0.1)
    assert table["cumulative_capture"].iloc[0] == pytest.approx(0.5)
    assert table["cumulative_capture"].iloc[-1] == pytest.approx(1.0)
    assert (table["mean_probability"].diff().dropna() < 0).all()


def test_conversion_by_grade_by_hand(leads, scores):
    outcomes = rpt.score_outcomes(scores, leads, as_of=AS_OF, horizon=HORIZON)
    grades = rpt.conversion_by_grade(outcomes.frame).set_index("grade")
    assert grades.index.tolist() == ["A", "B", "C", "D"]
    assert grades["leads"].tolist() == [1, 0, 1, 1]
    assert grades.loc["A", "observed_rate"] == 1.0
    assert np.isnan(grades.loc["B", "observed_rate"])
    assert grades.loc["A", "lift"] == pytest.approx(3.0)


def test_velocity_uses_grades_when_scores_have_history(leads, activities):
    history = rpt.validate_scores(
        scores_frame(
            [
                ("L2", "01-20", 0.3, "B"),  # first month of history: backlog, left out
                ("L2", "02-10", 0.3, "B"),
                ("L3", "02-10", 0.7, "A"),
                ("L6", "03-10", 0.6, "B"),
                ("L7", "03-12", 0.4, "C"),
            ]
        ),
        lead_ids=leads["lead_id"],
    )
    report = rpt.build_report(leads, activities, history, as_of=AS_OF, horizon=HORIZON)
    assert "graded A/B" in report.qualified_definition
    v = report.velocity
    assert [str(m) for m in v["month"]] == ["2026-02", "2026-03", "2026-04"]
    # L2 was already B in January, so only L3 is new in February.
    assert v["qualified"].tolist() == [1, 1, 0]


def test_single_snapshot_scores_fall_back_to_actions(leads, activities, scores):
    single = scores.loc[scores["scored_at"] == ts("02-01")]
    report = rpt.build_report(leads, activities, single, as_of=AS_OF, horizon=HORIZON)
    assert "sales-ready action" in report.qualified_definition
    assert "fewer than two calendar months" in report.qualified_definition


# ----------------------------------------------------------------------- validation


def test_scores_validation_names_field_and_row(leads):
    bad = scores_frame([("L1", "02-01", 1.5, "A"), ("L2", "02-01", 0.2, "Z"), ("nope", "02-01", 0.1, "D")])
    with pytest.raises(DataValidationError) as info:
        rpt.validate_scores(bad, lead_ids=leads["lead_id"])
    message = str(info.value)
    assert "scores.probability: 1.5 is not a probability between 0 and 1 (row 0" in message
    assert "scores.grade: 'Z' is not a grade" in message
    assert "scores.lead_id: 'nope' is not a known lead" in message


def test_scores_duplicate_snapshot_rejected():
    dup = scores_frame([("L1", "02-01", 0.5, "B"), ("L1", "02-01", 0.6, "B")])
    with pytest.raises(DataValidationError, match="scored twice at the same scored_at"):
        rpt.validate_scores(dup)


def test_missing_data_dir_names_it(tmp_path):
    with pytest.raises(DataValidationError, match="is not a directory"):
        rpt.load_report_inputs(tmp_path / "nowhere")


def test_missing_activities_file_names_it(tmp_path, leads):
    tmp_path.joinpath("d").mkdir()
    leads.to_parquet(tmp_path / "d" / "leads.parquet")
    with pytest.raises(DataValidationError) as info:
        rpt.load_report_inputs(tmp_path / "d")
    assert "activities.path" in str(info.value)
    assert "activities.parquet' does not exist" in str(info.value)


def test_wrong_columns_name_file_and_field(tmp_path, leads, activities):
    data = write_data(tmp_path / "d", leads.drop(columns="created_at"), activities)
    with pytest.raises(DataValidationError) as info:
        rpt.load_report_inputs(data)
    message = str(info.value)
    assert str(data / "leads.parquet") in message
    assert ").created_at: None is missing" in message


def test_bad_scores_columns_name_file(tmp_path, leads, activities, scores):
    data = write_data(tmp_path / "d", leads, activities)
    scores.drop(columns="probability").to_parquet(tmp_path / "scores.parquet")
    with pytest.raises(DataValidationError) as info:
        rpt.load_report_inputs(data, tmp_path / "scores.parquet")
    assert f"scores ({tmp_path / 'scores.parquet'}).probability: None is missing" in str(info.value)


def test_out_of_range_timestamps_name_file_field_and_lead(tmp_path, leads, activities):
    # Parquet holds microseconds; a broken export can hold years pandas cannot represent.
    raw = leads.assign(converted_at=leads["converted_at"].astype("datetime64[us, UTC]"))
    raw.loc[raw["lead_id"] == "L2", "converted_at"] = pd.Timestamp("2262-01-01", tz="UTC")
    raw["converted_at"] = raw["converted_at"].astype("datetime64[us, UTC]")
    raw.loc[raw["lead_id"] == "L2", "converted_at"] += pd.Timedelta(days=400)
    data = write_data(tmp_path / "d", raw, activities)
    with pytest.raises(DataValidationError) as info:
        rpt.load_report_inputs(data)
    message = str(info.value)
    assert f"leads ({data / 'leads.parquet'}).converted_at: '2263-" in message
    assert "is out of range" in message
    assert "lead_id L2" in message


def test_corrupt_parquet_names_file(tmp_path, activities):
    data = tmp_path / "d"
    data.mkdir()
    (data / "leads.parquet").write_text("not parquet")
    activities.to_parquet(data / "activities.parquet")
    with pytest.raises(DataValidationError, match="could not be read as parquet"):
        rpt.load_report_inputs(data)


def test_empty_scores_directory_is_an_error(tmp_path, leads, activities):
    data = write_data(tmp_path / "d", leads, activities)
    (tmp_path / "scores").mkdir()
    with pytest.raises(DataValidationError, match="no .parquet file"):
        rpt.load_report_inputs(data, tmp_path / "scores")


def test_scores_directory_dataset_is_read(tmp_path, leads, activities, scores):
    data = write_data(tmp_path / "d", leads, activities)
    parts = tmp_path / "scores"
    parts.mkdir()
    scores.iloc[:3].to_parquet(parts / "part-0.parquet")
    scores.iloc[3:].to_parquet(parts / "part-1.parquet")
    (parts / "_SUCCESS").write_text("")
    inputs = rpt.load_report_inputs(data, parts)
    assert sorted(inputs.scores["lead_id"]) == sorted(scores["lead_id"])


# ----------------------------------------------------------------------- the page


class _Page(HTMLParser):
    """Collects what a self-containment check needs: headings, images, links, scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.h2: list[str] = []
        self.refs: list[tuple[str, str, str]] = []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        if tag == "h2":
            self._in_h2 = True
            self.h2.append("")
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.refs.append((tag, name, value))

    def handle_endtag(self, tag):
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, data):
        if self._in_h2:
            self.h2[-1] += data


def parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser


def assert_self_contained(page: str) -> _Page:
    parsed = parse(page)
    for title in SECTION_TITLES:
        assert title in parsed.h2
    for tag, name, value in parsed.refs:
        # Only inline images and in-page anchors: nothing to fetch, works offline.
        if tag == "img":
            assert value.startswith("data:image/png;base64,"), value
        else:
            assert value.startswith("#"), (tag, name, value)
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "<link" not in page
    return parsed


def test_page_without_scores_is_self_contained_and_says_what_is_missing(leads, activities):
    report = rpt.build_report(leads, activities, as_of=AS_OF, horizon=HORIZON)
    page = rpt.render_report_html(report)
    parsed = assert_self_contained(page)
    assert sum(1 for tag, _, _ in parsed.refs if tag == "img") >= 5
    assert page.count("Needs --scores") >= 2
    assert "no cost or spend figures" in page
    assert "Right-censoring" in page
    assert "42.9% of leads have converted so far (3 of 7)" in page
    assert "median 20.0 days" in page
    assert "Lead velocity rate for 2026-03: +0.0%" in page
    assert "month not over" in page


def test_page_with_scores_shows_calibration(leads, activities, scores):
    report = rpt.build_report(leads, activities, scores, as_of=AS_OF, horizon=HORIZON)
    page = rpt.render_report_html(report)
    parsed = assert_self_contained(page)
    assert sum(1 for tag, _, _ in parsed.refs if tag == "img") >= 7
    assert "Needs --scores" not in page
    assert "ROC AUC" in page
    assert "Grade A leads converted within 40 days at 100.0%" in page


def test_write_report_is_deterministic_and_atomic(tmp_path, leads, activities, scores):
    data = write_data(tmp_path / "d", leads, activities)
    scores.to_parquet(tmp_path / "scores.parquet")
    out = tmp_path / "out" / "report.html"
    kwargs = dict(scores_path=tmp_path / "scores.parquet", as_of=AS_OF, horizon=HORIZON)
    rpt.write_report(data, out, **kwargs)
    first = out.read_bytes()
    rpt.write_report(data, out, **kwargs)
    assert out.read_bytes() == first
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temp file left


def test_failed_write_keeps_the_old_report(tmp_path, leads, activities):
    out = tmp_path / "report.html"
    out.write_text("old")
    with pytest.raises(DataValidationError):
        rpt.write_report(tmp_path / "missing", out)
    assert out.read_text() == "old"


# ----------------------------------------------------------------------- the command


def test_cli_report_with_and_without_scores(tmp_path, leads, activities, scores):
    from typer.testing import CliRunner

    from leadscore.cli import app

    data = write_data(tmp_path / "d", leads, activities)
    scores.to_parquet(tmp_path / "scores.parquet")
    runner = CliRunner()
    plain = runner.invoke(app, ["report", "--data", str(data), "--out", str(tmp_path / "a.html"),
                                "--as-of", "2026-04-15", "--horizon", "40d"])
    assert plain.exit_code == 0, plain.output
    assert_self_contained((tmp_path / "a.html").read_text())
    scored = runner.invoke(app, ["report", "--data", str(data), "--out", str(tmp_path / "b.html"),
                                 "--scores", str(tmp_path / "scores.parquet"),
                                 "--as-of", "2026-04-15T00:00:00Z", "--horizon", "40d"])
    assert scored.exit_code == 0, scored.output
    assert "ROC AUC" in (tmp_path / "b.html").read_text()


def test_cli_bad_option_and_missing_file(tmp_path):
    from typer.testing import CliRunner

    from leadscore.cli import app

    runner = CliRunner()
    bad = runner.invoke(app, ["report", "--data", str(tmp_path), "--out", str(tmp_path / "r.html"),
                              "--horizon", "soon"])
    assert bad.exit_code == 2
    assert "--horizon" in bad.output
    missing = runner.invoke(app, ["report", "--data", str(tmp_path), "--out", str(tmp_path / "r.html")])
    assert isinstance(missing.exception, DataValidationError)
    assert "leads.parquet' does not exist" in str(missing.exception)


# ----------------------------------------------------------------------- generated data


@pytest.fixture
def generated(synthetic_dir) -> Path:
    """The session's generated CRM (leads, activities, truth)."""
    return Path(synthetic_dir)


def truth_as_scores(truth: pd.DataFrame) -> pd.DataFrame:
    """The simulator's true probabilities as if a perfect model had scored at each snapshot."""
    from features.grading import Grading, score_from_probability

    grading = Grading(a=40, b=20, c=8)
    score = score_from_probability(truth["p_convert"].to_numpy())
    grade = grading.grade(score)
    return pd.DataFrame(
        {
            "lead_id": truth["lead_id"].astype("string"),
            "probability": truth["p_convert"].to_numpy(),
            "score": score,
            "grade": grade,
            "route": grading.route(grade),
            "scored_by": "truth",
            "scored_at": truth["as_of"],
        }
    )


def test_cli_report_on_generated_data(generated, tmp_path):
    from typer.testing import CliRunner

    from leadscore.cli import app

    truth = pd.read_parquet(generated / "truth.parquet")
    truth_as_scores(truth).to_parquet(tmp_path / "scores.parquet")
    runner = CliRunner()
    for name, extra in (("plain", []), ("scored", ["--scores", str(tmp_path / "scores.parquet")])):
        out = tmp_path / f"{name}.html"
        result = runner.invoke(app, ["report", "--data", str(generated), "--out", str(out), *extra])
        assert result.exit_code == 0, result.output
        page = out.read_text()
        parsed = assert_self_contained(page)
        assert sum(1 for tag, _, _ in parsed.refs if tag == "img") >= (7 if extra else 5)


def test_true_probabilities_come_out_calibrated(generated):
    """The outcome window is right: the simulator's own probabilities, used as scores,
    match the conversions this report counts after them."""
    inputs = rpt.load_report_inputs(generated)
    truth = pd.read_parquet(generated / "truth.parquet")
    scores = rpt.validate_scores(truth_as_scores(truth), lead_ids=inputs.leads["lead_id"])
    as_of = rpt.default_as_of(inputs.leads, inputs.activities)
    outcomes = rpt.score_outcomes(scores, inputs.leads, as_of=as_of)
    assert outcomes.fully_observed
    m = rpt.calibration_metrics(outcomes.frame)
    # Rows of one lead are correlated: judge the noise by distinct leads, with room to spare.
    n_eff = outcomes.frame["lead_id"].nunique()
    se = np.sqrt(m["base_rate"] * (1 - m["base_rate"]) / n_eff)
    assert abs(m["mean_probability"] - m["base_rate"]) < 4 * se + 0.005, m
    assert m["auc"] > 0.6


def test_scores_are_followed_from_their_as_of_not_the_wall_clock_of_the_run(
        tmp_path, leads, activities, scores):
    # `leadscore rescore --as-of 2026-02-01` run on 2026-12-02: as_of is the moment the
    # scores speak for, scored_at the wall clock, after the report date.
    raw = scores_frame([(lead, "02-01", p, g) for lead, p, g in
                        [("L1", 0.9, "A"), ("L2", 0.2, "C"), ("L3", 0.8, "A"), ("L4", 0.1, "D"),
                         ("L5", 0.5, "B")]])
    raw = raw.assign(as_of=raw["scored_at"], scored_at=ts("12-02"))
    validated = rpt.validate_scores(raw, lead_ids=leads["lead_id"])
    outcomes = rpt.score_outcomes(validated, leads, as_of=AS_OF, horizon=HORIZON)
    assert outcomes.observable and outcomes.fully_observed
    expected = rpt.score_outcomes(scores, leads, as_of=AS_OF, horizon=HORIZON)
    pd.testing.assert_frame_equal(
        outcomes.frame, expected.frame.loc[expected.frame["scored_at"] == ts("02-01")]
        .reset_index(drop=True))

    from typer.testing import CliRunner

    from leadscore.cli import app

    data = write_data(tmp_path / "d", leads, activities)
    raw.to_parquet(tmp_path / "scores.parquet")
    result = CliRunner().invoke(app, [
        "report", "--data", str(data), "--out", str(tmp_path / "r.html"),
        "--scores", str(tmp_path / "scores.parquet"), "--as-of", "2026-04-15", "--horizon", "40d"])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r.html").read_text()
    assert "Not observable yet" not in page
    assert "Grade A leads converted within 40 days" in page
    assert "The top 10% of scored leads converted within 40 days" in page


def test_fit_engagement_matrix_counts_the_base_and_conversion_per_cell(leads, activities):
    # As in `scores`: L2, L3 and L4 are followed to their outcome (L3 converted).
    frame = scores_frame([("L1", "02-01", 0.9, "A"), ("L2", "02-01", 0.2, "C"),
                          ("L3", "02-01", 0.8, "A"), ("L4", "02-01", 0.1, "D"),
                          ("L6", "04-01", 0.6, "B")])
    frame["matrix_route"] = ["sales", "review", "sales", "recycle", "Targeted_Nurture"]
    scores = rpt.validate_scores(frame, lead_ids=leads["lead_id"])
    report = rpt.build_report(leads, activities, scores, as_of=AS_OF, horizon=HORIZON)
    m = report.matrix.set_index("matrix_route")
    assert m["leads"].to_dict() == {"sales": 2, "targeted_nurture": 1, "review": 1,
                                    "recycle": 1}
    assert m["scored"].to_dict() == {"sales": 1, "targeted_nurture": 0, "review": 1,
                                     "recycle": 1}
    assert m.loc["sales", "observed_rate"] == 1.0 and m.loc["review", "observed_rate"] == 0.0
    assert np.isnan(m.loc["targeted_nurture", "observed_rate"])
    page = rpt.render_report_html(report)
    assert 'id="matrix"' in page and "Targeted nurture" in page
    assert "100.0% converted (1 of 1)" in page
    # Without the column (an older batch output), the section says what it needs.
    plain = rpt.build_report(leads, activities, rpt.validate_scores(
        frame.drop(columns="matrix_route"), lead_ids=leads["lead_id"]), as_of=AS_OF,
        horizon=HORIZON)
    assert plain.matrix is None and "no fit x engagement route" in rpt.render_report_html(plain)
    bad = frame.assign(matrix_route=["sales", "upsell", None, None, None])
    with pytest.raises(DataValidationError, match="matrix_route.*upsell"):
        rpt.validate_scores(bad, lead_ids=leads["lead_id"])
