"""Command: ``bench`` (every performance comparison in one run, written to RESULTS.md)."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from leadscore.cli._common import console
from leadscore.cli.app import app

_DEFAULT_OUT = Path(__file__).resolve().parents[2] / "benchmarks" / "RESULTS.md"


@app.command("bench")
def bench_command(
    quick: bool = typer.Option(
        False, "--quick", help="Small sizes and short loads: the whole run in under 10 minutes."
    ),
    out: Path = typer.Option(  # noqa: B008  (typer's declarative options)
        _DEFAULT_OUT, "--out", dir_okay=False, help="Markdown report to write (atomically)."
    ),
    only: str | None = typer.Option(
        None, "--only", help="Run only the steps whose name matches this regular expression "
        "(setup steps always run when a serving or batch step is kept).",
    ),
    batch_sizes: str | None = typer.Option(
        None, "--batch-sizes", help="Leads of each rescore size, comma-separated (default "
        "2000,10000,100000 with --quick, and 1000000 too without). At least three.",
    ),
) -> None:
    """Run every benchmark, each in its own process, and write each figure with its ratio
    against the reference measured in the same run. A failed benchmark is reported as
    failed, with its error, and makes the exit code 1."""
    from leadscore.bench import render, run_all, write_atomic

    sizes = None
    if batch_sizes is not None:
        try:
            sizes = [int(x.replace("_", "")) for x in batch_sizes.split(",") if x.strip()]
        except ValueError:
            sizes = []
        if len(sizes) < 3 or min(sizes) < 1:
            raise typer.BadParameter(f"{batch_sizes!r} is not three or more positive lead "
                                     "counts separated by commas", param_hint="--batch-sizes")
    keep = None
    if only:
        pattern = re.compile(only)
        needs_setup = any(pattern.search(n) for n in ("batch", "serving"))

        def keep(step):  # type: ignore[no-untyped-def]
            return bool(pattern.search(step.name)) or (
                needs_setup and step.name.startswith("setup"))

    command = " ".join(["leadscore bench", *(["--quick"] if quick else []),
                        *([f"--only '{only}'"] if only else []),
                        *([f"--batch-sizes {batch_sizes}"] if batch_sizes else [])])
    run = run_all(quick, log=lambda line: console.print(line, highlight=False, markup=False),
                  only=keep, batch_sizes=sizes, command=command)
    write_atomic(render(run), out)
    failed = [r.name for r in run["results"] if not r.ok]
    console.print(f"wrote {out} in {run['wall_s'] / 60:.1f} min; "
                  f"{len(run['results']) - len(failed)} steps ok, {len(failed)} failed"
                  + (f": {', '.join(failed)}" if failed else ""), highlight=False)
    if failed:
        raise typer.Exit(1)
