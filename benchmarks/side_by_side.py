"""Benchmark: two checkouts of leadscore side by side on the built-in data, in one run.

    uv run python benchmarks/side_by_side.py --before DIR --after DIR [--leads 20000]
        [--rounds 3] [--work /tmp/side_by_side]

A refactor that must not move quality or speed (the spec-derived feature set, say) is
checked here: the same interpreter and libraries import each checkout's code in turn
(``PYTHONPATH``), on the same generated data, alternating rounds so that a neighbour's
load falls on both. It prints, per checkout:

- the training-set build (the builder's CPU seconds over the whole data set, median of
  the rounds), and the whole of ``--data DIR`` (reading, validating, building);
- the one-lead live feature time (median microseconds over 2,000 calls, per round);
- the test ROC AUC and ECE of ``leadscore train`` (deterministic: one run each);

and the ratios after/before. ``--before`` is usually a ``git worktree`` of the base commit.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

_BUILD = r"""
import json, sys, time
import pandas as pd
from features.build import build_training_set
from features.schema import validate_activities, validate_leads
data = sys.argv[1]
leads = validate_leads(pd.read_parquet(f"{data}/leads.parquet"))
acts = validate_activities(pd.read_parquet(f"{data}/activities.parquet"), lead_ids=leads["lead_id"]).frame
start = time.process_time()
frame = build_training_set(leads, acts)
cpu_s = time.process_time() - start
# The whole of `--data DIR`: reading and validating the files, then the build. The first
# call also pays one-time imports (the spec package, for the spec path); the second is
# what every later call costs.
from training.pipeline import training_data_from_dir
start = time.process_time()
training_data_from_dir(data)
first_cpu_s = time.process_time() - start
start = time.process_time()
data = training_data_from_dir(data)
load_cpu_s = time.process_time() - start
print(json.dumps({"cpu_s": cpu_s, "load_cpu_s": load_cpu_s, "first_cpu_s": first_cpu_s,
                  "rows": len(frame),
                  "checksum": float(frame.select_dtypes("number").sum().sum()),
                  "same_via_dir": bool(data.frame[frame.columns].equals(frame))}))
"""

_LIVE = r"""
import json, statistics, sys, time
import pandas as pd
from features.live import LiveLead, clean_type, live_features, timestamp_ns
data = sys.argv[1]
leads = pd.read_parquet(f"{data}/leads.parquet")
acts = pd.read_parquet(f"{data}/activities.parquet")
counts = acts["lead_id"].value_counts()
lead_id = counts.index[len(counts) // 10]  # a well-active lead
lead = leads.set_index("lead_id").loc[lead_id]
mine = acts[acts["lead_id"] == lead_id]
as_of = pd.Timestamp(mine["occurred_at"].max()) + pd.Timedelta(hours=1)
attributes = {k: (None if pd.isna(v) else (float(v) if k == "company_size" else str(v)))
              for k, v in lead.items() if k not in ("created_at", "converted_at", "disqualified_at")}
live = LiveLead(attributes=attributes, created_ns=timestamp_ns(pd.Timestamp(lead["created_at"]).to_pydatetime()),
                as_of_ns=timestamp_ns(as_of.to_pydatetime()),
                times=[timestamp_ns(t.to_pydatetime()) for t in mine["occurred_at"]],
                types=[clean_type(t) for t in mine["type"]],
                urls=[None if pd.isna(u) else u for u in mine.get("url", [None] * len(mine))],
                campaigns=[None if pd.isna(c) else c for c in mine.get("campaign", [None] * len(mine))])
live_features(live)
samples = []
for _ in range(2000):
    t = time.perf_counter(); live_features(live); samples.append(time.perf_counter() - t)
print(json.dumps({"us": statistics.median(samples) * 1e6, "activities": len(mine)}))
"""


_CLI = [sys.executable, "-c", "import sys; from leadscore.cli import main; sys.argv[0] = 'leadscore'; main()"]


def _run(checkout: Path, code: str | None, args: list[str], env: dict) -> dict:
    cmd = [sys.executable, "-c", code, *args] if code else args
    out = subprocess.run(cmd, cwd=checkout, env={**env, "PYTHONPATH": str(checkout)},
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{checkout}: {' '.join(cmd[:3])} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "side_by_side")
    args = parser.parse_args()
    checkouts = {"before": args.before.resolve(), "after": args.after.resolve()}
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    data = work / f"data-{args.leads}"
    if not (data / "leads.parquet").is_file():
        subprocess.run([*_CLI, "generate", "--leads", str(args.leads),
                        "--seed", "1", "--out", str(data)], cwd=checkouts["after"], check=True,
                       env={**env, "PYTHONPATH": str(checkouts["after"])})

    build: dict[str, list[float]] = {k: [] for k in checkouts}
    load: dict[str, list[float]] = {k: [] for k in checkouts}
    first: dict[str, list[float]] = {k: [] for k in checkouts}
    live: dict[str, list[float]] = {k: [] for k in checkouts}
    checks: dict[str, set] = {k: set() for k in checkouts}
    for r in range(args.rounds):
        order = list(checkouts) if r % 2 == 0 else list(reversed(checkouts))
        for name in order:
            b = _run(checkouts[name], _BUILD, [str(data)], env)
            build[name].append(b["cpu_s"])
            load[name].append(b["load_cpu_s"])
            first[name].append(b["first_cpu_s"])
            checks[name].add((b["rows"], round(b["checksum"], 6), b["same_via_dir"]))
            live[name].append(_run(checkouts[name], _LIVE, [str(data)], env)["us"])
    quality = {}
    for name, checkout in checkouts.items():
        home = work / f"home-{name}"
        store = home / "mlflow"
        store.mkdir(parents=True, exist_ok=True)
        train_env = {**env, "LEADSCORE_HOME": str(home),
                     "MLFLOW_TRACKING_URI": f"sqlite:///{store}/mlflow.db",
                     "BENTOML_HOME": str(home / "bentoml")}
        quality[name] = _run(checkout, None, [*_CLI, "train",
                                              "--data", str(data)], train_env)["metrics"]

    print(f"side by side, {args.leads:,} generated leads, {args.rounds} alternating rounds")
    print(f"{'':<8} {'build CPU s':>12} {'--data DIR CPU s':>17} {'(first call)':>13} "
          f"{'live one lead us':>17} {'test AUC':>9} {'ECE':>7}   (medians)")
    for name in checkouts:
        print(f"{name:<8} {statistics.median(build[name]):>12.2f} "
              f"{statistics.median(load[name]):>17.2f} {statistics.median(first[name]):>13.2f} "
              f"{statistics.median(live[name]):>17.1f} {quality[name]['roc_auc']:>9.4f} "
              f"{quality[name]['ece']:>7.4f}   rounds: build {[round(x, 2) for x in build[name]]}, "
              f"live {[round(x, 1) for x in live[name]]}")
    ratio_build = statistics.median(build["after"]) / statistics.median(build["before"])
    ratio_live = statistics.median(live["after"]) / statistics.median(live["before"])
    ratio_load = statistics.median(load["after"]) / statistics.median(load["before"])
    ratio_first = statistics.median(first["after"]) / statistics.median(first["before"])
    print(f"after / before: build {ratio_build:.3f}, --data DIR {ratio_load:.3f} (first call "
          f"{ratio_first:.3f}), "
          f"live {ratio_live:.3f}, AUC difference "
          f"{quality['after']['roc_auc'] - quality['before']['roc_auc']:+.4f}; same training "
          f"set: {checks['before'] == checks['after']}")


if __name__ == "__main__":
    main()
