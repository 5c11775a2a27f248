"""Commands: ``leadscore spec check FILE [--data FILE | --load]`` validates a dataset spec."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from features.spec import example_spec_path, load_dataset, load_spec
from leadscore.cli._common import console, settings
from leadscore.cli.app import app

spec_app = typer.Typer(
    help="Check YAML dataset specs that map your own CRM export to roles.",
    no_args_is_help=True,
)
app.add_typer(spec_app, name="spec")


def _spec_path(value: str) -> Path:
    """A file path, or the name of a shipped spec such as 'x-education'."""
    path = Path(value)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    return example_spec_path(value)


@spec_app.command("check")
def check(
    spec_file: Annotated[
        str,
        typer.Argument(
            metavar="FILE", help="The spec (YAML), or the name of a shipped one: x-education."
        ),
    ],
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Also load this table (CSV or parquet) through the spec."),
    ] = None,
    load: Annotated[
        bool, typer.Option("--load", help="Also load the spec's own 'source' table.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON on stdout.")
    ] = False,
) -> None:
    """Validate a dataset spec; with --data (or --load) also load the table and summarise it."""
    settings()
    path = _spec_path(spec_file)
    spec = load_spec(path)
    if data is None and not load:
        features = len(spec.columns.categorical) + len(spec.columns.numeric)
        summary = {
            "spec": str(path),
            "valid": True,
            "features": features,
            "leaky": len(spec.columns.leaky),
            "has_time": spec.has_time,
        }
        if as_json:
            typer.echo(json.dumps(summary, indent=2))
        else:
            console.print(
                f"[green]ok[/] {path.name}: spec is valid ({features} feature columns, "
                f"{len(spec.columns.leaky)} leaky, "
                f"{'time from ' + repr(spec.columns.created_at) if spec.has_time else 'no time'}). "
                "Pass --data FILE to check it against a table.",
                highlight=False,
            )
        return

    dataset = load_dataset(spec, data)
    summary = {"spec": str(path), "valid": True, **dataset.summary()}
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
        return
    s = summary
    lines = [
        f"[green]ok[/] {path.name} fits {dataset.source.name}",
        f"  rows            {s['rows']:,}  (label rate {s['label_rate']:.1%}, "
        f"{s['positives']:,} converted)",
        f"  id              {s['id']!r}",
        f"  outcome         {s['outcome']!r}",
        f"  time            {repr(s['created_at']) if s['has_time'] else 'none: training uses a stratified random hold-out'}",
        f"  categorical     {len(s['categorical'])}: {', '.join(s['categorical'])}",
        f"  numeric         {len(s['numeric'])}: {', '.join(s['numeric'])}",
        f"  leaky (unused)  {len(s['leaky'])}: {', '.join(s['leaky'])}",
        f"  pii (unread)    {len(s['pii'])}: {', '.join(s['pii'])}",
        f"  ignored         {len(s['ignored'])}: {', '.join(s['ignored'])}",
        f"  dropped         {len(s['dropped'])}: {', '.join(s['dropped'])}",
        f"  fingerprint     sha256:{s['fingerprint'][:16]}",
    ]
    if s["defaulted_to_ignore"]:
        lines.append(
            f"  [yellow]default_role: ignore covered {len(s['defaulted_to_ignore'])} "
            f"unlisted column(s)[/]: {', '.join(s['defaulted_to_ignore'])}"
        )
    console.print("\n".join(lines), highlight=False)
