"""Benchmark: ``POST /score`` of two checkouts side by side, same data, same load, one run.

    OMP_NUM_THREADS=1 nice uv run python benchmarks/serving_side_by_side.py \\
        --before DIR --after DIR [--leads 5000] [--seconds 15] [--clients 8] [--rounds 2]

Each checkout trains its own champion on the same generated data (its own MLflow store,
so a model pickled by one version of the code is never loaded by the other), then the
two servers are load-tested in alternating rounds (before, after, after, before, ...)
with 8 closed-loop clients sending the same one-lead request (the built-in contract's
JSON), as ``benchmarks/serving.py`` does. It prints throughput and p50/p99 per round, the
medians and the after/before ratios: the check that a change kept the built-in
contract's latency (within 10%, say).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# The load generator of benchmarks/serving.py, loaded by path (its module name would
# shadow the project's `serving` package).
_spec = importlib.util.spec_from_file_location("serving_benchmark",
                                               Path(__file__).with_name("serving.py"))
_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bench)
_free_port, _load, _sample_lead, _stop, _wait = (
    _bench._free_port, _bench._load, _bench._sample_lead, _bench._stop, _bench._wait)

_CLI = "import sys; from leadscore.cli import main; sys.argv[0] = 'leadscore'; main()"


def _env(checkout: Path, home: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(checkout), "LEADSCORE_HOME": str(home),
            "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
            "BENTOML_HOME": str(home / "bentoml"), "BENTOML_DO_NOT_TRACK": "true",
            "MLFLOW_DISABLE_TELEMETRY": "true", "LEADSCORE_API_KEY": "bench",
            "OMP_NUM_THREADS": "1"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--leads", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work", type=Path,
                        default=Path(tempfile.gettempdir()) / "serving_side_by_side")
    args = parser.parse_args()
    checkouts = {"before": args.before.resolve(), "after": args.after.resolve()}
    work = args.work
    data = work / f"data-{args.leads}"
    if not (data / "leads.parquet").is_file():
        subprocess.run([sys.executable, "-c", _CLI, "generate", "--leads", str(args.leads),
                        "--seed", "1", "--out", str(data)], check=True,
                       env=_env(checkouts["after"], work / "gen"))
    for name, checkout in checkouts.items():
        home = work / f"home-{name}"
        if not (home / "mlflow.db").is_file():
            home.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, "-c", _CLI, "train", "--data", str(data), "--promote"],
                           check=True, env=_env(checkout, home), stdout=subprocess.DEVNULL)
    lead, as_of = _sample_lead(data)
    body = {"leads": [lead], "as_of": as_of.isoformat()}
    headers = {"Authorization": "Bearer bench"}
    results: dict[str, list[dict]] = {name: [] for name in checkouts}
    for r in range(args.rounds):
        for name in (list(checkouts) if r % 2 == 0 else list(reversed(checkouts))):
            port = _free_port()
            home = work / f"home-{name}"
            log = (home / "server.log").open("w")
            proc = subprocess.Popen([sys.executable, "-c", _CLI, "serve", "--port", str(port)],
                                    env=_env(checkouts[name], home), stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            try:
                _wait(f"http://127.0.0.1:{port}/readyz")
                out = asyncio.run(_load(f"http://127.0.0.1:{port}/score", body, headers,
                                        args.seconds, args.clients))
            finally:
                _stop(proc)
                log.close()
            results[name].append(out)
            print(f"round {r + 1} {name:<7} {out['throughput_rps']:7.1f} req/s  p50 "
                  f"{out['p50_ms']:6.1f} ms  p99 {out['p99_ms']:6.1f} ms  errors {out['errors']}",
                  flush=True)
    median = {name: {k: statistics.median(o[k] for o in rs)
                     for k in ("throughput_rps", "p50_ms", "p99_ms")}
              for name, rs in results.items()}
    for name, m in median.items():
        print(f"median {name:<7} {m['throughput_rps']:7.1f} req/s  p50 {m['p50_ms']:6.1f} ms  "
              f"p99 {m['p99_ms']:6.1f} ms")
    b, a = median["before"], median["after"]
    print(f"after / before: throughput {a['throughput_rps'] / b['throughput_rps']:.3f}, "
          f"p50 {a['p50_ms'] / b['p50_ms']:.3f}, p99 {a['p99_ms'] / b['p99_ms']:.3f}")


if __name__ == "__main__":
    main()
