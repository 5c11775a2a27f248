"""The JSON contract of the scoring API, as pydantic models.

These models are the boundary for CRM calls: the gateway validates request bodies
against them (so a malformed lead gets a 422 naming ``leads[i].field``), BentoML
derives the OpenAPI document from them, and the service builds its answers with them.
Every field has a description and an example so the document is usable on its own.

Batch policy, stated once here and repeated in the OpenAPI descriptions: a request is
validated as a whole. One malformed lead fails the whole request with 422 listing
*every* bad field of every lead, because a CRM integration with a broken mapping should
learn it at once rather than silently lose some leads. Once a request is valid, each
lead is scored on its own: a model failure on one lead falls back to the rules for
that lead only (``fallback_reason = "model_error"``), and the rest of the batch is
unaffected.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from features.schema import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP


def _in_range(value: datetime) -> datetime:
    # The data contract's range, checked here so that a year-0400 created_at is a 422
    # naming the field instead of an overflow inside pandas (found by the fuzz test).
    if not _EARLIEST <= value < _LATEST:
        raise ValueError(
            f"is out of range; expected a time from {EARLIEST_TIMESTAMP.year} "
            f"to {LATEST_TIMESTAMP.year - 1}"
        )
    return value


# As Python datetimes: pandas' own Timestamp cannot even compare with year 0400.
_EARLIEST = EARLIEST_TIMESTAMP.to_pydatetime()
_LATEST = LATEST_TIMESTAMP.to_pydatetime()

Timestamp = Annotated[AwareDatetime, AfterValidator(_in_range)]
"""An ISO 8601 time with a UTC offset, within the data contract's range."""

__all__ = [
    "BatchHealth",
    "Activity",
    "Lead",
    "ScoreRequest",
    "ExplainRequest",
    "ReasonOut",
    "PartOut",
    "ActionOut",
    "DecayOut",
    "DecayPoint",
    "GradeDrop",
    "ACTIONS_DOC",
    "CAUSAL_NOTE",
    "DECAY_DOC",
    "MATRIX_NOTE",
    "ScoreResult",
    "ScoreResponse",
    "Contribution",
    "ExplainResponse",
    "Refusal",
    "GradingInfo",
    "ModelInfo",
    "Readiness",
    "ErrorResponse",
    "BATCH_POLICY",
]

BATCH_POLICY = (
    "Validation is all-or-nothing: if any lead is malformed the whole request is "
    "rejected with 422, and the error lists every bad field as `leads[i].field: ...`. "
    "Scoring is per lead: if the model fails on one lead, that lead alone is scored by "
    "the rules with `fallback_reason: model_error`; the others are unaffected."
)

_EXAMPLE_ACTIVITY = {
    "type": "pricing_page_view",
    "occurred_at": "2026-02-27T14:05:00Z",
    "url": "https://example.com/pricing",
}
_EXAMPLE_LEAD = {
    "lead_id": "L-000123",
    "created_at": "2026-02-01T09:30:00Z",
    "source": "paid_search",
    "country": "DE",
    "industry": "Software",
    "company_size": 120,
    "job_title": "Head of Marketing",
    "seniority": "Director",
    "job_function": "Marketing",
    "activities": [
        _EXAMPLE_ACTIVITY,
        {"type": "demo_request", "occurred_at": "2026-02-28T10:00:00Z"},
    ],
}


class _Strict(BaseModel):
    # Unknown keys are ignored, not rejected: CRMs send many fields we do not use
    # (names, phone numbers, owner ids). Ignoring them also keeps PII out of our frames.
    model_config = ConfigDict(extra="ignore", frozen=True)


