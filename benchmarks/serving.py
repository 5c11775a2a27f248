"""Serving benchmark: leadscore (BentoML) vs ``mlflow models serve``, same model, same run.

Both servers serve the champion of the store under ``LEADSCORE_HOME`` (run
``leadscore quickstart`` or ``leadscore generate`` + ``leadscore train --promote`` first).
Each gets 8 concurrent clients for 20 s of single-lead requests:

- leadscore: ``POST /score`` with one raw lead and its activities, 3 reasons (it builds
  the features, predicts, computes TreeSHAP contributions and groups them into reasons);
- MLflow: ``POST /invocations`` with that lead's feature row; the pyfunc returns the
  probability and every contribution (the same model work, minus our feature building
  and reason texts, which favours MLflow).

Then, on the same leadscore server, the same body with ``"actions": 3``, with
``"decay": true`` and with both (``--what-if-seconds`` each; 0 skips them), as ratios to
the default call; and ``benchmarks/whatif.py`` in process (``--no-core`` skips it): the
default call against the scoring core before fit/engagement (git ``main``), and the
cost per lead of actions and decay.

Usage::

    OMP_NUM_THREADS=1 nice uv run python benchmarks/serving.py [--seconds 20] [--clients 8]
        [--workers 2] [--data DIR]

Writes ``benchmarks/out/serving.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

OUT = Path(__file__).resolve().parent / "out"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"{url} did not come up in {timeout}s")


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)  # the server's own process group
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _loadgen() -> Any:
    # Loaded by path: this file is itself loaded by path from the other benchmarks.
    spec = importlib.util.spec_from_file_location(
        "bench_loadgen", Path(__file__).resolve().parent / "loadgen.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


async def _load(url: str, body: dict, headers: dict, seconds: float, clients: int
                ) -> dict[str, float]:
    """``clients`` closed-loop clients for ``seconds``: :func:`benchmarks.loadgen.load`.

    Not httpx: on 2 shared cores httpx's own per-request cost was the tail it measured
    (see ``benchmarks/loadgen.py``).
    """
    return await _loadgen().load(url, body, headers, seconds, clients)


def _sample_lead(data: Path) -> tuple[dict, pd.Timestamp]:
    leads = pd.read_parquet(data / "leads.parquet")
    acts = pd.read_parquet(data / "activities.parquet")
    counts = acts["lead_id"].value_counts()
    lead_id = counts.index[len(counts) // 2]  # a typical lead, with activities
    row = leads[leads["lead_id"] == lead_id].iloc[0]
    mine = acts[acts["lead_id"] == lead_id]
    as_of = pd.Timestamp(mine["occurred_at"].max()) + pd.Timedelta(days=1)
    lead = {k: (None if pd.isna(v) else (v.isoformat() if isinstance(v, pd.Timestamp) else v))
            for k, v in row.items()
            if k in ("lead_id", "created_at", "source", "utm_campaign", "country", "industry",
                     "company_size", "job_title", "seniority", "job_function", "email")}
    lead["activities"] = [{"type": t, "occurred_at": pd.Timestamp(o).isoformat()}
                          for t, o in zip(mine["type"], mine["occurred_at"], strict=True)]
    return lead, as_of


def _feature_row(lead: dict, as_of: pd.Timestamp) -> dict:
    from features.online import features_at
    from features.registry import feature_names
    from features.schema import validate_activities, validate_leads

    leads = validate_leads(pd.DataFrame([{k: v for k, v in lead.items() if k != "activities"}]))
    acts = validate_activities(pd.DataFrame([{**a, "lead_id": lead["lead_id"]}
                                             for a in lead["activities"]]),
                               lead_ids=leads["lead_id"]).frame
    X = features_at(leads, acts, as_of)[feature_names()]
    return json.loads(X.to_json(orient="split", index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data", type=Path, default=None,
                        help="Generated data dir (default: <home>/data/synthetic).")
    parser.add_argument("--what-if-seconds", type=float, default=None,
                        help="Seconds for each of the actions/decay loads (default: --seconds).")
    parser.add_argument("--no-core", action="store_true",
                        help="Skip benchmarks/whatif.py (the in-process measurements).")
    args = parser.parse_args()

    from leadscore.settings import Settings, disable_telemetry
    from training.tracking import champion_or_exit

    disable_telemetry()
    settings = Settings()
    name, version, uri = champion_or_exit(settings)
    data = args.data or settings.data_dir / "synthetic"
    lead, as_of = _sample_lead(data)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LEADSCORE_API_KEY": "bench",
           "LEADSCORE_HOME": str(settings.home),
           "MLFLOW_TRACKING_URI": settings.resolved_tracking_uri}
    results: dict[str, dict] = {}

    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from leadscore.cli import main; main()", "serve",
         "--port", str(port), "--workers", str(args.workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait(f"http://127.0.0.1:{port}/readyz")
        body = {"leads": [lead], "as_of": as_of.isoformat(), "top_reasons": 3}
        check = httpx.post(f"http://127.0.0.1:{port}/score", json=body,
                           headers={"Authorization": "Bearer bench"}, timeout=30).json()
        assert check["results"][0]["scored_by"] == "model", check
        results["leadscore"] = asyncio.run(_load(
            f"http://127.0.0.1:{port}/score", body, {"Authorization": "Bearer bench"},
            args.seconds, args.clients))
        what_if = args.seconds if args.what_if_seconds is None else args.what_if_seconds
        if what_if > 0:
            for key, extra in (("actions", {"actions": 3}), ("decay", {"decay": True}),
                               ("actions+decay", {"actions": 3, "decay": True})):
                results[f"leadscore {key}"] = asyncio.run(_load(
                    f"http://127.0.0.1:{port}/score", {**body, **extra},
                    {"Authorization": "Bearer bench"}, what_if, args.clients))
    finally:
        _stop(proc)

    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager",
         "local", "--host", "127.0.0.1", "-p", str(port), "--workers", str(args.workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait(f"http://127.0.0.1:{port}/ping")
        body = {"dataframe_split": _feature_row(lead, as_of)}
        check = httpx.post(f"http://127.0.0.1:{port}/invocations", json=body, timeout=30)
        assert check.status_code == 200, check.text
        results["mlflow"] = asyncio.run(_load(
            f"http://127.0.0.1:{port}/invocations", body, {}, args.seconds, args.clients))
    finally:
        _stop(proc)

    ratio = results["leadscore"]["throughput_rps"] / results["mlflow"]["throughput_rps"]
    what_if_ratios = {
        f"{key.split(' ', 1)[1]}_vs_default": r["throughput_rps"]
        / results["leadscore"]["throughput_rps"]
        for key, r in results.items() if key.startswith("leadscore ")}
    report = {"model": f"{name}/{version}", "clients": args.clients, "seconds": args.seconds,
              "workers": args.workers, "cpu_count": os.cpu_count(), **results,
              "throughput_ratio": ratio, "what_if_throughput_ratios": what_if_ratios}
    OUT.mkdir(exist_ok=True)
    (OUT / "serving.json").write_text(json.dumps(report, indent=2))
    print(f"{'server':<24} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for key, r in results.items():
        print(f"{key:<24} {r['throughput_rps']:8.1f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} "
              f"{r['errors']:7d}")
    print(f"throughput ratio leadscore/mlflow: {ratio:.1f}x")
    for key, value in what_if_ratios.items():
        print(f"throughput {key}: {value:.2f}x")
    if not args.no_core:
        import importlib.util

        # benchmarks/whatif.py, by path (this folder is not a package).
        spec = importlib.util.spec_from_file_location("bench_whatif", OUT.parent / "whatif.py")
        whatif = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(whatif)  # type: ignore[union-attr]
        print()
        whatif.print_report(whatif.measure(data=data))


if __name__ == "__main__":
    main()
