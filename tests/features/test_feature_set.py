"""Feature sets built from a dataset spec's definition: any CRM's columns and kinds.

The built-in feature set is one feature set among others; these tests hold a spec's
to the same laws: one code path offline and online (bit for bit), point in time, a
version that is the definition's content hash, sentences in the spec's words.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.build import anchored_pairs, build_training_set
from features.history import DAY_NS
from features.live import LiveLead, live_features
from features.online import features_at
from features.registry import BUILTIN, FeatureSet, FitColumn, KindDefinition, feature_names

FIT = (
    FitColumn("lead_source", "categorical", "Lead source"),
    FitColumn("region_name", "categorical", "Region"),
    FitColumn("studied_credits", "numeric", "Credits studied"),
)
KINDS = (
    KindDefinition("forum", "posted in the forum", weight=2.0, key_action=True, title="Forum"),
    KindDefinition("homepage", "visited the course homepage", weight=0.5),
    KindDefinition("quiz", "took a quiz", weight=4.0, key_action=True),
    KindDefinition("muted", "muted the course", weight=0.0),
)
SPEC_SET = FeatureSet.from_definition("course", FIT, KINDS)
BASE = pd.Timestamp("2014-03-01T00:00:00Z").value
EDGES = [d * DAY_NS + e for d in (0, 1, 7, 30, 37, 90) for e in (-1, 0, 1)]
TYPES = ["forum", "homepage", "quiz", "muted", "oucontent", "Forum", "", "subpage"]
TEXT = [None, "", " ", "Olark Chat", " olark chat ", "Google", "\u00a0x", "ß", "İ"]


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


def test_the_builtin_set_is_the_registry():
    assert BUILTIN.feature_names() == feature_names()
    assert BUILTIN.version == "2026.11.1"
    assert BUILTIN.vocabulary.kinds[0] == "page_view"


def test_a_spec_set_has_fit_then_engagement_per_kind():
    names = SPEC_SET.feature_names()
    assert names[:2] == ["lead_source", "region_name"]  # categories first, as the built-in
    assert {"studied_credits", "lead_age_days", "forum_count_7d", "quiz_count_90d",
            "days_since_last_forum", "days_since_last_quiz", "engagement_decayed_hl7d",
            "activity_velocity", "active_days_30d"} <= set(names)
    assert "days_since_last_homepage" not in names  # not a key action
    assert "first_touch_channel" not in names  # needs URLs and campaigns, which a spec lacks
    assert SPEC_SET.field_of("forum_count_30d") == "kind_forum"
    assert SPEC_SET.categorical_features() == ["lead_source", "region_name"]


def test_the_version_is_the_definitions_hash():
    again = FeatureSet.from_definition("course", FIT, KINDS)
    assert again.version == SPEC_SET.version and again.version.startswith("spec:course:")
    heavier = (*KINDS[:1], KindDefinition("homepage", "visited the course homepage", weight=0.6),
               *KINDS[2:])
    assert FeatureSet.from_definition("course", FIT, heavier).version != SPEC_SET.version
    # Labels word the sentences only: relabelling needs no retraining (same version).
    relabelled = (FitColumn("lead_source", "categorical", "Source"), *FIT[1:])
    assert FeatureSet.from_definition("course", relabelled, KINDS).version == SPEC_SET.version
    retyped = (FitColumn("lead_source", "numeric", "Lead source"), *FIT[1:])
    assert FeatureSet.from_definition("course", retyped, KINDS).version != SPEC_SET.version
    key = (*KINDS[:1], KindDefinition("homepage", "visited the course homepage", weight=0.5,
                                      key_action=True), *KINDS[2:])
    assert FeatureSet.from_definition("course", FIT, key).version != SPEC_SET.version


def test_two_features_with_one_name_are_refused():
    with pytest.raises(ValueError, match="two features named"):
        FeatureSet.from_definition(
            "clash", (FitColumn("forum_count_7d", "numeric", "Forum score"),), KINDS)
    with pytest.raises(ValueError, match="has_time"):
        FeatureSet.from_definition("flat", FIT, KINDS, has_time=False)


def test_a_flat_set_has_only_its_columns():
    flat = FeatureSet.from_definition("flat", FIT, has_time=False)
    assert flat.feature_names() == ["lead_source", "region_name", "studied_credits"]
    assert not flat.has_activities


def test_reasons_speak_the_specs_words():
    row = {"lead_source": "Olark Chat", "region_name": None, "studied_credits": 60.0,
           "forum_count_7d": 12.0, "forum_count_30d": 20.0, "forum_count_90d": 20.0,
           "quiz_count_7d": 0.0, "quiz_count_30d": 0.0, "quiz_count_90d": 0.0,
           "days_since_last_quiz": 45.2, "muted_count_7d": 0.0, "muted_count_30d": 0.0,
           "muted_count_90d": 0.0}
    impacts = {"lead_source": 0.5, "region_name": -0.1, "studied_credits": 0.05,
               "forum_count_7d": 0.3, "forum_count_30d": 0.1, "quiz_count_7d": -0.2,
               "days_since_last_quiz": -0.05, "muted_count_90d": 0.01}
    sentences = {r.field: r.sentence for r in SPEC_SET.reasons_for(row, impacts)}
    assert sentences == {
        "lead_source": "Lead source: Olark Chat",
        "region_name": "Region not given",
        "studied_credits": "Credits studied: 60",
        "kind_forum": "Posted in the forum 12 times in the last 7 days",
        "kind_quiz": "Last took a quiz 45 days ago",
        "kind_muted": "Muted the course: not in the last 90 days",
    }
    forum = next(r for r in SPEC_SET.reasons_for(row, impacts) if r.field == "kind_forum")
    assert forum.label == "Forum" and forum.impact == pytest.approx(0.4)
    with pytest.raises(KeyError, match="not a feature of feature set spec:course"):
        SPEC_SET.reasons_for(row, {"industry": 1.0})


@st.composite
def spec_leads(draw: st.DrawFn) -> tuple[dict, int, int, list[tuple[int, str]]]:
    as_of = draw(st.integers(BASE - 5 * DAY_NS, BASE + 5 * DAY_NS))
    created = as_of - draw(st.one_of(st.sampled_from([0, 1, DAY_NS]), st.integers(0, 800 * DAY_NS)))
    attributes = {
        "lead_source": draw(st.one_of(st.sampled_from(TEXT), st.text(max_size=6))),
        "region_name": draw(st.one_of(st.sampled_from(TEXT), st.text(max_size=6))),
        "studied_credits": draw(st.one_of(st.none(), st.sampled_from([0.0, 60.0, 0.1]),
                                          st.floats(-1e9, 1e9))),
    }
    moments = draw(st.lists(st.one_of(st.sampled_from(EDGES),
                                      st.integers(-30 * DAY_NS, 400 * DAY_NS)),
                            min_size=1, max_size=6))
    activities = draw(st.lists(st.tuples(st.sampled_from(moments), st.sampled_from(TYPES)),
                               max_size=25))
    return attributes, created, as_of, [(as_of - back, kind) for back, kind in activities]


def _vectorised(leads: list) -> pd.DataFrame:
    ids = [f"L{i}" for i in range(len(leads))]
    frame = pd.DataFrame([
        {"lead_id": lead_id, "created_at": pd.Timestamp(created, tz="UTC"), **attributes}
        for lead_id, (attributes, created, _, _) in zip(ids, leads, strict=True)
    ])
    frame["lead_id"] = frame["lead_id"].astype("string")
    for column in ("lead_source", "region_name"):
        frame[column] = frame[column].astype("string")
    frame["studied_credits"] = frame["studied_credits"].astype("float64")
    acts = pd.DataFrame(
        [(lead_id, pd.Timestamp(t, tz="UTC"), kind)
         for lead_id, (_, _, _, activities) in zip(ids, leads, strict=True)
         for t, kind in activities],
        columns=["lead_id", "occurred_at", "type"],
    ).astype({"lead_id": "string", "type": "string"})
    acts["occurred_at"] = pd.to_datetime(acts["occurred_at"], utc=True).astype("datetime64[ns, UTC]")
    # Interleave the leads' histories, each lead's own order kept (it breaks full ties).
    acts = (acts.assign(_seq=acts.groupby("lead_id").cumcount())
            .sample(frac=1.0, random_state=len(acts))
            .sort_values("_seq", kind="stable").drop(columns="_seq").reset_index(drop=True))
    as_of = pd.Series([pd.Timestamp(a, tz="UTC") for _, _, a, _ in leads])
    return features_at(frame, acts, as_of, feature_set=SPEC_SET)


def _live(lead) -> dict:
    attributes, created, as_of, activities = lead
    return live_features(LiveLead(
        attributes=attributes, created_ns=created, as_of_ns=as_of,
        times=[t for t, _ in activities], types=[k for _, k in activities],
        urls=[None] * len(activities), campaigns=[None] * len(activities),
    ), SPEC_SET)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(spec_leads(), min_size=1, max_size=4))
def test_live_equals_vectorised_for_a_spec_set(leads):
    expected = _vectorised(leads)
    categorical = set(SPEC_SET.categorical_features())
    for i, lead in enumerate(leads):
        live = _live(lead)
        assert list(live) == SPEC_SET.feature_names()
        row = expected.iloc[i]
        for name, got in live.items():
            want = row[name]
            if name in categorical:
                assert (got is None and want is pd.NA) or got == want, (name, got, want)
            else:
                assert isinstance(got, float), (name, got)
                assert (math.isnan(got) and math.isnan(want)) or _bits(got) == _bits(want), \
                    (name, got, want)


def test_kinds_count_and_weigh_as_declared():
    as_of = BASE
    lead = ({"lead_source": " Olark Chat ", "region_name": "", "studied_credits": 60.0}, as_of - 100 * DAY_NS,
            as_of, [(as_of - DAY_NS, "forum"), (as_of - DAY_NS, "forum"), (as_of - 2 * DAY_NS, "quiz"),
                    (as_of - 3 * DAY_NS, "muted"), (as_of - 3 * DAY_NS, "oucontent"),
                    (as_of, "forum")])  # at as_of: never counts
    live = _live(lead)
    assert live["forum_count_7d"] == 2.0 and live["quiz_count_7d"] == 1.0
    assert live["activity_count_7d"] == 5.0  # the unmapped 'oucontent' counts as generic activity
    assert live["days_since_last_quiz"] == 2.0 and live["days_since_last_forum"] == 1.0
    assert live["lead_source"] == "Olark Chat" and live["region_name"] is None
    # Decayed engagement: 2 forum posts (weight 2) a day ago, a quiz (4) two days ago, the
    # muted kind (0) and the generic one (1) three days ago, at a 30-day half-life.
    want = (2 * 2.0 * 2 ** (-1 / 30) + 4.0 * 2 ** (-2 / 30) + 0.0 + 1.0 * 2 ** (-3 / 30))
    assert live["engagement_decayed_hl30d"] == pytest.approx(want, rel=1e-12)


def _course_tables(rng: np.random.Generator, n: int = 60):
    start = pd.Timestamp("2014-02-01T00:00:00Z")
    created = start + pd.to_timedelta(rng.integers(-40, 45, n), unit="D")
    outcome_day = rng.integers(20, 260, n)
    won = rng.random(n) < 0.5
    leads = pd.DataFrame({
        "lead_id": pd.array([f"S{i}" for i in range(n)], dtype="string"),
        "created_at": created,
        "presentation_start": pd.Series([start] * n),
        "converted_at": pd.Series(np.where(won, start + pd.to_timedelta(260, unit="D"), pd.NaT),
                                  dtype="datetime64[ns, UTC]"),
        "disqualified_at": pd.Series(
            np.where(won, pd.NaT, start + pd.to_timedelta(outcome_day, unit="D")),
            dtype="datetime64[ns, UTC]"),
        "lead_source": pd.array(rng.choice(["A", "B", None], n), dtype="string"),
        "region_name": pd.array(rng.choice(["North", "South"], n), dtype="string"),
        "studied_credits": rng.choice([30.0, 60.0, np.nan], n),
    })
    m = 3000
    acts = pd.DataFrame({
        "lead_id": pd.array(rng.choice(leads["lead_id"].to_numpy(), m), dtype="string"),
        "occurred_at": start + pd.to_timedelta(rng.integers(-30 * 24, 300 * 24, m), unit="h"),
        "type": pd.array(rng.choice(TYPES[:5], m), dtype="string"),
    })
    return leads, acts


def test_anchored_snapshots_and_resolved_censoring():
    leads, acts = _course_tables(np.random.default_rng(3))
    offsets = [pd.Timedelta(days=30), pd.Timedelta(days=60)]
    lead_pos, as_of = anchored_pairs(leads, "presentation_start", offsets)
    start = leads["presentation_start"].iloc[0]
    assert set(as_of) <= {(start + o).value for o in offsets}
    # Eligible only while the outcome has not happened: a lead disqualified on day 45
    # has its day-30 snapshot and not its day-60 one.
    for pos, at in zip(lead_pos, as_of, strict=True):
        dq = leads["disqualified_at"].iloc[pos]
        assert pd.isna(dq) or dq.value >= at
        assert leads["created_at"].iloc[pos].value < at  # created before its snapshot
    late = leads["created_at"] >= start + offsets[0]
    assert late.any() and not set(np.flatnonzero(late)) <= set(lead_pos[as_of == (start + offsets[0]).value])
    frame = build_training_set(leads, acts, horizon=pd.Timedelta(days=300), censored="resolved",
                               feature_set=SPEC_SET, snapshots=("presentation_start", offsets))
    assert list(frame.columns[3:]) == SPEC_SET.feature_names()
    assert len(frame) == len(lead_pos)  # every lead's outcome is known: nothing censored
    # With 'drop' the 300-day horizon runs past the data's end and every row is censored.
    dropped = build_training_set(leads, acts, horizon=pd.Timedelta(days=300), censored="drop",
                                 feature_set=SPEC_SET, snapshots=("presentation_start", offsets))
    assert len(dropped) == 0
    converted = leads.set_index("lead_id")["converted_at"].notna()
    assert (frame["label"].to_numpy() == converted.loc[frame["lead_id"]].to_numpy()).all()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), cut_days=st.integers(-10, 200))
def test_events_after_a_cut_change_no_earlier_row(seed, cut_days):
    """Deleting every event after a cut changes no row whose as_of is before the cut."""
    leads, acts = _course_tables(np.random.default_rng(seed))
    cut = pd.Timestamp("2014-02-01T00:00:00Z") + pd.Timedelta(days=cut_days)
    kwargs = dict(horizon=pd.Timedelta(days=300), censored="keep", feature_set=SPEC_SET,
                  every=pd.Timedelta(days=7))
    full = build_training_set(leads, acts, **kwargs,
                              end=pd.Timestamp("2014-12-01T00:00:00Z"))
    cut_acts = acts[acts["occurred_at"] < cut].reset_index(drop=True)
    truncated = build_training_set(leads, cut_acts, **kwargs,
                                   end=pd.Timestamp("2014-12-01T00:00:00Z"))
    before = full["as_of"] <= cut
    features = SPEC_SET.feature_names()
    pd.testing.assert_frame_equal(
        full.loc[before, ["lead_id", "as_of", *features]].reset_index(drop=True),
        truncated.loc[truncated["as_of"] <= cut, ["lead_id", "as_of", *features]]
        .reset_index(drop=True),
    )
    if (full["as_of"] > cut).any() and len(acts) > len(cut_acts):
        later = full.loc[~before, features].reset_index(drop=True)
        later_cut = truncated.loc[truncated["as_of"] > cut, features].reset_index(drop=True)
        assert not later.equals(later_cut)  # the check can tell: later rows did change


def test_a_feature_set_travels_as_json():
    import json

    shipped = json.loads(json.dumps(SPEC_SET.to_json()))
    rebuilt = FeatureSet.from_json(shipped)
    assert rebuilt.version == SPEC_SET.version
    assert rebuilt.feature_names() == SPEC_SET.feature_names()
    assert FeatureSet.from_json(BUILTIN.to_json()) is BUILTIN
    tampered = {**shipped, "kinds": [{**shipped["kinds"][0], "weight": 9.0}, *shipped["kinds"][1:]]}
    with pytest.raises(ValueError, match="no longer|now gives version"):
        FeatureSet.from_json(tampered)
    with pytest.raises(ValueError, match="not this code's built-in"):
        FeatureSet.from_json({"name": "builtin", "version": "2020.1.1"})
    with pytest.raises(ValueError, match="not a feature set definition"):
        FeatureSet.from_json({"name": "x", "version": "y"})


def test_the_builtin_spec_is_the_contract():
    """features/specs/builtin.yaml documents the contract truthfully: its columns are
    features.schema's, and its kinds are the built-in vocabulary with its weights."""
    from features import schema
    from features.spec import load_spec
    from features.spec.contract import builtin_kinds, builtin_spec_path

    spec = load_spec(builtin_spec_path())
    assert spec.contract == "builtin" and spec.has_time
    c = spec.tables.leads.columns
    assert [e.column for e in c.categorical] == list(schema.LEAD_CATEGORICAL_FIELDS)
    assert [e.column for e in c.numeric] == list(schema.LEAD_NUMERIC_FIELDS)
    assert [e.column for e in c.pii] == list(schema.LEAD_PII_FIELDS)
    assert (c.converted_at, c.disqualified_at) == schema.LEAD_OUTCOME_FIELDS
    kinds = spec.tables.activities.kinds
    assert [(name, k.types, k.label, k.weight, k.key_action) for name, k in kinds.items()] == [
        (k.name, list(k.types), k.label, k.weight, k.key_action) for k in builtin_kinds()]
    assert [k.name for k in builtin_kinds()] == list(schema.ACTIVITY_TYPES)
