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
