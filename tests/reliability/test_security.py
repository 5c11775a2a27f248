"""Security of the real server over HTTP: keys, size limits, no stack traces, no PII in
its captured log. (tests/serving/test_service.py checks the same rules in-process; here
they hold through BentoML's real HTTP stack, its own error pages and its log.)"""

from __future__ import annotations

import httpx
import pytest

from tests.reliability.conftest import AUTH, Server, payload

pytestmark = [pytest.mark.reliability, pytest.mark.integration, pytest.mark.slow]

EMAILS = [f"reliability.pii.{i}@example-leads.test" for i in range(20)]


def _no_trace(r: httpx.Response) -> None:
    assert "Traceback" not in r.text and 'File "' not in r.text, r.text[:500]


def test_keys_limits_traces_and_pii(model_server: Server):
    base = model_server.base
    body = payload(0, email=EMAILS[0])
    with httpx.Client(timeout=60) as http:
        responses = []
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"},
                        {"Authorization": "Bearer"}):
            for path in ("/score", "/explain"):
                r = http.post(f"{base}{path}", json=body, headers=headers)
                assert r.status_code == 401 and r.json()["error"], (headers, r.text)
                responses.append(r)
            r = http.get(f"{base}/model", headers=headers)
            assert r.status_code == 401
            responses.append(r)

        # Oversized: announced by Content-Length, and streamed without one (chunked).
        big = b'{"leads": [' + b" " * 10_500_000 + b"]}"
        r = http.post(f"{base}/score", content=big, headers={**AUTH,
                      "content-type": "application/json"})
        assert r.status_code == 413 and r.json()["error"], r.text[:300]
        responses.append(r)

        def chunks():
            for _ in range(11):
                yield b" " * 1_000_000

        r = http.post(f"{base}/score", content=chunks(), headers={**AUTH,
                      "content-type": "application/json"})
        assert r.status_code == 413, r.text[:300]
        responses.append(r)
        many = {"leads": [payload(i)["leads"][0] for i in range(3)] * 334}
        r = http.post(f"{base}/score", json=many, headers=AUTH)
        assert r.status_code == 413 and "limit" in r.text
        responses.append(r)

        # Every lead sent, valid or not, carries a distinct email; none may reach the log.
        for i, email in enumerate(EMAILS):
            good = payload(i, email=email)
            responses.append(http.post(f"{base}/score", json=good, headers=AUTH))
            assert responses[-1].status_code == 200
            bad = payload(i, email=email)
            bad["leads"][0]["created_at"] = f"not a date {email}"
            responses.append(http.post(f"{base}/score", json=bad, headers=AUTH))
            assert responses[-1].status_code == 422
            bad = payload(i, email=email)
            bad["leads"][0]["company_size"] = {"email": email}
            responses.append(http.post(f"{base}/explain", json={"lead": bad["leads"][0]},
                                       headers=AUTH))
            assert responses[-1].status_code == 422
        for raw in (b"{", b"[]", b"null", b'{"leads": "x"}', "\u00ff".encode("latin-1")):
            responses.append(http.post(f"{base}/score", content=raw,
                                       headers={**AUTH, "content-type": "application/json"}))
            assert 400 <= responses[-1].status_code < 500, responses[-1].text
        for method, path in (("GET", "/score"), ("DELETE", "/model"), ("GET", "/nope"),
                             ("POST", "/readyz"), ("PUT", "/explain")):
            responses.append(http.request(method, f"{base}{path}", headers=AUTH))
            assert responses[-1].status_code < 500, (method, path, responses[-1].text)

    for r in responses:
        _no_trace(r)
    log = model_server.log_text()
    leaked = [e for e in EMAILS if e in log]
    assert not leaked, f"{len(leaked)} emails reached the server log"
    assert "example-leads.test" not in log