class Activity(_Strict):
    """One behavioural event of a lead (a page view, an email click, a demo request)."""

    type: str = Field(
        min_length=1,
        max_length=100,
        description="Activity type, e.g. page_view, pricing_page_view, email_open, "
        "email_click, form_submit, content_download, webinar_registered, webinar_attended, "
        "demo_request, trial_signup, chat. Unknown types are accepted and count as "
        "generic engagement.",
        examples=["pricing_page_view"],
    )
    occurred_at: Timestamp = Field(
        description="When it happened, ISO 8601 with a UTC offset. Only activities "
        "strictly before the lead's as_of count.",
        examples=["2026-02-27T14:05:00Z"],
    )
    url: str | None = Field(default=None, max_length=2048, examples=["https://example.com/pricing"])
    campaign: str | None = Field(default=None, max_length=500, examples=["spring-webinar"])
    duration_s: float | None = Field(
        default=None, ge=0, description="Time spent, in seconds.", examples=[42.0]
    )


class Lead(_Strict):
    """A lead as the CRM holds it, with its behavioural history."""

    lead_id: str = Field(
        min_length=1, max_length=200, description="The CRM's id for the lead; echoed back.",
        examples=["L-000123"],
    )
    created_at: Timestamp = Field(
        description="When the lead was created, ISO 8601 with a UTC offset.",
        examples=["2026-02-01T09:30:00Z"],
    )
    as_of: Timestamp | None = Field(
        default=None,
        description="Score the lead as it stood at this time; overrides the request's "
        "as_of. Defaults to the request's as_of, else now.",
        examples=[None],
    )
    source: str | None = Field(default=None, max_length=200, examples=["paid_search"])
    utm_campaign: str | None = Field(default=None, max_length=500, examples=["q1-brand"])
    country: str | None = Field(default=None, max_length=100, examples=["DE"])
    industry: str | None = Field(default=None, max_length=200, examples=["Software"])
    company_size: float | None = Field(
        default=None, ge=0, description="Number of employees.", examples=[120]
    )
    job_title: str | None = Field(default=None, max_length=300, examples=["Head of Marketing"])
    seniority: str | None = Field(default=None, max_length=100, examples=["Director"])
    job_function: str | None = Field(default=None, max_length=100, examples=["Marketing"])
    email: str | None = Field(
        default=None,
        max_length=320,
        description="PII. Never a model feature and never logged; only derived, "
        "non-identifying facts (such as a free-mail domain) may be used.",
        examples=["ada@example.com"],
    )
    activities: list[Activity] = Field(
        default_factory=list,
        description="The lead's activity history. May be empty (the lead is then a cold "
        "start, see fallback_reason) or long; order does not matter.",
        examples=[[_EXAMPLE_ACTIVITY]],
    )


CAUSAL_NOTE = (
    "This is what the model learned from similar leads, not a causal promise: leads who "
    "did this converted more often, which does not mean that prompting it will make this "
    "lead convert."
)

ACTIONS_DOC = (
    "Off by default (0). With N > 0, each result carries 'actions': for each actionable "
    "activity kind (built-in: demo_request, webinar_attended, pricing_page_view; a spec's "
    "kinds marked actionable), one such event is added one second before the lead's as_of "
    "and the lead is rescored; the N with the highest new probability come back with the "
    "new probability, score, grade and a sentence. " + CAUSAL_NOTE + " Costs one "
    "prediction per kind and lead."
)
DECAY_DOC = (
    "Off by default. When true, each lead the model scored carries 'decay': its "
    "probability and grade at +7, +14 and +30 days if nothing new happens (the same "
    "features computed at the later as_of, events after the lead's as_of left out), and "
    "the first day within 30 whose grade is lower than today's (every day is rescored). "
    "Costs 30 predictions per lead."
)


class ScoreRequest(_Strict):
    """One to ``max_batch`` (default 1,000) leads to score. """

    model_config = ConfigDict(
        extra="ignore", frozen=True, json_schema_extra={"description": BATCH_POLICY}
    )

    leads: list[Lead] = Field(
        min_length=1,
        description="The leads, each with its activities. More than max_batch (default "
        "1,000) leads gets 413. " + BATCH_POLICY,
        examples=[[_EXAMPLE_LEAD]],
    )
    as_of: Timestamp | None = Field(
        default=None,
        description="Score every lead as it stood at this time (default: now). A lead's "
        "own as_of overrides it.",
        examples=["2026-03-01T00:00:00Z"],
    )
    top_reasons: int = Field(
        default=3,
        ge=0,
        le=50,
        description="How many positive and how many negative reasons to return per lead.",
        examples=[3],
    )
    actions: int = Field(default=0, ge=0, le=10, description=ACTIONS_DOC, examples=[0])
    decay: bool = Field(default=False, description=DECAY_DOC, examples=[False])


