"""The lead-scoring API: calibrated scores, grades, routes and plain-language reasons.

Run it with ``leadscore serve`` (or ``bentoml serve serving.service:LeadScoring``).

Endpoints
---------
``POST /score``
    One to 1,000 leads, each with its activities, scored in request order.
``POST /explain``
    Every SHAP contribution for one lead, plus the base value, grouped by business field
    and ungrouped.
``GET /model``
    What is being served: model name, version, alias, metrics, its grading (thresholds
    and the share of leads each grade holds), when it was loaded, the last version
    refused and why, the rules version, the cold-start policy.
``GET /ui/``
    A page for marketers: pick or paste a lead, score it, read the reasons (public
    static files; its calls to ``/score`` need the key).
``GET /healthz`` (live), ``GET /readyz`` (``ready``, or ``degraded`` when the rules answer
everything because no model is loaded), ``GET /docs`` (the API docs page, also at ``/``)
and ``GET /docs.json`` (the OpenAPI contract, :mod:`serving.openapi`).
``GET /metrics``
    Prometheus: BentoML's request counts and durations, and :mod:`serving.metrics`'
    counts of leads by who answered (model or rules) and why.

Every answer says where it came from (``scored_by``, ``fallback_reason``, model name and
version, rules version). All but health and docs need ``Authorization: Bearer <key>``.
The methods here are thin: the scoring core is :mod:`serving.scorer`, the model
lifecycle :mod:`serving.lifecycle`, auth/limits/errors :mod:`serving.gateway`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import bentoml
from fastapi import FastAPI
from starlette.responses import FileResponse, JSONResponse
from starlette.staticfiles import StaticFiles

from serving.contract import (
    BATCH_POLICY,
    ExplainRequest,
    ExplainResponse,
    ModelInfo,
    ScoreRequest,
    ScoreResponse,
)
from serving.gateway import Gateway, error_body

with bentoml.importing():
    import pandas as pd

    from features.errors import DataValidationError
    from leadscore.settings import Settings, disable_telemetry
    from serving.coalescer import Coalescer
    from serving.lifecycle import ModelLifecycle, mlflow_loader, mlflow_resolver, settle_heap
    from serving.metrics import service_counters
    from serving.score_history import lead_trend
    from serving.scorer import explain_one, frames_from_payload, plain_records, score_payloads

__all__ = ["LeadScoring"]

logger = logging.getLogger("leadscore.serving")

# GET endpoints live on a small FastAPI app (BentoML API methods are POST-only); its
# routes join the service's OpenAPI document. Its own docs pages are off: the gateway
# serves the docs (/docs, /docs.json; see serving.openapi).
info_app = FastAPI(title="leadscore", docs_url=None, redoc_url=None, openapi_url=None)
# The marketers' page: static files only (no CDN, works offline). It is public (see
# serving.gateway); the page sends the API key the marketer pastes in with each /score.
_UI = Path(__file__).parent / "ui"
info_app.mount("/ui", StaticFiles(directory=_UI, html=True), name="ui")


@info_app.get("/favicon.ico", include_in_schema=False)
def favicon() -> FileResponse:
    """The page's icon, from the package (browsers ask for it at the root)."""
    return FileResponse(_UI / "favicon.ico", media_type="image/x-icon")


