"""Commands: ``serve`` (the BentoML API server) and ``quickstart`` (data, model, serve).

``serve`` never trains: it serves the champion the registry points at, or answers from
the rules (``fallback_reason: no_model``) until one is promoted, and picks up
promotions while running. ``quickstart`` is the README's one command on an empty
checkout: it generates synthetic data, trains and promotes a model when there is no
champion, then serves, skipping each step already done.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import typer
from pydantic import ValidationError

from features.errors import LeadscoreError
from leadscore.cli._common import console, settings
from leadscore.cli.app import app
from leadscore.settings import Settings

QUICKSTART_LEADS = 20_000
QUICKSTART_SEED = 7
_CODE_ROOT = Path(__file__).resolve().parents[2]


def server_command(host: str, port: int, workers: int) -> list[str]:
    """The ``bentoml serve`` command line for the service.

    It runs through :mod:`serving.launch`, which gives the server a Prometheus
    multiprocess directory of its own: BentoML's shared one under ``BENTOML_HOME`` is
    emptied by every server that starts, wiping the metrics of any server already
    running."""
    return [
        sys.executable, "-m", "serving.launch", "serve", "serving.service:LeadScoring",
        "--host", host, "--port", str(port), "--working-dir", str(_CODE_ROOT),
    ]


def server_env(cfg: Settings, workers: int, base: dict[str, str] | None = None
               ) -> dict[str, str]:
    """The server's environment: telemetry off, one OpenMP thread per worker, workers."""
    env = dict(os.environ if base is None else base)
    env.update({"BENTOML_DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true",
                "DO_NOT_TRACK": "1"})
    # Each worker is a process; OpenMP threads per worker would fight over the cores.
    env.setdefault("OMP_NUM_THREADS", "1")
    # The service reads its Settings from the environment at start-up; pass the home
    # resolved here so the server finds the same MLflow store as this command.
    env.setdefault("LEADSCORE_HOME", str(cfg.home))
    options = env.get("BENTOML_CONFIG_OPTIONS", "")
    env["BENTOML_CONFIG_OPTIONS"] = f"{options} services.LeadScoring.workers={workers}".strip()
    return env


def _serve_settings() -> Settings:
    """The settings, or a clean refusal naming the bad setting (an empty API key, say)."""
    try:
        return settings()
    except ValidationError as exc:
        raise LeadscoreError("; ".join(
            str(err["msg"]).removeprefix("Value error, ")
            for err in exc.errors(include_url=False, include_input=False)
        )) from None


def _check_auth(cfg: Settings) -> None:
    if cfg.api_key is None and not cfg.allow_unauthenticated:
        raise LeadscoreError(
            "LEADSCORE_API_KEY is not set. Set it to the key CRMs must send as "
            "'Authorization: Bearer <key>', or set LEADSCORE_ALLOW_UNAUTHENTICATED=true to "
            "run without one (development only)."
        )


def _announce_model(cfg: Settings) -> None:
    """Say what will be served. Resolving once here also creates a local SQLite store
    before the workers start, so they do not race to create its tables."""
    if cfg.model_uri:
        console.print(f"model: pinned to {cfg.model_uri}")
        return
    from training.tracking import resolve_alias

    try:
        found = resolve_alias(cfg)
    except Exception as exc:  # noqa: BLE001  (the server starts on the rules and keeps polling)
        console.print(f"model registry unreachable ({type(exc).__name__}); the rules answer "
                      "until it is back")
        return
    if found is None:
        console.print(f"model: no '{cfg.model_alias}' of {cfg.model_name} yet; the rules "
                      "answer (fallback_reason no_model) until one is promoted")
    else:
        console.print(f"model: {found[0]} version {found[1]} ('{cfg.model_alias}')")