class ExplainRequest(_Strict):
    """One lead to explain in full."""

    lead: Lead = Field(description="The lead to explain.", examples=[_EXAMPLE_LEAD])
    as_of: Timestamp | None = Field(
        default=None, description="Explain as of this time (default: now).", examples=[None]
    )


class ReasonOut(_Strict):
    """One business factor behind a score, in words a marketer reads."""

    field: str = Field(description="Business field.", examples=["pricing_page_visits"])
    label: str = Field(description="Display name of the field.", examples=["Pricing page visits"])
    value: str | float | int | None = Field(
        description="The lead's value in plain terms.", examples=[3]
    )
    impact: float = Field(
        description="Signed contribution: log-odds for the model, points for the rules. "
        "Positive raises the score.",
        examples=[0.84],
    )
    sentence: str = Field(
        description="Plain-language explanation.",
        examples=["Viewed the pricing page 3 times in the last 7 days"],
    )


ScoredBy = Literal["model", "rules"]
FallbackReason = Literal["no_model", "cold_start", "model_error"]
MatrixRoute = Literal["sales", "targeted_nurture", "review", "recycle"]

MATRIX_NOTE = (
    "The model's score split in two parts that add up to it exactly: base value + fit "
    "part + engagement part = the raw margin (log-odds, before calibration; POST /explain "
    "gives the base value and the margin). Each part is the sum of its features' exact "
    "TreeSHAP contributions; an interaction between a fit and an engagement feature is "
    "shared between the two parts the Shapley way. When the rules answer, the parts are "
    "the fit rules' and the engagement rules' points on the rules' log-odds scale."
)


class PartOut(_Strict):
    """One part of the score: fit (who the lead is) or engagement (what it did)."""

    score: int | None = Field(
        ge=0, le=100,
        description="0-100: for the model, the part's percentile among the training leads "
        "(50 = the median training lead); for the rules, the group's points as a share of "
        "the sum of its positive rules. Null for a model trained before the training "
        "leads' distribution was shipped.",
        examples=[72])
    level: Literal["high", "low"] | None = Field(
        description="'high' at or above the threshold (GET /model 'matrix'; 50 by default), "
        "else 'low'. Null when score is null.", examples=["high"])
    part: float = Field(
        description="The part in log-odds of the raw margin (the sum of its features' "
        "contributions); positive raises the score.", examples=[0.61])


class ActionOut(_Strict):
    """One next action: the lead rescored with one more event of an actionable kind."""

    kind: str = Field(description="The activity kind.", examples=["demo_request"])
    type: str = Field(description="The activity type to send for it (a spec's CRM type).",
                      examples=["demo_request"])
    label: str = Field(examples=["requested a demo"])
    probability: float = Field(ge=0, le=1, description="The new calibrated probability.")
    score: int = Field(ge=0, le=100, examples=[58])
    grade: Literal["A", "B", "C", "D"] = Field(examples=["A"])
    score_change: int = Field(description="New score minus the current one.", examples=[17])
    sentence: str = Field(examples=["If this lead requested a demo now, its score would rise "
                                    "from 41 to 58 (grade B → A)."])


class DecayPoint(_Strict):
    """The lead rescored some days later with nothing new."""

    days: int = Field(examples=[7])
    as_of: datetime
    probability: float = Field(ge=0, le=1)
    score: int = Field(ge=0, le=100)
    grade: Literal["A", "B", "C", "D"]


class GradeDrop(_Strict):
    """The first day whose rescored grade is lower than today's."""

    days: int = Field(description="Days after as_of.", examples=[9])
    date: str = Field(description="That day (UTC), ISO 8601.", examples=["2026-12-09"])
    grade: Literal["A", "B", "C", "D"] = Field(description="The grade it drops to.",
                                               examples=["B"])


