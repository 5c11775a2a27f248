"""Where new experiments keep artifacts: never relative to the current directory."""

from __future__ import annotations

import pytest

from leadscore.settings import Settings
from training.tracking import artifact_root

PG = "postgresql+psycopg://team@db.internal:5432/mlflow"


@pytest.mark.parametrize(("uri", "expected"), [
    (None, "{home}/mlflow/artifacts"),
    ("sqlite:///{home}/store/mlflow.db", "{home}/store/mlartifacts"),
    (PG, "{home}/mlflow/artifacts"),
    ("mysql+pymysql://team@db/mlflow", "{home}/mlflow/artifacts"),
    ("http://mlflow.internal:5000", None),
])
def test_artifact_root_by_store(tmp_path, monkeypatch, uri, expected):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # the autouse isolation sets one
    home = tmp_path.resolve()
    kwargs = {"MLFLOW_TRACKING_URI": uri.format(home=home)} if uri else {}
    root = artifact_root(Settings(home=home, **kwargs))
    assert root == (None if expected is None else "file://" + expected.format(home=home))


def test_an_explicit_artifact_root_wins_and_a_path_becomes_a_file_uri(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for uri in (PG, "http://mlflow.internal:5000"):
        settings = Settings(home=tmp_path, MLFLOW_TRACKING_URI=uri, artifact_root="shared/arts")
        assert artifact_root(settings) == (tmp_path.resolve() / "shared" / "arts").as_uri()
    s3 = Settings(home=tmp_path, MLFLOW_TRACKING_URI=PG, artifact_root="s3://bucket/mlflow")
    assert artifact_root(s3) == "s3://bucket/mlflow"


def test_requirement_mismatches_name_each_unsatisfied_pin_and_skip_the_rest(tmp_path):
    from importlib.metadata import version

    from training.tracking import requirement_mismatches

    numpy_now = version("numpy")
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("\n".join([
        f"numpy=={numpy_now}",            # satisfied: not reported
        "lightgbm==0.0.1",                # another version than the installed one
        "no-such-package-leadscore==1.0",  # not installed
        "-r other.txt",                   # pip options and paths are skipped, as MLflow does
        "./wheels/thing.whl",
        "pandas>=1  # comment",
        'pyarrow==0.1; python_version < "3"',  # marker false here: not this environment's
        "",
    ]))
    found = requirement_mismatches(reqs)
    assert found == [
        f"lightgbm {version('lightgbm')} is installed, the model was logged with lightgbm==0.0.1",
        "no-such-package-leadscore is not installed, the model was logged with "
        "no-such-package-leadscore==1.0",
    ]
    assert requirement_mismatches(tmp_path / "missing.txt") == []
