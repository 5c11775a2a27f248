"""What every command shares: settings, errors, durations, console output."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
import typer
from rich.console import Console

from leadscore.settings import Settings, disable_telemetry

# soft_wrap: rich would otherwise hard-wrap every message at the terminal width, or at
# 80 columns when the output is not a terminal (a log, a pipe, a test runner), cutting
# paths and messages in two. A terminal still wraps long lines for display.
console = Console(stderr=True, soft_wrap=True)

_DURATION_RE = re.compile(r"^\s*(\d+)\s*([dhw])\s*$")
_UNITS = {"d": "days", "h": "hours", "w": "weeks"}


def settings() -> Settings:
    """Build the settings for this command, with telemetry off."""
    disable_telemetry()
    return Settings()


def json_text(value: Any) -> str:
    """``value`` as strict JSON: NaN and infinities become null.

    ``json.dumps`` writes them as ``NaN``/``Infinity``, which no strict JSON parser
    reads (jq, JavaScript's ``JSON.parse``). Other objects are written as ``str``.
    """
    return json.dumps(_finite(value), default=str, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def parse_duration(value: str, *, option: str) -> pd.Timedelta:
    """'7d', '12h' or '2w' as a Timedelta, or a clear error naming the option."""
    match = _DURATION_RE.match(value)
    if not match or int(match.group(1)) <= 0:
        raise typer.BadParameter(
            f"{value!r} is not a duration; expected a positive number followed by d, h or w, "
            "such as '7d'",
            param_hint=option,
        )
    return pd.Timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_timestamp(value: str | None, *, option: str) -> pd.Timestamp | None:
    """An ISO 8601 timestamp as a UTC Timestamp; naive values are read as UTC."""
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise typer.BadParameter(
            f"{value!r} is not a timestamp; expected ISO 8601 such as 2026-03-01T00:00:00Z",
            param_hint=option,
        ) from exc
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


class _ConsoleHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        console.print(self.format(record), highlight=False, markup=False)


@contextmanager
def echo_log(name: str, level: int = logging.INFO) -> Iterator[None]:
    """Print the ``name`` logger's records on the console while the block runs.

    For progress a long command owes its user (each tuning trial as it ends), without
    turning on the library's other logging.
    """
    log = logging.getLogger(name)
    handler = _ConsoleHandler(level)
    previous = log.level
    log.addHandler(handler)
    log.setLevel(min(level, previous) if previous else level)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(previous)
