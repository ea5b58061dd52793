"""The HTTP model server: FastAPI on uvicorn, with the asyncio dynamic batcher.

    GET  /health   -> {"status": "ok", "model", "inputs": [...], "max_batch_size", "max_wait_ms"}
    POST /predict  {"inputs": [...] | {"name": [...], ...}} -> {"outputs": [...]}   (one output per example)
    GET  /metrics  Prometheus text: requests by status code, examples, batch sizes, latency histogram and
                   p50/p90/p99 over the last requests, queue depth

Every request is checked before it is queued (JSON, shape, dtype, id range, examples per request, body
size), and a bad one gets a 4xx with one line saying what was expected: a malformed request never reaches
a batch that good requests share. FastAPI + uvicorn is the stack because it is installed with
slimlab's own dependencies, runs in one process, and its batcher is the policy the simulation models;
`slimlab.serve.ray_serve` deploys this same app on Ray Serve (`--executor ray`), with Ray's `@serve.batch`
in place of the asyncio batcher (`make_batcher`).
"""

from __future__ import annotations

import collections
import json
import time
from collections.abc import Callable

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import Metric

from slimlab.serve.batcher import Batcher, DynamicBatcher
from slimlab.serve.model import RequestError, Servable

DEFAULT_MAX_BODY_BYTES = 8 * 2**20
LATENCY_WINDOW = 10_000  # the percentiles in /metrics are over the last this many requests


class _LatencyQuantiles:
    """A Prometheus summary with quantiles over a sliding window (prometheus_client's Summary exports only
    count and sum)."""

    def __init__(self, window: int = LATENCY_WINDOW):
        self.samples: collections.deque[float] = collections.deque(maxlen=window)
        self.count = 0
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.samples.append(seconds)
        self.count += 1
        self.total += seconds

    def collect(self):
        metric = Metric("slimlab_request_latency_window_seconds", "predict latency, last requests", "summary")
        if self.samples:
            values = np.percentile(np.asarray(self.samples), [50, 90, 99])
            for q, v in zip(("0.5", "0.9", "0.99"), values, strict=True):
                metric.add_sample("slimlab_request_latency_window_seconds", {"quantile": q}, float(v))
        metric.add_sample("slimlab_request_latency_window_seconds_count", {}, self.count)
        metric.add_sample("slimlab_request_latency_window_seconds_sum", {}, self.total)
        yield metric


def _buckets(max_batch: int) -> list[float]:
    edges, b = [], 1
    while b < max_batch:
        edges.append(float(b))
        b *= 2
    return [*edges, float(max_batch)]


def create_app(
    servable: Servable,
    *,
    max_batch_size: int = 64,
    max_wait_ms: float = 2.0,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    make_batcher: Callable[..., Batcher] = DynamicBatcher,
) -> FastAPI:
    """The app; `make_batcher(run, max_batch_size, max_wait_ms, on_batch)` gathers requests into model
    calls (the asyncio batcher by default)."""
    if servable.max_batch is not None:
        max_batch_size = min(max_batch_size, servable.max_batch)
    registry = CollectorRegistry()
    requests = Counter("slimlab_requests", "predict requests by HTTP status", ["code"], registry=registry)
    examples = Counter("slimlab_examples", "examples answered", registry=registry)
    batch_sizes = Histogram(
        "slimlab_batch_size", "examples per model call", buckets=_buckets(max_batch_size), registry=registry
    )
    batch_seconds = Histogram("slimlab_batch_seconds", "model time per batch", registry=registry)
    latency = Histogram(
        "slimlab_request_latency_seconds",
        "predict latency, arrival to answer",
        buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
        registry=registry,
    )
    window = _LatencyQuantiles()
    registry.register(window)
    depth = Gauge("slimlab_queue_depth", "requests waiting for a batch", registry=registry)

    def on_batch(n: int, seconds: float) -> None:
        batch_sizes.observe(n)
        batch_seconds.observe(seconds)

    batcher = make_batcher(servable.run, max_batch_size, max_wait_ms, on_batch)
    depth.set_function(lambda: batcher.depth)

    async def lifespan(app: FastAPI):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title=f"slimlab serve {servable.name}", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.batcher = batcher
    app.state.servable = servable

    def refuse(code: int, message: str, start: float) -> JSONResponse:
        requests.labels(code=str(code)).inc()
        return JSONResponse({"error": message}, status_code=code)

    @app.get("/health")
    async def health() -> dict:
        return {
            "status": "ok",
            "model": servable.name,
            "inputs": [s.describe() for s in servable.inputs],
            "max_batch_size": max_batch_size,
            "max_wait_ms": max_wait_ms,
            **{k: v for k, v in servable.meta.items() if k in ("runtime",)},
        }

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/predict")
    async def predict(request: Request):
        start = time.perf_counter()
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_body_bytes):
            return refuse(413, f"request body over {max_body_bytes} bytes", start)
        body = bytearray()
        async for chunk in request.stream():  # counted as it arrives: a missing length cannot overrun
            body += chunk
            if len(body) > max_body_bytes:
                return refuse(413, f"request body over {max_body_bytes} bytes", start)
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return refuse(400, 'the body is not JSON; send {"inputs": [...]}', start)
        if not isinstance(payload, dict) or "inputs" not in payload:
            return refuse(422, "the body must be a JSON object with `inputs`", start)
        try:
            arrays, n = servable.parse(payload["inputs"])
        except RequestError as e:
            return refuse(422, str(e), start)
        if n > max_batch_size:
            return refuse(
                413, f"{n} examples in one request; at most {max_batch_size} (--max-batch-size)", start
            )
        try:
            out = await batcher.submit(arrays, n)
        except Exception as e:  # the model raised on a batch that passed every check: a server error
            return refuse(500, f"the model failed: {type(e).__name__}: {str(e)[:200]}", start)
        seconds = time.perf_counter() - start
        latency.observe(seconds)
        window.observe(seconds)
        examples.inc(n)
        requests.labels(code="200").inc()
        return {"outputs": out.tolist()}

    return app
