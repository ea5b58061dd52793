"""Benchmarks: usable alone on any nn.Module."""

from slimlab.bench.config import BenchConfig
from slimlab.bench.eager import bench_eager
from slimlab.bench.environment import environment
from slimlab.bench.latency import Latency, harness_overhead, measure

__all__ = ["BenchConfig", "Latency", "bench_eager", "environment", "harness_overhead", "measure"]
