"""MLflow plumbing shared by training, promotion and serving.

Every function takes the :class:`~leadscore.settings.Settings` built at the entry
point and sets the tracking and registry URIs *explicitly* from it: MLflow's own
default (``./mlruns``) depends on the current directory, so two commands run from two
directories would otherwise talk to two different stores.

Artifacts: ``Settings.artifact_root`` (``LEADSCORE_ARTIFACT_ROOT``) wins when set. Else,
with the default local store, experiments keep artifacts under ``<home>/mlflow/artifacts``
(``Settings.artifact_location``); with an explicit SQLite URI (tests, ad-hoc stores)
beside the database file, in ``mlartifacts/``; with another database URI (a team's
PostgreSQL, ``postgresql+psycopg://...``) under ``<home>/mlflow/artifacts`` too: MLflow
itself, with no tracking server in between, would put them in ``./mlruns`` of whatever
directory a command runs from (mlflow/mlflow#4077). A team sharing such a store sets a
shared ``LEADSCORE_ARTIFACT_ROOT``. An HTTP tracking server keeps its own default.
"""

from __future__ import annotations

import logging
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing mlflow takes a second; serving imports this module early
    from leadscore.settings import Settings
    from mlflow import MlflowClient
    from training.model import LeadModel

__all__ = [
    "DEFAULT_EXPERIMENT",
    "configure",
    "artifact_root",
    "ensure_experiment",
    "resolve_alias",
    "load_lead_model",
    "requirement_mismatches",
    "git_commit",
]

DEFAULT_EXPERIMENT = "lead-scoring"
_log = logging.getLogger(__name__)


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    # sqlite:////abs/path.db -> /abs/path.db; sqlite:///rel.db is relative, as in SQLAlchemy.
    return Path(uri[len("sqlite:///"):].split("?", 1)[0])


_DATABASE_SCHEMES = ("postgresql", "mysql", "mssql", "sqlite")


def artifact_root(settings: Settings) -> str | None:
    """Artifact location for new experiments, or None to use the server's default."""
    if settings.artifact_root:
        return settings.artifact_root
    if settings.artifact_location:
        return settings.artifact_location
    uri = settings.resolved_tracking_uri
    db = _sqlite_path(uri)
    if db is not None:
        return (db.resolve().parent / "mlartifacts").as_uri()
    if uri.split(":", 1)[0].split("+", 1)[0].lower() in _DATABASE_SCHEMES:
        return (settings.mlflow_dir / "artifacts").as_uri()
    return None


def configure(settings: Settings) -> MlflowClient:
    """Point MLflow (fluent API and a client) at the settings' store and return the client.

    Creates ``<home>/mlflow/`` when the default local store is used: that is the one
    directory MLflow cannot create for a SQLite URI itself.
    """
    import mlflow
    from mlflow import MlflowClient

    tracking = settings.resolved_tracking_uri
    registry = settings.registry_uri or tracking
    db = _sqlite_path(tracking)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(registry)
    return MlflowClient(tracking_uri=tracking, registry_uri=registry)


def ensure_experiment(client: MlflowClient, name: str, settings: Settings) -> str:
    """The experiment's id, creating it (with our artifact root) when missing.

    Each experiment gets a folder of its own under the artifact root, named after it.
    """
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    root = artifact_root(settings)
    location = f"{root.rstrip('/')}/{re.sub(r'[^0-9A-Za-z_.-]', '_', name)}" if root else None
    return client.create_experiment(name, artifact_location=location)


def resolve_alias(
    settings: Settings, client: MlflowClient | None = None, alias: str | None = None
) -> tuple[str, str, str] | None:
    """``(name, version, uri)`` of the model the alias points to, or None if unset.

    The URI pins the version (``models:/lead-scoring/7``), not the alias: whoever
    resolves it serves that version until it resolves again (STYLE principle 13).
    """
    from mlflow.exceptions import MlflowException

    client = client or configure(settings)
    name, alias = settings.model_name, alias or settings.model_alias
    try:
        version = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        # A missing model or alias is an answer ("nothing promoted yet"), not an error;
        # anything else (store unreachable, corrupt) must surface.
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
            return None
        raise
    return name, str(version.version), f"models:/{name}/{version.version}"


def champion_or_exit(settings: Settings) -> tuple[str, str, str]:
    """``(name, version, uri)`` of the champion, for scripts (the benchmarks): without
    one, exit with what to run first."""
    found = resolve_alias(settings)
    if found is None:
        raise SystemExit("no champion in the store; run `leadscore quickstart` first")
    return found


def load_lead_model(uri: str) -> LeadModel:
    """The :class:`~training.model.LeadModel` inside a logged pyfunc (URI of any kind).

    A package the model was logged with at another version than the one installed is
    logged as a warning, as MLflow does. MLflow's own check maps every installed
    distribution to its modules first (0.7 s, more than loading the model), so it is
    replaced by :func:`requirement_mismatches`, which asks only for the pinned packages.
    """
    import mlflow.artifacts
    import mlflow.pyfunc

    local = mlflow.artifacts.download_artifacts(artifact_uri=uri)
    for mismatch in requirement_mismatches(Path(local) / "requirements.txt"):
        _log.warning("model %s: %s", uri, mismatch)
    return mlflow.pyfunc.load_model(local, suppress_warnings=True).unwrap_python_model().model


def requirement_mismatches(requirements: Path) -> list[str]:
    """Pinned requirements of a logged model that the environment does not satisfy.

    One line per package, e.g. ``lightgbm 4.6.0 is installed, the model was logged with
    lightgbm==4.7.0``. Unparsable lines (paths, URLs) are skipped, as MLflow does.
    """
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import InvalidRequirement, Requirement

    try:
        lines = requirements.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            installed = version(req.name)
        except PackageNotFoundError:
            out.append(f"{req.name} is not installed, the model was logged with {line}")
            continue
        if req.specifier and not req.specifier.contains(installed, prereleases=True):
            out.append(f"{req.name} {installed} is installed, the model was logged with {line}")
    return out


def git_commit(path: Path | None = None) -> str | None:
    """The checkout's HEAD commit (suffixed ``-dirty`` if modified), or None outside git."""
    where = path or Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if dirty else head or None