class DecayOut(_Strict):
    """Where the score goes if nothing new happens."""

    points: list[DecayPoint] = Field(description="At +7, +14 and +30 days.")
    grade_drop: GradeDrop | None = Field(description="Null when the grade holds for 30 days.")
    sentence: str = Field(examples=["Without new activity this lead drops to grade B on "
                                    "9 December."])


class ScoreResult(_Strict):
    """The answer for one lead, and where it came from."""

    lead_id: str = Field(examples=["L-000123"])
    as_of: datetime = Field(description="The time the lead was scored as of.")
    probability: float = Field(
        ge=0, le=1,
        description="Calibrated probability that the lead converts within the horizon the "
        "model was trained on (its label window: 90 days by default; the training run's "
        "MLflow param 'horizon'; a dataset whose outcome is a label column has none). An "
        "absolute chance, not a rank: 0.42 means about 42 in 100 such leads convert.",
        examples=[0.42],
    )
    score: int = Field(
        ge=0, le=100,
        description="The probability in percent, rounded (42 means a 42% chance); not a "
        "rank among leads.",
        examples=[42],
    )
    grade: Literal["A", "B", "C", "D"] = Field(
        description="Where the score stands among leads, not how likely the lead is: the "
        "model cuts its grade thresholds from its validation leads' scores so that (by "
        "default) A holds the top 10%, B the next 15%, C the next 25% and D the rest (the "
        "shares and thresholds are in GET /model 'grading'). So an 11% lead can be a B when most open "
        "leads score lower. When the rules answer, the rules file's fixed score "
        "thresholds set the grade.",
        examples=["B"],
    )
    route: Literal["sales", "nurture"] = Field(
        description="'sales' (call now) for the grades the model or rules send to sales "
        "(A and B by default: for the model, the top 25% of its validation leads), else "
        "'nurture'. It follows the grade, so it is relative too.",
        examples=["sales"],
    )
    scored_by: ScoredBy = Field(
        description="'model' or 'rules' (the fallback).", examples=["model"]
    )
    fallback_reason: FallbackReason | None = Field(
        description="Why the rules answered: no_model (no champion, or it cannot be "
        "loaded), cold_start (no activities and the cold-start policy prefers rules), "
        "model_error (the model failed on this lead). Null when the model answered.",
        examples=[None],
    )
    model_name: str | None = Field(
        description="Registered model name; null when the rules answered.",
        examples=["lead-scoring"],
    )
    model_version: str | None = Field(
        description="Registered model version; null when the rules answered.", examples=["3"]
    )
    rules_version: str = Field(
        description="Version of the rules file the fallback would use (or used).",
        examples=["2026-01"],
    )
    reasons: list[ReasonOut] = Field(
        description="Top positive reasons (largest first), then top negative reasons "
        "(most negative first). For the rules, the rules that fired."
    )
    fit: PartOut | None = Field(
        default=None,
        description="Who the lead is (its own fields). " + MATRIX_NOTE)
    engagement: PartOut | None = Field(
        default=None,
        description="What the lead did (its activity). " + MATRIX_NOTE)
    matrix_route: MatrixRoute | None = Field(
        default=None,
        description="The fit x engagement matrix: fit high and engagement high 'sales'; fit "
        "high, engagement low 'targeted_nurture'; fit low, engagement high 'review'; both "
        "low 'recycle'. 'route' (by grade) is unchanged; a CRM may route by either. Null "
        "when the part scores are null.",
        examples=["targeted_nurture"])
    actions: list[ActionOut] | None = Field(
        default=None,
        description="With 'actions': N in the request, the top N next actions (null when "
        "not asked, or without a model). " + "What the model learned from similar leads, "
        "not a causal promise.")
    decay: DecayOut | None = Field(
        default=None,
        description="With 'decay': true in the request, where the score goes if nothing "
        "new happens (null when not asked, or when the rules answered).")
    trend: Literal["improving", "steady", "declining"] | None = Field(
        default=None,
        description="The lead's score trend across the last two batch rescoring runs "
        "(a move of 5 points or more counts). Null when the service has no score history "
        "(LEADSCORE_HISTORY_DIR unset) or the lead was never batch-scored.",
        examples=["improving"],
    )


