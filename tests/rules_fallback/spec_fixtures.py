"""Tiny hand-built dataset specs and their CSVs, written into a test's tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

TIME_SPEC = """\
version: 2
name: tiny
tables:
  leads:
    source: leads.csv
    read: {assume_utc: true}
    columns:
      id: Lead Id
      created_at: Created
      converted_at: Won
      categorical:
        - {column: Lead Source, label: Lead source}
        - {column: Industry}
      numeric:
        - {column: Visits, label: Website visits}
      pii: [Email]
  activities:
    source: activities.csv
    read: {assume_utc: true}
    columns: {lead_id: Lead Id, occurred_at: At, type: What}
    kinds:
      demo: {types: [Demo Request], label: asked for a demo, weight: 3, key_action: true}
      email_open: {types: [Email Open], label: opened an email}
      unsubscribe: {types: [Unsubscribed], label: unsubscribed, weight: 0}
training: {horizon: 30d, every: 14d}
"""

FLAT_SPEC = """\
version: 1
name: flat
source: flat.csv
columns:
  id: Prospect ID
  label: {column: Converted, positive: [1], negative: [0]}
  categorical:
    - {column: Lead Source, label: Lead source}
  numeric:
    - {column: Total Visits, label: Website visits}
  pii: [Phone]
"""


def write_time_spec(directory: Path, n: int = 120, seed: int = 3) -> Path:
    """A spec with time: leads (source, industry, visits, a pii email) and an activity log.

    Referral leads and leads that asked for a demo convert far more often; those who
    unsubscribed rarely do.
    """
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-01-01")
    created = start + pd.to_timedelta(rng.integers(0, 40, n), unit="D")
    source = rng.choice(["Web", "Referral", "Ads"], n, p=[0.5, 0.2, 0.3])
    industry = rng.choice(["Software", "Retail", "software "], n, p=[0.5, 0.4, 0.1])
    visits = rng.integers(0, 30, n).astype(float)
    visits[rng.random(n) < 0.1] = np.nan
    demo = rng.random(n) < 0.35
    unsub = (~demo) & (rng.random(n) < 0.25)
    p = 0.15 + 0.4 * (source == "Referral") + 0.35 * demo - 0.12 * unsub
    won = rng.random(n) < np.clip(p, 0.02, 0.95)
    won_at = created + pd.to_timedelta(rng.integers(10, 25, n), unit="D")
    leads = pd.DataFrame({
        "Lead Id": [f"L{i:03d}" for i in range(n)],
        "Created": created.strftime("%Y-%m-%d %H:%M:%S"),
        "Won": np.where(won, won_at.strftime("%Y-%m-%d %H:%M:%S"), ""),
        "Lead Source": source,
        "Industry": industry,
        "Visits": visits,
        "Email": [f"person{i}@example.com" for i in range(n)],
    })
    rows = []
    for i in range(n):
        for _ in range(int(rng.integers(0, 4))):
            rows.append((i, "Email Open", int(rng.integers(0, 9))))
        if demo[i]:
            rows.append((i, "Demo Request", int(rng.integers(1, 9))))
        if unsub[i]:
            rows.append((i, "Unsubscribed", int(rng.integers(0, 9))))
    activities = pd.DataFrame({
        "Lead Id": [f"L{i:03d}" for i, _, _ in rows],
        "At": [(created[i] + pd.Timedelta(days=d)).strftime("%Y-%m-%d %H:%M:%S") for i, _, d in rows],
        "What": [t for _, t, _ in rows],
    })
    directory.mkdir(parents=True, exist_ok=True)
    leads.to_csv(directory / "leads.csv", index=False)
    activities.to_csv(directory / "activities.csv", index=False)
    path = directory / "tiny.yaml"
    path.write_text(TIME_SPEC, encoding="utf-8")
    return path


def write_flat_spec(directory: Path, n: int = 300, seed: int = 5) -> Path:
    """A flat spec without time: a label column, a source and a number of visits."""
    rng = np.random.default_rng(seed)
    source = rng.choice(["Olark Chat", "Google", "Reference"], n, p=[0.4, 0.45, 0.15])
    visits = rng.integers(0, 20, n).astype(float)
    p = 0.1 + 0.6 * (source == "Reference") + 0.02 * visits
    frame = pd.DataFrame({
        "Prospect ID": [f"p-{i}" for i in range(n)],
        "Converted": (rng.random(n) < np.clip(p, 0, 0.95)).astype(int),
        "Lead Source": source,
        "Total Visits": visits,
        "Phone": [f"+44 20 7946 {i:04d}" for i in range(n)],
    })
    directory.mkdir(parents=True, exist_ok=True)
    frame.to_csv(directory / "flat.csv", index=False)
    path = directory / "flat.yaml"
    path.write_text(FLAT_SPEC, encoding="utf-8")
    return path
