"""The ``leadscore`` command line. Nothing imports it; it imports everything.

Each command lives in a module of its own and registers itself on ``app``.
"""

from __future__ import annotations

import sys

from features.errors import LeadscoreError
from leadscore.cli import (  # noqa: F401  (each module registers its commands)
    backtest_cmd,
    batch_cmd,
    bench_cmd,
    data_cmd,
    features_cmd,
    report_cmd,
    rules_cmd,
    serve_cmd,
    spec_cmd,
    train_cmd,
)
from leadscore.cli._common import console
from leadscore.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    """Entry point: run the app and turn leadscore errors into a clean message and exit 2."""
    try:
        app()
    except LeadscoreError as exc:
        console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
        sys.exit(2)
