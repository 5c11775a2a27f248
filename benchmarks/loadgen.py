"""A closed-loop HTTP/1.1 load generator light enough not to be what it measures.

Every serving benchmark used ``httpx.AsyncClient`` for its clients. On this 2-core
machine the client shares the cores with the server, and httpx spends about a
millisecond of Python per request: at 300-900 req/s it took a large share of a core,
and its scheduling stalls became the tail of every server it measured. Measured on the
bare ASGI endpoint of ``benchmarks/serving_overhead.py``, 8 clients, 8 s, one after the
other in one run (``/tmp`` experiment, 2026-12-02):

========  =======  ======  ======  =======
client    req/s    p50 ms  p99 ms  p99/p50
========  =======  ======  ======  =======
httpx     387-484  10-15   90-184  5.9-17.6
raw       861-895  8.9-9.1 13.6-13.9  1.5
========  =======  ======  ======  =======

So the figures before this module measured httpx as much as the servers. This client
pre-encodes one request, keeps one connection per client, writes the bytes and reads the
status line, the headers and a ``Content-Length`` or chunked body: tens of microseconds
per request. It speaks only what the three servers (BentoML, uvicorn, MLflow's) answer;
a connection the server closes is reopened and the request counted as an error.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlsplit

import numpy as np

__all__ = ["load"]


def _request(url: str, body: Any, headers: dict[str, str]) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or not parts.port:
        raise ValueError(f"the load generator needs http://host:port/path; got {url!r}")
    payload = json.dumps(body).encode()
    head = (f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
            "Content-Type: application/json\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + f"Content-Length: {len(payload)}\r\n\r\n").encode()
    return parts.hostname, parts.port, head + payload


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    request: bytes) -> int:
    """Send one request and read its whole response; the HTTP status."""
    writer.write(request)
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionResetError("the server closed the connection")
    length, chunked, close = 0, False, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        key, _, value = line.partition(b":")
        key = key.strip().lower()
        if key == b"content-length":
            length = int(value)
        elif key == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif key == b"connection" and b"close" in value.lower():
            close = True
    if chunked:
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(length)
    if close:
        raise ConnectionResetError("the server asked to close the connection")
    return int(status_line.split()[1])


async def load(url: str, body: Any, headers: dict[str, str], seconds: float, clients: int,
               warmup: int = 20) -> dict[str, float]:
    """``clients`` closed-loop clients POST ``body`` to ``url`` for ``seconds``.

    Each client first sends ``warmup`` requests (lazy imports and caches), then all
    start together. Returns requests, errors, throughput and the p50/p99 latency (ms)
    of the 200 answers.
    """
    host, port, request = _request(url, body, headers)
    latencies: list[float] = []
    errors = warmed = 0
    start = asyncio.Event()
    stop_at = 0.0

    async def client() -> None:
        nonlocal errors, warmed
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for _ in range(warmup):
                await _exchange(reader, writer, request)
            warmed += 1
            await start.wait()
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                try:
                    status = await _exchange(reader, writer, request)
                except (ConnectionError, asyncio.IncompleteReadError):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                dt = time.perf_counter() - t0
                if status == 200:
                    latencies.append(dt)
                else:
                    errors += 1
        finally:
            writer.close()

    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    # Start the clock once every client has connected and warmed up (or one failed).
    while warmed < clients and not any(t.done() for t in tasks):
        await asyncio.sleep(0.01)
    stop_at = time.perf_counter() + seconds
    t0 = time.perf_counter()
    start.set()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    if not latencies:
        raise RuntimeError(f"no request to {url} succeeded ({errors} errors)")
    lat = np.asarray(latencies) * 1000
    return {"requests": len(lat), "errors": errors, "throughput_rps": len(lat) / elapsed,
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "client": "raw asyncio HTTP/1.1 (benchmarks/loadgen.py)"}

