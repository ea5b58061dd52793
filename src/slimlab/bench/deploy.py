"""Bench a model the way it is deployed on ONNX Runtime: a bare `onnxruntime.InferenceSession` with its own
SessionOptions (intra-op threads, graph optimization level, execution mode), never through a per-call torch
wrapper.

A static-int8 treatment returns an `OrtModule` (an `nn.Module` around an ORT session, so that evaluation and
the eager backend work unchanged). Benched through the eager backend, every call pays the module call and
the torch<->numpy conversions on top of the session: on this machine x1.15-1.27 at batch 1 (see
`wrapper_overhead` and BENCHMARKS.md). A deployed model is the ONNX file in a session, so this backend takes
the `OrtModule`'s own graph bytes, or the input ONNX file, or exports a float module, and times
`session.run` on numpy arrays. Thread count is its own setting, not torch's: ORT int8 at 1 thread was 2x
faster than at 2 threads on the CNN at batch 64 while 2 threads won on the 784-wide MLP, so the thread
count is a search axis (`BenchConfig.session_threads`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from slimlab.bench.backends import (
    PROVIDER_PREFERENCE,
    BackendSkipped,
    Prepared,
    choose_providers,
    export_inputs_onnx,
    onnx_precision_of,
    session_feeds,
)
from slimlab.bench.loading import LoadedModel
from slimlab.data.batches import Inputs

Optimization = Literal["disable", "basic", "extended", "all"]
ExecutionMode = Literal["sequential", "parallel"]


def session_options(
    threads: int | None, optimization: Optimization = "all", execution_mode: ExecutionMode = "sequential"
) -> Any:
    """ORT SessionOptions from plain values; `threads=None` uses torch's current thread count."""
    import onnxruntime as ort

    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    modes = {"sequential": ort.ExecutionMode.ORT_SEQUENTIAL, "parallel": ort.ExecutionMode.ORT_PARALLEL}
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = levels[optimization]
    options.execution_mode = modes[execution_mode]
    return options


def deployable_onnx(model: LoadedModel, example: Inputs) -> tuple[bytes, str]:
    """The ONNX graph that would ship for `model`, and where it came from: an ORT-backed module's own graph
    (static int8 QDQ), the input ONNX file, or a float module exported by torch.onnx."""
    module = model.module
    if module is not None and isinstance(getattr(module, "onnx_model", None), torch.Tensor):
        return module.onnx_model.numpy().tobytes(), "treatment graph"
    if model.onnx_path is not None:
        return model.onnx_path.read_bytes(), "input file"
    if module is None:
        raise BackendSkipped(f"nothing to deploy: the input is a {model.source} file without a graph")
    return export_inputs_onnx(module, example)


@dataclass(frozen=True)
class OrtSessionBackend:
    """ONNX Runtime as deployed: one bare session per setting, numpy in, numpy out."""

    name: str = "onnxruntime-session"
    threads: int | None = None  # None: torch's thread count at prepare time
    optimization: Optimization = "all"
    execution_mode: ExecutionMode = "sequential"
    providers: tuple[str, ...] | None = None
    # The graph is the deployed model itself (fp32, or the treatment's int8 graph): same numerics as eager.
    tolerance: tuple[float, float] | None = (1e-3, 1e-4)

    def prepare(self, model: LoadedModel, example: Inputs) -> Prepared:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise BackendSkipped(f"onnxruntime is not installed ({e})") from None
        graph, source = deployable_onnx(model, example)
        options = session_options(self.threads, self.optimization, self.execution_mode)
        providers = list(self.providers) if self.providers else choose_providers()
        try:
            session = ort.InferenceSession(graph, options, providers=providers)
        except Exception as e:
            raise BackendSkipped(f"onnxruntime could not load the model: {type(e).__name__}: {e}") from None
        used = session.get_providers()[0]

        def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
            return session.run(None, feeds)[0]

        return Prepared(
            self.name,
            "cuda" if used in PROVIDER_PREFERENCE[:2] else "cpu",
            run,
            session_feeds(session),
            lambda y: np.asarray(y, dtype=np.float32),
            None,
            size_bytes=len(graph),
            info={
                "provider": used,
                "graph": source,
                "precision": onnx_precision_of(graph),
                "threads": options.intra_op_num_threads,
                "optimization": self.optimization,
                "execution_mode": self.execution_mode,
            },
        )


