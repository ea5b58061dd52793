"""The machine's limits, measured: the fp32 (and int8) GEMM peak and the memory bandwidth. A peak is never
hard-coded for one chip (STYLE.md 7). Results are cached per machine, under the slimlab cache directory,
keyed by CPU/GPU model, torch version and thread count, since each of those changes the figure."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import torch

from slimlab.bench.environment import _cpu_model
from slimlab.data.cache import cache_dir

CACHE_FILE = "gemm_peak.json"
CALIBRATION_VERSION = 2  # bump when the method changes, so old cached figures are not reused


def machine_key(device: str = "cpu", size: int = 2048) -> str:
    hw = torch.cuda.get_device_name(0) if device.startswith("cuda") else _cpu_model()
    threads = torch.get_num_threads()
    return f"v{CALIBRATION_VERSION}|{device}|{hw}|torch {torch.__version__}|threads {threads}|n {size}"


def _best_rate(fn: Callable[[], object], work: float, sync, min_time_s: float, repeats: int) -> float:
    """The best of `repeats` timed blocks, each at least `min_time_s`: a peak is the best the machine
    does, so the maximum (not the mean) is the right statistic; several short blocks rather than one long
    one give a busy, shared machine more chances to show it."""
    fn()
    sync()
    best = 0.0
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            sync()
            elapsed = time.perf_counter() - start
            if elapsed >= min_time_s:
                break
        best = max(best, work * calls / elapsed)
    return best


def measure_gemm_peak(
    device: str = "cpu", size: int = 2048, min_time_s: float = 0.1, repeats: int = 6
) -> dict[str, float | int | None]:
    """GFLOP/s of square matrix multiplies (2·n³ FLOPs each): fp32 torch.mm, and int8 torch._int_mm where
    the build has it. Also GB/s of a large tensor copy (read + write), the roofline's slanted roof."""
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=g).to(dev)
    b = torch.randn(size, size, generator=g).to(dev)
    out = torch.empty(size, size, device=dev)
    flops = 2.0 * size**3
    fp32 = _best_rate(lambda: torch.mm(a, b, out=out), flops, sync, min_time_s, repeats)
    int8: float | None = None
    if hasattr(torch, "_int_mm"):
        try:
            ai = torch.randint(-128, 127, (size, size), generator=g, dtype=torch.int8).to(dev)
            bi = torch.randint(-128, 127, (size, size), generator=g, dtype=torch.int8).to(dev)
            int8 = _best_rate(lambda: torch._int_mm(ai, bi), flops, sync, min_time_s, repeats)
        except RuntimeError:  # no int8 GEMM kernel for this device/build
            int8 = None
    big = torch.empty(64 * 1024 * 1024 // 4, device=dev)  # 64 MiB: well past any CPU's last-level cache
    dst = torch.empty_like(big)
    bandwidth = _best_rate(lambda: dst.copy_(big), 2.0 * big.numel() * 4, sync, min_time_s, repeats)
    return {
        "fp32_gflops": fp32 / 1e9,
        "int8_gops": int8 / 1e9 if int8 else None,
        "memory_gbps": bandwidth / 1e9,
        "size": size,
        "threads": torch.get_num_threads(),
    }


def gemm_peak(
    device: str = "cpu", *, refresh: bool = False, cache: Path | None = None, **measure_kwargs
) -> dict[str, float | int | None]:
    """The cached calibration for this machine, measured on first use (about a second or two)."""
    path = Path(cache) if cache is not None else cache_dir() / CACHE_FILE
    key = machine_key(device, measure_kwargs.get("size", 2048))
    table: dict = {}
    if path.is_file():
        try:
            table = json.loads(path.read_text())
        except (json.JSONDecodeError, OSError):
            table = {}  # a corrupt cache is re-measured, not trusted
    if not refresh and isinstance(table.get(key), dict):
        return {**table[key], "cached": True, "key": key}
    result = measure_gemm_peak(device, **measure_kwargs)
    result["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    table[key] = result
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(table, indent=1))
    tmp.replace(path)  # atomic, so a concurrent reader never sees half a file
    return {**result, "cached": False, "key": key}


def roofline(
    flops_per_inference: int | None,
    bytes_per_inference: float | None,
    throughput_per_s: float | None,
    peak: dict | None,
    int8: bool = False,
) -> dict[str, float | None]:
    """Where one result sits: achieved GFLOP/s, its share of the GEMM peak of its precision, its arithmetic
    intensity (FLOPs per byte moved) and the attainable GFLOP/s at that intensity (min of the compute roof
    and bandwidth × intensity)."""
    achieved = (
        flops_per_inference * throughput_per_s / 1e9 if flops_per_inference and throughput_per_s else None
    )
    roof = None
    if peak:
        roof = peak.get("int8_gops") if int8 and peak.get("int8_gops") else peak.get("fp32_gflops")
    intensity = (
        flops_per_inference / bytes_per_inference if flops_per_inference and bytes_per_inference else None
    )
    attainable = None
    if roof and intensity and peak and peak.get("memory_gbps"):
        attainable = min(roof, peak["memory_gbps"] * intensity)
    return {
        "achieved_gflops": achieved,
        "peak_gflops": roof,
        "peak_share": achieved / roof if achieved and roof else None,
        "intensity_flops_per_byte": intensity,
        "attainable_gflops": attainable,
    }
