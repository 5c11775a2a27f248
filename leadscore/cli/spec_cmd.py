"""Commands: ``leadscore spec check FILE [--data PATH | --load]`` validates a dataset spec.

A version 1 spec is checked on its own unless ``--data FILE`` or ``--load`` asks for
its table. A version 2 spec names its sources, so ``check`` loads every table (unless
``--spec-only``); ``--data DIR`` or ``LEADSCORE_SPEC_DATA`` names the folder its
relative paths resolve against.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from features.spec import (
    DatasetSpecV2,
    SpecTables,
    example_spec_path,
    load_dataset,
    load_spec,
    load_tables,
)
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
        typer.Option(
            "--data",
            help="Version 1: also load this table (CSV or parquet) through the spec. "
            "Version 2: the data folder its sources are relative to "
            "(default: $LEADSCORE_SPEC_DATA, else the spec's data_dir or its folder).",
        ),
    ] = None,
    load: Annotated[
        bool, typer.Option("--load", help="Also load the spec's own 'source' table.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON on stdout.")
    ] = False,
    spec_only: Annotated[
        bool,
        typer.Option("--spec-only", help="Version 2: check the spec alone, load no table."),
    ] = False,
) -> None:
    """Validate a dataset spec; load its tables (version 2, or version 1 with --data/--load)."""
    settings()
    path = _spec_path(spec_file)
    spec = load_spec(path)
    if isinstance(spec, DatasetSpecV2):
        _check_v2(spec, path, data, as_json=as_json, spec_only=spec_only)
        return
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


def _check_v2(
    spec: DatasetSpecV2, path: Path, data: Path | None, *, as_json: bool, spec_only: bool
) -> None:
    t = spec.tables
    if spec_only:
        kinds = len(t.activities.kinds) if t.activities is not None else 0
        tables = [n for n in ("leads", "outcomes", "activities") if getattr(t, n) is not None]
        summary = {
            "spec": str(path),
            "valid": True,
            "version": 2,
            "tables": tables,
            "features": len(spec.feature_names()),
            "kinds": kinds,
        }
        if as_json:
            typer.echo(json.dumps(summary, indent=2))
        else:
            _print(
                f"[green]ok[/] {path.name}: spec is valid (version 2; tables {', '.join(tables)}; "
                f"{summary['features']} feature columns, {kinds} activity kinds)."
            )
        return
    if data is None and os.environ.get("LEADSCORE_SPEC_DATA"):
        data = Path(os.environ["LEADSCORE_SPEC_DATA"])
    tables = load_tables(spec, data_path=data)
    summary = {"spec": str(path), "valid": True, **tables.summary()}
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
        return
    _print("\n".join(_v2_lines(path, tables, summary)))


def _print(text: str) -> None:
    # soft_wrap: no hard line breaks at the console width when stderr is not a terminal.
    console.print(text, highlight=False, soft_wrap=True)


def _v2_lines(path: Path, tables: SpecTables, s: dict[str, Any]) -> list[str]:
    def names(items: list[str]) -> str:
        return f"{len(items)}: {', '.join(items)}"

    lines = [f"[green]ok[/] {path.name} (version 2) loaded"]
    for name, info in s["tables"].items():
        rows = info.get("rows", info["rows_read"])
        kept = "" if rows == info["rows_read"] else f" ({info['rows_read']:,} read)"
        lines.append(f"  table {name:<11} {rows:>9,} rows{kept}  from {info['source']}")
    lines.append(f"  id              {s['id']!r}")
    lines.append(
        f"  created_at      {repr(s['created_at']) if s['has_time'] else 'none: training uses a stratified random hold-out'}"
    )
    n = len(tables.leads)
    for role, column in s["outcome_columns"].items():
        count = s["outcomes"].get(role, 0)
        share = f", {count / n:.1%}" if n else ""
        lines.append(f"  {role:<15} {column!r}  ({count:,} leads{share})")
    if s["time"]:
        lines.append(f"  extra times     {names(s['time'])}")
    lines += [
        f"  categorical     {names(s['categorical'])}",
        f"  numeric         {names(s['numeric'])}",
        f"  leaky (unused)  {names(s['leaky'])}",
        f"  pii (unread)    {names(s['pii'])}",
        f"  ignored         {names(s['ignored'])}",
    ]
    if s["defaulted_to_ignore"]:
        lines.append(
            f"  [yellow]default_role: ignore covered {len(s['defaulted_to_ignore'])} "
            f"unlisted column(s)[/]: {', '.join(s['defaulted_to_ignore'])}"
        )
    if tables.activities is not None:
        values = f"; values: {', '.join(s['values'])}" if s["values"] else ""
        lines.append(f"  activities      {len(tables.activities):,} events{values}")
        lines.append(f"  kinds           {len(s['kinds'])}:")
        for k in s["kinds"]:
            extra = ", key action" if k["key_action"] else ""
            lines.append(
                f"    {k['name']:<16} {k['events']:>9,}  {k['label']}  "
                f"(weight {k['weight']:g}{extra}; types: {', '.join(k['types'])})"
            )
        unmapped = s["unmapped_types"]
        if unmapped:
            listed = ", ".join(f"{t} ({c:,})" for t, c in unmapped.items())
            lines.append(f"  unmapped types  {len(unmapped)}: {listed}")
        else:
            lines.append("  unmapped types  0")
    lines.append("  policies")
    for policy, info in s["policies"].items():
        rows = info["rows"]
        if info["action"] == "error":
            what = "none found" if rows == 0 else f"{rows:,} rows"
        elif info["action"] == "keep":
            what = f"{rows:,} rows after the outcome, kept"
        else:
            done = {"drop": "dropped", "clip": "clipped"}[info["action"]]
            what = f"{rows:,} rows {done}"
            if info.get("activities"):
                what += f" (and their {info['activities']:,} activities)"
        lines.append(f"    {policy:<26} {info['action']:<6} {what}")
    if s["training"] is not None:
        tr = s["training"]
        snaps = tr["snapshots"]
        when = (
            f"snapshots at {snaps['anchor']} + {', '.join(snaps['offsets'])}"
            if snaps
            else f"a snapshot every {tr['every']}"
        )
        lines.append(
            f"  training        horizon {tr['horizon']}, {when}, censoring {tr['censoring']}"
        )
    lines.append(f"  fingerprint     sha256:{s['fingerprint'][:16]}")
    return lines
