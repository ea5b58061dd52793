"""Benchmarks: usable alone on any nn.Module, ONNX file or torch.export program.

backend (backends.py) × scenario (scenarios.py) × meter (meters.py, calibration.py), joined by
engine.run_benchmark. Inputs are loaded by loading.py, which never unpickles arbitrary code."""

from slimlab.bench.accuracy import accuracy_by_backend
from slimlab.bench.backends import BACKENDS, Backend, BackendSkipped, Prepared, get_backend
from slimlab.bench.calibration import gemm_peak, roofline
from slimlab.bench.config import BenchConfig
from slimlab.bench.engine import run_benchmark, speedups
from slimlab.bench.environment import environment
from slimlab.bench.latency import Latency, harness_overhead, measure
from slimlab.bench.loading import LoadedModel, from_module, from_reference, load_model_file
from slimlab.bench.scenarios import ScenarioSettings, server_search, tolerable_overlatency

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendSkipped",
    "BenchConfig",
    "Latency",
    "LoadedModel",
    "Prepared",
    "ScenarioSettings",
    "accuracy_by_backend",
    "environment",
    "from_module",
    "from_reference",
    "gemm_peak",
    "get_backend",
    "harness_overhead",
    "load_model_file",
    "measure",
    "roofline",
    "run_benchmark",
    "server_search",
    "speedups",
    "tolerable_overlatency",
]
