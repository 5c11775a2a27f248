"""leadscore bench: parsing each script's output, failures kept, atomic RESULTS.md."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from leadscore import bench

RULES_OUT = """data: 20,000 leads, 600,123 activities (0.5 s to make)
reference: activities.groupby([lead_id, type]).size()      0.10 s       200,000 leads/s
evaluate (scores, no reasons)                               0.40 s        50,000 leads/s
reason_table(top=3) (columnar reasons)                      0.10 s       200,000 leads/s
score_leads(..., reasons=True) (Reason objects)             0.80 s        25,000 leads/s
"""

TS_OUT = """data: 3,000 leads, 90,000 activities (1.0 s to make and validate); rss 300 MiB
fast:  40,000 rows x 50 features, 26 snapshots: wall 2.0 s = 20,000 rows/s, cpu 1.0 s = 40,000 rows/s; peak rss 400 MiB (before the build 300 MiB)
naive: 3,000 rows on 2 of 26 snapshots (equal to the fast rows): wall 3.0 s = 1,000 rows/s, cpu 1.5 s = 2,000 rows/s; extrapolated per row to the full build: cpu 20 s
ratio: fast is 20.0x the naive per-snapshot pandas build in cpu time (20.0x in wall time on this shared machine); target >= 20x
"""


def test_parsers_read_the_scripts_printed_figures():
    rules = bench.parse_rules(RULES_OUT)
    assert rules["leads"] == 20_000 and rules["ratio_vs_groupby"] == pytest.approx(5.0)
    ts = bench.parse_training_set(TS_OUT)
    assert (ts["rows"], ts["ratio_cpu"], ts["naive_rows_per_cpu_s"]) == (40_000, 20.0, 2_000)
    assert bench.parse_json_stdout('noise\n{"a": 1}\n') == {"a": 1}


def test_every_curve_has_three_sizes_and_quick_plan_names_each_comparison(tmp_path):
    for sizes in (bench.QUICK, bench.FULL):
        assert all(len(sizes[k]) >= 3 for k in ("generate", "rules", "training_set",
                                                "training_time", "batch"))
    names = [s.name for s in bench.plan(True, tmp_path)]
    for needed in ("generator", "training time", "explain", "serving side by side"):
        assert needed in names
    assert "batch" in names
    steps = {s.name: s for s in bench.plan(True, tmp_path, [2_000, 10_000, 1_000_000])}
    # /score, bare ASGI and mlflow in one step, at 8 clients; both rescore engines.
    assert "--mlflow" in steps["serving side by side"].argv
    argv = steps["serving side by side"].argv
    assert argv[argv.index("--clients") + 1] == "8"
    batch_argv = steps["batch"].argv
    assert batch_argv[batch_argv.index("--sizes") + 1] == "2000,10000,1000000"
    assert batch_argv[batch_argv.index("--engines") + 1] == "local,dask"


def test_a_failed_step_is_recorded_with_its_error_tail_and_rendered():
    failing = bench.Step("boom", "always fails",
                         ["nice", "-n", "0", sys.executable, "-c",
                          "import sys; sys.stderr.write('it broke here'); sys.exit(3)"],
                         lambda s: {}, 60)
    unreadable = bench.Step("garbled", "prints no figures",
                            ["nice", "-n", "0", sys.executable, "-c", "print('hi')"],
                            bench.parse_rules, 60)
    results = [bench.run_step(failing, log=lambda _: None),
               bench.run_step(unreadable, log=lambda _: None)]
    assert [r.ok for r in results] == [False, False]
    assert "exit 3" in results[0].error and "it broke here" in results[0].error
    assert "could not read its figures" in results[1].error
    run = {"quick": True, "started": "2026-01-01T00:00:00+00:00", "wall_s": 1.0,
           "machine": bench.machine(), "load_start": (0.1, 0.2, 0.3),
           "load_end": (0.4, 0.5, 0.6), "results": results}
    text = bench.render(run)
    assert "**FAILED**" in text and "it broke here" in text and "## Machine" in text
    assert "0.40, 0.50, 0.60" in text


def test_write_atomic_replaces_whole_or_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "RESULTS.md"
    bench.write_atomic("old\n", target)

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bench.os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        bench.write_atomic("new\n", target)
    assert target.read_text() == "old\n"
    assert not list(Path(tmp_path).glob(".RESULTS.md.*"))  # no temporary left behind
