"""Tables in leadscore's own data contract, read through a spec that says ``contract: builtin``.

The built-in contract (:mod:`features.schema`: a leads table and an activities table
with fixed column names) is one dataset spec among others: ``features/specs/builtin.yaml``.
Its tables come from any source a spec can name (files, DuckDB, a database URL), and
are then validated by the contract's own boundary (:func:`features.schema.validate_leads`,
:func:`~features.schema.validate_activities`, with their documented policies) rather
than by column roles, and scored with the built-in feature set, whose fit features are
derived from the contract's columns (company-size band, region, free-mail flag, profile
completeness, touch channels).

The spec's ``columns`` sections name the contract's columns; a test holds them to
:mod:`features.schema`, so the file documents the contract truthfully.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.schema import LEAD_NUMERIC_FIELDS, validate_activities, validate_leads

__all__ = ["load_contract_tables", "builtin_kinds", "builtin_spec_path"]


def builtin_spec_path() -> Path:
    """The shipped spec of the built-in data contract, ``features/specs/builtin.yaml``."""
    return Path(__file__).resolve().parents[1] / "specs" / "builtin.yaml"


def builtin_kinds():
    """The built-in activity types as spec kinds (name, sentence label, weight, key action)."""
    from features.history import BUILTIN_VOCABULARY
    from features.registry import _TYPE_WORDS
    from features.spec.tables import ActivityKind

    v = BUILTIN_VOCABULARY
    return tuple(
        ActivityKind(name=kind, label=_TYPE_WORDS[kind][3], weight=float(weight),
                     key_action=kind in v.key_actions, types=(kind,))
        for kind, weight in zip(v.kinds, v.weights, strict=True)
    )


def _contract_fingerprint(files: dict[str, Path], frames: dict[str, pd.DataFrame],
                          leads: pd.DataFrame, activities: pd.DataFrame | None) -> str:
    """The tables' content hash: their files' bytes when every table is a file (hashing
    the frames cost half of reading a 700k-event history), else the loaded frames."""
    import hashlib

    from features.spec.sources import file_sha256
    from features.spec.values import _fingerprint

    if set(files) == set(frames):
        digest = hashlib.sha256()
        for name in sorted(files):
            digest.update(f"[{name}]{file_sha256(files[name])}".encode())
        return digest.hexdigest()
    return _fingerprint({"leads": leads, "activities": activities})


def load_contract_tables(spec, data_dir: Path | None, *, assume_utc: bool = False):
    """Read a ``contract: builtin`` spec's tables and validate them by the contract.

    ``assume_utc`` reads naive timestamps as UTC whatever the tables' ``read`` options say
    (the CLI's ``--assume-utc``).

    Raises
    ------
    SpecError
        A source that is missing, unreadable or unreachable.
    DataValidationError
        Listing every bad value by table, field, value, row and lead.
    """
    from features.spec.load import training_options
    from features.spec.sources import open_table
    from features.spec.tables import SpecTables

    frames: dict[str, pd.DataFrame] = {}
    sources: dict[str, str] = {}
    files: dict[str, Path] = {}
    read_options = {}
    for name in ("leads", "activities"):
        table = getattr(spec.tables, name)
        if table is None:
            continue
        src = open_table(spec, name, data_dir)
        numeric = set(LEAD_NUMERIC_FIELDS) if name == "leads" else {"duration_s"}
        header = src.header()
        frames[name] = src.read(header, numeric=numeric & set(header))
        sources[name] = src.description
        read_options[name] = table.read
        if src.path is not None:
            files[name] = src.path
    leads = validate_leads(frames["leads"],
                           assume_utc=assume_utc or read_options["leads"].assume_utc)
    activities = None
    unknown: dict[str, int] = {}
    if "activities" in frames:
        validated = validate_activities(frames["activities"], lead_ids=leads["lead_id"],
                                        assume_utc=assume_utc
                                        or read_options["activities"].assume_utc)
        activities, unknown = validated.frame, validated.unknown_types
    return SpecTables(
        spec=spec,
        leads=leads,
        leaky=pd.DataFrame({"lead_id": leads["lead_id"]}),
        activities=activities,
        kinds=builtin_kinds() if activities is not None else (),
        unmapped_types=dict(sorted(unknown.items(), key=lambda kv: -kv[1])),
        policy_counts={},
        categorical=(),
        numeric=(),
        leaky_names=(),
        time_columns=(),
        value_columns=(),
        labels={},
        descriptions={},
        original_names={},
        leaky_reasons={},
        fingerprint=_contract_fingerprint(files, frames, leads, activities),
        sources=sources,
        rows_read={name: len(frame) for name, frame in frames.items()},
        has_time=True,
        training=training_options(spec),
        files=files,
    )
