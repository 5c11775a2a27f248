"""The cost of fit/engagement, next actions and decay on ``/score``'s scoring core.

In process, on the champion of the store under ``LEADSCORE_HOME`` (as
``benchmarks/serving.py``), one call = what the service does for a ``POST /score`` body
minus HTTP: :func:`serving.scorer.score_payloads`, :func:`serving.scorer.plain_records`
and the response model's validation, then, when asked, :func:`serving.whatif.extend_rows`.

- **default vs before**: the default call (3 reasons) against the same call through the
  scoring core and contract of ``--reference`` (default ``main``: the code before fit and
  engagement), loaded from git into this process, on the same model and lead, measured
  interleaved (ABAB...) so that the machine's noise falls on both. Also with reasons off
  (``top_reasons: 0``), where the core used to skip TreeSHAP and now computes it for the
  two parts.
- **actions / decay**: the same call with ``"actions": 3``, ``"decay": true`` and both, as
  a ratio to the default call, and their cost per lead at 1 and ``--batch`` leads.

Usage::

    OMP_NUM_THREADS=1 nice uv run python benchmarks/whatif.py [--repeats 300] [--batch 50]
        [--reference main] [--data DIR]

Writes ``benchmarks/out/whatif.json`` and prints a table. ``benchmarks/serving.py`` runs
it after its HTTP measurements.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
if sys.path and Path(sys.path[0]).resolve() == HERE:
    sys.path[0] = str(ROOT)  # benchmarks/serving.py would shadow the serving package


def _module_at(ref: str, path: str, name: str) -> Any:
    """``path`` as committed at git ``ref``, imported as module ``name`` (its own imports
    resolve to this checkout's packages)."""
    text = subprocess.run(["git", "show", f"{ref}:{path}"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout
    folder = Path(tempfile.mkdtemp(prefix="whatif-ref-"))
    file = folder / f"{name}.py"
    file.write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _sample(data: Path, n: int) -> tuple[list[dict], Any]:
    """``n`` typical leads with activities, as /score bodies send them, and their as_of."""
    import pandas as pd

    leads = pd.read_parquet(data / "leads.parquet")
    acts = pd.read_parquet(data / "activities.parquet")
    counts = acts["lead_id"].value_counts()
    middle = len(counts) // 2
    ids = list(counts.index[middle:middle + n])
    as_of = pd.Timestamp(acts.loc[acts["lead_id"].isin(ids), "occurred_at"].max()) \
        + pd.Timedelta(days=1)
    out = []
    for lead_id in ids:
        row = leads[leads["lead_id"] == lead_id].iloc[0]
        mine = acts[(acts["lead_id"] == lead_id) & (acts["occurred_at"] < as_of)]
        lead = {k: (None if pd.isna(v) else (v.isoformat() if isinstance(v, pd.Timestamp) else v))
                for k, v in row.items()
                if k in ("lead_id", "created_at", "source", "utm_campaign", "country",
                         "industry", "company_size", "job_title", "seniority",
                         "job_function", "email")}
        lead["activities"] = [{"type": t, "occurred_at": pd.Timestamp(o).isoformat()}
                              for t, o in zip(mine["type"], mine["occurred_at"], strict=True)]
        out.append(lead)
    return out, as_of


def _timer(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(repeats: int = 300, batch: int = 50, reference: str = "main",
            data: Path | None = None) -> dict[str, Any]:
    """Every figure of the module docstring, as a dict (also written to out/whatif.json)."""
    import pandas as pd

    from features.registry import BUILTIN
    from leadscore.settings import Settings, disable_telemetry
    from rules_fallback import load_rules
    from serving.contract import ScoreRequest, ScoreResponse
    from serving.lifecycle import Candidate, mlflow_loader
    from serving.scorer import Engine, ModelBundle, _live_leads, plain_records, score_payloads
    from serving.whatif import actionable_kinds, extend_rows
    from training.tracking import champion_or_exit

    disable_telemetry()
    settings = Settings()
    name, version, uri = champion_or_exit(settings)
    model = mlflow_loader(settings)(Candidate(name, version, "champion", uri))
    bundle = ModelBundle(model, name, version, "champion", uri, pd.Timestamp.now(tz="UTC"))
    engine = Engine(bundle, load_rules(None), "model")
    leads, as_of = _sample(data or settings.data_dir / "synthetic", batch)

    old_scorer = _module_at(reference, "serving/scorer.py", "reference_scorer")
    old_contract = _module_at(reference, "serving/contract.py", "reference_contract")
    old_engine = old_scorer.Engine(bundle, load_rules(None), "model")
    kinds = actionable_kinds(BUILTIN)

    def call(body: dict, *, old: bool = False) -> Any:
        if old:
            request = old_contract.ScoreRequest.model_validate(body)
            rows = old_scorer.score_payloads([(request.leads, as_of)], old_engine,
                                             top_reasons=request.top_reasons)[0]
            return old_contract.ScoreResponse.model_validate(
                {"results": old_scorer.plain_records(rows)})
        request = ScoreRequest.model_validate(body)
        rows = score_payloads([(request.leads, as_of)], engine,
                              top_reasons=request.top_reasons)[0]
        if request.actions or request.decay:
            lives = _live_leads(request.leads, [lead.lead_id for lead in request.leads],
                                [as_of] * len(request.leads))
            extend_rows(rows, lives, engine, BUILTIN, kinds, actions=request.actions,
                        decay=request.decay)
        return ScoreResponse.model_validate({"results": plain_records(rows)})

    def body(n: int, **extra: Any) -> dict:
        return {"leads": leads[:n], "as_of": as_of.isoformat(), "top_reasons": 3, **extra}

    one = call(body(1), ).results[0]
    assert one.scored_by == "model" and one.fit is not None, one

    def interleaved(cases: dict[str, tuple[dict, bool]], rounds: int) -> dict[str, float]:
        times: dict[str, list[float]] = {k: [] for k in cases}
        for b, old in cases.values():  # warm up
            for _ in range(5):
                call(b, old=old)
        for _ in range(rounds):
            for case, (b, old) in cases.items():
                times[case].append(_timer(lambda b=b, old=old: call(b, old=old)))
        return {k: float(np.median(v)) * 1000 for k, v in times.items()}

    import gc

    gc.collect()
    gc.freeze()  # as the service does at start-up: the model and imports are long-lived
    # Before/after in a loop of their own: the what-if cases allocate far more, and the
    # collections they trigger would land on whichever case runs next.
    hot = interleaved({
        "default": (body(1), False), "default_before": (body(1), True),
        "no_reasons": (body(1, top_reasons=0), False),
        "no_reasons_before": (body(1, top_reasons=0), True),
    }, repeats)
    hot |= {k: v for k, v in interleaved({
        "default_again": (body(1), False),
        "actions": (body(1, actions=3), False), "decay": (body(1, decay=True), False),
        "actions_and_decay": (body(1, actions=3, decay=True), False),
    }, repeats).items()}
    rounds = max(5, repeats // 10)
    batched = interleaved({
        "default": (body(batch), False),
        "actions": (body(batch, actions=3), False),
        "decay": (body(batch, decay=True), False),
    }, rounds)
    report = {
        "model": f"{name}/{version}", "reference": reference, "repeats": repeats,
        "batch": batch, "cpu_count": os.cpu_count(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "one_lead_ms": hot,
        "default_vs_before": hot["default"] / hot["default_before"],
        "no_reasons_vs_before": hot["no_reasons"] / hot["no_reasons_before"],
        "actions_vs_default": hot["actions"] / hot["default_again"],
        "decay_vs_default": hot["decay"] / hot["default_again"],
        "actions_and_decay_vs_default": hot["actions_and_decay"] / hot["default_again"],
        "batch_ms": batched,
        "actions_ms_per_lead": {
            "1": hot["actions"] - hot["default_again"],
            str(batch): (batched["actions"] - batched["default"]) / batch},
        "decay_ms_per_lead": {
            "1": hot["decay"] - hot["default_again"],
            str(batch): (batched["decay"] - batched["default"]) / batch},
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "whatif.json").write_text(json.dumps(report, indent=2))
    return report


def print_report(r: dict[str, Any]) -> None:
    print(f"one lead, median ms per call ({r['repeats']} interleaved rounds; before = "
          f"{r['reference']}'s scoring core and contract)")
    for key, ms in r["one_lead_ms"].items():
        print(f"  {key:<20} {ms:8.3f}")
    print(f"default call vs before:        {r['default_vs_before']:.3f}x")
    print(f"reasons off vs before:         {r['no_reasons_vs_before']:.3f}x")
    print(f"actions=3 vs default:          {r['actions_vs_default']:.2f}x")
    print(f"decay vs default:              {r['decay_vs_default']:.2f}x")
    print(f"actions=3 + decay vs default:  {r['actions_and_decay_vs_default']:.2f}x")
    b = r["batch"]
    print(f"actions=3 cost per lead: {r['actions_ms_per_lead']['1']:.3f} ms (1 lead), "
          f"{r['actions_ms_per_lead'][str(b)]:.3f} ms ({b} leads a call)")
    print(f"decay cost per lead:     {r['decay_ms_per_lead']['1']:.3f} ms (1 lead), "
          f"{r['decay_ms_per_lead'][str(b)]:.3f} ms ({b} leads a call)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--reference", default="main",
                        help="The git ref whose scoring core is 'before' (default: main).")
    parser.add_argument("--data", type=Path, default=None,
                        help="Generated data dir (default: <home>/data/synthetic).")
    args = parser.parse_args()
    print_report(measure(args.repeats, args.batch, args.reference, args.data))


if __name__ == "__main__":
    main()
