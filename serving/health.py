"""The last batch run's health, for ``/model`` and ``/metrics``.

``leadscore rescore --out DIR`` writes each run's drift against the model's reference to
``DIR/runs/<run_id>/_health.json`` (:mod:`features.drift`) and points ``DIR/scores`` at
the committed run. The service reads ``DIR/scores/_health.json`` (``DIR`` is
``LEADSCORE_BATCH_DIR``, else the parent of ``LEADSCORE_HISTORY_DIR``), at most once per
poll interval, and never fails a request over it: a missing or unreadable file is "no
batch health", logged once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["BatchHealthReader", "batch_dir_of"]

logger = logging.getLogger("leadscore.serving")


def batch_dir_of(settings: Any) -> Path | None:
    """The rescore output folder the service reports on, or None."""
    if getattr(settings, "batch_dir", None) is not None:
        return Path(settings.batch_dir)
    if getattr(settings, "history_dir", None) is not None:
        return Path(settings.history_dir).parent
    return None


class BatchHealthReader:
    """Reads the committed run's ``_health.json``; re-reads after ``every_s`` seconds."""

    def __init__(self, batch_dir: Path | None, every_s: float = 30.0) -> None:
        self.path = None if batch_dir is None else Path(batch_dir) / "scores" / "_health.json"
        self.every_s = every_s
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._value: dict[str, Any] | None = None
        self._warned = False

    def current(self) -> dict[str, Any] | None:
        """The slim health of the last committed run (no per-feature table), or None."""
        if self.path is None:
            return None
        now = time.monotonic()
        with self._lock:
            if now - self._read_at < self.every_s:
                return self._value
            self._read_at = now
            try:
                full = json.loads(self.path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                self._value = None
                return None
            except (OSError, ValueError) as exc:
                if not self._warned:
                    logger.warning("cannot read the batch health %s: %s", self.path, exc)
                    self._warned = True
                self._value = None
                return None
            alert = full.get("thresholds", {}).get("alert", 0.25)
            self._value = {
                "run_id": full.get("run_id"), "as_of": full.get("as_of"),
                "model": full.get("model"), "score_psi": full.get("score_psi"),
                "score_level": full.get("score_level"), "n_features": full.get("n_features", 0),
                "n_drifted": full.get("n_drifted", 0), "n_moderate": full.get("n_moderate", 0),
                "thresholds": full.get("thresholds", {}),
                "estimate": full.get("estimate"),
                "drifted": [{"feature": f["feature"], "label": f.get("label", f["feature"]),
                             "psi": f["psi"]}
                            for f in full.get("features", []) if f.get("psi", 0) > alert],
            }
            return self._value
