"""The same server on Ray Serve (`slimlab serve --executor ray`): one deployment whose replicas each load
the model and serve the FastAPI app of `slimlab.serve.app`, with Ray's `@serve.batch` gathering requests
in place of the asyncio batcher. Ray's HTTP proxy binds 127.0.0.1 unless told otherwise.

On one machine `ray.init()` starts a local Ray instance; with `--ray-address` (or RAY_ADDRESS) the
deployment joins an existing cluster, and every node must see the model file at the same path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from slimlab.serve.batcher import run_requests
from slimlab.serve.model import Servable

APP_NAME = "slimlab"


class RayBatcher:
    """Ray Serve's `@serve.batch(max_batch_size, batch_wait_timeout_s)` behind the app's batcher interface.

    Ray counts requests, not examples, toward `max_batch_size`, so a gathered batch is run in model calls of
    at most `max_batch_size` examples (`run_requests`)."""

    def __init__(
        self,
        run: Callable[[dict[str, np.ndarray]], np.ndarray],
        max_batch_size: int = 64,
        max_wait_ms: float = 2.0,
        on_batch: Callable[[int, float], None] | None = None,
    ):
        from ray import serve

        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slimlab-model")
        self._waiting = 0

        @serve.batch(max_batch_size=max_batch_size, batch_wait_timeout_s=max_wait_ms / 1e3)
        async def batched(requests: list[tuple[dict[str, np.ndarray], int]]) -> list[np.ndarray]:
            loop = asyncio.get_running_loop()  # the model runs off the event loop, as in DynamicBatcher
            return await loop.run_in_executor(
                self._executor, run_requests, run, requests, max_batch_size, on_batch
            )

        self._batched = batched

    def start(self) -> None:
        pass  # Ray's batch queue starts with the first request

    async def stop(self) -> None:
        self._executor.shutdown(wait=True)

    @property
    def depth(self) -> int:
        return self._waiting

    async def submit(self, arrays: dict[str, np.ndarray], n: int) -> np.ndarray:
        self._waiting += 1
        try:
            return await self._batched((arrays, n))
        finally:
            self._waiting -= 1


def application(
    model: dict[str, Any] | Callable[[], Servable],
    *,
    max_batch_size: int = 64,
    max_wait_ms: float = 2.0,
    max_body_bytes: int = 8 * 2**20,
    replicas: int = 1,
    threads: int | None = None,
):
    """A Ray Serve application. `model` holds `load_servable`'s arguments, or is a function that builds
    the servable (cloudpickled); either is evaluated on each replica."""
    from ray import serve

    def build_app():
        import torch

        from slimlab.serve.app import create_app
        from slimlab.serve.model import load_servable

        if threads:
            torch.set_num_threads(threads)
        servable = model() if callable(model) else load_servable(**model)
        return create_app(
            servable,
            max_batch_size=max_batch_size,
            max_wait_ms=max_wait_ms,
            max_body_bytes=max_body_bytes,
            make_batcher=RayBatcher,
        )

    deployment = serve.deployment(
        serve.ingress(build_app)(),
        name="slimlab_model",
        num_replicas=replicas,
        ray_actor_options={"num_cpus": threads or 1},
    )
    return deployment.bind()


def start(host: str, port: int, address: str | None = None) -> None:
    """Connects to (or starts) Ray and starts Serve's HTTP proxy on host:port."""
    import ray
    from ray import serve

    ray.init(address=address, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    serve.start(http_options={"host": host, "port": port})


def deploy(app, *, blocking: bool = False) -> None:
    from ray import serve

    serve.run(app, name=APP_NAME, route_prefix="/", blocking=blocking)


def stop() -> None:
    import ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()
