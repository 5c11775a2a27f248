"""Coalesce concurrent ``/score`` requests into one call of the scoring core.

Part of what a call of :func:`serving.scorer.score_payloads` costs is fixed (the
model's predict call, the hand-off to the scoring thread, and on the vectorised path
the frames and the activity index): with the live feature path one lead takes about
0.56 ms and eight 2.0 ms, not 4.5 (``benchmarks/live_features.py``). A CRM that calls
with one lead at a time from many connections would pay that fixed part on every
request. The coalescer lets requests that arrive while a call is running wait for it to
finish and then scores all of them in *one* call, so the fixed part is shared:

- there is no timer and no batch window: an idle service scores a lone request at once,
  and batches only grow when requests queue up behind a running call;
- one call scores at most ``max_leads`` leads; requests with different ``top_reasons``
  are never mixed; the queue is served in arrival order;
- each request keeps its own ``as_of`` and gets exactly the rows it would get alone
  (every value of a lead depends only on that lead: ``tests/serving/test_coalescer.py``
  checks equality);
- one bad request never fails another: when a coalesced call fails (a malformed lead,
  say), every request in it is scored again on its own, and only the bad one gets its
  error;
- the engine (model, rules, policy) is read once per call, so a hot swap never splits
  a call between two models.

Scoring runs on one dedicated thread, so the event loop keeps accepting and parsing
requests meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["Coalescer", "ScoreJob"]

logger = logging.getLogger("leadscore.serving")

# (requests: [(leads, default_as_of)], engine, top_reasons=) -> the records of each
# request: serving.scorer.score_payloads.
Records = list[dict[str, Any]]
ScorePayloads = Callable[..., list[Records]]


@dataclass
class ScoreJob:
    """One request: its pydantic leads, its default as_of and how many reasons it wants."""

    leads: Sequence[Any]
    as_of: pd.Timestamp
    top_reasons: int
    future: asyncio.Future = field(repr=False, default=None)  # type: ignore[assignment]


class Coalescer:
    """Scores queued requests together, one call at a time, on one thread.

    Parameters
    ----------
    score : callable
        :func:`serving.scorer.score_payloads` (a wrapper of it in narrow unit tests).
    engine : callable
        Returns the engine to score with; read once per call.
    max_leads : int
        The most leads one call scores; a request larger than that is scored alone.
    on_call : callable, optional
        Called after each batch with ``(calls, requests)``: the scoring calls it took (one,
        or one more per request when a coalesced call failed) and the requests it
        answered (for metrics).
    """

    def __init__(self, score: ScorePayloads, engine: Callable[[], Any], *, max_leads: int = 1000,
                 on_call: Callable[[int, int], None] | None = None) -> None:
        if max_leads < 1:
            raise ValueError(f"The 'max_leads' parameter of Coalescer must be >= 1. "
                             f"Got {max_leads!r} instead.")
        self._score = score
        self._engine = engine
        self.max_leads = max_leads
        self._queue: deque[ScoreJob] = deque()
        self._draining = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="leadscore-score")
        self.calls = 0  # scoring calls made (a coalesced call counts once)
        self.requests = 0  # requests answered
        self._on_call = on_call

    async def score(self, leads: Sequence[Any], as_of: pd.Timestamp, top_reasons: int
                    ) -> Records:
        """This request's result records, as scoring it alone would return them.

        Raises what scoring it alone would raise (e.g. ``DataValidationError``).
        """
        loop = asyncio.get_running_loop()
        job = ScoreJob(leads, as_of, top_reasons, loop.create_future())
        self._queue.append(job)
        if not self._draining:
            self._draining = True
            loop.create_task(self._drain())
        return await job.future

    def close(self) -> None:
        """Stop the scoring thread once the running call, if any, has finished."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------------ internals

    def _next_batch(self) -> list[ScoreJob]:
        """The head of the queue, plus the queued requests that can join it, in order."""
        head = self._queue.popleft()
        batch, size, skipped = [head], len(head.leads), deque()
        while self._queue:
            job = self._queue.popleft()
            if job.top_reasons == head.top_reasons and size + len(job.leads) <= self.max_leads:
                batch.append(job)
                size += len(job.leads)
            else:
                skipped.append(job)
        self._queue.extendleft(reversed(skipped))  # back at the front, in arrival order
        return batch

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                batch = [j for j in self._next_batch() if not j.future.cancelled()]
                if not batch:
                    continue
                outcomes = await loop.run_in_executor(self._executor, self._run, batch)
                for job, (result, error) in zip(batch, outcomes, strict=True):
                    if job.future.cancelled():
                        continue
                    if error is not None:
                        job.future.set_exception(error)
                    else:
                        job.future.set_result(result)
        except BaseException as exc:  # noqa: BLE001  (never leave a request waiting forever)
            for job in self._queue:
                if not job.future.done():
                    job.future.set_exception(exc)
            self._queue.clear()
            raise
        finally:
            self._draining = False

    def _run(self, batch: list[ScoreJob]) -> list[tuple[Records | None, BaseException | None]]:
        """Score the batch in one call; if that fails, each request again on its own."""
        engine = self._engine()
        calls_before = self.calls
        try:
            return self._score_batch(batch, engine)
        finally:
            self.requests += len(batch)
            if self._on_call is not None:
                self._on_call(self.calls - calls_before, len(batch))

    def _score_batch(self, batch: list[ScoreJob], engine: Any
                     ) -> list[tuple[Records | None, BaseException | None]]:
        top = batch[0].top_reasons
        if len(batch) > 1:
            self.calls += 1
            try:
                frames = self._score([(j.leads, j.as_of) for j in batch], engine, top_reasons=top)
                return [(frame, None) for frame in frames]
            except Exception:  # noqa: BLE001  (each request is retried alone just below)
                logger.info("a coalesced call of %d requests failed; scoring them one by one",
                            len(batch))
        outcomes: list[tuple[Records | None, BaseException | None]] = []
        for job in batch:
            self.calls += 1
            try:
                frame = self._score([(job.leads, job.as_of)], engine, top_reasons=top)[0]
                outcomes.append((frame, None))
            except Exception as exc:  # noqa: BLE001  (handed to that request's caller)
                outcomes.append((None, exc))
        return outcomes
