"""The server simulation checked against a real server, in one run.

For each model (the DLRM in the repository's small random-data configuration, dense and int8, and the
quickstart CNN): measure the model's service time per batch size in process, let slimlab's server
simulation (slimlab.bench.scenarios.server_search) predict the latency-bounded throughput, then start the
real server (`slimlab.serve`, FastAPI + uvicorn + the dynamic batcher, in its own process with 1 torch
thread) on 127.0.0.1 and find the highest rate whose MLPerf LoadGen Server run is VALID (Poisson arrivals,
p99 under the bound with LoadGen's early stopping), through HTTP. Prints JSON.

    PYTHONPATH=src python benchmarks/serving.py [--budget-s 40] [--bound-ms 50] [--stacks uvicorn,ray]
        [--out serving.json]

`--stacks uvicorn,ray` also measures the same app on Ray Serve (`slimlab serve --executor ray`), so the
serving stacks are compared on the same load in the same run.

Keep it short: the machine is shared. Each search is bounded by --budget-s.
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import platform
import socket
import subprocess
import sys
import time

import numpy as np
import torch

MAX_BATCH = 16
MAX_WAIT_MS = 2.0


def build(name: str):
    """(servable, request bodies); the same seed in the client and the server process."""
    from slimlab.models.dlrm import DLRM, DLRMParams, example_inputs
    from slimlab.serve import InputSpec, dlrm_servable, from_module
    from slimlab.treatments import DynamicInt8, EmbeddingInt8, apply

    torch.manual_seed(0)
    if name.startswith("dlrm"):
        params = DLRMParams()  # 8 x 80,000 x 64, bottom 128-128-128-128, top 512-512-512-256-1
        model = DLRM(params).eval()
        if name == "dlrm-int8":
            model = apply(model, [EmbeddingInt8(bits=8), DynamicInt8()])
        servable = dlrm_servable(model, name)
        bodies = []
        for i in range(256):
            d, s = example_inputs(params, 1, seed=i)
            bodies.append(json.dumps({"inputs": {"dense": d.tolist(), "sparse": s.tolist()}}).encode())
        return servable, bodies
    from slimlab.models import build_model

    model = build_model("cnn1d", {"channels": 25}, (40,), 10).eval()
    servable = from_module(model, [InputSpec("x", "float32", (40,))], name)
    rng = np.random.default_rng(0)
    bodies = [json.dumps({"inputs": rng.standard_normal((1, 40)).tolist()}).encode() for _ in range(256)]
    return servable, bodies


def _serve(name: str, port: int) -> None:
    torch.set_num_threads(1)
    from slimlab.serve.server import serve_forever

    servable, _ = build(name)
    serve_forever(servable, "127.0.0.1", port, max_batch_size=MAX_BATCH, max_wait_ms=MAX_WAIT_MS)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def simulated(servable, bodies, bound_ms: float, budget_s: float) -> dict:
    from slimlab.bench.latency import measure
    from slimlab.bench.scenarios import ScenarioSettings, ServiceModel, server_search

    torch.set_num_threads(1)  # as the server process runs
    parsed = [servable.parse(json.loads(b)["inputs"])[0] for b in bodies[:MAX_BATCH]]
    samples = {}
    for size in (1, 2, 4, 8, 16):
        batch = {k: np.concatenate([p[k] for p in parsed[:size]]) for k in parsed[0]}
        samples[size] = np.asarray(
            measure(lambda b=batch: servable.run(b), min_time_s=0.5, min_iters=50).samples_s
        )
    service = ServiceModel(samples)
    settings = ScenarioSettings.loadgen().scaled(0.0, min_time_s=3.0, min_iters=500)
    search = server_search(
        service,
        latency_budget_s=bound_ms / 1e3,
        max_batch=MAX_BATCH,
        max_queue_delay_s=MAX_WAIT_MS / 1e3,
        settings=settings,
        max_seconds=budget_s,
    )
    return {
        "service_p50_ms": {k: float(np.median(v) * 1e3) for k, v in samples.items()},
        "capacity_per_s": service.capacity(MAX_BATCH),
        **search.summary(),
    }


def _servable(name: str):
    torch.set_num_threads(1)
    return build(name)[0]


def real(name: str, bodies, bound_ms: float, budget_s: float, stack: str = "uvicorn") -> dict:
    """The peak VALID LoadGen Server rate against the real server: `uvicorn` (FastAPI + uvicorn + the
    asyncio batcher, in its own process) or `ray` (the same app on a local Ray Serve, @serve.batch)."""
    from slimlab.serve import loadgen

    reason = loadgen.loadgen_available()
    if reason:
        return {"skipped": reason}
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    if stack == "ray":
        try:
            from slimlab.serve import ray_serve
        except ImportError as e:
            return {"skipped": f"Ray Serve is not installed ({e})"}
        ray_serve.start("127.0.0.1", port)
        app = ray_serve.application(
            functools.partial(_servable, name), max_batch_size=MAX_BATCH, max_wait_ms=MAX_WAIT_MS, threads=1
        )
        ray_serve.deploy(app)
        alive, stop = (lambda: True), ray_serve.stop
    else:
        process = multiprocessing.get_context("spawn").Process(target=_serve, args=(name, port), daemon=True)
        process.start()
        alive = process.is_alive

        def stop() -> None:
            process.terminate()
            process.join(timeout=10)

    try:
        import httpx

        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or not alive():
                return {"skipped": "the server did not start"}
            time.sleep(0.2)
        for body in bodies[:20]:  # warm-up
            httpx.post(f"{url}/predict", content=body, headers={"content-type": "application/json"})
        found = loadgen.peak_server_qps(
            url, bodies, bound_ms, start_qps=100.0, bisections=3, budget_s=budget_s,
            min_duration_s=2.0, max_duration_s=12.0, min_queries=600,  # early stopping at p99 needs >= 459
        )  # fmt: skip
        found["server_metrics_excerpt"] = [
            line
            for line in httpx.get(f"{url}/metrics").text.splitlines()
            if line.startswith(
                ("slimlab_batch_size_count", "slimlab_batch_size_sum", "slimlab_requests_total{")
            )
        ]
        return found
    finally:
        stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="dlrm-dense,dlrm-int8,cnn1d")
    parser.add_argument("--bound-ms", type=float, default=50.0)
    parser.add_argument("--budget-s", type=float, default=40.0)
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--stacks", default="uvicorn", help="uvicorn,ray: the serving stacks measured, each in turn per model"
    )
    args = parser.parse_args()
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    cpu = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if "Model name" in line), "?")
    out = {
        "machine": {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__, "load_1min_before": os.getloadavg()[0]},
        "latency_bound_ms": args.bound_ms, "max_batch_size": MAX_BATCH, "max_wait_ms": MAX_WAIT_MS,
        "models": {},
    }  # fmt: skip
    for name in args.models.split(","):
        servable, bodies = build(name)
        started = time.monotonic()
        sim = simulated(servable, bodies, args.bound_ms, args.budget_s)
        stacks = {
            stack: real(name, bodies, args.bound_ms, args.budget_s, stack) for stack in args.stacks.split(",")
        }
        measured = stacks[args.stacks.split(",")[0]]
        out["models"][name] = {
            "simulated": sim,
            "real": measured,
            "stacks": stacks,
            "seconds": round(time.monotonic() - started, 1),
            "load_1min_after": os.getloadavg()[0],
        }
        print(
            f"{name}: simulated {sim.get('best_rate_per_s')} /s, real "
            + ", ".join(f"{k} {v.get('peak_qps')} /s" for k, v in stacks.items()),
            file=sys.stderr,
        )
    text = json.dumps(out, indent=1, default=str)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
