"""Benchmark ``leadscore generate``: wall time, throughput and peak memory at several scales.

Each scale runs in a fresh subprocess so that its peak RSS (``ru_maxrss``) is its own.
Results go to ``benchmarks/out/generate.json`` and ``benchmarks/out/generate.md``
(git-ignored). Run with ``nice uv run python benchmarks/generate.py [--sizes 20000,100000,1000000]``.

The target (issue 2): 1,000,000 leads with about 30 activities each in under 5 minutes
and under 8 GB of peak memory on a 2-core machine, with the ground truth limited to
its default sample (20,000 leads) at that scale.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def run_one(n_leads: int, seed: int, out_dir: Path) -> dict[str, float]:
    """Generate and write one CRM in this process; return its figures."""
    from features.synthetic import GeneratorConfig, generate, write_crm

    config = GeneratorConfig(n_leads=n_leads, seed=seed)
    began = time.perf_counter()
    crm = generate(config)
    simulated = time.perf_counter()
    paths = write_crm(crm, out_dir)
    wall = time.perf_counter() - began
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "leads": n_leads,
        "activities": crm.stats["activities"],
        "activities_per_lead": round(crm.stats["activities_per_lead"], 2),
        "truth_leads": crm.stats["truth_leads"],
        "truth_rows": crm.stats["truth_rows"],
        "truth_paths": config.truth_paths,
        "converted_share": round(crm.stats["converted_share"], 4),
        "simulate_s": round(simulated - began, 1),
        "write_s": round(wall - (simulated - began), 1),
        "wall_s": round(wall, 1),
        "leads_per_s": round(n_leads / wall),
        "activities_per_s": round(crm.stats["activities"] / wall),
        "peak_rss_gb": round(peak_kb / 1024**2, 2),
        "bytes_written_mb": round(sum(p.stat().st_size for p in paths.values()) / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,100000,1000000")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()

    if args.one is not None:
        with tempfile.TemporaryDirectory(prefix="leadscore-bench-") as tmp:
            print(json.dumps(run_one(args.one, args.seed, Path(tmp))))
        return

    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        print(f"generating {size:,} leads ...", file=sys.stderr, flush=True)
        child = subprocess.run(
            [sys.executable, __file__, "--one", str(size), "--seed", str(args.seed)],
            check=True, capture_output=True, text=True,
        )
        result = json.loads(child.stdout.strip().splitlines()[-1])
        results.append(result)
        print(
            f"{size:>9,} leads: {result['wall_s']:7.1f} s wall, {result['leads_per_s']:>8,} leads/s, "
            f"{result['activities_per_s']:>9,} activities/s ({result['activities']:,} activities), "
            f"peak RSS {result['peak_rss_gb']:.2f} GB, truth for {result['truth_leads']:,} leads",
            flush=True,
        )

    OUT.mkdir(exist_ok=True)
    meta = {"python": platform.python_version(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "seed": args.seed}
    (OUT / "generate.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    header = ("| leads | activities | per lead | truth leads | wall s | simulate s | write s "
              "| leads/s | activities/s | peak RSS GB |")
    lines = [header, "|---" * 10 + "|"]
    for r in results:
        lines.append(
            f"| {r['leads']:,} | {r['activities']:,} | {r['activities_per_lead']} | {r['truth_leads']:,} "
            f"| {r['wall_s']} | {r['simulate_s']} | {r['write_s']} | {r['leads_per_s']:,} "
            f"| {r['activities_per_s']:,} | {r['peak_rss_gb']} |"
        )
    (OUT / "generate.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT / 'generate.json'} and {OUT / 'generate.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
