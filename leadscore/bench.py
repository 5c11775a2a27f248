"""One benchmark run: every performance comparison, each against its reference, same run.

:func:`run_all` runs each benchmark script of ``benchmarks/`` in its own subprocess
(``nice``, ``OMP_NUM_THREADS=1``), collects its figures (its JSON under
``benchmarks/out/`` where it writes one, otherwise its printed lines), and
:func:`render` writes ``benchmarks/RESULTS.md``: the machine, each figure, and above all
each ratio against the reference measured in the same run, with at least three sizes
per growth curve. A failed benchmark is recorded as failed with the tail of its error
output, never dropped.

The ratios are what to read: absolute figures on a shared 2-core machine move with the
neighbours' load (recorded at the start and the end), ratios much less.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from leadscore.atomic import write_atomically

__all__ = ["Step", "StepResult", "plan", "run_all", "render", "write_atomic", "machine"]

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
OUT = BENCH / "out"
KEY_LIBRARIES = ("bentoml", "mlflow", "lightgbm", "pandas", "numpy", "pyarrow", "dask",
                 "distributed", "scikit-learn", "schemathesis")


@dataclass(frozen=True)
class Step:
    """One benchmark subprocess and how to read its figures."""

    name: str
    what: str
    argv: list[str]
    parse: Callable[[str], dict[str, Any]]
    timeout_s: float
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class StepResult:
    name: str
    what: str
    command: str
    ok: bool
    seconds: float
    figures: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


# ----------------------------------------------------------------------------- parsing


def _json_file(name: str) -> Callable[[str], dict[str, Any]]:
    def parse(_stdout: str) -> dict[str, Any]:
        return json.loads((OUT / name).read_text())

    return parse


def _num(text: str) -> float:
    return float(text.replace(",", ""))


def parse_rules(stdout: str) -> dict[str, Any]:
    """benchmarks/rules.py prints one line per timed step (it writes no JSON)."""
    rows = {}
    for line in stdout.splitlines():
        m = re.match(r"^(.+?)\s+([\d.]+) s\s+([\d,]+) leads/s", line)
        if m:
            rows[m.group(1).strip()] = {"s": float(m.group(2)), "leads_per_s": _num(m.group(3))}
    data = re.search(r"data: ([\d,]+) leads, ([\d,]+) activities", stdout)
    ref = next(v for k, v in rows.items() if k.startswith("reference"))
    ev = next(v for k, v in rows.items() if k.startswith("evaluate"))
    table = next(v for k, v in rows.items() if k.startswith("reason_table"))
    full = next(v for k, v in rows.items() if k.startswith("score_leads"))
    return {"leads": int(_num(data.group(1))), "activities": int(_num(data.group(2))),
            "reference_s": ref["s"], "scores_reasons_s": ev["s"] + table["s"],
            "score_leads_s": full["s"],
            "leads_per_s": int(_num(data.group(1)) / (ev["s"] + table["s"])),
            "ratio_vs_groupby": (ev["s"] + table["s"]) / ref["s"]}


def parse_training_set(stdout: str) -> dict[str, Any]:
    """benchmarks/training_set.py prints its figures (it writes no JSON)."""
    fast = re.search(r"fast:\s+([\d,]+) rows .*?cpu ([\d.]+) s = ([\d,]+) rows/s", stdout)
    naive = re.search(r"naive: ([\d,]+) rows .*?cpu ([\d.]+) s = ([\d,]+) rows/s", stdout)
    ratio = re.search(r"ratio: fast is ([\d,.]+)x .*?\(([\d,.]+)x in wall", stdout)
    data = re.search(r"data: ([\d,]+) leads, ([\d,]+) activities", stdout)
    return {"leads": int(_num(data.group(1))), "activities": int(_num(data.group(2))),
            "rows": int(_num(fast.group(1))), "fast_cpu_s": float(fast.group(2)),
            "fast_rows_per_cpu_s": _num(fast.group(3)),
            "naive_rows_per_cpu_s": _num(naive.group(3)),
            "ratio_cpu": _num(ratio.group(1)), "ratio_wall": _num(ratio.group(2))}


def parse_json_stdout(stdout: str) -> dict[str, Any]:
    """The last JSON object a step printed (the rescore CLI with --json, our children)."""
    text = stdout[stdout.index("{"):] if "{" in stdout else stdout
    start = text.rfind("\n{")
    return json.loads(text[start + 1:] if start >= 0 else text)


# ----------------------------------------------------------------------------- the plan


def _py(*args: str) -> list[str]:
    return ["nice", "-n", "10", sys.executable, *args]


def _cli(*args: str) -> list[str]:
    return _py("-c", "from leadscore.cli import main; main()", *args)


QUICK = {"generate": [2_000, 5_000, 10_000], "rules": [20_000, 50_000, 100_000],
         "training_set": [3_000, 6_000, 12_000], "training_time": [2_000, 5_000, 10_000],
         "batch": [2_000, 10_000, 100_000], "serve_leads": 5_000, "serve_seconds": 10,
         "serve_clients": 8, "explain_leads": 10_000, "explain_sizes": "1,10,1000,100000",
         "explain_seconds": 1}
FULL = {"generate": [20_000, 100_000, 1_000_000], "rules": [100_000, 300_000, 1_000_000],
        "training_set": [10_000, 30_000, 100_000], "training_time": [10_000, 50_000, 200_000],
        "batch": [2_000, 10_000, 100_000, 1_000_000], "serve_leads": 20_000,
        "serve_seconds": 20, "serve_clients": 8, "explain_leads": 10_000,
        "explain_sizes": "1,10,1000,100000", "explain_seconds": 3}
BATCH_ENGINES = "local,dask"
"""Both rescore engines at every size, side by side: where in process stops paying is
what ``LEADSCORE_RESCORE_LOCAL_MAX_LEADS`` is set from."""


def plan(quick: bool, home: Path, batch_sizes: list[int] | None = None) -> list[Step]:
    """Every step of one run, in order. ``home`` holds the generated data and the
    MLflow store with the champion that the serving and batch steps use.
    ``batch_sizes`` replaces the rescore sizes (a million leads takes long on a shared
    machine: ``--batch-sizes 2000,10000,100000,1000000`` asks for it)."""
    sizes = dict(QUICK if quick else FULL)
    if batch_sizes:
        sizes["batch"] = list(batch_sizes)
    env = {"LEADSCORE_HOME": str(home), "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}"}
    data = home / "data" / "synthetic"
    steps = [
        Step("setup: generate", f"{sizes['serve_leads']:,} synthetic leads for serving",
             _cli("generate", "--leads", str(sizes["serve_leads"]), "--seed", "7",
                  "--out", str(data)), lambda s: {}, 300, env),
        Step("setup: train", "train and promote the champion the servers and batch use",
             _cli("train", "--data", str(data), "--promote"), lambda s: {}, 600, env),
        Step("generator", "synthetic CRM generation, leads/s and activities/s",
             _py(str(BENCH / "generate.py"), "--sizes",
                 ",".join(map(str, sizes["generate"]))), _json_file("generate.json"), 600),
    ]
    for n in sizes["rules"]:
        steps.append(Step(f"rules {n:,}", "default rules on N leads x 30 activities vs a "
                          "groupby(lead_id, type).size() of the same frames",
                          _py(str(BENCH / "rules.py"), "--leads", str(n), "--per-lead", "30"),
                          parse_rules, 300))
    for n in sizes["training_set"]:
        steps.append(Step(f"training set {n:,}", "vectorised training-set builder vs the "
                          "naive per-snapshot pandas builder (CPU time)",
                          _py(str(BENCH / "training_set.py"), "--leads", str(n),
                              "--activities", str(30 * n), "--weeks", "26",
                              "--naive-snapshots", "2"), parse_training_set, 600))
    steps.append(Step("training time", "LeadModel.fit vs bare lightgbm.train, same matrix "
                      "and rounds (CPU time)",
                      _py(str(BENCH / "training_time.py"), "--sizes",
                          ",".join(map(str, sizes["training_time"]))),
                      _json_file("training_time.json"), 900))
    steps.append(Step("batch", "leadscore rescore end to end (in process, and on Dask with "
                      "2 workers; reasons, atomic commit) vs raw pred_contrib (2 threads) on "
                      "the same open leads",
                      _py(str(BENCH / "batch.py"), "--sizes",
                          ",".join(map(str, sizes["batch"])), "--trees", "100",
                          "--raw-rows", str(min(sizes["batch"])), "--engines", BATCH_ENGINES,
                          "--no-profile",
                          # bases above 100,000 leads are copies of the generated 100,000
                          # (benchmarks/batch.py --tile-from): seconds, not half an hour
                          *(("--tile-from", "100000") if max(sizes["batch"]) > 100_000
                            else ())),
                      _json_file("batch.json"), 900 + 3 * max(sizes["batch"]) // 1000))
    steps.append(Step("explain", "exact TreeSHAP: the fast explainer (training.treeshap) vs "
                      "LightGBM pred_contrib, same model (300 trees, 31 leaves), same rows, "
                      "2 threads each, alternating calls",
                      _py(str(BENCH / "explain.py"), "--leads", str(sizes["explain_leads"]),
                          "--trees", "300", "--sizes", sizes["explain_sizes"],
                          "--threads", "2", "--seconds", str(sizes["explain_seconds"])),
                      _json_file("explain.json"), 1800))
    seconds, clients = str(sizes["serve_seconds"]), str(sizes["serve_clients"])
    steps.append(
        Step("serving side by side", "POST /score vs a bare ASGI endpoint calling the same "
             "scoring core vs mlflow models serve of the same champion, one worker each, "
             "one after the other",
             _py(str(BENCH / "serving_overhead.py"), "--seconds", seconds, "--clients", clients,
                 "--data", str(data), "--mlflow"),
             _json_file("serving_overhead.json"), 1500, env))
    return steps


# ----------------------------------------------------------------------------- running


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_step(step: Step, log: Callable[[str], None] = print) -> StepResult:
    """Run one step; a failure (exit code, timeout, unparsable output) is recorded."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BENTOML_DO_NOT_TRACK": "true",
           "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1",
           "PYTHONPATH": str(REPO), **step.env}
    # Shown as a reader would type it: no nice prefix, no absolute interpreter or repo path.
    command = " ".join(a if " " not in a else repr(a) for a in step.argv[3:]).replace(
        sys.executable, "python").replace(f"{REPO}/", "")
    log(f"[bench] {step.name}: {command}")
    began = time.perf_counter()
    try:
        proc = subprocess.run(step.argv, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=step.timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stderr or b"").decode(errors="replace") if isinstance(exc.stderr, bytes) \
            else (exc.stderr or "")
        return StepResult(step.name, step.what, command, False, time.perf_counter() - began,
                          error=f"timed out after {step.timeout_s:.0f} s\n{_tail(out)}")
    seconds = time.perf_counter() - began
    if proc.returncode != 0:
        return StepResult(step.name, step.what, command, False, seconds,
                          error=f"exit {proc.returncode}\n{_tail(proc.stderr or proc.stdout)}")
    try:
        figures = step.parse(proc.stdout)
    except Exception as exc:  # noqa: BLE001  (recorded as this step's failure, shown in RESULTS)
        return StepResult(step.name, step.what, command, False, seconds,
                          error=f"could not read its figures: {type(exc).__name__}: {exc}\n"
                          f"{_tail(proc.stdout)}")
    log(f"[bench] {step.name}: ok in {seconds:.1f} s")
    return StepResult(step.name, step.what, command, True, seconds, figures)


