"""Compression latency benchmark: what each treatment buys on this machine, as ratios from one run.

    PYTHONPATH=src python benchmarks/compression.py [--models cnn,mlp] [--threads 1] [--reps 5]
        [--train-epochs 0]

For the quickstart CNN (MNIST-1D reference CNN, 25 channels) and the reference MLP (100-100), it measures
eager fp32 against unstructured vs structured pruning at the same sparsity, dynamic int8 (torch), static
int8 (ONNX Runtime QDQ and torch.ao), bf16 and fp16, N:M 2:4 masks, ONNX Runtime fp32 and dynamic int8
(what a user would pick without slimlab), and structured pruning followed by static int8. Batch 64 and 1.

Noise: each variant is measured `--reps` times, round-robin across variants, and the median of the per-rep
p50 latencies is reported, so that a burst of load on a shared machine hits all variants alike. Compare
ratios within one run only. With `--train-epochs N` the dense model is trained first (one seed) and each
variant's test accuracy is printed too (pruned variants fine-tuned for N/4 epochs): an indication only,
not a statistical comparison, which is what `slimlab run` and the search are for.
"""

from __future__ import annotations

import argparse
import platform
import statistics
from collections.abc import Callable

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from slimlab.bench import measure
from slimlab.config import DataConfig
from slimlab.data import load_dataset
from slimlab.models import build_model
from slimlab.models.inference import predict_logits
from slimlab.train import TrainConfig, Trainer, seed_everything
from slimlab.treatments import (
    DynamicInt8,
    HalfPrecision,
    MagnitudePrune,
    NMSparsity,
    StaticInt8,
    StructuredPrune,
    TreatmentConfig,
    TreatmentContext,
    apply,
)
from slimlab.treatments.static_quant import OrtModule, export_onnx

MODELS = {
    "cnn": ("cnn1d", {"channels": 25}),
    "mlp": ("mlp", {"hidden": [100, 100]}),
    "mlp512": ("mlp", {"hidden": [512, 512]}),
}


def _ort_dynamic(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """ONNX Runtime's dynamic int8 quantization of the exported model: the user's obvious alternative."""
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "dyn.onnx"
        src.write_bytes(export_onnx(model, example))
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
        return OrtModule(dst.read_bytes())


def variants(
    finetune: int,
) -> dict[str, list[TreatmentConfig] | Callable[[nn.Module, torch.Tensor], nn.Module]]:
    ft = {"finetune_epochs": finetune} if finetune else {}
    return {
        "fp32 eager (dense)": [],
        "unstructured 50%": [MagnitudePrune(sparsity=0.5, **ft)],
        "structured 50%": [StructuredPrune(sparsity=0.5, **ft)],
        "unstructured 75%": [MagnitudePrune(sparsity=0.75, **ft)],
        "structured 75%": [StructuredPrune(sparsity=0.75, **ft)],
        "2:4 N:M masks (CPU: no kernel)": [NMSparsity(**ft)],
        "dynamic int8 (torch)": [DynamicInt8()],
        "static int8 (torch.ao)": [StaticInt8(backend="torch_ao")],
        "static int8 (ORT QDQ)": [StaticInt8()],
        "bf16": [HalfPrecision(dtype="bf16")],
        "fp16": [HalfPrecision(dtype="fp16")],
        "ORT fp32": lambda m, x: OrtModule(export_onnx(m, x)),
        "ORT dynamic int8": _ort_dynamic,
        "structured 50% + static int8 (ORT)": [StructuredPrune(sparsity=0.5, **ft), StaticInt8()],
        "structured 75% + static int8 (ORT)": [StructuredPrune(sparsity=0.75, **ft), StaticInt8()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="cnn,mlp", help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds per measurement")
    parser.add_argument("--train-epochs", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(DataConfig(name="mnist1d"), 0)
    trainer = Trainer(TrainConfig(epochs=max(args.train_epochs, 1), patience=None, device="cpu"))
    context = TreatmentContext(seed=0, trainer=trainer, data=data)
    print(
        f"torch {torch.__version__}, onnxruntime {ort.__version__}, "
        f"{platform.processor() or platform.machine()}, "
        f"{args.threads} thread(s), p50 latency, median of {args.reps} round-robin reps"
    )
    for key in args.models.split(","):
        name, params = MODELS[key]
        seed_everything(0)
        dense = build_model(name, params, data.input_shape, data.num_classes).eval()
        if args.train_epochs:
            trainer.fit(dense, data, 0, epochs=args.train_epochs)
        example = torch.as_tensor(data.train.x[:2])
        built: dict[str, nn.Module] = {}
        for label, chain in variants(args.train_epochs // 4).items():
            built[label] = chain(dense, example) if callable(chain) else apply(dense, chain, context)
        rows: dict[str, dict[int, float]] = {label: {} for label in built}
        for batch in (64, 1):
            x = torch.as_tensor(data.test.x[:batch])
            samples: dict[str, list[float]] = {label: [] for label in built}
            for _ in range(args.reps):
                for label, model in built.items():

                    def call(model: nn.Module = model, x: torch.Tensor = x) -> None:
                        with torch.inference_mode():
                            model(x)

                    latency = measure(call, warmup_iters=5, min_time_s=args.min_time, min_iters=20)
                    samples[label].append(latency.percentile_ms(50))
            for label in built:
                rows[label][batch] = statistics.median(samples[label])
        base, ort_dyn = rows["fp32 eager (dense)"], rows["ORT dynamic int8"]
        print(f"\n### {key}: {name} {params}\n")
        ratios = "vs fp32 | vs ORT dyn int8"
        header = f"| variant | params | B64 p50 ms | {ratios} | B1 p50 ms | {ratios} |"
        if args.train_epochs:
            header += " test acc |"
        print(header)
        print("|" + "---|" * (header.count("|") - 1))
        for label, model in built.items():
            n_params = sum(p.numel() for p in model.parameters())
            cells = [label, str(n_params) if n_params else "n/a"]
            for batch in (64, 1):
                ms = rows[label][batch]
                cells += [f"{ms:.4f}", f"{base[batch] / ms:.2f}x", f"{ort_dyn[batch] / ms:.2f}x"]
            if args.train_epochs:
                acc = float((predict_logits(model, data.test.x).argmax(1) == data.test.y).mean())
                cells.append(f"{100 * acc:.1f}")
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
