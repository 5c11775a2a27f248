"""Coalesced /score requests: each gets exactly what it would get alone, and bad ones alone fail."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pandas as pd
import pytest

from features.errors import DataValidationError
from rules_fallback import load_rules
from serving.coalescer import Coalescer
from serving.contract import ScoreRequest
from serving.scorer import (
    Engine,
    ModelBundle,
    frames_from_payload,
    score_payloads,
    score_records,
)
from tests.serving.conftest import NOW, lead_payload


@pytest.fixture(scope="module")
def engine(lead_model) -> Engine:
    bundle = ModelBundle(lead_model, "lead-scoring", "1", "champion", "models:/x/1", NOW)
    return Engine(bundle, load_rules(), "rules")


def _job(payloads: list[dict], as_of: pd.Timestamp = NOW, top_reasons: int = 3
         ) -> tuple[list[Any], pd.Timestamp, int]:
    request = ScoreRequest.model_validate(
        {"leads": payloads, "as_of": as_of.isoformat(), "top_reasons": top_reasons})
    return request.leads, as_of, request.top_reasons


def _alone(job: tuple[list[Any], pd.Timestamp, int], engine: Engine) -> list[dict]:
    """What the request gets without coalescing: its own frames, its own scoring call."""
    leads, acts, as_of = frames_from_payload(job[0], default_as_of=job[1])
    return score_records(leads, acts, engine, as_of=as_of, top_reasons=job[2])


class Gate:
    """score_payloads, holding its first call until released and recording every call."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.calls: list[tuple[int, int]] = []  # (leads, top_reasons) per call

    def __call__(self, requests, engine, *, top_reasons):
        self.calls.append((sum(len(leads) for leads, _ in requests), top_reasons))
        self.started.set()
        self.release.wait(timeout=30)
        return score_payloads(requests, engine, top_reasons=top_reasons)


async def _submit_while_held(coalescer: Coalescer, gate: Gate, first: tuple, rest: list[tuple]
                             ) -> list[Any]:
    """Submit ``first``, wait until its call holds the thread, queue ``rest``, release."""
    head = asyncio.ensure_future(coalescer.score(*first))
    await asyncio.get_running_loop().run_in_executor(None, gate.started.wait, 30)
    tail = [asyncio.ensure_future(coalescer.score(*job)) for job in rest]
    await asyncio.sleep(0)  # every request is queued before the thread is free
    gate.release.set()
    return await asyncio.gather(head, *tail, return_exceptions=True)


def test_coalesced_requests_equal_each_request_alone(engine, crm):
    leads, acts = crm
    payloads = [lead_payload(leads, acts, i) for i in range(12)]
    no_history = {**payloads[5], "activities": []}
    jobs = [
        _job(payloads[:1]),
        _job(payloads[1:4], as_of=NOW - pd.Timedelta(days=9)),
        _job([payloads[0]], as_of=NOW - pd.Timedelta(days=30)),  # same lead, other as_of
        _job([no_history, payloads[6]]),  # the same lead id as below, other activities
        _job(payloads[4:6] + [{**payloads[7], "as_of": (NOW - pd.Timedelta(days=3)).isoformat()}]),
        _job(payloads[8:12]),
    ]
    gate = Gate()
    coalescer = Coalescer(gate, lambda: engine)
    try:
        results = asyncio.run(_submit_while_held(coalescer, gate, jobs[0], jobs[1:]))
    finally:
        coalescer.close()
    # The first call ran alone (it was already running); the other five shared one call.
    assert gate.calls == [(1, 3), (sum(len(j[0]) for j in jobs[1:]), 3)]
    assert coalescer.calls == 2 and coalescer.requests == 6
    for job, got in zip(jobs, results, strict=True):
        assert got == _alone(job, engine)
    # The coalesced call scored a repeated lead id with each request's own as_of and history.
    assert [r["lead_id"] for r in results[2]] == [payloads[0]["lead_id"]]
    assert results[2][0]["as_of"] == NOW - pd.Timedelta(days=30)
    assert results[3][0]["lead_id"] == results[4][1]["lead_id"]
    assert results[3][0]["fallback_reason"] == "cold_start"
    assert results[4][1]["scored_by"] == "model"


