"""Profile ``POST /score`` end to end, in process: where the event loop's time goes.

The service's real ASGI app (``LeadScoring.to_asgi()``: BentoML's metrics, tracing and
access-log middlewares, the gateway, BentoML's handler, the service) is started with its
lifespan and called by httpx over an in-memory ASGI transport (no sockets, no client
process), one request at a time, ``--requests`` times, under pyinstrument. The scoring
itself runs on the coalescer's thread, which the profile does not sample: what it shows
is the time the event loop spends per request around the scoring, i.e. the framework's
tax. It also prints the mean wall time per request, unprofiled.

pyinstrument is not a project dependency; run it without adding it to the lock::

    LEADSCORE_HOME=... uv run --with pyinstrument python benchmarks/serving_profile.py \\
        [--requests 300] [--data DIR] [--html out.html]

Needs a champion in the store under ``LEADSCORE_HOME`` (``leadscore quickstart``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0]).resolve() == HERE:
    sys.path[0] = str(HERE.parent)  # benchmarks/serving.py would shadow the package


def _sample(data: Path) -> dict:
    spec = importlib.util.spec_from_file_location("bench_serving", HERE / "serving.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    lead, as_of = module._sample_lead(data)
    return {"leads": [lead], "as_of": as_of.isoformat(), "top_reasons": 3}


async def _lifespan(app: Any) -> tuple[asyncio.Task, asyncio.Queue]:
    """Run the app's lifespan startup; return the task and its queue (for shutdown)."""
    inbox: asyncio.Queue = asyncio.Queue()
    started = asyncio.get_running_loop().create_future()

    async def receive() -> dict:
        return await inbox.get()

    async def send(message: dict) -> None:
        if message["type"].startswith("lifespan.startup") and not started.done():
            started.set_result(message)

    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}},
                                   receive, send))
    await inbox.put({"type": "lifespan.startup"})
    message = await started
    if message["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"the service did not start: {message}")
    return task, inbox


async def _main(args: argparse.Namespace) -> None:
    import httpx

    from serving.service import LeadScoring

    body = _sample(args.data)
    app = LeadScoring.to_asgi()
    task, inbox = await _lifespan(app)
    headers = {"Authorization": f"Bearer {os.environ['LEADSCORE_API_KEY']}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test",
                                 headers=headers) as client:
        for _ in range(20):  # warm up (JIT caches, first-call imports)
            response = await client.post("/score", json=body)
            assert response.status_code == 200, response.text
        t = time.perf_counter()
        for _ in range(args.requests):
            await client.post("/score", json=body)
        plain = (time.perf_counter() - t) / args.requests

        from pyinstrument import Profiler

        profiler = Profiler(async_mode="enabled", interval=0.0002)
        profiler.start()
        for _ in range(args.requests):
            await client.post("/score", json=body)
        profiler.stop()

    await inbox.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(task, 30)
    print(profiler.output_text(unicode=False, color=False, show_all=False,
                               timeline=False)[-12000:])
    if args.html:
        Path(args.html).write_text(profiler.output_html())
    print(f"POST /score through the app: {plain * 1000:.2f} ms a request "
          "(in process, no sockets, one at a time)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--html", default=None)
    parser.add_argument("--traced", action="store_true",
                        help="Trace /score too (BentoML's spans, as before issue #20).")
    args = parser.parse_args()
    from leadscore.settings import Settings, disable_telemetry

    disable_telemetry()
    if args.traced:  # read by BentoML when it loads the service's config
        os.environ["BENTOML_CONFIG_OPTIONS"] = (
            os.environ.get("BENTOML_CONFIG_OPTIONS", "")
            + " services.LeadScoring.tracing.excluded_urls=/nothing").strip()
    os.environ.setdefault("LEADSCORE_API_KEY", "profile")
    args.data = args.data or Settings().data_dir / "synthetic"
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
