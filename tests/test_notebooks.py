"""The notebooks in notebooks/ run top to bottom, and none is committed with outputs.

Each notebook reads its parameters from the environment (work directory, number of
leads, trees, MLflow store), so the test runs it on small generated data with MLflow
pointed at ``tmp_path``: the repository's mlflow/ is never touched.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ("01-explore-data", "02-retrain-and-promote", "03-explain-scores")
BUDGET_S = 90  # each takes ~20-40 s on 2 shared cores; the target is ~60 s


def test_every_notebook_is_tested() -> None:
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
             and (cell.outputs or cell.execution_count is not None)]
    assert not dirty, (f"{path.name}: cells {dirty} have outputs; clear them before committing "
                       "(Jupyter: Edit > Clear Outputs of All Cells)")


def test_notebooks_define_no_functions() -> None:
    # STYLE principle 12: the logic lives in the packages; a notebook only calls it.
    for path in NOTEBOOKS.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert "def " not in cell.source and "class " not in cell.source, path.name


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name: str, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    nb = _run(name, tmp_path, monkeypatch)
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if "image/png" in o.get("data", {})]
    assert images, f"{name} drew no figure"


@pytest.mark.notebook
@pytest.mark.slow
def test_the_retrain_notebook_retrains_from_a_dataset_spec(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """DATASET points the notebook at a user's own CRM: a version-2 spec with its own
    field names, a deals table and its own activity types."""
    from tests.training.test_from_spec import write_crm

    crm = tmp_path / "crm"
    crm.mkdir()
    monkeypatch.setenv("LEADSCORE_NB_DATASET", str(write_crm(crm, n=1500)))
    nb = _run("02-retrain-and-promote", tmp_path, monkeypatch)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.outputs)
    assert "spec:acme:" in text  # the spec's feature set, not the built-in one
    assert "promoted" in text


@pytest.mark.notebook
@pytest.mark.slow
def test_the_explain_notebook_explains_a_spec_model_in_its_words(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DATASET again: the fields, the grouping and the reasons are the spec's, not ours."""
    from tests.training.test_from_spec import write_crm

    crm = tmp_path / "crm"
    crm.mkdir()
    monkeypatch.setenv("LEADSCORE_NB_DATASET", str(write_crm(crm, n=1500)))
    nb = _run("03-explain-scores", tmp_path, monkeypatch)
    text = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "")
                   for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "spec:acme:" in text  # the model's feature set is the spec's
    assert "Lead source" in text and "Company size" in text  # the spec's labels as fields
    assert "booked a call" in text.lower()  # an activity kind's label, in the reasons
    assert "pricing" not in text.lower()  # nothing of the built-in vocabulary


def _run(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    work = tmp_path / "work"
    work.mkdir()
    # The kernel inherits this environment: small data, few trees, a tmp store
    # (MLFLOW_TRACKING_URI is already tmp_path's, set by tests/conftest.py).
    monkeypatch.setenv("LEADSCORE_NB_WORKDIR", str(work))
    monkeypatch.setenv("LEADSCORE_NB_LEADS", "3000")
    monkeypatch.setenv("LEADSCORE_NB_TREES", "40")
    # Figures go through ipykernel's inline backend (headless), as they would in Jupyter.
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    # The 'python3' kernelspec (ipykernel's, in the venv) says "python"; jupyter_client
    # launches that as sys.executable. Check it, so the notebooks never run on another
    # interpreter that happens to be on PATH.
    km = KernelManager(kernel_name="python3")
    assert km.format_kernel_cmd()[0] == sys.executable, km.format_kernel_cmd()
    client = NotebookClient(nb, km=km, timeout=BUDGET_S, kernel_name="python3",
                            resources={"metadata": {"path": str(work)}})
    started = time.monotonic()
    client.execute()
    took = time.monotonic() - started
    assert took < BUDGET_S * 1.5, f"{name} took {took:.0f} s"
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    return nb