class ScoreResponse(_Strict):
    """One result per lead, in request order."""

    results: list[ScoreResult]


class Contribution(_Strict):
    """One model input's SHAP contribution."""

    feature: str = Field(examples=["pricing_page_views_7d"])
    value: str | float | int | None = Field(description="The feature value.", examples=[3])
    contribution: float = Field(description="TreeSHAP contribution in log-odds.", examples=[0.51])


class ExplainResponse(_Strict):
    """Every contribution for one lead plus the base value, grouped and ungrouped.

    For the model, ``base_value + sum(contributions) == raw_margin`` (log-odds, before
    calibration). When the rules answered, ``contributions`` is empty and ``reasons``
    lists every rule that fired.
    """

    result: ScoreResult = Field(description="The score, as /score would return it.")
    base_value: float | None = Field(
        description="Expected raw margin over the training data (log-odds); null for rules.",
        examples=[-2.1],
    )
    raw_margin: float | None = Field(
        description="Model output before calibration (log-odds); null for rules.",
        examples=[-0.3],
    )
    contributions: list[Contribution] = Field(
        description="Every feature's contribution, sorted by absolute size."
    )
    reasons: list[ReasonOut] = Field(
        description="Every business field's reason (contributions grouped by field), "
        "sorted by impact, positive first."
    )


class Refusal(_Strict):
    """A model version the service refused to serve, and why."""

    version: str | None = Field(examples=["4"])
    uri: str | None = Field(examples=["models:/lead-scoring/4"])
    reason: str = Field(
        examples=["feature_set_version '2' does not match the '3' this service speaks"],
    )
    at: datetime


class GradingInfo(_Strict):
    """How the served model turns its 0-100 score into a grade and a route."""

    a: float = Field(description="Lowest score graded A.", examples=[21])
    b: float = Field(description="Lowest score graded B.", examples=[10])
    c: float = Field(description="Lowest score graded C.", examples=[5])
    sales_grades: list[Literal["A", "B", "C", "D"]] = Field(
        description="Grades routed to sales.", examples=[["A", "B"]]
    )
    shares: dict[Literal["A", "B", "C", "D"], float] | None = Field(
        description="Share of the model's validation leads (the leads open at each snapshot) "
        "that each grade's threshold was cut to hold, from the top: A the top 10%, B the "
        "next 15%, and so on. Ties at a threshold go to the higher grade. Null for a model "
        "that does not record them.",
        examples=[{"A": 0.10, "B": 0.15, "C": 0.25, "D": 0.50}],
    )


class MatrixInfo(_Strict):
    """The served model's fit x engagement matrix."""

    fit_threshold: float = Field(description="Fit score (0-100) at which fit is 'high'.",
                                 examples=[50])
    engagement_threshold: float = Field(
        description="Engagement score (0-100) at which engagement is 'high'.", examples=[50])
    n_reference: int = Field(description="Training rows the part scores rank against (0: the "
                                         "model ships none; part scores are null).")
    fit_features: int = Field(description="Model inputs in the fit part.")
    engagement_features: int = Field(description="Model inputs in the engagement part.")


class DriftedFeature(_Strict):
    feature: str
    label: str
    psi: float


class BatchEstimate(_Strict):
    """A batch run's label-free estimate (CBPE) from its calibrated probabilities."""

    n: int = Field(description="Model-scored leads the estimate covers.")
    expected_conversion_rate: float | None
    expected_roc_auc: float | None
    expected_top_decile_lift: float | None
    assumption: str = Field(description="What the estimate rests on: calibration holds on "
                            "the new population (no concept drift).")
    scope: str | None = None


