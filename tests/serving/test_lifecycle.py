"""Model lifecycle: refusal of bad versions, atomic swaps under concurrent requests."""

from __future__ import annotations

import copy
import threading

import pandas as pd
import pytest

from features.errors import ModelError
from features.registry import FEATURE_SET_VERSION
from rules_fallback import load_rules
from serving.lifecycle import Candidate, ModelLifecycle
from serving.scorer import score_frame
from tests.serving.conftest import NOW, lead_payload


def _lifecycle(models: dict, pointer: dict) -> ModelLifecycle:
    def resolve():
        v = pointer.get("v")
        return None if v is None else Candidate("lead-scoring", v, "champion",
                                                f"models:/lead-scoring/{v}")

    def load(c):
        found = models[c.version]
        if isinstance(found, Exception):
            raise found
        return found

    return ModelLifecycle(load_rules(), resolver=resolve, loader=load,
                          feature_set_version=FEATURE_SET_VERSION, poll_interval_s=None)


def test_refuses_bad_versions_and_keeps_serving_the_old_one(lead_model):
    stale = copy.copy(lead_model)
    stale.feature_set_version = "1999.1"
    broken = copy.copy(lead_model)
    broken.booster_ = None  # loads, but cannot predict: fails the smoke prediction
    models = {"1": lead_model, "2": stale, "3": OSError("artifact missing"), "4": broken}
    pointer = {"v": "1"}
    life = _lifecycle(models, pointer)
    assert life.refresh() and life.engine.model.version == "1"
    for version, why in (("2", "feature_set_version"), ("3", "failed to load"),
                         ("4", "smoke prediction")):
        pointer["v"] = version
        assert not life.refresh()
        assert life.engine.model.version == "1"
        assert life.last_refusal.version == version and why in life.last_refusal.reason
    # A refused version is not reloaded on every poll.
    models["4"] = ModelError("must not be loaded again")
    assert not life.refresh() and "smoke" in life.last_refusal.reason


def test_on_swap_runs_after_each_swap_and_only_then(lead_model, other_model):
    pointer = {"v": "1"}
    life = _lifecycle({"1": lead_model, "2": OSError("missing"), "3": other_model}, pointer)
    served = []
    life.on_swap = lambda: served.append(life.engine.model.version)
    for version in ("1", "1", "2", "3"):
        pointer["v"] = version
        life.refresh()
    assert served == ["1", "3"]


def test_settle_heap_freezes_what_exists_and_collects_first():
    import gc
    import weakref

    from serving.lifecycle import settle_heap

    class Cycle:
        def __init__(self):
            self.me = self

    gc.collect()
    before = gc.get_freeze_count()
    garbage = weakref.ref(Cycle())  # unreachable but for its own cycle
    try:
        settle_heap()
        assert gc.get_freeze_count() > before
        assert garbage() is None  # collected, not frozen
    finally:
        gc.unfreeze()


def test_unreachable_registry_keeps_state_and_retries(lead_model):
    pointer = {"v": None}
    life = _lifecycle({"1": lead_model}, pointer)
    life.resolver = lambda: (_ for _ in ()).throw(ConnectionError("down"))
    life.refresh()
    assert life.status == "degraded" and "down" in life.last_poll_error
    life.resolver = _lifecycle({"1": lead_model}, {"v": "1"}).resolver
    assert life.refresh() and life.status == "ready" and life.last_poll_error is None


def test_polling_thread_picks_up_a_promotion(lead_model, other_model):
    pointer = {"v": "1"}
    life = _lifecycle({"1": lead_model, "2": other_model}, pointer)
    life.poll_interval_s = 0.05
    life.start()
    try:
        pointer["v"] = "2"
        for _ in range(200):
            if life.engine.model.version == "2":
                break
            threading.Event().wait(0.05)
        assert life.engine.model.version == "2"
    finally:
        life.stop()


def test_swap_under_concurrent_requests_never_fails(make_client, registry, lead_model,
                                                     other_model, crm):
    leads, acts = crm
    registry.models.update({"1": lead_model, "2": other_model})
    registry.champion = "1"
    body = {"leads": [lead_payload(leads, acts, i) for i in range(3)],
            "as_of": NOW.isoformat()}
    failures: list[str] = []
    versions: set[str] = set()
    stop = threading.Event()

    with make_client() as client:
        from bentoml import get_current_service

        life = get_current_service().lifecycle

        def hammer():
            while not stop.is_set():
                r = client.post("/score", json=body)
                if r.status_code != 200:
                    failures.append(r.text)
                    continue
                got = {x["model_version"] for x in r.json()["results"]}
                if len(got) != 1:  # one request, one model: never a mix
                    failures.append(f"mixed versions {got}")
                versions.update(got)

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        for v in ("2", "1", "2", "1", "2"):
            registry.champion = v
            life.refresh()
            threading.Event().wait(0.2)
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert versions == {"1", "2"}


def test_score_frame_in_batch_matches_one_by_one(lead_model, crm):
    """The batch job's path (frames in, frame out) equals per-lead scoring."""
    from serving.scorer import Engine, ModelBundle

    leads, acts = crm
    bundle = ModelBundle(lead_model, "lead-scoring", "1", "champion", "models:/x/1", NOW)
    engine = Engine(bundle, load_rules(), "rules")
    as_of = pd.Series([NOW - pd.Timedelta(days=d % 3) for d in range(40)])
    mine = acts[acts["lead_id"].isin(leads["lead_id"].iloc[:40])]
    batch = score_frame(leads.iloc[:40], mine, engine, as_of=as_of, top_reasons=2)
    assert batch["lead_id"].tolist() == leads["lead_id"].iloc[:40].tolist()
    for i in (0, 7, 21, 39):
        one = score_frame(leads.iloc[[i]], acts[acts["lead_id"] == leads["lead_id"].iloc[i]],
                          engine, as_of=as_of.iloc[i], top_reasons=2).iloc[0]
        assert one["probability"] == pytest.approx(batch["probability"].iloc[i], abs=1e-12)
        assert one["reasons"] == batch["reasons"].iloc[i]
        assert one["fallback_reason"] == batch["fallback_reason"].iloc[i]
