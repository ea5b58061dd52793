"""The machine a result was measured on. Looked up, never assumed."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

import torch

import slimlab


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    wanted = {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile"}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return sorted(wanted & set(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return []


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict:
    cuda = torch.cuda.is_available()
    return {
        "slimlab": slimlab.__version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": _version("numpy"),
        "onnxruntime": _version("onnxruntime"),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": _cpu_flags(),
        "threads": torch.get_num_threads(),
        "quantized_engine": torch.backends.quantized.engine,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        # Measured by bench.calibration.gemm_peak (cached per machine); an experiment fills it in when it
        # benchmarks, and it stays None (not measured) otherwise: never a number assumed for a chip.
        "gemm_peak_gflops": None,
    }