@bentoml.asgi_app(info_app, path="/")
@bentoml.service(
    name="LeadScoring",
    description="Lead scoring for CRMs: calibrated propensity, grade, route and reasons.",
    traffic={"timeout": 30},
    http={"cors": {"enabled": False}},
    # BentoML's access log decodes the request's Content-Type as UTF-8 and, on a header
    # that is not, fails in the middle of sending the response (the client's
    # connection is reset and a traceback is logged). The 415 names the media type to
    # the client; the access log does without it.
    logging={"access": {"request_content_type": False}},
    # BentoML's OpenTelemetry middleware builds three spans per request (the request, and
    # one per body message received and sent) even at its default sample rate of 0, when
    # no trace is kept: about a third of the event loop's time on /score
    # (benchmarks/serving_profile.py). The hot paths are left out; to trace them, set
    # BENTOML_CONFIG_OPTIONS="services.LeadScoring.tracing.excluded_urls=/nothing" with
    # an exporter.
    tracing={"excluded_urls": ["/score", "/explain"]},
)
class LeadScoring:
    """Scores leads with the champion model, or the rules when it cannot answer.

    Start-up builds :class:`~leadscore.settings.Settings` from the environment, refuses
    to start without an API key unless ``LEADSCORE_ALLOW_UNAUTHENTICATED=true``, loads
    the rules, resolves the model alias (or the pinned ``LEADSCORE_MODEL_URI``) and
    starts polling it.
    """

    def __init__(self) -> None:
        disable_telemetry()
        self.settings = Settings()
        # A built Bento pins its model with `bentoml build --arg model_uri=models:/<name>/<v>`
        # (see bentofile.yaml). LEADSCORE_MODEL_URI, when set, still wins: it is the
        # operator's explicit choice at run time.
        baked = getattr(bentoml.use_arguments(), "model_uri", None)
        if baked and self.settings.model_uri is None:
            self.settings = Settings(model_uri=str(baked))
        if self.settings.api_key is None:
            if not self.settings.allow_unauthenticated:
                from features.errors import LeadscoreError

                raise LeadscoreError(
                    "LEADSCORE_API_KEY is not set. Set it to the key CRMs must send as "
                    "'Authorization: Bearer <key>', or set LEADSCORE_ALLOW_UNAUTHENTICATED=true "
                    "to run without one (development only)."
                )
            logger.warning(
                "DEVELOPMENT MODE: no API key, every endpoint is open "
                "(LEADSCORE_ALLOW_UNAUTHENTICATED=true). Never do this in production."
            )
        from rules_fallback import load_rules

        # The contract: the spec given (LEADSCORE_DATASET / serve --dataset), else the first
        # champion's own (its logged spec), else the built-in one; see spec_contract.
        self._dataset_contract, expected = _dataset_contract(self.settings.dataset)
        self._contract_cache: tuple[str | None, Any] = (None, None)
        if self._dataset_contract is not None and self.settings.rules_file is not None:
            # A rules file that does not fit the spec refuses to start, naming each rule.
            from rules_fallback import SpecVocabulary, load_spec_rules

            load_spec_rules(self.settings.rules_file,
                            SpecVocabulary.from_spec(self._dataset_contract.spec))

        # With a spec's contract, LEADSCORE_RULES_FILE is the spec's rules (checked against
        # the spec when first used, see _spec_rules); the engine keeps the built-in ones.
        builtin_rules = load_rules(None if self._dataset_contract is not None
                                   else self.settings.rules_file)
        self.lifecycle = ModelLifecycle(
            builtin_rules,
            resolver=mlflow_resolver(self.settings),
            loader=mlflow_loader(self.settings),
            feature_set_version=expected,
            cold_start_policy=self.settings.cold_start_policy,
            matrix_thresholds=self.settings.matrix_thresholds(),
            # A pinned model is pinned: nothing to poll.
            poll_interval_s=None if self.settings.model_uri else self.settings.poll_interval_s,
        )
        self.lifecycle.start()
        # Concurrent /score requests share one call of the scoring core (see
        # serving.coalescer): the fixed part of a call's cost is paid once for all of them.
        self.counters = service_counters()
        from serving.health import BatchHealthReader, batch_dir_of

        self.batch_health = BatchHealthReader(batch_dir_of(self.settings),
                                              every_s=self.settings.poll_interval_s)
        self.counters.batch_health(self.batch_health.current())
        if not self.settings.live_features:
            logger.warning("LEADSCORE_LIVE_FEATURES=false: API calls use the vectorised "
                           "feature path (same values, ~20x slower for one lead)")
        if self.settings.explainer != "fast":
            logger.warning("LEADSCORE_EXPLAINER=%s: contributions use LightGBM's pred_contrib "
                           "(same values, slower)", self.settings.explainer)
        self.coalescer = Coalescer(partial(score_payloads, live=self.settings.live_features),
                                   lambda: self.lifecycle.engine,
                                   max_leads=self.settings.max_batch,
                                   on_call=self.counters.call)
        # POST /score's answer, for the gateway: a plain callable held by the instance (not
        # a method: BentoML wraps its service's methods), see serving.gateway.
        self.answer_score = partial(answer_score, self)
        settle_heap()
        # After a swap the new model is long-lived too; the old one's cycles are freed.
        self.lifecycle.on_swap = settle_heap

    @property
    def spec_contract(self) -> Any:
        """The contract of the spec this service speaks, or None for the built-in one."""
        if self._dataset_contract is not None:
            return self._dataset_contract
        bundle = self.lifecycle.engine.model
        if bundle is None:
            return None
        cached_uri, contract = self._contract_cache
        if cached_uri != bundle.uri:
            from serving.spec_contract import SpecContract

            contract = SpecContract.from_model(bundle.model)
            self._contract_cache = (bundle.uri, contract)
        return contract

    def _spec_rules(self, contract: Any) -> Any:
        """The spec's rules fallback (``LEADSCORE_RULES_FILE``, checked against the spec's
        fields and kinds), cached per contract; None without a rules file. The built-in
        default rules know none of a CRM's fields, so they never answer for a spec."""
        key = contract.feature_set.version
        cached = getattr(self, "_spec_rules_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        rules = None
        if self.settings.rules_file is not None:
            from rules_fallback import SpecVocabulary, load_spec_rules

            try:
                rules = load_spec_rules(self.settings.rules_file,
                                        SpecVocabulary.from_spec(contract.spec))
            except Exception as exc:  # noqa: BLE001  (logged; the model still answers)
                logger.error("the rules file %s does not fit spec %r: %s",
                             self.settings.rules_file, contract.spec.name,
                             str(exc).splitlines()[0][:300])
        self._spec_rules_cache = (key, rules)
        return rules

    def score_spec(self, request: Any) -> tuple[int, dict]:
        """``POST /score`` for a spec's model (the gateway validated ``request``; it calls
        this in a worker thread, off the event loop)."""
        from serving.spec_scoring import score_spec_leads

        def answer(contract: Any, as_of: Any, rules: Any) -> dict:
            engine = self.lifecycle.engine
            rows = score_spec_leads(request.leads, as_of, engine, contract,
                                    top_reasons=request.top_reasons, rules=rules)
            if request.actions or request.decay:
                from serving.spec_scoring import spec_rules_decay
                from serving.whatif import actionable_kinds, extend_rows

                lives = [contract.live_lead(lead, as_of) for lead in request.leads]
                extend_rows(rows, lives, engine, contract.feature_set,
                            actionable_kinds(contract.feature_set, contract.spec),
                            actions=request.actions, decay=request.decay,
                            rules_decay=spec_rules_decay(rows, lives, engine, contract, rules))
            self.counters.scored(rows)
            self.counters.batch_health(self.batch_health.current())
            logger.info("scored %d leads of spec %s (%s)", len(rows), contract.spec.name,
                        _by_counts(rows))
            return ScoreResponse.model_validate({"results": plain_records(rows)}).model_dump(
                mode="json")

        return self._spec_call(request, "leads[{row}]", answer)

    def explain_spec(self, request: Any) -> tuple[int, dict]:
        """``POST /explain`` for a spec's model (the gateway validated ``request``)."""
        from serving.spec_scoring import explain_spec_lead

        def answer(contract: Any, as_of: Any, rules: Any) -> dict:
            out = explain_spec_lead(request.lead, as_of, self.lifecycle.engine, contract,
                                    rules=rules)
            result = plain_records([out["result"]])[0]
            return ExplainResponse.model_validate({
                **out, "result": result, "reasons": [r.to_dict() for r in out["reasons"]],
            }).model_dump(mode="json")

        return self._spec_call(request, "lead", answer)

    def _spec_call(self, request: Any, where: str, answer: Any) -> tuple[int, dict]:
        """Run ``answer(contract, as_of, rules)``; no model and bad leads become 503 and 422."""
        from serving.spec_scoring import NoSpecModel

        contract = self.spec_contract
        as_of = request.as_of or pd.Timestamp.now(tz="UTC").to_pydatetime()
        try:
            return 200, answer(contract, as_of, self._spec_rules(contract))
        except NoSpecModel as exc:
            return 503, error_body("no model", [str(exc)])
        except DataValidationError as exc:
            return 422, error_body("invalid request", [
                f"{where.format(row=i.row)}.{i.field}: {i.value!r} {i.expected}"
                for i in exc.issues])

    @bentoml.on_shutdown
    def _stop_polling(self) -> None:
        self.lifecycle.stop()
        self.coalescer.close()

    @bentoml.api(route="/score")
    async def score(self, request: ScoreRequest, /) -> ScoreResponse:
        """Score 1 to 1,000 leads; one result per lead, in request order.

        Each result carries the calibrated probability, the 0-100 score, the grade
        (A-D), the route (sales or nurture), who answered (``scored_by``: model or
        rules, with ``fallback_reason``), the model name and version, the rules version,
        and the top positive then top negative reasons. Errors: 401 (key), 413 (body or
        more than 1,000 leads), 422 (``leads[i].field: ...``). Validation is
        all-or-nothing: if any lead is malformed the whole request is rejected with 422,
        and the error lists every bad field. Scoring is per lead: if the model fails on
        one lead, that lead alone is scored by the rules with ``fallback_reason:
        model_error``. Requests that arrive together are scored together, each exactly
        as it would be alone, all by the same model version.
        """
        # The gateway answers /score itself through answer_score (one parse of the body,
        # none of BentoML's per-request handling); this method is what BentoML documents
        # and routes, and gives the same answer should a request ever reach it.
        status, body = await self.answer_score(request)
        if status != 200:
            return JSONResponse(body, status_code=status)  # type: ignore[return-value]
        return ScoreResponse.model_validate(body)

    @bentoml.api(route="/explain")
    def explain(self, request: ExplainRequest, /) -> ExplainResponse:
        """Every SHAP contribution for one lead, plus the base value.

        ``base_value + sum(contributions) == raw_margin`` (log-odds before calibration).
        ``reasons`` groups the contributions by business field, with sentences. When the
        rules answer (no model, or a cold start the policy gives to the rules),
        ``contributions`` is empty and ``reasons`` lists every rule that fired.
        """
        engine = self.lifecycle.engine
        as_of = pd.Timestamp(request.as_of) if request.as_of else pd.Timestamp.now(tz="UTC")
        leads, acts, lead_as_of = frames_from_payload([request.lead], default_as_of=as_of)
        try:
            out = explain_one(leads, acts, engine, as_of=lead_as_of.iloc[0])
        except DataValidationError as exc:
            return _unprocessable(exc, [request.lead], prefix="lead")  # type: ignore[return-value]
        result = plain_records([out["result"]])[0]
        return ExplainResponse.model_validate({
            **out,
            "result": result,
            "reasons": [r.to_dict() for r in out["reasons"]],
        })

    @info_app.get("/model", response_model=ModelInfo, summary="What is being served")
    def model_info(self) -> ModelInfo:
        """The model being served (name, version, alias, metrics, grading, when loaded),
        the last version refused and why, the rules version and the cold-start policy."""
        life = self.lifecycle
        engine = life.engine
        bundle = engine.model
        refusal = life.last_refusal
        model = bundle.model if bundle else None
        health = self.batch_health.current()
        self.counters.batch_health(health)
        return ModelInfo(
            status=life.status,
            model_name=bundle.name if bundle else None,
            model_version=bundle.version if bundle else None,
            model_alias=bundle.alias if bundle else None,
            model_uri=bundle.uri if bundle else None,
            pinned=self.settings.model_uri is not None,
            feature_set_version=str(model.feature_set_version) if model else None,
            serves_spec=(self.spec_contract.spec.name if self.spec_contract is not None
                         else "builtin"),
            speaks_feature_set=life.feature_set_version,
            metrics={k: _finite_or_none(v)
                     for k, v in (getattr(model, "metrics", None) or {}).items()
                     if v is None or isinstance(v, (int, float))},
            loaded_at=bundle.loaded_at if bundle else None,
            last_refusal=refusal.__dict__ if refusal else None,
            last_poll_at=life.last_poll_at,
            last_poll_error=life.last_poll_error,
            poll_interval_s=self.settings.poll_interval_s,
            rules_version=engine.rules_version,
            cold_start_policy=self.settings.cold_start_policy,
            cold_start_effective=engine.cold_start_effective,
            grading=_grading_info(model),
            matrix=_matrix_info(model, engine),
            batch_health=health,
        )


def _what_if(rows: list[dict], request: ScoreRequest, as_of: pd.Timestamp, engine: Any) -> None:
    """``actions`` and ``decay`` of a built-in call (:mod:`serving.whatif`)."""
    from features.registry import BUILTIN
    from serving.scorer import _live_leads
    from serving.whatif import actionable_kinds, extend_rows

    leads = request.leads
    lives = _live_leads(leads, [lead.lead_id for lead in leads], [as_of] * len(leads))

    def rules_decay(positions: list[int]) -> list[dict]:
        # The rules score frames: the leads they answered, as the scoring core built them.
        from rules_fallback import score_leads
        from serving.scorer import frames_from_payload, validate_inputs
        from serving.whatif import decay_by_rules

        r_leads, r_acts, r_as_of = frames_from_payload(
            [leads[i] for i in positions], default_as_of=as_of,
            lead_ids=[rows[i]["lead_id"] for i in positions])
        clean, acts = validate_inputs(r_leads, r_acts, r_as_of)
        return decay_by_rules(
            lambda part, past, when: score_leads(engine.rules, part, past, when, reasons=False),
            clean, acts, r_as_of, [rows[i] for i in positions])

    extend_rows(rows, lives, engine, BUILTIN, actionable_kinds(BUILTIN),
                actions=request.actions, decay=request.decay, rules_decay=rules_decay)


def _matrix_info(model: Any, engine: Any) -> dict[str, Any] | None:
    """The fit x engagement thresholds in force (the operator's over the model's)."""
    if model is None or not hasattr(model, "matrix"):
        return None
    matrix = model.matrix().with_thresholds(engine.matrix_thresholds)
    groups = list(matrix.groups.values())
    return {"fit_threshold": matrix.fit_threshold,
            "engagement_threshold": matrix.engagement_threshold,
            "n_reference": matrix.n_reference,
            "fit_features": groups.count("fit"),
            "engagement_features": groups.count("engagement")}


async def answer_score(service: LeadScoring, request: ScoreRequest) -> tuple[int, dict]:
    """``POST /score``'s answer to an already validated request: ``(200, response)`` or
    ``(422, error)`` (a lead the scoring core refuses, named ``leads[i].field``).

    The gateway calls it once it has parsed and validated the body, and sends the
    answer itself (see :mod:`serving.gateway`, "The hot path").
    """
    as_of = pd.Timestamp(request.as_of) if request.as_of else pd.Timestamp.now(tz="UTC")
    try:
        rows = await service.coalescer.score(request.leads, as_of, request.top_reasons)
    except DataValidationError as exc:
        return 422, _unprocessable_body(exc, request.leads)
    if request.actions or request.decay:
        # Only when asked: predictions, off the event loop (the default call pays nothing).
        await asyncio.to_thread(_what_if, rows, request, as_of, service.lifecycle.engine)
    service.counters.scored(rows)
    service.counters.batch_health(service.batch_health.current())  # a read per poll interval
    if logger.isEnabledFor(logging.INFO):
        logger.info("scored %d leads (%s)", len(rows), _by_counts(rows))
    records = plain_records(rows)
    if service.settings.history_dir is not None:
        # A Parquet read: off the event loop, which keeps accepting requests.
        trends = await asyncio.to_thread(lead_trend, service.settings.history_dir,
                                         [r["lead_id"] for r in records])
        for record in records:
            record["trend"] = trends.get(record["lead_id"])
    return 200, {"results": records}


LeadScoring.add_asgi_middleware(Gateway)
LeadScoring.description = f"{LeadScoring.description}\n\n{BATCH_POLICY}"


def _dataset_contract(dataset: Path | None) -> tuple[Any, str | None]:
    """The contract of ``LEADSCORE_DATASET`` (None for none or the built-in spec), and
    the feature set version it expects (None: adopt the first champion's)."""
    if dataset is None:
        return None, None
    from features.spec import feature_set_of as spec_feature_set
    from features.spec import load_spec
    from serving.spec_contract import SpecContract

    spec = load_spec(dataset)
    feature_set = spec_feature_set(spec)
    if feature_set.name == "builtin":
        return None, feature_set.version
    return SpecContract(spec, feature_set), feature_set.version


def _finite_or_none(value: float | None) -> float | None:
    # A NaN metric (no cold-start lead in the test window, say) is JSON null either way;
    # say so here rather than leave it to the serializer.
    return None if value is None or math.isnan(value) else float(value)


def _grading_info(model: object | None) -> dict | None:
    # The shares are those the model cut its thresholds to on its validation leads
    # (training.model.grading_from_scores); a model pickled without them still reports
    # its thresholds, with no shares. (A LeadModel built with fixed ``grading=`` keeps
    # its unused default shares: nothing in training does that, and the model does not
    # record which it was.)
    if model is None:
        return None
    shares = getattr(model, "grade_shares", None)
    by_grade = None
    if shares is not None and len(shares) == 3:
        by_grade = {g: float(s) for g, s in zip("ABC", shares, strict=True)}
        by_grade["D"] = round(max(0.0, 1.0 - sum(by_grade.values())), 6)
    return {**model.grading.to_dict(), "shares": by_grade}


def _by_counts(rows: list[dict]) -> str:
    # Counts only: never a lead field in the log.
    counts = Counter((row["scored_by"], row["fallback_reason"] or "-") for row in rows)
    return ", ".join(f"{by}/{why}={n}" for (by, why), n in sorted(counts.items()))


def _unprocessable(exc: DataValidationError, leads: list, prefix: str = "leads"
                   ) -> JSONResponse:
    """422 naming each bad field as ``leads[i].field`` or ``leads[i].activities[j].field``."""
    return JSONResponse(_unprocessable_body(exc, leads, prefix), status_code=422)


def _unprocessable_body(exc: DataValidationError, leads: list, prefix: str = "leads") -> dict:
    """The 422's body: :func:`_unprocessable`'s error, as a dict."""
    # Activities were flattened lead by lead, in order; map a row back to (lead, index).
    where = [(i, j) for i, lead in enumerate(leads) for j in range(len(lead.activities))]
    details = []
    for issue in exc.issues:
        if issue.table == "activities" and issue.row is not None and issue.row < len(where):
            i, j = where[issue.row]
            path = f"{prefix}[{i}].activities[{j}].{issue.field}"
        elif issue.row is not None:
            path = f"{prefix}[{issue.row}].{issue.field}"
        else:
            path = f"{prefix}.{issue.field}"
        if prefix == "lead":
            path = path.replace("lead[0]", "lead")
        details.append(f"{path}: {issue.expected}")
    return error_body("invalid request", details)