def test_a_bad_request_fails_alone(engine, crm):
    leads, acts = crm
    good = [_job([lead_payload(leads, acts, i)]) for i in range(3)]
    future_lead = {**lead_payload(leads, acts, 3),
                   "created_at": (NOW + pd.Timedelta(days=2)).isoformat()}
    bad = _job([future_lead])
    gate = Gate()
    counted: list[tuple[int, int]] = []
    coalescer = Coalescer(gate, lambda: engine, on_call=lambda *c: counted.append(c))
    try:
        results = asyncio.run(_submit_while_held(coalescer, gate, good[0], [good[1], bad, good[2]]))
    finally:
        coalescer.close()
    assert isinstance(results[2], DataValidationError)
    assert "created_at" in str(results[2]) and "leads[0]" not in str(results[2])
    for job, got in zip([good[0], good[1], good[2]], [results[0], results[1], results[3]],
                        strict=True):
        assert got == _alone(job, engine)
    # Held call, the failed coalesced call of three, then each of the three alone.
    assert [n for n, _ in gate.calls] == [1, 3, 1, 1, 1]
    # What the metrics hook was told, (calls, requests) per batch: the held request alone,
    # then three requests that took four calls; each request counted once.
    assert counted == [(1, 1), (4, 3)]
    assert coalescer.calls == 5 and coalescer.requests == 4


def test_batches_respect_max_leads_and_never_mix_top_reasons(engine, crm):
    leads, acts = crm
    p = [lead_payload(leads, acts, i) for i in range(10)]
    jobs = [_job(p[0:1]), _job(p[1:4]), _job(p[4:5], top_reasons=1), _job(p[5:8]),
            _job(p[8:10])]
    gate = Gate()
    coalescer = Coalescer(gate, lambda: engine, max_leads=5)
    try:
        results = asyncio.run(_submit_while_held(coalescer, gate, jobs[0], jobs[1:]))
    finally:
        coalescer.close()
    # 3 + 3 leads would pass 5: the second 3-lead request waits for the next call, as does
    # the top_reasons=1 request, which is served in its turn (arrival order).
    assert gate.calls == [(1, 3), (5, 3), (1, 1), (3, 3)]
    assert [len(r) for r in results] == [1, 3, 1, 3, 2]
    assert all(len(r["reasons"]) <= 2 for r in results[2])


def test_the_engine_is_read_once_per_call(engine, crm):
    leads, acts = crm
    reads = []

    def current() -> Engine:
        reads.append(1)
        return engine

    gate = Gate()
    coalescer = Coalescer(gate, current)
    jobs = [_job([lead_payload(leads, acts, i)]) for i in range(5)]
    try:
        asyncio.run(_submit_while_held(coalescer, gate, jobs[0], jobs[1:]))
    finally:
        coalescer.close()
    assert len(reads) == len(gate.calls) == 2


def test_an_idle_coalescer_scores_at_once(engine, crm):
    leads, acts = crm
    job = _job([lead_payload(leads, acts, 0)])
    coalescer = Coalescer(score_payloads, lambda: engine)

    async def two_in_turn() -> list[list[dict]]:
        return [await coalescer.score(*job), await coalescer.score(*job)]

    try:
        first, second = asyncio.run(two_in_turn())
    finally:
        coalescer.close()
    assert coalescer.calls == 2
    assert first == second


def test_max_leads_is_checked():
    with pytest.raises(ValueError, match="'max_leads' parameter of Coalescer must be >= 1"):
        Coalescer(score_payloads, lambda: None, max_leads=0)
