"""Command: ``rescore`` (score every open lead on Dask, resumably, with score history)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from leadscore.cli._common import console, parse_timestamp, settings
from leadscore.cli.app import app


@app.command("rescore")
def rescore_command(
    data: Path = typer.Option(  # noqa: B008  (typer's declarative options)
        ..., "--data", file_okay=False,
        help="Directory with leads.parquet and activities.parquet.",
    ),
    out: Path = typer.Option(  # noqa: B008
        ..., "--out", file_okay=False,
        help="Output root: scores/ (the committed run), runs/, history/, .staging/.",
    ),
    model_uri: str | None = typer.Option(
        None, "--model-uri",
        help="Model to score with (default models:/lead-scoring@champion). An alias is "
        "resolved once, at the start, to a version. Without one the rules score every lead.",
    ),
    scheduler: str = typer.Option(
        "local", "--scheduler",
        help="'local' (a LocalCluster sized to this machine) or tcp://host:8786.",
    ),
    as_of: str | None = typer.Option(
        None, "--as-of",
        help="Score as of this time (ISO 8601; naive means UTC). Default: the latest "
        "timestamp in the data.",
    ),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Local workers (default: one per core, one thread each)."
    ),
    partitions: int | None = typer.Option(
        None, "--partitions", min=1,
        help="Partitions by hash of lead_id (default: about 25,000 leads each, at least 4).",
    ),
    top_reasons: int = typer.Option(
        3, "--top-reasons", min=0, help="Positive and negative reasons per lead, as POST /score."
    ),
    json_summary: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Score every open lead with the API's scoring core on Dask; commit atomically.

    A rerun with the same inputs, as_of and model resumes an interrupted run (complete
    partitions are reused). Each committed run is appended to <out>/history for trends.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from serving.batch import rescore

    if scheduler != "local" and not scheduler.startswith("tcp://"):
        raise typer.BadParameter(f"{scheduler!r} is not 'local' or a tcp://host:port address",
                                 param_hint="--scheduler")
    cfg = settings()
    stamp = parse_timestamp(as_of, option="--as-of")
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                  transient=False) as bar:
        tasks: dict[str, Any] = {}

        def bar_for(name: str) -> Callable[[int, int], None]:
            def update(done: int, total: int) -> None:
                if name not in tasks:  # created on first use: a resumed run skips reading
                    tasks[name] = bar.add_task(name, total=total)
                bar.update(tasks[name], completed=done, total=total)
            return update

        result = rescore(data, out, settings=cfg, model_uri=model_uri, as_of=stamp,
                         scheduler=scheduler, workers=workers, n_partitions=partitions,
                         top_reasons=top_reasons, progress=bar_for("partitions scored"),
                         input_progress=bar_for("rows validated"))
    if json_summary:
        print(json.dumps(result.to_dict(), indent=2, default=str))
        return
    if result.already_committed:
        console.print("this run (same inputs, as_of and model) was already committed")
    for line in result.summary_lines():
        console.print(line, highlight=False)
