"""The machine's limits, measured: the fp32 (and int8) GEMM peak and the memory bandwidth. A peak is never
hard-coded for one chip (STYLE.md 7). Results are cached per machine, under the slimlab cache directory,
keyed by CPU/GPU model, torch version and thread count, since each of those changes the figure."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

from slimlab.bench.environment import _cpu_model
from slimlab.data.cache import cache_dir

CACHE_FILE = "gemm_peak.json"
CALIBRATION_VERSION = 3  # bump when the method changes, so old cached figures are not reused


def machine_key(device: str = "cpu", size: int = 2048) -> str:
    hw = torch.cuda.get_device_name(0) if device.startswith("cuda") else _cpu_model()
    threads = torch.get_num_threads()
    return f"v{CALIBRATION_VERSION}|{device}|{hw}|torch {torch.__version__}|threads {threads}|n {size}"


def _best_rate(
    fn: Callable[[], object],
    work: float,
    sync,
    min_time_s: float,
    repeats: int,
    budget_s: float | None = None,
) -> float:
    """The best of `repeats` timed blocks, each at least `min_time_s`: a peak is the best the machine
    does, so the maximum (not the mean) is the right statistic; several short blocks rather than one long
    one give a busy, shared machine more chances to show it. `budget_s` stops early (after one block at
    least), so that a slow kernel cannot hold a run for minutes."""
    fn()
    sync()
    best, begun = 0.0, time.perf_counter()
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
        if budget_s is not None and time.perf_counter() - begun > budget_s:
            break
    return best


def _fitting_size(run_at: Callable[[int], Callable[[], object]], largest: int, call_s: float = 0.05) -> int:
    """The largest power-of-two square size up to `largest` whose one call takes about `call_s` or less:
    an int8 GEMM without a fast kernel (torch._int_mm on some CPUs) runs at a few hundred MOP/s, and one
    2048^3 call would then take a minute."""
    n = 128
    while n < largest:
        fn = run_at(n)
        fn()
        start = time.perf_counter()
        fn()
        if (time.perf_counter() - start) * 8 > call_s:  # the next size costs 8x as much
            break
        n *= 2
    return min(n, largest)


def _torch_int8(size: int, dev: torch.device) -> Callable[[], object]:
    g = torch.Generator(device="cpu").manual_seed(1)
    ai = torch.randint(-128, 127, (size, size), generator=g, dtype=torch.int8).to(dev)
    bi = torch.randint(-128, 127, (size, size), generator=g, dtype=torch.int8).to(dev)
    return lambda: torch._int_mm(ai, bi)


def _ort_int8(size: int) -> Callable[[], object]:
    """ONNX Runtime's u8 x s8 MatMulInteger (the kernel its QDQ int8 models run: VNNI on x86), on
    `torch.get_num_threads()` threads."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])],
        "int8_gemm",
        [
            helper.make_tensor_value_info("a", TensorProto.UINT8, [size, size]),
            helper.make_tensor_value_info("b", TensorProto.INT8, [size, size]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [size, size])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    feeds = {
        "a": rng.integers(0, 255, (size, size), dtype=np.uint8),
        "b": rng.integers(-128, 127, (size, size), dtype=np.int8),
    }
    onnx.checker.check_model(model)
    return lambda: session.run(None, feeds)


def _int8_peaks(dev: torch.device, size: int, sync, min_time_s: float, repeats: int) -> dict[str, dict]:
    """GOP/s of each int8 GEMM this machine has: torch._int_mm and, on the CPU, ORT's MatMulInteger."""
    out: dict[str, dict] = {}
    candidates: dict[str, Callable[[int], Callable[[], object]]] = {}
    if hasattr(torch, "_int_mm"):
        candidates["torch._int_mm"] = lambda n: _torch_int8(n, dev)
    if dev.type == "cpu":
        candidates["onnxruntime MatMulInteger u8s8"] = _ort_int8
    for name, run_at in candidates.items():
        try:
            n = _fitting_size(run_at, size)
            rate = _best_rate(run_at(n), 2.0 * n**3, sync, min_time_s, repeats, budget_s=2.0)
        except Exception as e:  # no int8 GEMM kernel for this device/build
            out[name] = {"gops": None, "reason": f"{type(e).__name__}: {str(e)[:200]}"}
            continue
        out[name] = {"gops": rate / 1e9, "size": n}
    return out


def _load1() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def measure_gemm_peak(
    device: str = "cpu", size: int = 2048, min_time_s: float = 0.1, repeats: int = 6
) -> dict[str, float | int | None]:
    """GFLOP/s of square matrix multiplies (2·n³ FLOPs each) in each precision: fp32 and bf16 torch.mm,
    and the fastest int8 GEMM on the machine (torch._int_mm or ONNX Runtime's u8s8 MatMulInteger; each
    at the largest size whose call stays short). Also GB/s of a large tensor copy (read + write), the
    roofline's slanted roof. The 1-minute load average before and after is recorded: a peak measured on a
    busy machine is low, and `gemm_peak` re-measures it later."""
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    load_before = _load1()
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=g).to(dev)
    b = torch.randn(size, size, generator=g).to(dev)
    out = torch.empty(size, size, device=dev)
    flops = 2.0 * size**3
    fp32 = _best_rate(lambda: torch.mm(a, b, out=out), flops, sync, min_time_s, repeats)
    bf16: float | None = None
    try:
        ab, bb = a.to(torch.bfloat16), b.to(torch.bfloat16)
        n = _fitting_size(lambda k: lambda: torch.mm(ab[:k, :k], bb[:k, :k]), size, call_s=0.2)
        bf16 = _best_rate(
            lambda: torch.mm(ab[:n, :n], bb[:n, :n]), 2.0 * n**3, sync, min_time_s, repeats, budget_s=2.0
        )
    except RuntimeError:
        bf16 = None
    int8 = _int8_peaks(dev, size, sync, min_time_s, repeats)
    fastest = max(
        ((name, r["gops"]) for name, r in int8.items() if r.get("gops")), key=lambda kv: kv[1], default=None
    )
    big = torch.empty(64 * 1024 * 1024 // 4, device=dev)  # 64 MiB: well past any CPU's last-level cache
    dst = torch.empty_like(big)
    bandwidth = _best_rate(lambda: dst.copy_(big), 2.0 * big.numel() * 4, sync, min_time_s, repeats)
    return {
        "fp32_gflops": fp32 / 1e9,
        "bf16_gflops": bf16 / 1e9 if bf16 else None,
        "int8_gops": fastest[1] if fastest else None,
        "int8_kernel": fastest[0] if fastest else None,
        "int8_candidates": int8,
        "memory_gbps": bandwidth / 1e9,
        "size": size,
        "threads": torch.get_num_threads(),
        "load1_before": load_before,
        "load1_after": _load1(),
        "cpu_count": os.cpu_count(),
        "method": "best of timed blocks: fp32/bf16 torch.mm, int8 = fastest of torch._int_mm and ORT "
        "MatMulInteger (u8s8), 64 MiB copy for bandwidth",
    }


def busy(result: dict) -> bool:
    """Whether a calibration was taken on a loaded machine: the 1-minute load average at the time was
    above the number of CPUs (so the measuring threads shared their cores)."""
    loads = [x for x in (result.get("load1_before"), result.get("load1_after")) if x is not None]
    cpus = result.get("cpu_count") or os.cpu_count() or 1
    return bool(loads) and max(loads) > cpus


def gemm_peak(
    device: str = "cpu",
    *,
    refresh: bool = False,
    cache: Path | None = None,
    recheck_load: bool = True,
    **measure_kwargs,
) -> dict[str, float | int | None]:
    """The cached calibration for this machine, measured on first use (a few seconds). The key holds the
    CPU/GPU model, torch version, thread count and size, so another CPU is measured afresh. A cached figure
    taken under load (see `busy`) is measured again when the machine is quieter now, and the higher of the
    two peaks is kept per precision: a peak is the best the machine does. `recheck_load=False` takes the
    cached figure as it is (each trial reads the peak that its run's driver checked at the start)."""
    path = Path(cache) if cache is not None else cache_dir() / CACHE_FILE
    key = machine_key(device, measure_kwargs.get("size", 2048))
    table: dict = {}
    if path.is_file():
        try:
            table = json.loads(path.read_text())
        except (json.JSONDecodeError, OSError):
            table = {}  # a corrupt cache is re-measured, not trusted
    old = table.get(key) if isinstance(table.get(key), dict) else None
    now = _load1()
    quieter = (
        recheck_load
        and old is not None
        and busy(old)
        and now is not None
        and now < (old.get("load1_before") or 0)
    )
    if not refresh and old is not None and not quieter:
        return {**old, "cached": True, "key": key}
    result = measure_gemm_peak(device, **measure_kwargs)
    result["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if quieter and old is not None:
        result["remeasured"] = f"the cached peak of {old.get('measured_at')} was taken under load"
        for name in ("fp32_gflops", "bf16_gflops", "int8_gops", "memory_gbps"):
            if (old.get(name) or 0) > (result.get(name) or 0):
                result[name] = old[name]
    table[key] = result
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # one temporary file per process: workers may race
    tmp.write_text(json.dumps(table, indent=1))
    tmp.replace(path)  # atomic, so a concurrent reader never sees half a file
    return {**result, "cached": False, "key": key}


def roofline(
    flops_per_inference: int | None,
    bytes_per_inference: float | None,
    throughput_per_s: float | None,
    peak: dict | None,
    int8: bool = False,
    precision: str | None = None,
) -> dict[str, float | None]:
    """Where one result sits: achieved GFLOP/s, its share of the GEMM peak of its precision, its arithmetic
    intensity (FLOPs per byte moved) and the attainable GFLOP/s at that intensity (min of the compute roof
    and bandwidth × intensity)."""
    achieved = (
        flops_per_inference * throughput_per_s / 1e9 if flops_per_inference and throughput_per_s else None
    )
    # Compared with the peak of the result's own precision (int8 with the int8 GEMM, bf16 with bf16), never
    # fp32's: a bf16 or int8 model at "120% of peak" would be a meaningless figure.
    precision = precision or ("int8" if int8 else "fp32")
    roof, used = None, None
    if peak:
        own = {"int8": peak.get("int8_gops"), "bf16": peak.get("bf16_gflops")}.get(precision)
        roof, used = (own, precision) if own else (peak.get("fp32_gflops"), "fp32")
    intensity = (
        flops_per_inference / bytes_per_inference if flops_per_inference and bytes_per_inference else None
    )
    attainable = None
    if roof and intensity and peak and peak.get("memory_gbps"):
        attainable = min(roof, peak["memory_gbps"] * intensity)
    return {
        "achieved_gflops": achieved,
        "peak_gflops": roof,
        "peak_precision": used,
        "peak_share": achieved / roof if achieved and roof else None,
        "intensity_flops_per_byte": intensity,
        "attainable_gflops": attainable,
    }
