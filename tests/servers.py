"""Helpers for tests that start a real server: a free port, polling, a registered champion.

One copy for the integration, browser, batch and reliability tests.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], Any], timeout: float, what: str,
               interval: float = 0.3) -> Any:
    """Call ``check`` until it returns something truthy; fail naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def register_model(model: Any, artifacts: Path, *, experiment: str,
                   settings: Any = None, promote: bool = True) -> str:
    """Log ``model`` as the project's pyfunc, register it, and (by default) make it champion.

    ``settings`` defaults to ``Settings()`` from the current environment. Returns the
    registered version.
    """
    import mlflow
    from leadscore.settings import Settings
    from training import tracking
    from training.pyfunc import LeadScoringModel, pip_requirements, write_artifacts

    settings = settings or Settings()
    client = tracking.configure(settings)
    exp = tracking.ensure_experiment(client, experiment, settings)
    with mlflow.start_run(experiment_id=exp):
        info = mlflow.pyfunc.log_model(
            name="model", python_model=LeadScoringModel(),
            artifacts=write_artifacts(model, artifacts / f"art-{id(model)}-{time.time_ns()}"),
            pip_requirements=pip_requirements(), registered_model_name=settings.model_name,
        )
    version = str(info.registered_model_version)
    if promote:
        client.set_registered_model_alias(settings.model_name, settings.model_alias, version)
    return version


LEADSCORE_SERVE = (sys.executable, "-c", "from leadscore.cli import main; main()", "serve")


def spawn_server(env: dict[str, str], log_path: Path,
                 command: Sequence[str] = LEADSCORE_SERVE) -> tuple[str, subprocess.Popen]:
    """Start ``command --port <free port>`` (``leadscore serve`` by default) in its own
    process group, logging to ``log_path``; return its base URL and the process (stop it
    with :func:`stop_server`)."""
    port = free_port()
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [*command, "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    return f"http://127.0.0.1:{port}", proc


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (BentoML's workers too); SIGKILL after 30 s.

    Stopping a server already stopped (a test that stops it to read the whole log, then
    its fixture) does nothing."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        proc.wait()
        return
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
