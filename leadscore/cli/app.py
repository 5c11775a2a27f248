"""The Typer application objects that command modules register on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="leadscore",
    help="Machine-learning lead scoring: generate data, build features, train, serve, rescore.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
rules_app = typer.Typer(help="Check rule files and score with the rules fallback.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")
