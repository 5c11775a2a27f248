"""A synthetic CRM that a marketer would recognise, with its ground truth.

``generate`` simulates leads, their activities and their outcomes day by day, and
writes three tables:

- **leads**: fit attributes with realistic marginals and correlations (industry,
  heavy-tailed company size, seniority that rises in small companies, job function,
  a US-heavy country mix, source channel with UTM campaign, free-mail versus
  corporate email), PII (names, email), and the outcomes ``converted_at`` and
  ``disqualified_at``. About 4% are students and 1% are competitors: bad-fit
  leads that engage but do not buy.
- **activities**: time-stamped events over :data:`features.schema.ACTIVITY_TYPES`.
  Their intensity follows a latent *intent* per lead. Intent jumps at capture, after
  exogenous campaign touches (a weekly newsletter, promotional emails, webinar
  invitations) and after spontaneous bursts of need, is fed by the lead's own
  actions, and decays towards a low baseline with a half-life of two to three
  weeks when the lead goes quiet. Page views and email opens are common; demo
  requests and trial sign-ups are rare and grow with the square of intent.
- **truth**: for every lead and every weekly snapshot of :func:`features.grid.snapshot_grid`
  at which it is eligible (created before ``as_of``, neither converted nor
  disqualified before it), the true probability of converting within the horizon
  given the simulator's full state at ``as_of`` (latent intent included).

Outcomes have daily hazards that depend on fit and on *observed* engagement: an
exponentially decayed (half-life 10 days), weighted count of the lead's activities
up to that day. So recency and decay matter: a lead whose activity is old has a
lower hazard than one with the same total activity last week. Disqualification
competes with conversion; sales disqualifies bad-fit leads that engage and, more
slowly, leads that stay quiet for months.

Ground truth is a **Monte Carlo estimate**: at each snapshot the state of every
eligible lead is copied into ``truth_paths`` futures, each advanced day by day over
the horizon by the *same* step function as the main simulation, with fresh random
numbers. Instead of sampling outcomes, each path accumulates the analytic
probability of converting first (Rao-Blackwellisation, with disqualification as a
competing risk), which removes the outcome noise; what remains is the noise of the
future activity paths, which averages out within calibration bins.

**What the oracle knows that no model can.** Truth is computed from the full latent
state, and most of it never shows in the CRM: above all the unobserved part of fit
(``noise`` in :func:`_make_leads`, standard deviation 0.55 on the fit scale: budget,
timing, a champion), and also the current intent and the per-lead response and
activity multipliers. On 200,000 leads (seed 7) the model on the registry features
reached test ROC AUC 0.760 against the oracle's 0.800. Given the true fit as one extra
column, the same model reached 0.795 (gap 0.005); given the whole latent state, 0.800
(gap 0.000). So the gap is information, not training: the learning curve gains about
0.004 AUC per doubling of training leads, and the gap is as large on validation as on
test and on leads under 14 days old as on old ones. The oracle gap of this generator is
therefore mostly a measure of how much of conversion it hides, by design.

The main data use their own random stream, so ``leads.parquet`` and
``activities.parquet`` do not depend on the truth settings. The same seed and
settings give byte-identical files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.grid import DEFAULT_EVERY, DEFAULT_HORIZON, snapshot_grid
from features.schema import ACTIVITY_TYPES

__all__ = [
    "DEFAULT_START",
    "DEFAULT_END",
    "FULL_TRUTH_MAX_LEADS",
    "DEFAULT_TRUTH_SAMPLE",
    "FREE_MAIL_DOMAINS",
    "COMPETITOR_DOMAINS",
    "GeneratorConfig",
    "SyntheticCRM",
    "generate",
    "write_crm",
    "generate_to_dir",
]

DEFAULT_START = pd.Timestamp("2024-10-07T00:00:00Z")
DEFAULT_END = pd.Timestamp("2026-10-05T00:00:00Z")
FULL_TRUTH_MAX_LEADS = 100_000
"""Up to this many leads, truth covers every lead unless ``truth_sample`` says otherwise."""
DEFAULT_TRUTH_SAMPLE = 20_000
"""Above ``FULL_TRUTH_MAX_LEADS``, truth covers a random sample of this many leads by default."""

FREE_MAIL_DOMAINS: tuple[str, ...] = (
    "gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "aol.com",
    "proton.me", "gmx.de", "web.de", "yahoo.co.uk", "orange.fr", "live.com",
)
"""Consumer mail domains the generator uses; a free-mail address is a weak-fit signal."""
COMPETITOR_DOMAINS: tuple[str, ...] = (
    "rivalscore.io", "leadgenius-app.com", "pipelinepro.io", "scorely.com",
)
"""Email domains of the (fictional) competitors that sign up to look around."""

_DAY_S = 86_400
_WEB = "https://www.example.com"
_TYPE = {name: i for i, name in enumerate(ACTIVITY_TYPES)}

# --- fit attribute vocabularies and their weights -------------------------------------

_COUNTRIES = ("US", "GB", "CA", "DE", "IN", "FR", "AU", "NL", "BR", "ES", "SE", "SG", "IE", "JP", "MX", "ZA")
_COUNTRY_P = np.array([44, 9, 6, 6, 7, 4, 4, 2.5, 3, 2.5, 1.5, 1.5, 1.5, 1.5, 2, 1.5])
_COUNTRY_TZ = np.array([-5, 0, -5, 1, 5, 1, 10, 1, -3, 1, 1, 8, 0, 9, -6, 2])
_COUNTRY_TLD = ("com", "co.uk", "ca", "de", "in", "fr", "com.au", "nl", "com.br", "es", "se", "sg", "ie", "jp", "mx", "co.za")
_COUNTRY_FIT = np.array([0.25, 0.15, 0.15, 0.05, -0.45, 0.0, 0.1, 0.05, -0.35, -0.1, 0.05, 0.0, 0.1, -0.2, -0.3, -0.2])

_INDUSTRIES = (
    "Software", "Financial Services", "Healthcare", "Manufacturing", "Retail",
    "Professional Services", "Media", "Telecommunications", "Logistics", "Education",
    "Government", "Nonprofit",
)
_INDUSTRY_P = np.array([22, 11, 9, 10, 8, 12, 6, 4, 5, 6, 3, 4], dtype=float)
_INDUSTRY_LOG10_SIZE = np.array([1.9, 2.5, 2.4, 2.3, 1.8, 1.6, 1.7, 2.8, 2.2, 2.6, 2.9, 1.5])
_INDUSTRY_FIT = np.array([0.5, 0.4, 0.1, 0.0, -0.1, 0.3, 0.0, 0.2, 0.0, -0.6, -0.5, -0.7])

_SENIORITIES = ("Entry", "Senior", "Manager", "Director", "VP", "C-Level", "Owner", "Student")
_SEN_LOGIT = np.array([0.8, 0.9, 1.0, 0.3, -0.5, -0.6, -0.8])
_SEN_SIZE_SLOPE = np.array([0.3, 0.3, 0.2, 0.1, 0.0, -0.6, -1.6])  # per log10(employees) - 2
_SEN_FIT = np.array([-0.4, 0.0, 0.3, 0.5, 0.6, 0.4, 0.2, -2.5])

_FUNCTIONS = ("Marketing", "Sales", "IT", "Engineering", "Operations", "Finance", "HR", "Product", "Executive", "Other")
_FUNCTION_P = np.array([28, 16, 10, 9, 10, 6, 5, 7, 0, 9], dtype=float)
_FUNCTION_FIT = np.array([0.5, 0.4, 0.0, -0.2, 0.1, -0.1, -0.4, 0.1, 0.3, -0.3])

_SOURCES = (
    "organic_search", "paid_search", "paid_social", "email", "referral", "event",
    "webinar", "direct", "partner", "content_syndication",
)
_SOURCE_LOGIT = np.array([1.2, 0.8, 0.5, 0.0, 0.2, -0.2, 0.3, 0.4, -0.4, 0.1])
_SOURCE_SIZE_SLOPE = np.array([0.0, 0.0, -0.3, 0.0, 0.1, 0.4, 0.1, -0.1, 0.3, 0.2])
_SOURCE_STUDENT = np.array([0.6, 0.0, 1.0, -1.0, -1.0, -0.5, 0.5, 0.0, -2.0, 0.3])
_SOURCE_FIT = np.array([0.0, 0.1, -0.3, -0.1, 0.6, 0.3, 0.1, 0.2, 0.4, -0.4])
_SOURCE_THEMES = {
    "paid_search": ("brand", "lead-scoring", "crm-integration", "competitor-terms"),
    "paid_social": ("linkedin-ebook", "linkedin-demo", "facebook-retargeting"),
    "email": ("nurture-welcome", "product-launch", "reactivation"),
    "event": ("martech-summit", "regional-roadshow", "partner-day"),
    "webinar": ("pipeline-forecasting", "scoring-101", "revops-panel"),
    "partner": ("agency-program", "marketplace"),
    "content_syndication": ("analyst-guide", "benchmark-report"),
}

_FIRST = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Carlos", "Maria",
    "Daniel", "Karen", "Matthew", "Nancy", "Anthony", "Lisa", "Mark", "Sandra", "Priya", "Rahul",
    "Wei", "Mei", "Hiroshi", "Yuki", "Lukas", "Anna", "Sophie", "Lucas", "Olivia", "Noah",
    "Emma", "Liam", "Chloe", "Ethan", "Grace", "Ahmed", "Fatima", "Diego", "Sofia", "Oliver",
    "Amelia", "Jack", "Isla", "Ravi", "Ananya", "Pedro", "Ana", "Lars", "Ingrid", "Kwame",
)
_LAST = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee",
    "Thompson", "White", "Harris", "Clark", "Lewis", "Walker", "Hall", "Young", "King", "Wright",
    "Patel", "Sharma", "Singh", "Chen", "Wang", "Kim", "Tanaka", "Sato", "Muller", "Schmidt",
    "Fischer", "Dubois", "Moreau", "Rossi", "Silva", "Santos", "Jansen", "De Vries", "Andersson", "Nilsson",
    "O'Brien", "Murphy", "Kelly", "Nguyen", "Cohen", "Okafor", "Mensah", "Novak", "Kowalski", "Evans",
)
_COMPANY_A = (
    "acme", "globex", "initech", "umbrella", "stark", "wayne", "hooli", "vandelay", "soylent", "tyrell",
    "cyberdyne", "wonka", "gringotts", "oscorp", "aperture", "blue", "north", "summit", "bright", "apex",
    "pioneer", "harbor", "granite", "silver", "evergreen", "cobalt", "vertex", "lumen", "nimbus", "orbit",
)
_COMPANY_B = (
    "corp", "labs", "systems", "group", "solutions", "industries", "analytics", "health", "logistics", "media",
    "partners", "retail", "capital", "works", "cloud", "foods", "energy", "tech", "consulting", "networks",
)
_UNIVERSITIES = ("state.edu", "tech.edu", "university.edu", "college.edu", "uni-example.ac.uk", "polytechnic.edu")
_FREE_P = np.array([52, 12, 9, 7, 5, 2, 2, 0, 0, 3, 0, 3], dtype=float)  # before country tweaks

# --- behaviour ------------------------------------------------------------------------

# Spontaneous (intent-driven) activity types: rate r * intent**gamma per day.
_SPONT = ("page_view", "pricing_page_view", "content_download", "form_submit", "chat", "demo_request", "trial_signup")
_SPONT_CODE = np.array([_TYPE[t] for t in _SPONT], dtype=np.int8)
_SPONT_R = np.array([0.25, 0.022, 0.011, 0.006, 0.0045, 0.0014, 0.0009])
_SPONT_GAMMA = np.array([1.0, 1.5, 1.0, 1.5, 1.5, 2.0, 2.0])
# Observed-engagement weight of each activity type (the hazard reads these).
_R1, _R15, _R2 = (float(_SPONT_R[g == _SPONT_GAMMA].sum()) for g in (1.0, 1.5, 2.0))
_ENGAGE_W = np.zeros(len(ACTIVITY_TYPES))
for _t, _w in {
    "page_view": 1, "pricing_page_view": 5, "email_open": 0.5, "email_click": 2, "form_submit": 4,
    "content_download": 3, "webinar_registered": 3, "webinar_attended": 6, "demo_request": 20,
    "trial_signup": 20, "chat": 5, "unsubscribe": 0,
}.items():
    _ENGAGE_W[_TYPE[_t]] = _w
# Intent feedback of the lead's own actions (a mild self-excitation).
_INTENT_KICK = np.zeros(len(ACTIVITY_TYPES))
for _t, _w in {"pricing_page_view": 0.03, "content_download": 0.05, "form_submit": 0.05, "chat": 0.05,
               "demo_request": 0.3, "trial_signup": 0.3, "webinar_attended": 0.3}.items():
    _INTENT_KICK[_TYPE[_t]] = _w
_ENGAGE_HALF_LIFE_D = 10.0
_ENGAGE_DECAY = 0.5 ** (1 / _ENGAGE_HALF_LIFE_D)
_WEEKDAY_ACTIVITY = np.array([1.15, 1.15, 1.12, 1.1, 0.95, 0.5, 0.45])  # Mon..Sun
_LOCAL_HOUR_P = np.array([1, 0.5, 0.3, 0.3, 0.3, 0.6, 1.5, 3, 6, 9, 10, 10, 8, 9, 10, 9, 8, 6, 4, 3.5, 3.5, 3, 2.5, 1.5])

# Hazards (per day): log h = c0 + c_fit * fit + c_eng * log1p(E).
_HC0, _HC_FIT, _HC_UNSUB = -8.6, 0.9, 0.4  # engagement enters as (1 + E) ** 0.75
_HD0, _HD_FIT, _HD_STALE, _STALE_AFTER_D = -6.6, -0.8, 1 / 45, 60

# Campaign kinds: (reach, intent bump on receipt, on open, on click, base open rate).
_CAMPAIGN_KIND = {
    "newsletter": (0.92, 0.01, 0.05, 0.20, 0.16),
    "promo": (0.55, 0.02, 0.15, 0.40, 0.22),
    "webinar": (0.60, 0.02, 0.10, 0.30, 0.20),
}
_KIND_CODE = {k: i for i, k in enumerate(_CAMPAIGN_KIND)}
_KIND_PARAMS = np.array(list(_CAMPAIGN_KIND.values()))

_PAGES = (
    ("/", 18), ("/product", 12), ("/product/scoring", 8), ("/product/integrations", 6), ("/blog", 10),
    ("/blog/lead-scoring-guide", 6), ("/blog/mql-vs-sql", 5), ("/blog/intent-data", 4),
    ("/customers", 5), ("/about", 3), ("/careers", 2), ("/docs", 5), ("/security", 2),
)
_PRICING = (("/pricing", 10), ("/pricing/enterprise", 3), ("/pricing/compare", 2))
_ASSETS = (("/resources/state-of-revops-2025", 4), ("/resources/scoring-playbook", 5),
           ("/resources/roi-calculator", 3), ("/resources/benchmark-report", 3))
_FORMS = (("/contact", 5), ("/newsletter", 3), ("/events", 2))
_URLS = tuple(_WEB + p for p, _ in (*_PAGES, *_PRICING, *_ASSETS, *_FORMS)) + (_WEB + "/demo", _WEB + "/signup")


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate. Validates itself when built.

    Parameters
    ----------
    n_leads : int
        Number of leads, >= 1.
    seed : int
        Seed of every random stream; the same seed and settings give identical files.
    start, end : pandas.Timestamp
        UTC midnights bounding lead creation and the simulation; ``end`` is the data's
        "now". A fixed default keeps output reproducible.
    horizon : pandas.Timedelta
        Conversion horizon of the ground truth, whole days.
    every : pandas.Timedelta
        Spacing of the snapshot grid (:func:`features.grid.snapshot_grid`), whole days.
    truth_sample : int or None
        Compute truth for a random sample of this many leads. ``None`` means every lead
        up to ``FULL_TRUTH_MAX_LEADS`` leads and ``DEFAULT_TRUTH_SAMPLE`` above; 0 skips truth.
    truth_paths : int
        Monte Carlo futures per (lead, snapshot).
    campaign_from : pandas.Timestamp or None
        A deliberate shift, for drift checks: from this UTC midnight on, a share
        ``campaign_share`` of new leads come from a market launch in
        ``campaign_country`` (their country, and so their region, fit and time zone,
        change; nothing else is drawn differently). None (the default) draws nothing
        extra, so output with and without the option's default is identical.
    campaign_share : float
        The share of leads created from ``campaign_from`` that the launch brings, 0 to 1.
    campaign_country : str
        One of the generator's countries (``US``, ``GB``, ``DE``, ...).
    """

    n_leads: int = 20_000
    seed: int = 0
    start: pd.Timestamp = DEFAULT_START
    end: pd.Timestamp = DEFAULT_END
    horizon: pd.Timedelta = DEFAULT_HORIZON
    every: pd.Timedelta = DEFAULT_EVERY
    truth_sample: int | None = None
    truth_paths: int = 8
    campaign_from: pd.Timestamp | None = None
    campaign_share: float = 0.5
    campaign_country: str = "DE"

    def __post_init__(self) -> None:
        def bad(name: str, expected: str, got: object) -> ValueError:
            return ValueError(
                f"The '{name}' parameter of GeneratorConfig must be {expected}. Got {got!r} instead."
            )

        for name, low in (("n_leads", 1), ("seed", 0), ("truth_paths", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
                raise bad(name, f"an int >= {low}", value)
        if self.truth_sample is not None and (
            not isinstance(self.truth_sample, int | np.integer) or self.truth_sample < 0
        ):
            raise bad("truth_sample", "None or an int >= 0", self.truth_sample)
        for name in ("start", "end"):
            try:
                ts = pd.Timestamp(getattr(self, name))
            except (TypeError, ValueError):
                raise bad(name, "a timestamp at midnight UTC", getattr(self, name)) from None
            ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
            if ts != ts.normalize():
                raise bad(name, "a timestamp at midnight UTC", getattr(self, name))
            object.__setattr__(self, name, ts)
        if self.campaign_from is not None:
            try:
                ts = pd.Timestamp(self.campaign_from)
            except (TypeError, ValueError):
                raise bad("campaign_from", "None or a timestamp at midnight UTC",
                          self.campaign_from) from None
            ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
            if ts != ts.normalize():
                raise bad("campaign_from", "None or a timestamp at midnight UTC", self.campaign_from)
            object.__setattr__(self, "campaign_from", ts)
        if not 0.0 <= float(self.campaign_share) <= 1.0:
            raise bad("campaign_share", "a share between 0 and 1", self.campaign_share)
        if self.campaign_country not in _COUNTRIES:
            raise bad("campaign_country", f"one of {list(_COUNTRIES)}", self.campaign_country)
        if self.end - self.start < pd.Timedelta(days=28):
            raise bad("end", f"at least 28 days after start ({self.start.date()})", str(self.end.date()))
        for name in ("horizon", "every"):
            value = pd.Timedelta(getattr(self, name))
            if value <= pd.Timedelta(0) or value % pd.Timedelta(days=1) != pd.Timedelta(0):
                raise bad(name, "a positive whole number of days", str(value))
            object.__setattr__(self, name, value)

    @property
    def n_days(self) -> int:
        return int((self.end - self.start) / pd.Timedelta(days=1))

    @property
    def truth_leads(self) -> int:
        """How many leads the ground truth covers."""
        if self.truth_sample is None:
            return self.n_leads if self.n_leads <= FULL_TRUTH_MAX_LEADS else DEFAULT_TRUTH_SAMPLE
        return min(self.truth_sample, self.n_leads)


@dataclass
class SyntheticCRM:
    """The generated tables (pyarrow) and a few summary figures."""

    leads: pa.Table
    activities: pa.Table
    truth: pa.Table
    stats: dict[str, float] = field(default_factory=dict)
    truth_halves: np.ndarray | None = None
    """Truth rows x 2: the estimate from each half of the Monte Carlo paths (two
    independent estimates, in memory only). Binning by one and checking against the
    other avoids the selection bias of binning by a noisy estimate; their spread
    measures the Monte Carlo error."""


# --- small helpers --------------------------------------------------------------------


def _categorical(rng: np.random.Generator, logits: np.ndarray) -> np.ndarray:
    """One draw per row from softmax(logits) (rows x categories), vectorised."""
    w = np.exp(logits - logits.max(axis=1, keepdims=True))
    cum = np.cumsum(w, axis=1)
    u = rng.random(len(w)) * cum[:, -1]
    return np.minimum((u[:, None] >= cum).sum(axis=1), w.shape[1] - 1)


def _choice(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    """``n`` draws from fixed weights via inverse CDF (cheaper than rng.choice on big n)."""
    cum = np.cumsum(weights, dtype=float)
    return np.searchsorted(cum, rng.random(n) * cum[-1], side="right").clip(max=len(cum) - 1)


def _tod_seconds(rng: np.random.Generator, tz_hours: np.ndarray) -> np.ndarray:
    """Seconds into the UTC day, for local business hours, wrapped inside the same day.

    Wrapping (instead of spilling into the next UTC day) keeps every event inside the
    simulated day it belongs to, so snapshot states never miss or leak an event.
    """
    local_hour = _choice(rng, _LOCAL_HOUR_P, len(tz_hours))
    sec = (local_hour - tz_hours) % 24 * 3600 + rng.integers(0, 3600, len(tz_hours))
    return sec.astype(np.int64)


def _lead_ids(n: int) -> pa.Array:
    """'L-0000001' ... built digit by digit (vectorised; no per-lead Python loop)."""
    width = max(7, len(str(n)))
    out = np.empty((n, 2 + width), dtype=np.uint8)
    out[:, 0], out[:, 1] = ord("L"), ord("-")
    num = np.arange(1, n + 1, dtype=np.int64)
    for k in range(width):
        out[:, 1 + width - k] = 48 + (num // 10**k) % 10
    return pa.array(out.view(f"S{2 + width}").ravel()).cast(pa.string())


def _take(vocab: tuple[str, ...] | list[str], codes: np.ndarray) -> pa.Array:
    """Strings from a vocabulary by code; negative codes become nulls."""
    codes = np.asarray(codes)
    null = codes < 0
    return pa.array(list(vocab), pa.string()).take(pa.array(np.where(null, 0, codes), mask=null))


def _ts(seconds: np.ndarray, base: pd.Timestamp, null: np.ndarray | None = None) -> pa.Array:
    """UTC timestamps (microseconds) from float seconds after ``base``."""
    us = np.round(np.asarray(seconds, dtype=np.float64) * 1e6).astype(np.int64) + base.value // 1000
    return pa.array(us, pa.timestamp("us", tz="UTC"), mask=null)


# --- calendar -------------------------------------------------------------------------


@dataclass
class _Calendar:
    """Exogenous marketing campaigns, known in advance for the whole run plus horizon."""

    days: np.ndarray  # day index of each campaign
    kinds: np.ndarray  # _KIND_CODE
    send_s: np.ndarray  # send time, seconds into the UTC day
    names: list[str]
    by_day: dict[int, list[int]]


def _calendar(rng: np.random.Generator, start: pd.Timestamp, n_days: int) -> _Calendar:
    days, kinds, names = [], [], []
    dates = pd.date_range(start, periods=n_days, freq="D")
    topics = ("roi-calculator", "new-integrations", "case-study", "pricing-update", "ai-scoring", "year-in-review")
    webinars = ("pipeline-forecasting", "scoring-101", "revops-panel", "intent-signals", "attribution")
    for d, date in enumerate(dates):
        if date.day_of_week == 1:  # the newsletter goes out every Tuesday
            days.append(d), kinds.append(_KIND_CODE["newsletter"])
            names.append(f"newsletter-{date:%Y-%m-%d}")
        if date.day_of_week in (1, 2, 3) and rng.random() < 0.2:  # ~2-3 promotions a month
            days.append(d), kinds.append(_KIND_CODE["promo"])
            names.append(f"promo-{date:%Y-%m}-{topics[rng.integers(len(topics))]}")
        if date.day <= 7 and date.day_of_week == 3:  # a webinar invitation each month
            days.append(d), kinds.append(_KIND_CODE["webinar"])
            names.append(f"webinar-{date:%Y-%m}-{webinars[date.month % len(webinars)]}")
    days_a = np.array(days, dtype=np.int64)
    by_day: dict[int, list[int]] = {}
    for i, d in enumerate(days):
        by_day.setdefault(d, []).append(i)
    send = 13 * 3600 + rng.integers(0, 4 * 3600, len(days))  # US morning, European afternoon
    return _Calendar(days_a, np.array(kinds), send, names, by_day)


# --- leads ----------------------------------------------------------------------------


@dataclass
class _Leads:
    """Per-lead attributes (codes) and simulation parameters, in creation order."""

    n: int
    created_s: np.ndarray  # seconds after start
    arrays: dict[str, np.ndarray]


def _make_leads(rng: np.random.Generator, cfg: GeneratorConfig) -> _Leads:
    n, n_days = cfg.n_leads, cfg.n_days
    # Creation: growing volume (x1.8 a year), weekday seasonality, a holiday dip.
    dates = pd.date_range(cfg.start, periods=n_days, freq="D")
    weekday = np.array([1.15, 1.2, 1.15, 1.1, 0.9, 0.35, 0.35])[dates.day_of_week]
    holiday = np.where(((dates.month == 12) & (dates.day >= 20)) | ((dates.month == 1) & (dates.day <= 2)), 0.6, 1.0)
    w = np.exp(np.log(1.8) * np.arange(n_days) / 365.25) * weekday * holiday
    day = np.repeat(np.arange(n_days), rng.multinomial(n, w / w.sum()))

    a: dict[str, np.ndarray] = {}
    u_kind = rng.random(n)
    student = u_kind < 0.04
    competitor = (u_kind >= 0.04) & (u_kind < 0.052)
    country = _choice(rng, _COUNTRY_P, n)
    tz = _COUNTRY_TZ[country]
    tod = _tod_seconds(rng, tz).clip(1, _DAY_S - 1)  # > 0: a lead never lands exactly on a snapshot
    order = np.lexsort((tod, day))
    country, tz = country[order], tz[order]
    created_s = day * _DAY_S + tod[order]
    if cfg.campaign_from is not None:
        # A stream of its own: the other draws are the same with and without a launch,
        # so what differs is the launch and what follows from it.
        first = int((cfg.campaign_from - cfg.start) / pd.Timedelta(days=1))
        own = np.random.default_rng([cfg.seed, 0xCA3])
        launched = (np.sort(day) >= first) & (own.random(n) < cfg.campaign_share)
        country[launched] = _COUNTRIES.index(cfg.campaign_country)
        tz = _COUNTRY_TZ[country]

    industry = _choice(rng, _INDUSTRY_P, n)
    industry[student] = _INDUSTRIES.index("Education")
    industry[competitor] = _INDUSTRIES.index("Software")
    # Heavy-tailed company size: log-normal around an industry median (sd 0.75 in log10).
    log10_size = np.clip(_INDUSTRY_LOG10_SIZE[industry] + 0.75 * rng.standard_normal(n), 0, 5.5)
    size = np.round(10**log10_size)
    size_known = (rng.random(n) > 0.06) & ~(student & (rng.random(n) < 0.7))

    sen_logits = _SEN_LOGIT[None, :] + _SEN_SIZE_SLOPE[None, :] * (log10_size[:, None] - 2)
    seniority = _categorical(rng, sen_logits)
    seniority[student] = _SENIORITIES.index("Student")
    function = _choice(rng, _FUNCTION_P, n)
    exec_ = np.isin(seniority, [_SENIORITIES.index("C-Level"), _SENIORITIES.index("Owner")]) & (rng.random(n) < 0.6)
    function[exec_] = _FUNCTIONS.index("Executive")
    function[student] = _FUNCTIONS.index("Other")

    src_logits = (
        _SOURCE_LOGIT[None, :]
        + _SOURCE_SIZE_SLOPE[None, :] * (log10_size[:, None] - 2)
        + _SOURCE_STUDENT[None, :] * student[:, None]
    )
    source = _categorical(rng, src_logits)

    # Free mail is common in tiny companies, among students and in education.
    p_free = 1 / (1 + np.exp(-(0.2 - 1.1 * (log10_size - 1))))
    p_free = np.where(size_known, p_free, 0.4) + 0.08 * (industry == _INDUSTRIES.index("Education"))
    p_free = np.where(student, 0.55, np.clip(p_free, 0.03, 0.85))
    free = (rng.random(n) < p_free) & ~competitor

    noise = 0.55 * rng.standard_normal(n)  # unobserved fit: budget, timing, champion
    fit = (
        (0.5 - 0.35 * (log10_size - 2.7) ** 2).clip(-1.5) * size_known
        + _INDUSTRY_FIT[industry] + _SEN_FIT[seniority] + _FUNCTION_FIT[function]
        + _COUNTRY_FIT[country] + _SOURCE_FIT[source] - 0.5 * free - 4.0 * competitor + noise
    )

    # Capture: the action that created the lead.
    cap_u = rng.random(n)
    capture = np.full(n, _TYPE["form_submit"], dtype=np.int8)
    capture[np.isin(source, [_SOURCES.index("content_syndication"), _SOURCES.index("paid_social")]) & (cap_u < 0.6)] = _TYPE["content_download"]
    capture[source == _SOURCES.index("webinar")] = _TYPE["webinar_registered"]
    high_intent = np.isin(source, [_SOURCES.index(s) for s in ("organic_search", "paid_search", "direct", "referral", "partner")])
    capture[high_intent & (cap_u > 0.90)] = _TYPE["demo_request"]
    capture[high_intent & (cap_u > 0.86) & (cap_u <= 0.90)] = _TYPE["trial_signup"]
    capture[(cap_u > 0.80) & (cap_u <= 0.83)] = _TYPE["chat"]
    capture_bump = np.select(
        [capture == _TYPE["demo_request"], capture == _TYPE["trial_signup"], capture == _TYPE["chat"],
         capture == _TYPE["webinar_registered"]], [3.0, 2.5, 1.5, 1.0], 1.0)

    a.update(
        student=student, competitor=competitor, country=country, tz=tz, industry=industry,
        size=np.where(size_known, size, np.nan), log10_size=log10_size, seniority=seniority,
        function=function, source=source, free=free, fit=fit, capture=capture,
    )
    # Simulation parameters.
    resp = np.exp(0.4 * rng.standard_normal(n) + 0.25 * fit.clip(-3, 3))
    a["resp"] = resp
    a["base_intent"] = 0.04 * np.exp(0.3 * fit.clip(-3, 3) + 0.3 * rng.standard_normal(n)) + 0.15 * competitor
    a["intent0"] = a["base_intent"] + capture_bump * resp * np.exp(0.3 * rng.standard_normal(n))
    a["decay"] = 0.5 ** (1 / (17 * np.exp(0.25 * rng.standard_normal(n))))  # half-life ~ 2-3 weeks
    a["activity"] = np.exp(0.5 * rng.standard_normal(n) - 0.125)
    a["open_prop"] = np.exp(0.5 * rng.standard_normal(n) - 0.125)
    a["subscribed0"] = rng.random(n) < np.where(source == _SOURCES.index("email"), 1.0, 0.8)
    a["p_burst"] = (1 / 200) * np.exp(0.2 * fit.clip(-3, 3))
    a["log_hc"] = _HC0 + _HC_FIT * fit
    a["hd_base"] = np.exp(_HD0 + _HD_FIT * fit.clip(-3, 6))
    a["first_burst"] = rng.geometric(a["p_burst"]) + day
    a["e_conv"] = rng.exponential(size=n)
    a["e_disq"] = rng.exponential(size=n)
    a["first"] = rng.integers(0, len(_FIRST), n)
    a["last"] = rng.integers(0, len(_LAST), n)
    a["email_style"] = _choice(rng, np.array([60, 20, 10, 10.0]), n)
    a["company"] = rng.integers(0, len(_COMPANY_A) * len(_COMPANY_B), n)
    a["free_domain"] = _choice(rng, _FREE_P, n)
    a["digits"] = rng.integers(1, 100, n)
    a["uni"] = rng.integers(0, len(_UNIVERSITIES), n)
    a["competitor_domain"] = rng.integers(0, len(COMPETITOR_DOMAINS), n)
    a["title_pick"] = rng.integers(0, 2, n)
    a["theme_pick"] = rng.integers(0, 4, n)
    a["day"] = day
    return _Leads(n=n, created_s=created_s.astype(np.int64), arrays=a)


# --- the day step, shared by the main simulation and the truth paths ------------------


class _State:
    """Struct of arrays for the leads being simulated (one row per lead or per path)."""

    def __init__(self, **arrays: np.ndarray) -> None:
        self.__dict__.update(arrays)

    def take(self, idx: np.ndarray) -> _State:
        return _State(**{k: v[idx] for k, v in self.__dict__.items()})

    def slice(self, start: int) -> _State:
        """Rows from ``start`` on, as views (no copy)."""
        return _State(**{k: v[start:] for k, v in self.__dict__.items()})

    @staticmethod
    def concat(a: _State, b: _State) -> _State:
        return _State(**{k: np.concatenate([v, b.__dict__[k]]) for k, v in a.__dict__.items()})

    def __len__(self) -> int:
        return len(self.I)


def _initial_state(leads: _Leads, idx: np.ndarray) -> _State:
    a = leads.arrays
    start_frac = (leads.created_s[idx] % _DAY_S) / _DAY_S
    return _State(
        gidx=idx.astype(np.int64), start_day=a["day"][idx], start_frac=start_frac, tz=a["tz"][idx],
        resp=a["resp"][idx], base_intent=a["base_intent"][idx], decay=a["decay"][idx],
        activity=a["activity"][idx], open_prop=a["open_prop"][idx], p_burst=a["p_burst"][idx],
        hc_base=np.exp(a["log_hc"][idx]), hd_base=a["hd_base"][idx],
        stale_day=a["day"][idx] + _STALE_AFTER_D,
        I=a["intent0"][idx].copy(), E=_ENGAGE_W[a["capture"][idx]].astype(float),
        subscribed=a["subscribed0"][idx].copy(),
        web_due=np.full(len(idx), -1, np.int64), web_p=np.zeros(len(idx)),
        next_burst=a["first_burst"][idx].copy(),
        Hc=np.zeros(len(idx)), Hd=np.zeros(len(idx)),
        e_conv=a["e_conv"][idx], e_disq=a["e_disq"][idx], alive=np.ones(len(idx), bool),
    )


def _hazards(st: _State, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Daily conversion and disqualification hazards from fit and observed engagement."""
    # hc = exp(c0 + c_fit * fit) * (1 + E) ** 0.75, with the power from two square
    # roots: this runs for every lead and truth path every day, and sqrt is cheap.
    x = 1.0 + st.E
    root = np.sqrt(x)
    hc = st.hc_base * root * np.sqrt(root)
    # Sales reviews engaged leads (and so disqualifies bad fits that engage), and
    # clears out leads that have stayed quiet for months.
    hd = st.hd_base * (0.3 + 0.07 * np.minimum(10.0, st.E))
    stale = np.flatnonzero(st.stale_day < d)
    hd[stale] += _HD_STALE / (x[stale] * x[stale])
    return hc, hd


class _Recorder:
    """Collects the events of the main simulation, day by day."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(self, gidx, t_s, typ, campaign, url, duration) -> None:
        n = len(gidx)
        if n:
            self.parts.append((
                np.asarray(gidx, np.int64), np.broadcast_to(np.asarray(t_s, np.float64), n), np.broadcast_to(np.asarray(typ, np.int8), n),
                np.broadcast_to(np.asarray(campaign, np.int32), n), np.broadcast_to(np.asarray(url, np.int16), n),
                np.broadcast_to(np.asarray(duration, np.float64), n),
            ))


def _url_codes(rng: np.random.Generator, typ: np.ndarray) -> np.ndarray:
    """A plausible URL for each web event (-1: no URL)."""
    url = np.full(len(typ), -1, np.int16)
    offset = 0
    for types, pages in (
        ((_TYPE["page_view"], _TYPE["chat"]), _PAGES), ((_TYPE["pricing_page_view"],), _PRICING),
        ((_TYPE["content_download"],), _ASSETS), ((_TYPE["form_submit"],), _FORMS),
    ):
        m = np.isin(typ, types)
        url[m] = offset + _choice(rng, np.array([w for _, w in pages], float), int(m.sum()))
        offset += len(pages)
    url[typ == _TYPE["demo_request"]] = offset
    url[typ == _TYPE["trial_signup"]] = offset + 1
    return url


def _durations(rng: np.random.Generator, typ: np.ndarray) -> np.ndarray:
    """Seconds on page, in a chat or in a webinar; NaN where a duration means nothing."""
    dur = np.full(len(typ), np.nan)
    for t, median, sd in (("page_view", 40, 1.0), ("pricing_page_view", 75, 0.8), ("chat", 240, 0.7)):
        m = typ == _TYPE[t]
        dur[m] = np.round(median * np.exp(sd * rng.standard_normal(int(m.sum()))))
    m = typ == _TYPE["webinar_attended"]
    dur[m] = rng.integers(600, 3601, int(m.sum()))
    return dur


def _step(st: _State, d: int, cal: _Calendar, wk: np.ndarray, rng: np.random.Generator,
          rec: _Recorder | None) -> tuple[np.ndarray, np.ndarray]:
    """Advance every row of ``st`` through day ``d``; return that day's (hc, hd) * exposure.

    The hazards use the state at the start of the day, so an outcome on day ``d``
    depends only on what was observable before it. In the main simulation (``rec``
    given) only leads created on or before ``d`` and still open take part, and the
    first day counts from the creation time; truth paths are always whole days.
    """
    n = len(st)
    hc, hd = _hazards(st, d)
    if rec is not None:
        expo = np.where(st.start_day < d, 1.0, np.where(st.start_day == d, 1.0 - st.start_frac, 0.0))
        expo[~st.alive] = 0.0
        live = expo > 0
        old = live & (st.start_day < d)
        hc *= expo
        hd *= expo
    else:
        expo = 1.0
        live = old = np.ones(n, bool)
    day0 = d * _DAY_S

    def first_day_offset(rows: np.ndarray, tod: np.ndarray) -> np.ndarray:
        # On the creation day, events fall between creation and midnight.
        new = st.start_day[rows] == d
        frac = st.start_frac[rows]
        return np.where(new, (frac + (1 - frac) * tod / _DAY_S) * _DAY_S, tod)

    # 1. Campaigns sent today reach subscribed leads that existed before the send day.
    for c in cal.by_day.get(d, ()):
        reach, b_recv, b_open, b_click, open0 = _KIND_PARAMS[cal.kinds[c]]
        rows = np.flatnonzero(old & st.subscribed)
        rows = rows[rng.random(len(rows)) < reach]
        intent = st.I[rows]
        engaged = intent / (1 + intent)
        opened = rng.random(len(rows)) < np.minimum(0.9, (open0 + 0.35 * engaged) * st.open_prop[rows])
        clicked = opened & (rng.random(len(rows)) < 0.08 + 0.35 * engaged)
        unsub = rng.random(len(rows)) < 0.0015 + 0.006 / (1 + 5 * intent)
        is_web = cal.kinds[c] == _KIND_CODE["webinar"]
        registered = clicked & (rng.random(len(rows)) < 0.5) if is_web else np.zeros(len(rows), bool)
        registered &= st.web_due[rows] < 0
        st.I[rows] += st.resp[rows] * (b_recv + b_open * opened + b_click * clicked)
        w = _ENGAGE_W
        st.E[rows] += (w[_TYPE["email_open"]] * opened + w[_TYPE["email_click"]] * clicked
                       + w[_TYPE["webinar_registered"]] * registered)
        reg_rows = rows[registered]
        st.web_due[reg_rows] = d + 7
        st.web_p[reg_rows] = 0.35 + 0.3 * engaged[registered]
        st.subscribed[rows[unsub]] = False
        st.hc_base[rows[unsub]] *= _HC_UNSUB
        if rec is not None:
            t_open = np.minimum(cal.send_s[c] + rng.exponential(3 * 3600, len(rows)), _DAY_S - 300)
            for mask, typ, lag in ((opened, "email_open", 0), (clicked, "email_click", 60),
                                   (registered, "webinar_registered", 180), (unsub, "unsubscribe", 30)):
                rec.add(st.gidx[rows[mask]], day0 + t_open[mask] + lag, _TYPE[typ], c, -1, np.nan)

    # 2. Webinars a week after registration: some registrants attend.
    due = np.flatnonzero(live & (st.web_due == d))
    if len(due):
        attend = due[rng.random(len(due)) < st.web_p[due]]
        st.I[attend] += st.resp[attend] * _INTENT_KICK[_TYPE["webinar_attended"]]
        st.E[attend] += _ENGAGE_W[_TYPE["webinar_attended"]]
        st.web_due[due] = -1
        if rec is not None:
            web = _calendar_webinar(cal, d)
            rec.add(st.gidx[attend], day0 + 16 * 3600, _TYPE["webinar_attended"], web, -1,
                    _durations(rng, np.full(len(attend), _TYPE["webinar_attended"], np.int8)))

    # 3. Spontaneous bursts of need (memoryless; the next one is drawn when one fires).
    burst = np.flatnonzero(live & (st.next_burst <= d))
    if len(burst):
        st.I[burst] += st.resp[burst] * rng.exponential(1.0, len(burst))
        st.next_burst[burst] = d + rng.geometric(st.p_burst[burst])

    # 4. Intent-driven events: total count ~ Poisson, then a type per event.
    intent = st.I
    sq = np.sqrt(intent)
    lam = intent * (_R1 + sq * (_R15 + sq * _R2)) * (st.activity * (wk[d] * expo))
    # Poisson counts, drawn cheaply for mostly tiny rates: the first arrival X ~ Exp(1)
    # falls inside the day iff X < lam, and by memorylessness the rest of the count is
    # Poisson(lam - X). Exact, and rng.poisson runs on the few rows with an event only.
    first = rng.standard_exponential(n)
    rows = np.flatnonzero(first < lam)
    if len(rows):
        k = 1 + rng.poisson(lam[rows] - first[rows])
        Ir = intent[rows]
        sqr = sq[rows]
        power = {1.0: Ir, 1.5: Ir * sqr, 2.0: Ir * Ir}
        cum = np.cumsum([r * power[g] for r, g in zip(_SPONT_R, _SPONT_GAMMA, strict=True)], axis=0)
        ev_row = np.repeat(np.arange(len(rows)), k)
        u = rng.random(len(ev_row)) * cum[-1][ev_row]
        pick = np.zeros(len(ev_row), np.int64)
        for j in range(len(_SPONT) - 1):  # inverse CDF over 7 types, one column at a time
            pick += u >= cum[j][ev_row]
        typ = _SPONT_CODE[pick]
        starts = np.concatenate([[0], np.cumsum(k)[:-1]])
        st.E[rows] += np.add.reduceat(_ENGAGE_W[typ], starts)
        # Own actions feed intent, damped at high intent so the feedback stays sub-critical.
        st.I[rows] += st.resp[rows] * np.add.reduceat(_INTENT_KICK[typ], starts) / (1 + Ir / 2)
        if rec is not None:
            ev = rows[ev_row]
            tod = first_day_offset(ev, _tod_seconds(rng, st.tz[ev]).astype(float))
            rec.add(st.gidx[ev], day0 + tod, typ, -1, _url_codes(rng, typ), _durations(rng, typ))

    # 5. Quiet decay: intent towards its baseline, engagement towards zero.
    if rec is None:
        st.I = np.minimum(st.base_intent + (st.I - st.base_intent) * st.decay, 10.0)
        st.E *= _ENGAGE_DECAY
    else:  # leads created later in the block keep their initial state until they start
        started = st.start_day <= d
        st.I = np.where(started, np.minimum(st.base_intent + (st.I - st.base_intent) * st.decay, 10.0), st.I)
        st.E = np.where(started, st.E * _ENGAGE_DECAY, st.E)
    return hc, hd


def _calendar_webinar(cal: _Calendar, d: int) -> int:
    """The webinar a registrant attends on day ``d`` (the last invitation before it)."""
    web = np.flatnonzero((cal.kinds == _KIND_CODE["webinar"]) & (cal.days <= d - 7))
    return int(web[-1]) if len(web) else -1


# --- main simulation ------------------------------------------------------------------


def _start_paths(st: _State, d: int, in_sample: np.ndarray, k: int,
                 rng: np.random.Generator) -> _State | None:
    """``k`` copies of every eligible sampled lead's state at the start of day ``d``.

    Eligible: created before ``d`` and still open. Each copy is a possible future.
    """
    rows = np.flatnonzero(st.alive & (st.start_day < d) & in_sample[st.gidx])
    if not len(rows):
        return None
    paths = st.take(np.repeat(rows, k))
    # A burst clock is memoryless: redraw it so no path inherits the main run's future.
    paths.next_burst = d + rng.geometric(paths.p_burst) - 1
    paths.snap = np.full(len(paths), d, np.int64)
    paths.surv = np.ones(len(paths))
    paths.p_conv = np.zeros(len(paths))
    return paths


def _simulate(leads: _Leads, cfg: GeneratorConfig, cal: _Calendar, rng: np.random.Generator,
              truth_rng: np.random.Generator, in_sample: np.ndarray):
    """Run the main simulation and, alongside it, the truth paths of every snapshot.

    The futures of all snapshots whose horizon covers day ``d`` are advanced together
    in one array (they all live on the same calendar day), which keeps the number of
    numpy calls per day constant instead of growing with the number of snapshots.
    """
    n_days, horizon, k = cfg.n_days, cfg.horizon.days, cfg.truth_paths
    wk_dates = pd.date_range(cfg.start, periods=n_days + horizon + 1, freq="D")
    wk = _WEEKDAY_ACTIVITY[wk_dates.day_of_week]
    grid = snapshot_grid(cfg.start, cfg.end, cfg.every)
    snap_days = set(((grid - cfg.start) // pd.Timedelta(days=1)).tolist())
    any_sample = bool(in_sample.any())
    day = leads.arrays["day"]
    rec = _Recorder()
    out_time = np.full(leads.n, np.nan)  # seconds after start
    out_kind = np.zeros(leads.n, np.int8)  # 1 converted, 2 disqualified
    truth_parts: list[tuple[np.ndarray, int, np.ndarray, np.ndarray]] = []
    st = _initial_state(leads, np.zeros(0, np.int64))
    paths: _State | None = None
    block = 7
    for d in range(n_days + horizon + 1):
        if d in snap_days and any_sample:
            new = _start_paths(st, d, in_sample, k, truth_rng)
            if new is not None:
                paths = new if paths is None else _State.concat(paths, new)
        if paths is not None:
            hc, hd = _step(paths, d, cal, wk, truth_rng, None)
            # Rao-Blackwellised outcome: the probability of converting first today,
            # given the path survived so far, with disqualification competing.
            total = hc + hd
            q = -np.expm1(-total)
            paths.p_conv += paths.surv * q * hc / total
            paths.surv *= 1 - q
            done = paths.snap + horizon == d + 1  # paths are in snapshot order
            if done[0]:
                m = int(done.sum())
                gidx = paths.gidx[:m:k]
                per_path = paths.p_conv[:m].reshape(-1, k)
                if k >= 2:
                    halves = np.stack([per_path[:, : k // 2].mean(axis=1), per_path[:, k // 2 :].mean(axis=1)], axis=1)
                else:
                    halves = np.full((len(per_path), 2), np.nan)
                truth_parts.append((gidx, int(paths.snap[0]), per_path.mean(axis=1), halves))
                paths = paths.slice(m) if m < len(paths) else None
        if d >= n_days:
            if paths is None:
                break
            continue
        if d % block == 0:
            # Drop closed leads and bring in those created during the coming block.
            st = st.take(np.flatnonzero(st.alive))
            new_leads = np.flatnonzero((day >= d) & (day < d + block))
            st = _State.concat(st, _initial_state(leads, new_leads))
        Hc0, Hd0 = st.Hc.copy(), st.Hd.copy()
        hc, hd = _step(st, d, cal, wk, rng, rec)
        st.Hc += hc
        st.Hd += hd
        # Outcomes by inverse transform: an Exp(1) threshold per lead and per risk,
        # crossed today by open leads only.
        cross_c = st.alive & (st.Hc >= st.e_conv)
        cross_d = st.alive & (st.Hd >= st.e_disq)
        ended = np.flatnonzero(cross_c | cross_d)
        if len(ended):
            fc = np.where(cross_c[ended], (st.e_conv[ended] - Hc0[ended]) / hc[ended], np.inf)
            fd = np.where(cross_d[ended], (st.e_disq[ended] - Hd0[ended]) / hd[ended], np.inf)
            f = np.minimum(fc, fd)  # fraction of today's exposure
            begin = np.where(st.start_day[ended] == d, st.start_frac[ended], 0.0)
            g = st.gidx[ended]
            out_time[g] = (d + begin + f * (1 - begin)) * _DAY_S
            out_kind[g] = np.where(fc <= fd, 1, 2)
            st.alive[ended] = False
    return rec, out_time, out_kind, truth_parts


# --- assembling the tables ------------------------------------------------------------


def _titles() -> list[str]:
    """Job titles by (seniority, function, variant)."""
    fn_word = {"Marketing": "Marketing", "Sales": "Sales", "IT": "IT", "Engineering": "Engineering",
               "Operations": "Operations", "Finance": "Finance", "HR": "People", "Product": "Product",
               "Executive": "General Management", "Other": "Business"}
    c_level = {"Marketing": "CMO", "Sales": "Chief Revenue Officer", "IT": "CIO", "Engineering": "CTO",
               "Operations": "COO", "Finance": "CFO", "HR": "Chief People Officer", "Product": "Chief Product Officer",
               "Executive": "CEO", "Other": "Chief of Staff"}
    out = []
    for sen in _SENIORITIES:
        for fn in _FUNCTIONS:
            w = fn_word[fn]
            pair = {
                "Entry": (f"{w} Coordinator", f"{w} Associate"),
                "Senior": (f"Senior {w} Specialist", f"{w} Lead"),
                "Manager": (f"{w} Manager", f"Head of {w}" if fn != "Executive" else "General Manager"),
                "Director": (f"Director of {w}", f"{w} Director"),
                "VP": (f"VP of {w}", f"VP {w}"),
                "C-Level": (c_level[fn], "CEO" if fn == "Executive" else c_level[fn]),
                "Owner": ("Owner", "Founder"),
                "Student": ("Student", "MBA Candidate"),
            }[sen]
            if fn == "Engineering" and sen in ("Entry", "Senior"):
                pair = ("Software Engineer", "Senior Software Engineer") if sen == "Senior" else ("Software Engineer", "Data Analyst")
            if fn == "Executive" and sen == "Owner":
                pair = ("Founder", "Co-Founder")
            out.extend(pair)
    return out


def _emails(a: dict[str, np.ndarray], n: int) -> pa.Array:
    lower = lambda vocab: pa.array([v.lower().replace(" ", "").replace("'", "") for v in vocab])  # noqa: E731
    first = lower(_FIRST).take(pa.array(a["first"]))
    last = lower(_LAST).take(pa.array(a["last"]))
    initial = pc.utf8_slice_codeunits(first, 0, 1)
    style = a["email_style"]
    local = pc.if_else(pa.array(style == 0), pc.binary_join_element_wise(first, last, "."),
            pc.if_else(pa.array(style == 1), pc.binary_join_element_wise(initial, last, ""),
            pc.if_else(pa.array(style == 2), first, pc.binary_join_element_wise(first, last, "_"))))
    digits = pc.cast(pa.array(a["digits"]), pa.string())
    free_local = pc.if_else(pa.array(a["digits"] < 40), pc.binary_join_element_wise(local, digits, ""), local)
    companies = [f"{x}{'-' if (i + j) % 3 == 0 else ''}{y}" for i, x in enumerate(_COMPANY_A) for j, y in enumerate(_COMPANY_B)]
    corp_domain = pc.binary_join_element_wise(
        pa.array(companies).take(pa.array(a["company"])),
        pa.array(list(_COUNTRY_TLD)).take(pa.array(a["country"])), ".")
    free_p = a["free_domain"].copy()
    country = a["country"]
    switch = np.arange(n) % 3 == 0  # a third of Germans/French/Britons use a local provider
    free_p[(country == _COUNTRIES.index("DE")) & switch] = FREE_MAIL_DOMAINS.index("gmx.de")
    free_p[(country == _COUNTRIES.index("FR")) & switch] = FREE_MAIL_DOMAINS.index("orange.fr")
    free_p[(country == _COUNTRIES.index("GB")) & switch] = FREE_MAIL_DOMAINS.index("yahoo.co.uk")
    free_domain = pa.array(list(FREE_MAIL_DOMAINS)).take(pa.array(free_p))
    domain = pc.if_else(pa.array(a["free"]), free_domain, corp_domain)
    student_corp = a["student"] & ~a["free"]
    domain = pc.if_else(pa.array(student_corp), pa.array(list(_UNIVERSITIES)).take(pa.array(a["uni"])), domain)
    domain = pc.if_else(pa.array(a["competitor"]),
                        pa.array(list(COMPETITOR_DOMAINS)).take(pa.array(a["competitor_domain"])), domain)
    local = pc.if_else(pa.array(a["free"]), free_local, local)
    return pc.binary_join_element_wise(local, domain, "@")


def _utm(
    a: dict[str, np.ndarray], created_s: np.ndarray, start: pd.Timestamp
) -> tuple[pa.Array, np.ndarray, list[str]]:
    """'2025q1_paid_search_brand' for campaign-driven sources, null otherwise."""
    created = start + pd.to_timedelta(created_s, unit="s")
    qidx = (created.year - 2000) * 4 + (created.quarter - 1)
    q0 = int(qidx.min())
    nq = int(qidx.max()) - q0 + 1
    vocab, offsets = [], {}
    for s, themes in _SOURCE_THEMES.items():
        offsets[s] = len(vocab)
        for q in range(nq):
            y, qq = divmod(q0 + q, 4)
            vocab.extend(f"{2000 + y}q{qq + 1}_{s}_{t}" for t in themes)
    codes = np.full(len(created_s), -1, np.int64)
    for s, themes in _SOURCE_THEMES.items():
        m = a["source"] == _SOURCES.index(s)
        theme = a["theme_pick"][m] % len(themes)
        codes[m] = offsets[s] + (np.asarray(qidx)[m] - q0) * len(themes) + theme
    return _take(vocab, codes), codes, vocab


def _leads_table(leads: _Leads, cfg: GeneratorConfig, out_time, out_kind) -> tuple[pa.Table, np.ndarray, list[str]]:
    a, n = leads.arrays, leads.n
    rng_missing = np.random.default_rng([cfg.seed, 7])  # which optional fields a CRM lacks
    miss = lambda p: rng_missing.random(n) < p  # noqa: E731
    titles = _titles()
    title_code = (a["seniority"] * len(_FUNCTIONS) + a["function"]) * 2 + a["title_pick"]
    utm, utm_codes, utm_vocab = _utm(a, leads.created_s, cfg.start)
    converted = out_kind == 1
    disq = out_kind == 2
    table = pa.table({
        "lead_id": _lead_ids(n),
        "created_at": _ts(leads.created_s, cfg.start),
        "source": _take(_SOURCES, a["source"]),
        "utm_campaign": utm,
        "country": _take(_COUNTRIES, np.where(miss(0.02), -1, a["country"])),
        "industry": _take(_INDUSTRIES, np.where(miss(0.04), -1, a["industry"])),
        "company_size": pa.array(a["size"], pa.float64()),
        "job_title": _take(titles, np.where(miss(0.05), -1, title_code)),
        "seniority": _take(_SENIORITIES, np.where(miss(0.08), -1, a["seniority"])),
        "job_function": _take(_FUNCTIONS, np.where(miss(0.08), -1, a["function"])),
        "email": _emails(a, n),
        "first_name": _take(_FIRST, a["first"]),
        "last_name": _take(_LAST, a["last"]),
        "converted_at": _ts(np.nan_to_num(out_time), cfg.start, ~converted),
        "disqualified_at": _ts(np.nan_to_num(out_time), cfg.start, ~disq),
    })
    return table, utm_codes, utm_vocab


def _activities_table(rec: _Recorder, leads: _Leads, lead_ids: pa.Array, cfg: GeneratorConfig,
                      cal: _Calendar, utm_codes: np.ndarray, utm_vocab: list[str],
                      out_time: np.ndarray) -> pa.Table:
    # The capture event that created each lead, at created_at, tagged with its UTM campaign.
    a = leads.arrays
    n_cal = len(cal.names)
    cap_typ = a["capture"]
    cap_url = _url_codes(np.random.default_rng([cfg.seed, 11]), cap_typ)
    cap_url[cap_typ == _TYPE["form_submit"]] = _URLS.index(_WEB + "/contact")
    parts = [(np.arange(leads.n), leads.created_s.astype(float), cap_typ,
              np.where(utm_codes >= 0, utm_codes + n_cal, -1).astype(np.int32), cap_url,
              np.full(leads.n, np.nan))] + rec.parts
    gidx, t_s, typ, camp, url, dur = (np.concatenate([p[i] for p in parts]) for i in range(6))
    # Nothing after the lead closed (events of that day drawn after the outcome).
    keep = ~(t_s > out_time[gidx])
    order = np.flatnonzero(keep)[np.argsort(t_s[keep], kind="stable")]
    gidx, t_s, typ, camp, url, dur = gidx[order], t_s[order], typ[order], camp[order], url[order], dur[order]
    return pa.table({
        "lead_id": lead_ids.take(pa.array(gidx)),
        "occurred_at": _ts(np.floor(t_s), cfg.start),
        "type": _take(ACTIVITY_TYPES, typ),
        "url": _take(_URLS, url),
        "campaign": _take(cal.names + utm_vocab, camp),
        "duration_s": pa.array(dur, pa.float64(), mask=np.isnan(dur)),
    })


def generate(config: GeneratorConfig) -> SyntheticCRM:
    """Simulate a CRM: leads, activities, outcomes and the ground-truth conversion probabilities.

    Parameters
    ----------
    config : GeneratorConfig
        What to generate; see its docstring.

    Returns
    -------
    SyntheticCRM
        ``leads``, ``activities`` and ``truth`` as pyarrow tables (see the module
        docstring for their meaning), and ``stats``.
    """
    cfg = config
    main_rng, cal_rng, truth_rng, sample_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(4)
    )
    leads = _make_leads(main_rng, cfg)
    cal = _calendar(cal_rng, cfg.start, cfg.n_days + cfg.horizon.days + 1)
    in_sample = np.zeros(leads.n, bool)
    if cfg.truth_leads >= leads.n:
        in_sample[:] = True
    elif cfg.truth_leads > 0:
        in_sample[sample_rng.choice(leads.n, cfg.truth_leads, replace=False)] = True
    rec, out_time, out_kind, truth_parts = _simulate(leads, cfg, cal, main_rng, truth_rng, in_sample)
    leads_table, utm_codes, utm_vocab = _leads_table(leads, cfg, out_time, out_kind)
    activities = _activities_table(rec, leads, leads_table["lead_id"].combine_chunks(), cfg, cal,
                                   utm_codes, utm_vocab, out_time)
    if truth_parts:
        gidx = np.concatenate([part[0] for part in truth_parts])
        days = np.concatenate([np.full(len(part[0]), part[1]) for part in truth_parts])
        p = np.concatenate([part[2] for part in truth_parts])
        halves = np.concatenate([part[3] for part in truth_parts])
        order = np.lexsort((gidx, days))
        gidx, days, p, halves = gidx[order], days[order], p[order], halves[order]
    else:
        gidx, days, p, halves = np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros((0, 2))
    truth = pa.table({
        "lead_id": leads_table["lead_id"].combine_chunks().take(pa.array(gidx)),
        "as_of": _ts(days * float(_DAY_S), cfg.start),
        "p_convert": pa.array(p, pa.float64()),
    })
    stats = {
        "leads": leads.n,
        "activities": activities.num_rows,
        "activities_per_lead": activities.num_rows / leads.n,
        "converted_share": float((out_kind == 1).mean()),
        "disqualified_share": float((out_kind == 2).mean()),
        "truth_rows": truth.num_rows,
        "truth_leads": int(in_sample.sum()),
        "truth_mean_p": float(p.mean()) if len(p) else math.nan,
    }
    return SyntheticCRM(leads=leads_table, activities=activities, truth=truth, stats=stats,
                        truth_halves=halves if cfg.truth_paths >= 2 else None)


def write_crm(crm: SyntheticCRM, out_dir: str | Path) -> dict[str, Path]:
    """Write ``leads.parquet``, ``activities.parquet`` and ``truth.parquet`` into ``out_dir``,
    and ``dataset.yaml``, the built-in contract's dataset spec that reads them.

    The writer settings are fixed (zstd, fixed row groups, no pandas metadata) and
    pyarrow records no write time, so equal tables give byte-identical files.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, table in (("leads", crm.leads), ("activities", crm.activities), ("truth", crm.truth)):
        path = out / f"{name}.parquet"
        tmp = path.with_suffix(".parquet.tmp")
        pq.write_table(table, tmp, compression="zstd", row_group_size=1_000_000,
                       use_dictionary=True, write_statistics=True)
        tmp.replace(path)
        paths[name] = path
    # The folder is then a dataset like any user's: `--dataset DIR/dataset.yaml` reads it
    # (the spec's sources are relative to its own folder), as `--data DIR` does.
    spec = out / "dataset.yaml"
    spec.write_bytes((Path(__file__).with_name("specs") / "builtin.yaml").read_bytes())
    paths["dataset"] = spec
    return paths


def generate_to_dir(config: GeneratorConfig, out_dir: str | Path) -> dict[str, Path]:
    """``generate`` then ``write_crm``; returns the three paths by table name."""
    return write_crm(generate(config), out_dir)
