"""Fuzz the real server from its own OpenAPI document with schemathesis.

Valid and invalid cases for every operation in ``/docs.json`` (the document BentoML
serves and integrators read), over HTTP with the key: no 5xx, every 4xx carries a
message, no stack trace in any body. 1,200 cases in full mode, 200 in CI's fast subset.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from tests.reliability.conftest import AUTH, FUZZ_CASES, Server

pytestmark = [pytest.mark.reliability, pytest.mark.integration, pytest.mark.slow]


def _message(text: str) -> str:
    """The human message of an error body: our ErrorResponse, or BentoML's/Starlette's."""
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()
    if isinstance(body, dict):
        for key in ("error", "detail", "message"):
            if body.get(key):
                return str(body[key])
    return ""


_STAMP = re.compile(r"^\s*[+-]?(\d{4,})-\d\d")


def _out_of_range_timestamps(body: object, path: str = "body") -> list[str]:
    """Where ``body`` holds an ISO timestamp outside pandas' range (years 1678-2261)."""
    if isinstance(body, dict):
        return [p for k, v in body.items() for p in _out_of_range_timestamps(v, f"{path}.{k}")]
    if isinstance(body, list):
        return [p for i, v in enumerate(body) for p in _out_of_range_timestamps(v, f"{path}[{i}]")]
    if isinstance(body, str) and (m := _STAMP.match(body)):
        return [] if 1678 <= int(m.group(1)) <= 2261 else [f"{path}={body!r}"]
    return []


def test_openapi_fuzz_no_5xx_and_every_4xx_says_why(model_server: Server):
    import requests
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(f"{model_server.base}/docs.json")
    operations = [r.ok() for r in schema.get_all_operations()]
    assert {"/score", "/explain"} <= {op.path for op in operations}
    strategy = st.one_of(schema.as_strategy(GenerationMode.POSITIVE),
                         schema.as_strategy(GenerationMode.NEGATIVE))
    seen: Counter[tuple[str, int]] = Counter()
    problems: list[str] = []
    known: list[str] = []
    session = requests.Session()

    @settings(max_examples=FUZZ_CASES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), derandomize=True)
    @given(case=strategy)
    def one(case) -> None:
        r = case.call(base_url=model_server.base, session=session, headers=AUTH, timeout=60)
        where = f"{case.method} {case.path}"
        seen[(where, r.status_code)] += 1
        if r.status_code >= 500:
            if stamps := _out_of_range_timestamps(case.body):
                known.append(f"{where} {stamps[0]} -> {r.status_code}")
            else:
                problems.append(f"{where} -> {r.status_code}: {r.text[:200]} for "
                                f"{json.dumps(case.body, default=str)[:400]}")
        elif r.status_code >= 400 and not _message(r.text):
            problems.append(f"{where} -> {r.status_code} with no message: {r.text[:300]!r}")
        if "Traceback" in r.text or 'File "' in r.text:
            problems.append(f"{where} -> {r.status_code} leaks a stack trace")

    one()
    total = sum(seen.values())
    assert total >= FUZZ_CASES * 0.9, seen  # hypothesis may stop early on a tiny space
    if problems:
        lines = model_server.log_text().splitlines()
        errors = [i for i, line in enumerate(lines) if "ERROR" in line or "unhandled" in line]
        excerpt = "\n".join("\n".join(lines[i:i + 12]) for i in errors[:3])
        raise AssertionError("\n".join(problems[:10]) + "\n--- server log ---\n"
                             + excerpt[:4000])
    if known:
        # Found by this test: a timestamp outside pandas' range (years 1677-2262), e.g. an
        # /explain lead's created_at in year 0400, passes the contract and overflows in
        # pd.Timestamp inside the service: 500 (the gateway still hides the trace), where
        # /score names the field with a 422. Reported to serving's owner. Everything else
        # this test checks has held above, so it is an xfail until the fix lands, and the
        # test passes by itself after it.
        pytest.xfail(f"known: {len(known)} 5xx on out-of-range timestamps, e.g. {known[0]}")
    # Both kinds of case reached the scoring endpoint: answers and refusals.
    score = {status for (where, status) in seen if where == "POST /score"}
    assert 200 in score and score & {400, 422}, seen
