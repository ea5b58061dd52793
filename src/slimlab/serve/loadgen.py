"""MLPerf Inference LoadGen (`mlcommons-loadgen`, `import mlperf_loadgen`) as slimlab's load generator.

- `server_http`: LoadGen's Server scenario against a running model server, through HTTP: LoadGen schedules
  Poisson arrivals at `target_qps`, each query is one POST /predict sent from an asyncio loop in a thread
  of its own (so that sending never waits for an answer), and LoadGen decides the run: VALID only if the
  minimum duration and query count were met and its early-stopping test bounds the 99th percentile
  under the latency bound.
- `peak_server_qps`: the latency-bounded throughput, the highest rate whose Server run is VALID, found by
  doubling and then bisection, each run short and the whole search bounded in time.
- `single_stream` and `offline` (from `slimlab.bench.loadgen`): LoadGen's SingleStream and Offline
  scenarios on an in-process callable.

The load goes to 127.0.0.1 only: a URL with another host is refused. Each run is bounded by LoadGen's
`max_duration_ms` and a query cap. If `mlperf_loadgen` cannot be imported (a platform without a wheel),
`loadgen_available()` says why, and callers fall back to slimlab's own scenarios and record that.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlparse

from slimlab.bench.loadgen import (
    LoadGenResult,
    loadgen_available,
    loadgen_settings,
    offline,
    parse_summary,
    run_loadgen,
    single_stream,
)
from slimlab.errors import SlimlabError

__all__ = [
    "LoadGenResult",
    "loadgen_available",
    "offline",
    "parse_summary",
    "peak_server_qps",
    "server_http",
    "single_stream",
]

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _check_loopback(url: str) -> None:
    host = urlparse(url).hostname
    if host not in LOOPBACK:
        raise SlimlabError(f"load tests target 127.0.0.1 only; got {url!r}")


class _HttpSender:
    """An asyncio loop in its own thread holding one httpx client; `send` schedules a POST and returns."""

    def __init__(
        self, url: str, bodies: Sequence[bytes], connections: int, on_done: Callable[[int, int], None]
    ):
        import httpx

        self.url, self.bodies, self.on_done = url.rstrip("/") + "/predict", bodies, on_done
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, daemon=True, name="slimlab-loadgen-http"
        )
        self._thread.start()
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)

        async def make():
            return httpx.AsyncClient(limits=limits, timeout=30.0)

        self.client = asyncio.run_coroutine_threadsafe(make(), self.loop).result()
        self.errors = 0

    async def _post(self, query_id: int, index: int) -> None:
        try:
            reply = await self.client.post(
                self.url, content=self.bodies[index], headers={"content-type": "application/json"}
            )
            ok = reply.status_code == 200
        except Exception:
            ok = False
        if not ok:
            self.errors += 1
        self.on_done(query_id, index)

    def send(self, query_id: int, index: int) -> None:
        asyncio.run_coroutine_threadsafe(self._post(query_id, index), self.loop)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.client.aclose(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


def server_http(
    url: str,
    bodies: Sequence[bytes],
    target_qps: float,
    latency_bound_ms: float,
    *,
    min_duration_s: float = 3.0,
    max_duration_s: float = 10.0,
    min_queries: int = 100,
    connections: int = 64,
    seed: int = 0,
) -> LoadGenResult:
    """One LoadGen Server run: Poisson arrivals at `target_qps`, each query one POST of `bodies[index]`."""
    import mlperf_loadgen as lg

    _check_loopback(url)

    def complete(query_id: int, _index: int) -> None:
        lg.QuerySamplesComplete([lg.QuerySampleResponse(query_id, 0, 0)])

    sender = _HttpSender(url, bodies, connections, complete)

    def issue(queries) -> None:
        for q in queries:
            sender.send(q.id, q.index)

    sut = lg.ConstructSUT(issue, lambda: None)
    settings = loadgen_settings(
        lg,
        lg.TestScenario.Server,
        min_duration_s=min_duration_s,
        max_duration_s=max_duration_s,
        min_queries=min_queries,
        seed=seed,
    )
    settings.server_target_qps = float(target_qps)
    settings.server_target_latency_ns = int(latency_bound_ms * 1e6)
    settings.server_target_latency_percentile = 0.99
    try:
        result = run_loadgen(lg, sut, len(bodies), settings, "server", target_qps)
    finally:
        lg.DestroySUT(sut)
        sender.close()
    result.errors = sender.errors
    result.valid = result.valid and sender.errors == 0
    return result


def peak_server_qps(
    url: str,
    bodies: Sequence[bytes],
    latency_bound_ms: float,
    *,
    start_qps: float = 50.0,
    max_qps: float = 20_000.0,
    bisections: int = 3,
    budget_s: float = 90.0,
    **run_options,
) -> dict:
    """The highest target rate whose LoadGen Server run is VALID (p99 under `latency_bound_ms` with
    LoadGen's early stopping), by doubling from `start_qps`, then bisecting; stops at `budget_s`."""
    started = time.monotonic()
    runs: list[LoadGenResult] = []

    def attempt(qps: float) -> bool:
        result = server_http(url, bodies, qps, latency_bound_ms, **run_options)
        runs.append(result)
        return result.valid

    lo, hi, qps = 0.0, None, start_qps
    while qps <= max_qps and time.monotonic() - started < budget_s:
        if attempt(qps):
            lo, qps = qps, qps * 2
        else:
            hi = qps
            break
    for _ in range(bisections):
        if hi is None or time.monotonic() - started > budget_s:
            break
        mid = (lo + hi) / 2
        if attempt(mid):
            lo = mid
        else:
            hi = mid
    best = max((r for r in runs if r.valid), key=lambda r: r.target_qps or 0, default=None)
    return {
        "peak_qps": lo,
        "first_invalid_qps": hi,
        "latency_bound_ms": latency_bound_ms,
        "best_run": best.to_dict() if best else None,
        "runs": [r.to_dict() for r in runs],
        "seconds": round(time.monotonic() - started, 1),
        "budget_exhausted": time.monotonic() - started > budget_s,
    }
