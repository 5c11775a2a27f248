"""The README's commands, read as a newcomer runs them in a fresh clone."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _commands() -> list[list[str]]:
    """Each ``leadscore`` command line of the README's bash blocks, as words."""
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [shlex.split(line, comments=True) for line in lines if "leadscore " in line]


def test_every_output_of_the_readmes_commands_is_git_ignored():
    outs = []
    for words in _commands():
        outs += [words[i + 1] for i, w in enumerate(words[:-1]) if w == "--out"]
    assert {"data/synthetic", "data/scores", "data/report.html"} <= set(outs), outs
    # --no-index: the rule, whatever this checkout happens to hold.
    done = subprocess.run(["git", "check-ignore", "--no-index", "--verbose", "--non-matching",
                           *outs], cwd=REPO, capture_output=True, text=True, check=False)
    not_ignored = [line.split("\t")[-1] for line in done.stdout.splitlines()
                   if line.startswith("::")]
    assert done.returncode in (0, 1), done.stderr
    assert not_ignored == [], f"README commands write {not_ignored} into the checkout, not ignored"


def test_bytecode_is_compiled_only_where_it_pays():
    # compile-bytecode in pyproject.toml compiled the whole stack (~13,000 files, 45 s)
    # on a newcomer's first `uv run` and printed "Bytecode compiled" on every later one,
    # against the README's "in seconds". CI imports everything: it compiles once.
    import tomllib

    uv = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["uv"]
    assert "compile-bytecode" not in uv
    assert re.search(r"^export .*\bUV_COMPILE_BYTECODE=1\b", (REPO / ".ci/run").read_text(),
                     flags=re.M)
    assert "UV_COMPILE_BYTECODE=1 uv sync --locked" in (REPO / "README.md").read_text()


def test_the_reasons_the_readme_quotes_describe_the_lead_its_curl_sends():
    """The README quotes the reasons its curl got back from the quickstart model: each
    quoted sentence must be what the registry says of that lead (it once quoted pricing
    visits "3 times in the last 7 days" for a lead with one visit)."""
    import json

    import pandas as pd

    from features.online import features_at
    from features.registry import FIELDS, reasons_for
    from serving.contract import ScoreRequest
    from serving.scorer import frames_from_payload

    text = (REPO / "README.md").read_text()
    text = text[text.index("### The service"):]  # the built-in contract's curl and reasons
    curl = text[text.index("curl -s -H 'Authorization"):]
    body = curl[curl.index("-d '") + 4:]
    request = ScoreRequest.model_validate(json.loads(body[:body.index("'")]))
    as_of = pd.Timestamp(request.as_of)
    leads, acts, _ = frames_from_payload(request.leads, default_as_of=as_of)
    row = features_at(leads, acts, as_of).iloc[0].to_dict()
    described = {r.sentence for r in reasons_for(
        row, {f: 0.0 for field in FIELDS.values() for f in field.features})}

    bullet = text[text.index("- **Each result:**"):]
    bullet = " ".join(bullet[:bullet.index("\n- **")].split())
    quoted = re.findall(r'"([^"]+)" \([+−-]', bullet)
    assert len(quoted) >= 3, bullet
    assert [q for q in quoted if q not in described] == [], sorted(described)
