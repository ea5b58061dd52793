"""A dynamic batcher on asyncio: requests wait in one queue; a worker takes the first, then gathers more
until the batch holds `max_batch_size` examples or `max_wait_ms` has passed since the first arrived, runs
the model once on the concatenation (in one worker thread, so the event loop keeps accepting requests
while the model runs), and hands each request its slice of the output.

This is the policy of Triton's dynamic batcher (`max_queue_delay_microseconds`, preferred batch sizes
aside) and of Ray Serve's `@serve.batch(max_batch_size, batch_wait_timeout_s)`, and the one
`slimlab.bench.scenarios.simulate_server` models, so that the simulation and the real server can be
compared on the same two knobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class Batcher(Protocol):
    """What the app needs of a batcher: this asyncio one, or Ray Serve's (`slimlab.serve.ray_serve`)."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...

    @property
    def depth(self) -> int: ...

    async def submit(self, arrays: dict[str, np.ndarray], n: int) -> np.ndarray: ...


@dataclass
class _Pending:
    arrays: dict[str, np.ndarray]
    n: int
    future: asyncio.Future
    arrived: float = field(default_factory=time.perf_counter)


class DynamicBatcher:
    def __init__(
        self,
        run: Callable[[dict[str, np.ndarray]], np.ndarray],
        max_batch_size: int = 64,
        max_wait_ms: float = 2.0,
        on_batch: Callable[[int, float], None] | None = None,
    ):
        self.run = run
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1e3
        self.on_batch = on_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slimlab-model")
        self._task: asyncio.Task | None = None
        self._carry: _Pending | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._work())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    async def submit(self, arrays: dict[str, np.ndarray], n: int) -> np.ndarray:
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(arrays, n, future))
        return await future

    async def _gather(self) -> list[_Pending]:
        first = self._carry or await self._queue.get()
        self._carry = None
        batch, size = [first], first.n
        deadline = first.arrived + self.max_wait_s
        while size < self.max_batch_size:
            timeout = deadline - time.perf_counter()
            try:
                item = (
                    self._queue.get_nowait()
                    if timeout <= 0
                    else await asyncio.wait_for(self._queue.get(), timeout)
                )
            except (asyncio.TimeoutError, asyncio.QueueEmpty):
                break
            if size + item.n > self.max_batch_size:
                self._carry = item  # it opens the next batch
                break
            batch.append(item)
            size += item.n
        return batch

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            live = [p for p in batch if not p.future.done()]  # a client that went away is not run
            if not live:
                continue
            requests = [(p.arrays, p.n) for p in live]
            try:
                outs = await loop.run_in_executor(
                    self._executor, run_requests, self.run, requests, self.max_batch_size, self.on_batch
                )
            except Exception as error:  # the model failed: every request of the batch gets the error
                for p in live:
                    if not p.future.done():
                        p.future.set_exception(error)
                continue
            for p, out in zip(live, outs, strict=True):
                if not p.future.done():
                    p.future.set_result(out)


def run_requests(
    run: Callable[[dict[str, np.ndarray]], np.ndarray],
    requests: list[tuple[dict[str, np.ndarray], int]],
    max_examples: int,
    on_batch: Callable[[int, float], None] | None = None,
) -> list[np.ndarray]:
    """Runs the model on the requests' examples concatenated, in calls of at most `max_examples`
    examples, and returns each request's slice of the output."""
    names = requests[0][0].keys()
    inputs = {k: np.concatenate([arrays[k] for arrays, _ in requests]) for k in names}
    total = sum(n for _, n in requests)
    parts = []
    for lo in range(0, total, max_examples):
        chunk = {k: v[lo : lo + max_examples] for k, v in inputs.items()}
        start = time.perf_counter()
        parts.append(np.asarray(run(chunk)))
        if on_batch:
            on_batch(len(next(iter(chunk.values()))), time.perf_counter() - start)
    out = np.concatenate(parts) if len(parts) > 1 else parts[0]
    offsets = np.cumsum([0] + [n for _, n in requests])
    return [out[a:b] for a, b in itertools.pairwise(offsets)]