def _load() -> tuple[float, float, float]:
    return os.getloadavg()


def machine() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    versions = {}
    for name in KEY_LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {"cores": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem_kib / 2**20, 1),
            "python": platform.python_version(), "platform": platform.platform(),
            "versions": versions}


def run_all(quick: bool, log: Callable[[str], None] = print,
            only: Callable[[Step], bool] | None = None,
            batch_sizes: list[int] | None = None, command: str | None = None
            ) -> dict[str, Any]:
    """Run every step; return the machine, the load at start and end, and each result.
    ``command`` is how the run was asked for, as RESULTS.md quotes it."""
    started = datetime.now(UTC)
    load_start = _load()
    results: list[StepResult] = []
    with tempfile.TemporaryDirectory(prefix="leadscore-bench-home-") as home:
        for step in plan(quick, Path(home), batch_sizes):
            if only is not None and not only(step):
                continue
            results.append(run_step(step, log))
    return {"quick": quick, "command": command or f"leadscore bench{' --quick' if quick else ''}",
            "started": started.isoformat(timespec="seconds"),
            "wall_s": (datetime.now(UTC) - started).total_seconds(),
            "machine": machine(), "load_start": load_start, "load_end": _load(),
            "results": results}


# ----------------------------------------------------------------------------- rendering


