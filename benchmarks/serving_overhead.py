"""Framework overhead: leadscore ``POST /score`` (BentoML + gateway) vs a bare ASGI endpoint.

The bare endpoint is a raw ASGI callable served by uvicorn (what BentoML runs on) that
does exactly the scoring work of ``/score`` and nothing else: parse and validate the
body with the same pydantic contract, the service's coalescer over
``serving.scorer.score_payloads`` on the same engine (same model version, same rules),
and the same response model. No auth, no request ids, no body limits, no BentoML. The ratio
leadscore/bare is the price of the framework and the gateway.

Both get the same single-lead body from ``benchmarks/serving.py``'s sampler, 1 worker
each, ``--clients`` closed-loop clients for ``--seconds``, one after the other. With
``--mlflow``, ``mlflow models serve`` of the same model (one worker, the lead's feature
row, as ``benchmarks/serving.py`` does) is measured third, in the same run.

Usage::

    OMP_NUM_THREADS=1 nice uv run python benchmarks/serving_overhead.py [--seconds 10]
        [--clients 4] [--data DIR] [--mlflow]

Needs a champion in the store under ``LEADSCORE_HOME`` (like ``benchmarks/serving.py``).
Writes ``benchmarks/out/serving_overhead.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
_START_S = 400
"""How long a server may take to start: under a neighbour's load on the shared 2 cores,
BentoML's and MLflow's start-up took over 180 s (issue #20's bench run)."""


def _bench_serving() -> Any:
    # benchmarks/serving.py would import as 'serving' and shadow the package: load it by path.
    spec = importlib.util.spec_from_file_location("bench_serving", HERE / "serving.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def bare_app() -> Any:
    """The bare ASGI app (uvicorn factory): the scoring core behind a raw ASGI callable."""
    import pandas as pd

    from features.registry import FEATURE_SET_VERSION  # noqa: F401  (same import cost)
    from leadscore.settings import Settings, disable_telemetry
    from rules_fallback import load_rules
    from serving.coalescer import Coalescer
    from serving.contract import ScoreRequest, ScoreResponse
    from serving.lifecycle import Candidate, mlflow_loader, settle_heap
    from serving.scorer import Engine, ModelBundle, plain_records, score_payloads

    disable_telemetry()
    settings = Settings()
    uri = os.environ["BARE_MODEL_URI"]
    candidate = Candidate(settings.model_name, uri.rsplit("/", 1)[-1], None, uri)
    model = mlflow_loader(settings)(candidate)
    bundle = ModelBundle(model=model, name=candidate.name, version=candidate.version,
                         alias=None, uri=uri, loaded_at=pd.Timestamp.now(tz="UTC"))
    engine = Engine(bundle, load_rules(settings.rules_file), settings.cold_start_policy)
    # The service's own scoring path: the same coalescer, the same heap settling.
    coalescer = Coalescer(score_payloads, lambda: engine, max_leads=settings.max_batch)
    settle_heap()

    async def score(body: bytes) -> bytes:
        request = ScoreRequest.model_validate_json(body)
        as_of = pd.Timestamp(request.as_of) if request.as_of else pd.Timestamp.now(tz="UTC")
        rows = await coalescer.score(request.leads, as_of, request.top_reasons)
        return ScoreResponse.model_validate({"results": plain_records(rows)}).model_dump_json().encode()

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        if scope["path"] == "/ping":
            payload, status = b"ok", 200
        else:
            payload, status = await score(b"".join(chunks)), 200
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--mlflow", action="store_true",
                        help="Also load-test `mlflow models serve` of the same model.")
    args = parser.parse_args()

    from leadscore.settings import Settings, disable_telemetry
    from training.tracking import champion_or_exit

    bs = _bench_serving()
    disable_telemetry()
    settings = Settings()
    name, version, uri = champion_or_exit(settings)
    lead, as_of = bs._sample_lead(args.data or settings.data_dir / "synthetic")
    body = {"leads": [lead], "as_of": as_of.isoformat(), "top_reasons": 3}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LEADSCORE_API_KEY": "bench",
           "LEADSCORE_HOME": str(settings.home),
           "MLFLOW_TRACKING_URI": settings.resolved_tracking_uri,
           "BARE_MODEL_URI": f"models:/{name}/{version}",
           # `mlflow models serve` runs `bash -c "exec uvicorn ..."`: the environment's own
           # bin must be on PATH (it is under `uv run`, not when run by the interpreter).
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    results: dict[str, Any] = {}

    port = bs._free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from leadscore.cli import main; main()", "serve",
         "--port", str(port), "--workers", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        bs._wait(f"http://127.0.0.1:{port}/readyz", timeout=_START_S)
        auth = {"Authorization": "Bearer bench"}
        check = httpx.post(f"http://127.0.0.1:{port}/score", json=body, headers=auth,
                           timeout=30).json()["results"][0]
        assert check["scored_by"] == "model", check
        results["leadscore"] = asyncio.run(bs._load(
            f"http://127.0.0.1:{port}/score", body, auth, args.seconds, args.clients))
    finally:
        bs._stop(proc)

    port = bs._free_port()
    # Not `uvicorn --app-dir benchmarks`: with this folder first on sys.path, the package
    # `serving` would resolve to benchmarks/serving.py. Run this file under another name.
    proc = subprocess.Popen(
        [sys.executable, "-c", f"import runpy; runpy.run_path({str(Path(__file__))!r}, "
         "run_name='serve_bare')"],
        env={**env, "PYTHONPATH": str(HERE.parent), "BARE_PORT": str(port)},
        cwd=HERE.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True)
    try:
        try:
            bs._wait(f"http://127.0.0.1:{port}/ping", timeout=_START_S)
        except RuntimeError:
            bs._stop(proc)
            raise RuntimeError("the bare ASGI server did not start:\n"
                               + proc.stderr.read().decode(errors="replace")[-2000:]) from None
        bare = httpx.post(f"http://127.0.0.1:{port}/score", json=body, timeout=30).json()
        same = bare["results"][0]
        assert (same["probability"], same["model_version"]) == (check["probability"],
                                                                check["model_version"]), same
        results["bare_asgi"] = asyncio.run(bs._load(
            f"http://127.0.0.1:{port}/score", body, {}, args.seconds, args.clients))
    finally:
        bs._stop(proc)

    if args.mlflow:
        # The same model behind `mlflow models serve`, one worker too: its pyfunc returns
        # the probability and every contribution of the lead's feature row (benchmarks/
        # serving.py's comparison, in this run).
        port = bs._free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager",
             "local", "--host", "127.0.0.1", "-p", str(port), "--workers", "1"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        try:
            bs._wait(f"http://127.0.0.1:{port}/ping", timeout=_START_S)
            row = {"dataframe_split": bs._feature_row(lead, as_of)}
            ok = httpx.post(f"http://127.0.0.1:{port}/invocations", json=row, timeout=30)
            assert ok.status_code == 200, ok.text
            results["mlflow"] = asyncio.run(bs._load(
                f"http://127.0.0.1:{port}/invocations", row, {}, args.seconds, args.clients))
        finally:
            bs._stop(proc)

    ours = results["leadscore"]
    ratio = ours["throughput_rps"] / results["bare_asgi"]["throughput_rps"]
    report = {"model": f"{name}/{version}", "clients": args.clients, "seconds": args.seconds,
              "workers": 1, "cpu_count": os.cpu_count(), **results,
              "throughput_ratio": ratio,
              "p50_overhead_ms": ours["p50_ms"] - results["bare_asgi"]["p50_ms"],
              "p99_over_p50": ours["p99_ms"] / ours["p50_ms"]}
    if "mlflow" in results:
        report["mlflow_ratio"] = ours["throughput_rps"] / results["mlflow"]["throughput_rps"]
    OUT.mkdir(exist_ok=True)
    (OUT / "serving_overhead.json").write_text(json.dumps(report, indent=2))
    for key, r in results.items():
        print(f"{key:<10} {r['throughput_rps']:8.1f} req/s  p50 {r['p50_ms']:6.1f} ms  "
              f"p99 {r['p99_ms']:6.1f} ms  errors {r['errors']}")
    print(f"throughput ratio leadscore/bare: {ratio:.2f}x; leadscore p99/p50 "
          f"{report['p99_over_p50']:.2f}")
    if "mlflow_ratio" in report:
        print(f"throughput ratio leadscore/mlflow: {report['mlflow_ratio']:.2f}x")


if __name__ == "serve_bare":  # the child started by main(), see there
    import uvicorn

    uvicorn.run(bare_app(), host="127.0.0.1", port=int(os.environ["BARE_PORT"]),
                log_level="warning", access_log=False)
elif __name__ == "__main__":
    main()
