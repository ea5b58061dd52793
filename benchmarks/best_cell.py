"""The best one-step alternative against the search's deployment choices, in one interleaved run.

    PYTHONPATH=src python benchmarks/best_cell.py [--models cnn,mlp512,mlp784] [--reps 3] [--epochs 10]
        [--json out.json]

For each workload (the MNIST-1D reference CNN with 25 channels and the MLP 40-512-512-10, trained for
`--epochs` on MNIST-1D with one seed; the MLP 784-1024-1024-10 with random weights, latency only) and each
batch size (1 and 64), every cell below is measured round-robin (A B C ... A B C ...), `--reps` times, and
the median of its per-rep p50 latencies is reported, so that load on a shared machine hits every cell alike:

- one-step cells, each at torch's default thread count: torch fp32 eager, torch bf16 eager, ORT fp32,
  ORT dynamic int8, ORT static int8 QDQ (per-channel, min-max): what a user gets in one line;
- search cells: ORT fp32 and static int8 (per-channel and per-tensor weights) and mixed precision (the
  most sensitive node kept fp32) at 1 and 2 session threads, each through a bare InferenceSession.

Accuracy here is one seed's test accuracy, with McNemar's exact test against fp32 on the test samples: an
indication of what each cell costs in accuracy, not the search's verdict (that is `slimlab run` over seeds,
Holm-corrected). Also measured: the OrtModule wrapper's overhead against its bare session.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable

import numpy as np
import torch

from slimlab.bench.deploy import OrtSessionBackend, wrapper_overhead
from slimlab.bench.latency import measure
from slimlab.bench.loading import from_module
from slimlab.config import DataConfig
from slimlab.data import load_dataset
from slimlab.models import build_model
from slimlab.stats import mcnemar_exact
from slimlab.train import TrainConfig, Trainer, seed_everything
from slimlab.treatments import HalfPrecision, MixedInt8, TreatmentContext, apply
from slimlab.treatments.ort_qdq import quantize_dynamic_graph, quantize_qdq
from slimlab.treatments.static_quant import OrtModule, export_onnx

MODELS = {
    "cnn": ("cnn1d", {"channels": 25}, True),
    "mlp512": ("mlp", {"hidden": [512, 512]}, True),
    "mlp784": ("mlp", {"hidden": [1024, 1024]}, False),  # 784 inputs: random weights, latency only
}


def _cpu() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    return next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "?")


def _session(graph: bytes, shape: tuple[int, ...], threads: int) -> Callable[[np.ndarray], np.ndarray]:
    prepared = OrtSessionBackend(threads=threads).prepare(
        from_module(OrtModule(graph), shape), torch.zeros(2, *shape)
    )
    (name,) = prepared.to_input(torch.zeros(1, *shape))  # the graph's one input
    return lambda x: prepared.run({name: x})


def _torch(module: torch.nn.Module, dtype: torch.dtype) -> Callable[[np.ndarray], np.ndarray]:
    @torch.inference_mode()
    def run(x: np.ndarray):
        return module(torch.from_numpy(x).to(dtype)).float().numpy()

    return run


def workload(name: str, epochs: int, data) -> dict:
    arch, params, trained = MODELS[name]
    shape = data.input_shape if trained else (784,)
    seed_everything(0)
    model = build_model(arch, params, shape, 10)
    if trained:
        Trainer(TrainConfig(epochs=epochs, batch_size=100, patience=None, device="cpu")).fit(model, data, 0)
        calib = torch.as_tensor(data.train.x[:512])
    else:
        calib = torch.randn(512, *shape, generator=torch.Generator().manual_seed(0))
    model = model.eval()
    default = torch.get_num_threads()
    graph = export_onnx(model, calib[:2])
    context = TreatmentContext(seed=0, data=data) if trained else None
    static = quantize_qdq(graph, calib.numpy(), per_channel=True)
    static_pt = quantize_qdq(graph, calib.numpy(), per_channel=False)
    cells: dict[str, tuple[str, Callable]] = {
        "torch fp32": ("one-step", _torch(model, torch.float32)),
        "torch bf16": ("one-step", _torch(apply(model, HalfPrecision(dtype="bf16")), torch.bfloat16)),
        "ORT fp32": ("one-step", _session(graph, shape, default)),
        "ORT dynamic int8": ("one-step", _session(quantize_dynamic_graph(graph, None), shape, default)),
        "ORT static int8 QDQ": ("one-step", _session(static, shape, default)),
    }
    graphs = {"ORT fp32": graph, "static int8 per-channel": static, "static int8 per-tensor": static_pt}
    if context is not None:
        mixed = apply(model, MixedInt8(keep_float=1, calibration_samples=512), context)
        graphs["mixed int8 (1 node fp32)"] = mixed.onnx_model.numpy().tobytes()
    for label, g in graphs.items():
        for threads in (1, 2):
            cells[f"{label}, {threads} thr"] = ("search", _session(g, shape, threads))
    accuracy = {}
    if trained:
        x_test = data.test.x.astype(np.float32)
        ref = _torch(model, torch.float32)(x_test).argmax(1) == data.test.y
        for label, (_, run) in cells.items():
            correct = run(x_test).argmax(1) == data.test.y
            test = mcnemar_exact(correct, ref, with_ci=False)
            accuracy[label] = {"test_accuracy": float(correct.mean()), "p_mcnemar_vs_fp32": test.p_value}
    return {"cells": cells, "accuracy": accuracy, "shape": shape, "graphs": graphs, "static": static}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="cnn,mlp512,mlp784")
    parser.add_argument("--batches", default="1,64")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--min-time", type=float, default=0.1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    data = load_dataset(DataConfig(name="mnist1d"), 0)
    out = {"cpu": _cpu(), "platform": platform.platform(), "threads": torch.get_num_threads(), "rows": []}
    out["load1_start"] = os.getloadavg()[0]
    start = time.time()
    for name in args.models.split(","):
        w = workload(name, args.epochs, data)
        for batch in (int(b) for b in args.batches.split(",")):
            x = np.random.default_rng(0).standard_normal((batch, *w["shape"])).astype(np.float32)
            p50s: dict[str, list[float]] = {k: [] for k in w["cells"]}
            for _ in range(args.reps):
                for label, (_, run) in w["cells"].items():  # round-robin across cells
                    lat = measure(
                        lambda r=run, x=x: r(x), warmup_iters=5, min_time_s=args.min_time, min_iters=20
                    )
                    p50s[label].append(lat.percentile_ms(50))
            med = {k: statistics.median(v) for k, v in p50s.items()}
            one_step = min((k for k, (kind, _) in w["cells"].items() if kind == "one-step"), key=med.get)
            search = min(w["cells"], key=med.get)  # the search may also pick a one-step cell
            wrapper = wrapper_overhead(OrtModule(w["static"]), torch.from_numpy(x), rounds=3, calls=100)
            row = {
                "model": name,
                "batch": batch,
                "p50_ms": med,
                "best_cell": one_step,
                "best_search_cell": search,
                "ratio": med[one_step] / med[search],
                "accuracy": w["accuracy"],
                "ort_wrapper_over_session": wrapper["ratio"],
                "load1": os.getloadavg()[0],
            }
            out["rows"].append(row)
            print(
                f"{name} b{batch}: best cell {one_step} {med[one_step]:.4f} ms; best search cell {search} "
                f"{med[search]:.4f} ms; ratio {row['ratio']:.2f}x; "
                f"OrtModule/session {wrapper['ratio']:.2f}x; "
                f"load1 {row['load1']:.1f}",
                flush=True,
            )
    out["seconds"] = time.time() - start
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
