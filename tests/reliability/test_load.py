"""Load against the real server: no 5xx, no dropped request, bounded memory growth, and
an alias moved mid-load costs zero requests.

Sizes come from ``LEADSCORE_FULL_RELIABILITY`` (see conftest): 60 s x 32 clients in
full mode, 10 s x 8 clients in CI's fast subset.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.reliability.conftest import (
    AUTH,
    LOAD_CLIENTS,
    LOAD_SECONDS,
    Server,
    payload,
    register,
    wait_until,
)

pytestmark = [pytest.mark.reliability, pytest.mark.integration, pytest.mark.slow]


async def _load(base: str, seconds: float, clients: int,
                during: Any = None) -> dict[str, Any]:
    """``clients`` closed-loop clients posting /score for ``seconds``; every request is
    accounted for: a status code, or the transport error that dropped it."""
    statuses: Counter[int] = Counter()
    dropped: list[str] = []
    versions: Counter[str] = Counter()
    bodies = [payload(i) for i in range(50)]
    stop_at = time.monotonic() + seconds

    async def client(http: httpx.AsyncClient, k: int) -> None:
        i = k
        while time.monotonic() < stop_at:
            try:
                r = await http.post(f"{base}/score", json=bodies[i % len(bodies)])
            except httpx.HTTPError as exc:
                dropped.append(f"{type(exc).__name__}: {exc}")
                continue
            statuses[r.status_code] += 1
            if r.status_code == 200:
                res = r.json()["results"][0]
                versions[f"{res['scored_by']}/{res['model_version']}"] += 1
            i += clients

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits, headers=AUTH) as http:
        tasks = [asyncio.create_task(client(http, k)) for k in range(clients)]
        if during is not None:
            await asyncio.sleep(seconds / 3)
            await asyncio.to_thread(during)
        await asyncio.gather(*tasks)
    return {"statuses": statuses, "dropped": dropped, "versions": versions}


def _warm(server: Server, n: int = 30) -> None:
    with httpx.Client(headers=AUTH, timeout=30) as http:
        for i in range(n):
            assert http.post(f"{server.base}/score", json=payload(i)).status_code == 200


def test_sustained_load_no_5xx_no_drop_bounded_memory(model_server: Server):
    _warm(model_server)
    before = model_server.rss_kib()
    out = asyncio.run(_load(model_server.base, LOAD_SECONDS, LOAD_CLIENTS))
    after = model_server.rss_kib()
    statuses = out["statuses"]
    assert not out["dropped"], out["dropped"][:5]
    assert statuses and set(statuses) == {200}, statuses
    # Each client got answers throughout (a stall would show as a tiny count).
    assert sum(statuses.values()) >= LOAD_CLIENTS * LOAD_SECONDS / 2, statuses
    # One version answered throughout: no fallback to the rules, no flapping.
    assert len(out["versions"]) == 1 and next(iter(out["versions"])).startswith("model/"), \
        out["versions"]
    growth = (after - before) / before
    assert growth < 0.10, f"server tree RSS {before} -> {after} KiB (+{growth:.1%})"


def test_champion_moved_during_load_fails_no_request(fresh_model_server: Server,
                                                     other_model: Any):
    server = fresh_model_server
    _warm(server, 5)
    first = httpx.get(f"{server.base}/model", headers=AUTH, timeout=5).json()["model_version"]
    moved: list[str] = []

    def promote() -> None:
        version = register(other_model, server.tmp, server.env)
        moved.append(version)
        wait_until(lambda: httpx.get(f"{server.base}/model", headers=AUTH, timeout=5)
                   .json()["model_version"] == version, LOAD_SECONDS * 2,
                   "the promotion to be picked up")

    seconds = max(LOAD_SECONDS, 10.0)
    out = asyncio.run(_load(server.base, seconds, LOAD_CLIENTS, during=promote))
    assert len(moved) == 1 and moved[0] != first
    assert not out["dropped"], out["dropped"][:5]
    assert set(out["statuses"]) == {200}, out["statuses"]
    # Both versions answered, and nothing fell back to the rules during the swap.
    assert set(out["versions"]) <= {f"model/{first}", f"model/{moved[0]}"}, out["versions"]
    assert out["versions"][f"model/{moved[0]}"] > 0, out["versions"]
