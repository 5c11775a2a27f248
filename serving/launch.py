"""``python -m serving.launch serve ...``: BentoML's CLI, with a metrics directory of its own.

BentoML 1.4 keeps Prometheus' multiprocess files in ``$BENTOML_HOME/prometheus_multiproc_dir``
(``BentoMLContainer.prometheus_multiproc_dir``; the ``PROMETHEUS_MULTIPROC_DIR`` variable
is not read, it is *set* for the workers from that path) and ``bentoml serve`` empties
it at start-up (``bentoml.serving.ensure_prometheus_dir``). A second server on the same
home therefore wiped the first one's counters, and the first one's ``/metrics`` then
showed the second's. This entry point gives each server a fresh temporary directory,
set before BentoML reads it, and removes it when the server stops. ``leadscore serve``
starts BentoML through it (see ``leadscore.cli.serve_cmd.server_command``).
"""

from __future__ import annotations

import shutil
import sys
import tempfile

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Run ``bentoml <argv>`` with this server's own Prometheus multiprocess directory."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    directory = tempfile.mkdtemp(prefix="leadscore-metrics-")
    BentoMLContainer.prometheus_multiproc_dir.set(directory)
    try:
        from bentoml_cli.cli import cli

        cli.main(args=sys.argv[1:] if argv is None else argv, prog_name="bentoml")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