def _run_server(cfg: Settings, host: str, port: int, workers: int,
                env: dict[str, str] | None = None) -> None:
    _announce_model(cfg)
    command = server_command(host, port, workers)
    console.print(f"serving on http://{host}:{port} (docs at /, {workers} worker(s)); "
                  f"model {cfg.model_uri or f'{cfg.model_name}@{cfg.model_alias}'}, "
                  f"store {cfg.resolved_tracking_uri}")
    # The server is a child process so that Ctrl-C stops it cleanly and its exit code
    # becomes ours. A SIGTERM sent to this process alone (a process manager stopping
    # the pid it started) is passed on, and this process waits for the server to finish
    # stopping: exiting at once would orphan it, metrics directory included.
    proc = subprocess.Popen(command, env=env or server_env(cfg, workers))
    previous = signal.signal(signal.SIGTERM, lambda signum, _: proc.send_signal(signum))
    try:
        while True:
            try:
                returncode = proc.wait()
                break
            except KeyboardInterrupt:
                continue  # the server got the same Ctrl-C (one process group); it is stopping
    finally:
        signal.signal(signal.SIGTERM, previous)
    if returncode not in (0, -2, -15, 130):
        raise typer.Exit(returncode)


_HOST = typer.Option("127.0.0.1", "--host", help="Interface to listen on.")
_PORT = typer.Option(3000, "--port", min=1, max=65535, help="Port to listen on.")
_WORKERS = typer.Option(1, "--workers", min=1, help="Worker processes (about one per core).")


@app.command("serve")
def serve_command(
    host: str = _HOST, port: int = _PORT, workers: int = _WORKERS,
    dataset: Path | None = typer.Option(
        None, "--dataset", dir_okay=False,
        help="Speak this dataset spec's contract (its CRM's field names); default: the "
        "champion's own spec, else the built-in one. A champion of another spec is refused.",
    ),
) -> None:
    """Serve the scoring API. Never trains: without a champion the rules answer."""
    cfg = _serve_settings()
    _check_auth(cfg)
    env = None
    if dataset is not None:
        from features.spec import load_spec

        load_spec(dataset)  # a bad spec is refused here, with its key paths, not in a worker
        env = server_env(cfg, workers)
        env["LEADSCORE_DATASET"] = str(dataset.resolve())
    _run_server(cfg, host, port, workers, env=env)


def _cli(*args: str) -> None:
    """Run another leadscore command in a child process, as the user would."""
    command = [sys.executable, "-c", "from leadscore.cli import main; main()", *args]
    console.print(f"$ leadscore {' '.join(args)}")
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


@app.command("quickstart")
def quickstart_command(host: str = _HOST, port: int = _PORT, workers: int = _WORKERS) -> None:
    """Generate data, train and promote a model if needed, then serve. Each step is skipped
    when already done."""
    cfg = _serve_settings()
    data = cfg.data_dir / "synthetic"
    if (data / "leads.parquet").is_file() and (data / "activities.parquet").is_file():
        console.print(f"1/3 synthetic data: found in {data}, skipping")
    else:
        console.print(f"1/3 synthetic data: generating {QUICKSTART_LEADS:,} leads "
                      f"(seed {QUICKSTART_SEED}) into {data}")
        _cli("generate", "--leads", str(QUICKSTART_LEADS), "--seed", str(QUICKSTART_SEED),
             "--out", str(data))

    from training.tracking import resolve_alias

    champion = resolve_alias(cfg)
    if champion is not None:
        console.print(f"2/3 model: {champion[0]} version {champion[1]} is "
                      f"'{cfg.model_alias}', skipping training")
    else:
        console.print(f"2/3 model: no '{cfg.model_alias}' yet; training and promoting one")
        _cli("train", "--data", str(data), "--promote")

    env = None
    if cfg.api_key is None and not cfg.allow_unauthenticated:
        console.print(
            "[bold yellow]WARNING: LEADSCORE_API_KEY is not set. quickstart is a local demo, "
            "so it serves WITHOUT authentication on "
            f"{host}. Set LEADSCORE_API_KEY for anything else.[/]", markup=True,
        )
        env = server_env(cfg, workers)
        env["LEADSCORE_ALLOW_UNAUTHENTICATED"] = "true"
    console.print("3/3 serving")
    _run_server(cfg, host, port, workers, env=env)