def _f(x: Any, nd: int = 1) -> str:
    if isinstance(x, (int,)) and not isinstance(x, bool):
        return f"{x:,}"
    if isinstance(x, float):
        return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:,.{nd}f}"
    return str(x)


def _by(results: list[StepResult], prefix: str) -> list[StepResult]:
    return [r for r in results if r.name.startswith(prefix)]


def headline(run: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(comparison, ratio, meaning) rows: the README's table."""
    rows = []
    res: list[StepResult] = run["results"]

    def ok(name: str) -> StepResult | None:
        found = [r for r in res if r.name == name and r.ok]
        return found[0] if found else None

    if (r := ok("serving side by side")):
        f = r.figures
        ours = f["leadscore"]
        rows.append(("POST /score vs bare ASGI, same core (throughput)",
                     f"{f['throughput_ratio']:.2f}x",
                     f"{ours['throughput_rps']:.0f} vs {f['bare_asgi']['throughput_rps']:.0f} "
                     f"req/s at {f['clients']} clients; p50 overhead "
                     f"{f['p50_overhead_ms']:+.1f} ms"))
        if "mlflow" in f:
            rows.append(("POST /score vs mlflow models serve (throughput)",
                         f"{f['mlflow_ratio']:.2f}x",
                         f"{ours['throughput_rps']:.0f} vs {f['mlflow']['throughput_rps']:.0f} "
                         "req/s"))
        rows.append(("POST /score p99 / p50", f"{ours['p99_ms'] / ours['p50_ms']:.2f}",
                     f"p50 {ours['p50_ms']:.1f} ms, p99 {ours['p99_ms']:.1f} ms "
                     f"(bare ASGI p99 {f['bare_asgi']['p99_ms']:.1f} ms)"))
    if (r := ok("explain")):
        rs = r.figures["results"]
        rows.append(("exact TreeSHAP, fast explainer vs pred_contrib (rows/s)",
                     " / ".join(f"{x['ratio']:.2f}" for x in rs) + " x",
                     "rows " + ", ".join(_f(x["rows"]) for x in rs)
                     + f"; max abs difference {max(x['max_abs_diff'] for x in rs):.1e}"))
    if (r := ok("batch")):
        rs = r.figures["runs"]
        for engine in dict.fromkeys(x.get("engine", "dask") for x in rs):
            mine = [x for x in rs if x.get("engine", "dask") == engine]
            where = "in process" if engine == "local" else "on Dask, 2 workers"
            rows.append((f"rescore {where}, end to end vs raw pred_contrib (rows/s)",
                         " / ".join(f"{x['ratio']:.0%}" for x in mine) + " of raw",
                         "sizes " + ", ".join(_f(x["leads"]) for x in mine) + "; "
                         + ", ".join(f"{x['end_to_end_s']:.1f} s" for x in mine)))
    for prefix, label, key, unit in (
        ("training set", "training-set build vs naive pandas (CPU)", "ratio_cpu", "x faster"),
        ("rules", "rules scoring vs groupby count (wall)", "ratio_vs_groupby", "x the reference"),
    ):
        good = [r for r in _by(res, prefix) if r.ok]
        if good:
            rows.append((label, " / ".join(f"{r.figures[key]:.1f}" for r in good) + f" {unit}",
                         "sizes " + ", ".join(_f(r.figures.get("leads", 0)) for r in good)))
    if (r := ok("training time")):
        rs = r.figures["results"]
        rows.append(("LeadModel.fit vs bare lightgbm.train (CPU)",
                     " / ".join(f"{x['ratio_cpu']:.2f}" for x in rs) + " x",
                     "sizes " + ", ".join(_f(x["leads"]) for x in rs)))
    if (r := ok("generator")):
        rs = r.figures["results"]
        rows.append(("generator throughput", " / ".join(_f(x["leads_per_s"]) for x in rs)
                     + " leads/s", "sizes " + ", ".join(_f(x["leads"]) for x in rs)))
    return rows


def render(run: dict[str, Any]) -> str:
    """RESULTS.md as text."""
    m = run["machine"]
    res: list[StepResult] = run["results"]
    lines = [
        "# Benchmark results",
        "",
        f"Generated by `{run.get('command') or 'leadscore bench'}` on "
        f"{run['started']} in {run['wall_s'] / 60:.1f} min. Every ratio is against a "
        "reference measured in the same run, on the same data, on the same machine.",
        "Read the ratios: absolute figures move with the load of this shared machine.",
        "",
        "## Machine",
        "",
        f"- {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB memory, {m['platform']}",
        f"- Python {m['python']}; " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        f"- load average (1/5/15 min) at start {', '.join(f'{x:.2f}' for x in run['load_start'])}"
        f"; at end {', '.join(f'{x:.2f}' for x in run['load_end'])}",
        "- every step ran under `nice -n 10` with `OMP_NUM_THREADS=1`, except the "
        "in-process rescore (its explainer takes both cores, as in a user's shell)",
        "- the 2 cores are shared with three other engineers' work: absolute figures move "
        "with their load; compare only ratios measured in this run",
        "",
        "## Headline ratios",
        "",
        "| comparison | ratio | detail |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in headline(run)],
        "",
    ]
    failed = [r for r in res if not r.ok]
    lines += ["## Steps", "", "| step | status | seconds | command |", "|---|---|---|---|"]
    for r in res:
        lines.append(f"| {r.name} | {'ok' if r.ok else '**FAILED**'} | {r.seconds:.1f} | "
                     f"`{r.command[:150]}` |")
    lines.append("")
    if failed:
        lines += ["## Failures", ""]
        for r in failed:
            lines += [f"### {r.name}", "", "```", (r.error or "")[-3000:], "```", ""]
    lines += _sections(res)
    return "\n".join(lines) + "\n"


def _sections(res: list[StepResult]) -> list[str]:
    out: list[str] = []

    def table(title: str, what: str, header: list[str], rows: list[list[Any]]) -> None:
        out.extend([f"## {title}", "", what, "", "| " + " | ".join(header) + " |",
                    "|" + "---|" * len(header)])
        out.extend("| " + " | ".join(_f(c, 2) for c in row) + " |" for row in rows)
        out.append("")

    for name in ("serving side by side",):
        for r in res:
            if r.name == name and r.ok:
                f = r.figures
                servers = [k for k in f if isinstance(f[k], dict) and "throughput_rps" in f[k]]
                table(name, f"{r.what}; model {f.get('model')}, {f.get('clients')} clients, "
                      f"{f.get('seconds')} s, {f.get('workers')} worker(s). "
                      f"Throughput ratio {f['throughput_ratio']:.2f}x.",
                      ["server", "req/s", "p50 ms", "p99 ms", "requests", "errors"],
                      [[s, f[s]["throughput_rps"], f[s]["p50_ms"], f[s]["p99_ms"],
                        f[s]["requests"], f[s]["errors"]] for s in servers])
    for r in res:
        if r.name == "explain" and r.ok:
            f = r.figures
            table("Exact TreeSHAP vs pred_contrib", r.what + f"; {f['trees']} trees, "
                  f"{f['features']} features; explainer built in {f['build_ms']} ms "
                  f"({f['v2_leaves']} leaves v2, {f['v1_leaves']} v1, tables "
                  f"{f['table_mib']} MiB).",
                  ["rows", "pred_contrib rows/s", "fast rows/s", "ratio", "pred_contrib ms",
                   "fast ms", "max abs diff"],
                  [[x["rows"], x["pred_contrib_rows_per_s"], x["fast_rows_per_s"],
                    f"{x['ratio']:.2f}x", x["pred_contrib_ms"], x["fast_ms"],
                    f"{x['max_abs_diff']:.1e}"] for x in f["results"]])
    for r in res:
        if r.name == "batch" and r.ok:
            table("Batch rescoring vs raw pred_contrib", r.what + f"; {r.figures['trees']} "
                  "trees. Ratio = end-to-end rows/s as a share of raw pred_contrib rows/s; both "
                  "clocks start after their process's imports (the rescore's includes model "
                  "resolution, load and explainer build, raw pred_contrib's does not). Cold "
                  "command = `leadscore rescore` in a new interpreter, spawn to exit.",
                  ["leads", "engine", "open leads", "end to end s", "rows/s",
                   "raw pred_contrib rows/s", "ratio", "cold command s (ratio)",
                   "peak RSS client / worker GB"],
                  [[x["leads"], x.get("engine", "dask"), x["open_leads_scored"],
                    x["end_to_end_s"],
                    x["end_to_end_rows_per_s"], x["raw_pred_contrib_rows_per_s"],
                    f"{x['ratio']:.0%}",
                    (f"{x['cold_command_s']} ({x['cold_command_ratio']:.0%})"
                     if "cold_command_s" in x else "not timed"),
                    f"{x['peak_rss_client_gb']} / {x['peak_rss_worker_gb']}"]
                   for x in r.figures["runs"]])
    good = [r for r in _by(res, "training set") if r.ok]
    if good:
        table("Training-set build vs naive pandas", good[0].what,
              ["leads", "activities", "rows", "fast cpu s", "fast rows/cpu-s",
               "naive rows/cpu-s", "ratio (cpu)", "ratio (wall)"],
              [[r.figures[k] for k in ("leads", "activities", "rows", "fast_cpu_s",
                                       "fast_rows_per_cpu_s", "naive_rows_per_cpu_s",
                                       "ratio_cpu", "ratio_wall")] for r in good])
    for r in res:
        if r.name == "training time" and r.ok:
            table("Training time vs bare LightGBM", r.what,
                  ["leads", "train rows", "rounds", "LeadModel cpu s", "bare cpu s",
                   "ratio (cpu)", "ratio (wall)"],
                  [[x["leads"], x["train_rows"], x["rounds"], x["leadscore_cpu_s"],
                    x["bare_cpu_s"], x["ratio_cpu"], x["ratio_wall"]]
                   for x in r.figures["results"]])
    good = [r for r in _by(res, "rules") if r.ok]
    if good:
        table("Rules throughput", good[0].what,
              ["leads", "activities", "groupby s", "scores+reasons s", "leads/s",
               "ratio vs groupby"],
              [[r.figures[k] for k in ("leads", "activities", "reference_s",
                                       "scores_reasons_s", "leads_per_s",
                                       "ratio_vs_groupby")] for r in good])
    for r in res:
        if r.name == "generator" and r.ok:
            table("Generator throughput", r.what + " (each size in its own process)",
                  ["leads", "activities", "wall s", "leads/s", "activities/s", "peak RSS GB"],
                  [[x["leads"], x["activities"], x["wall_s"], x["leads_per_s"],
                    x["activities_per_s"], x["peak_rss_gb"]] for x in r.figures["results"]])
    return out


def write_atomic(text: str, path: Path) -> None:
    """Write ``text`` to ``path`` atomically: a reader sees the old file or the new one."""
    write_atomically(path, lambda tmp: tmp.write_text(text))