def wrapper_overhead(
    module: torch.nn.Module, x: torch.Tensor, *, rounds: int = 7, calls: int = 200
) -> dict[str, float | int]:
    """How much slower an ORT-backed module is through its torch wrapper than its bare session, with the
    same graph and thread count: p50 time per call of each, interleaved round by round (A B A B ...) so that
    load on a shared machine hits both alike. The ratio is the median of the per-round ratios."""
    if not isinstance(getattr(module, "onnx_model", None), torch.Tensor):
        raise TypeError("wrapper_overhead needs an ORT-backed module (one with an `onnx_model` buffer)")
    from slimlab.bench.loading import from_module

    bare = OrtSessionBackend(threads=torch.get_num_threads()).prepare(
        from_module(module, tuple(x.shape[1:])), x
    )
    arr = bare.to_input(x)

    @torch.inference_mode()
    def wrapped() -> object:
        return module(x)

    def per_call(fn) -> float:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - start) / calls

    wrapped(), bare.run(arr)
    ratios, w_times, b_times = [], [], []
    for _ in range(rounds):
        w, b = per_call(wrapped), per_call(lambda: bare.run(arr))
        w_times.append(w)
        b_times.append(b)
        ratios.append(w / b)
    return {
        "batch_size": int(x.shape[0]),
        "wrapper_ms": float(np.median(w_times) * 1e3),
        "session_ms": float(np.median(b_times) * 1e3),
        "ratio": float(np.median(ratios)),
        "rounds": rounds,
        "calls_per_round": calls,
        "threads": torch.get_num_threads(),
    }


def best_cell(
    records: list[dict], batch: int, scenario: str = "offline", backends: tuple[str, ...] | None = None
) -> dict | None:
    """The fastest ok record (p50) at `batch` among `backends` (all when None): the deployment choice a
    search makes among the cells it measured. None when no cell was measured there."""
    cells = [
        r
        for r in records
        if r.get("status") == "ok"
        and r.get("scenario") == scenario
        and r.get("batch_size") == batch
        and (backends is None or r["backend"] in backends)
        and (r.get("latency_ms") or {}).get("p50")
    ]
    return min(cells, key=lambda r: r["latency_ms"]["p50"]) if cells else None


# What a user gets in one step, without a search: (label, variant, backend). "baseline" stands for the
# experiment's baseline variant; the two treated cells are the search's own plain candidates.
ONE_STEP_CELLS = (
    ("torch fp32", "baseline", "eager"),
    ("torch bf16", "search-s0-bf16", "eager"),
    ("ORT fp32", "baseline", "onnxruntime"),
    ("ORT fp32", "baseline", "onnxruntime-session"),
    ("ORT dynamic int8", "baseline", "onnxruntime-int8"),
    ("ORT static int8 QDQ", "search-s0-static_int8", "onnxruntime-session"),
)


def _default_threads(bench: list[dict]) -> int | None:
    return next(
        (r.get("threads") for r in bench if r.get("backend") == "eager" and r.get("status") == "ok"), None
    )


def one_step_cells(trials: dict[str, list[dict]], baseline: str, batch: int) -> list[dict]:
    """Each one-step cell measured in this run (mean offline p50 over seeds at `batch`), at the thread
    count the trial's eager backend ran with: the thread count a user who does not search would get.
    `trials` maps a variant name to its ok trial records. Sorted fastest first; the first is the best
    single cell, the row a user would otherwise pick."""
    out: dict[str, dict] = {}
    for label, variant, backend in ONE_STEP_CELLS:
        records = trials.get(baseline if variant == "baseline" else variant, [])
        p50s = []
        for trial in records:
            bench = trial.get("bench") or []
            threads = _default_threads(bench)
            cells = [r for r in bench if r.get("threads") == threads] if threads else bench
            cell = best_cell(cells, batch, backends=(backend,))
            if cell:
                p50s.append(cell["latency_ms"]["p50"])
        if not p50s:
            continue
        row = {
            "cell": label,
            "variant": baseline if variant == "baseline" else variant,
            "backend": backend,
            "latency_ms": float(np.mean(p50s)),
            "seeds": len(p50s),
        }
        if label not in out or row["latency_ms"] < out[label]["latency_ms"]:
            out[label] = row
    return sorted(out.values(), key=lambda r: r["latency_ms"])


def deployed_latency(trial: dict, batch: int, backends: tuple[str, ...] | None) -> dict | None:
    """The candidate's fastest measured deployment at `batch` among `backends` (all when None): its
    backend, thread count and p50, or None when nothing was measured there."""
    cell = best_cell(trial.get("bench") or [], batch, backends=backends)
    if cell is None:
        return None
    return {"backend": cell["backend"], "threads": cell.get("threads"), "p50_ms": cell["latency_ms"]["p50"]}