class BatchHealth(_Strict):
    """The last committed batch run's drift against the model's reference."""

    run_id: str | None
    as_of: str | None
    model: str | None = Field(description="The model (name/version) that run scored with.")
    score_psi: float | None = Field(description="PSI of the score against the training window.")
    score_level: str | None = Field(description="stable, moderate or major (or unknown).")
    n_features: int
    n_drifted: int = Field(description="Features with a PSI above the alert level.")
    n_moderate: int
    thresholds: dict[str, float]
    drifted: list[DriftedFeature] = Field(description="The features above the alert level.")
    estimate: BatchEstimate | None = Field(
        default=None, description="The run's label-free performance estimate (null for a "
        "run written before estimates were made).")


class ModelInfo(_Strict):
    """What the service is serving right now."""

    status: Literal["ready", "degraded"] = Field(
        description="'degraded' when no model is loaded and the rules answer everything."
    )
    model_name: str | None = Field(examples=["lead-scoring"])
    model_version: str | None = Field(examples=["3"])
    model_alias: str | None = Field(
        description="The alias resolved (null when a model URI is pinned).", examples=["champion"]
    )
    model_uri: str | None = Field(examples=["models:/lead-scoring/3"])
    pinned: bool = Field(description="True when Settings.model_uri pins one model (no polling).")
    feature_set_version: str | None = Field(
        description="The feature set of the model served.", examples=["2026.11.1"])
    serves_spec: str = Field(
        default="builtin",
        description="The dataset spec whose contract /score speaks: 'builtin' (this "
        "document's Lead), or the name of the CRM's spec the model was trained through, "
        "whose own field names /score then takes.", examples=["builtin"])
    speaks_feature_set: str | None = Field(
        default=None,
        description="The feature set this service accepts models of; a champion of another "
        "is refused (see last_refusal). Null until the first model is loaded.",
        examples=["2026.11.1"])
    metrics: dict[str, float | None] = Field(
        description="Test-window metrics recorded at training. A metric that could not be "
        "computed (e.g. cold_start_model_auc when the test window held no cold-start lead) "
        "is null.",
        examples=[{"test_roc_auc": 0.81, "cold_start_model_auc": None}],
    )
    loaded_at: datetime | None
    last_refusal: Refusal | None = Field(description="The last version refused, and why.")
    last_poll_at: datetime | None
    last_poll_error: str | None = Field(
        description="Why the last registry poll failed (e.g. MLflow unreachable)."
    )
    poll_interval_s: float
    rules_version: str
    cold_start_policy: Literal["auto", "model", "rules"] = Field(
        description="As configured."
    )
    cold_start_effective: Literal["model", "rules"] = Field(
        description="Who answers cold-start leads right now."
    )
    grading: GradingInfo | None = Field(
        default=None,
        description="The served model's grade thresholds and the shares of leads they "
        "were cut to hold; null when no model is loaded (the rules file's fixed "
        "thresholds grade then).",
    )
    matrix: MatrixInfo | None = Field(
        default=None,
        description="The fit x engagement thresholds in force (LEADSCORE_FIT_THRESHOLD and "
        "LEADSCORE_ENGAGEMENT_THRESHOLD over the model's shipped ones); null without a model.",
    )
    batch_health: BatchHealth | None = Field(
        default=None,
        description="Drift of the last committed 'leadscore rescore' run in "
        "LEADSCORE_BATCH_DIR (else the parent of LEADSCORE_HISTORY_DIR); null when none "
        "is configured or written yet.",
    )


class Readiness(_Strict):
    """Readiness: 'ready' with a model, 'degraded' when the rules answer everything."""

    status: Literal["ready", "degraded"]
    scored_by: ScoredBy
    model_version: str | None


class ErrorResponse(_Strict):
    """Every error the API returns. Never carries a stack trace."""

    error: str = Field(examples=["invalid request"])
    detail: list[str] = Field(
        default_factory=list,
        examples=[["leads[3].created_at: Input should be a valid datetime"]],
    )
    request_id: str = Field(description="Quote it when reporting a problem.")
