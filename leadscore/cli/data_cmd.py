"""Commands: ``leadscore generate`` (the synthetic CRM)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from leadscore.cli._common import console, parse_duration, parse_timestamp
from leadscore.cli.app import app

_START = "2024-10-07"
_END = "2026-10-05"


def _midnight(value: str, *, option: str) -> pd.Timestamp:
    ts = parse_timestamp(value, option=option)
    if ts != ts.normalize():
        raise typer.BadParameter(
            f"{value!r} is not a date; expected a UTC date such as {_START}", param_hint=option
        )
    return ts


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", help="Directory for leads/activities/truth.parquet.")],
    leads: Annotated[int, typer.Option("--leads", help="Number of leads to simulate (>= 1).")] = 20_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives identical files.")] = 0,
    start: Annotated[str, typer.Option("--start", help="First day of lead creation (UTC date).")] = _START,
    end: Annotated[str, typer.Option("--end", help="End of the data, its 'now' (UTC date).")] = _END,
    truth_sample: Annotated[
        int | None,
        typer.Option(
            "--truth-sample",
            help="Ground truth for a random sample of N leads only (0: none). Default: every "
            "lead up to 100,000 leads, a sample of 20,000 above.",
        ),
    ] = None,
    truth_paths: Annotated[
        int, typer.Option("--truth-paths", help="Monte Carlo futures per (lead, snapshot) for the truth.")
    ] = 8,
    horizon: Annotated[str, typer.Option("--horizon", help="Conversion horizon of the truth, e.g. 90d.")] = "90d",
    campaign_from: Annotated[
        str | None,
        typer.Option("--campaign-from", help="A deliberate shift, for drift checks: from this UTC "
                     "date on, --campaign-share of new leads come from a launch in "
                     "--campaign-country."),
    ] = None,
    campaign_share: Annotated[
        float, typer.Option("--campaign-share", min=0.0, max=1.0,
                            help="Share of leads created from --campaign-from that the launch brings.")
    ] = 0.5,
    campaign_country: Annotated[
        str, typer.Option("--campaign-country", help="Country of the launch (US, GB, DE, FR, ...).")
    ] = "DE",
) -> None:
    """Simulate a CRM (leads, activities, outcomes) with its ground-truth conversion probabilities."""
    # Imported here so that `leadscore --help` stays fast.
    from features.synthetic import GeneratorConfig, write_crm
    from features.synthetic import generate as simulate

    if leads < 1:
        raise typer.BadParameter(f"{leads} is not a number of leads; expected an int >= 1", param_hint="--leads")
    if seed < 0:
        raise typer.BadParameter(f"{seed} is not a seed; expected an int >= 0", param_hint="--seed")
    if truth_sample is not None and truth_sample < 0:
        raise typer.BadParameter(
            f"{truth_sample} is not a sample size; expected an int >= 0", param_hint="--truth-sample"
        )
    if truth_paths < 1:
        raise typer.BadParameter(
            f"{truth_paths} is not a number of paths; expected an int >= 1", param_hint="--truth-paths"
        )
    start_ts = _midnight(start, option="--start")
    end_ts = _midnight(end, option="--end")
    if (end_ts - start_ts).days < 28:
        raise typer.BadParameter(
            f"{end!r} is too early; expected a date at least 28 days after --start {start}",
            param_hint="--end",
        )
    horizon_td = parse_duration(horizon, option="--horizon")
    if horizon_td % pd.Timedelta(days=1):
        raise typer.BadParameter(
            f"{horizon!r} is not a whole number of days; expected e.g. 90d", param_hint="--horizon"
        )
    launch = None if campaign_from is None else _midnight(campaign_from, option="--campaign-from")
    try:
        config = GeneratorConfig(
            n_leads=leads, seed=seed, start=start_ts, end=end_ts, horizon=horizon_td,
            truth_sample=truth_sample, truth_paths=truth_paths, campaign_from=launch,
            campaign_share=campaign_share, campaign_country=campaign_country.strip().upper(),
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--campaign-country") from exc
    began = time.perf_counter()
    with console.status(f"Simulating {leads:,} leads from {start} to {end}..."):
        crm = simulate(config)
        paths = write_crm(crm, out)
    stats = crm.stats
    console.print(
        f"Wrote {', '.join(str(p) for p in paths.values())} in {time.perf_counter() - began:.1f} s: "
        f"{stats['leads']:,} leads, {stats['activities']:,} activities "
        f"({stats['activities_per_lead']:.1f} per lead), {stats['converted_share']:.1%} converted, "
        f"truth for {stats['truth_leads']:,} leads ({truth_paths} Monte Carlo paths each)."
    )
