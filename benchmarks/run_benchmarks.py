"""`make bench`: every reference workload on every backend, in one run, written to BENCHMARKS.md.

For each workload and backend: the p50 at batch 1 (single-stream), the offline throughput (best batch size of
a sweep), the server scenario's latency-bounded throughput, and the share of the machine's measured GEMM
peak; then the speedups of ONNX Runtime and torch.compile over eager, and of int8 over fp32. Also the
harness overhead and the agreement of our eager timing with torch.utils.benchmark.

    python benchmarks/run_benchmarks.py [--quick] [--out BENCHMARKS.md] [--json records.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from slimlab.bench import BenchConfig, environment, from_module, from_reference, gemm_peak, run_benchmark
from slimlab.bench.engine import pinned_threads
from slimlab.bench.latency import harness_overhead, measure
from slimlab.treatments import DynamicInt8, apply

START, END = "<!-- slimlab-bench:start -->", "<!-- slimlab-bench:end -->"

# (label, reference model, its hyperparameters). All take MNIST-1D's input: 40 values, 10 classes.
WORKLOADS = [
    ("cnn1d", "cnn1d", {}),
    ("mlp", "mlp", {}),
    ("mlp-1024", "mlp", {"hidden": [1024, 1024]}),  # 40→1024→1024→10: GEMM-bound at large batches
]
FP32_BACKENDS = ["eager", "compile", "onnxruntime", "onnxruntime-int8"]


def bench_config(quick: bool, threads: int | None) -> BenchConfig:
    config = BenchConfig(
        backends=FP32_BACKENDS,
        scenarios=["single-stream", "offline", "server"],
        batch_sizes=[1, 16, 64, 256],
        loadgen_scale=0.005,  # 3 s and >= 1,352 simulated server queries per measurement; 1.0 is LoadGen's
        latency_budget_ms=10.0,
        max_queue_delay_ms=1.0,
        max_seconds=120.0,
        threads=threads,
    )
    return config.quick() if quick else config


def timing_agreement(module: torch.nn.Module, batch: int, seconds: float) -> dict:
    """Mean time per call by our harness and by torch.utils.benchmark on the same call."""
    from torch.utils import benchmark

    x = torch.randn(batch, 40)

    def call() -> None:
        with torch.inference_mode():
            module(x)

    ours = measure(call, warmup_iters=10, min_time_s=seconds, min_iters=50).mean_ms
    timer = benchmark.Timer("call()", globals={"call": call}, num_threads=torch.get_num_threads())
    theirs = timer.blocked_autorange(min_run_time=seconds).mean * 1e3
    return {"ours_ms": ours, "torch_utils_benchmark_ms": theirs, "ratio": ours / theirs}


def run(quick: bool, threads: int | None) -> dict:
    config = bench_config(quick, threads)
    results: dict = {"workloads": {}, "config": config.model_dump(mode="json")}
    with pinned_threads(threads):
        results["environment"] = environment()
        # Measured afresh for each run: on a shared machine a cached peak may come from a quieter hour.
        results["peak"] = gemm_peak(refresh=True, **({"size": 1024, "min_time_s": 0.02} if quick else {}))
        results["harness_overhead_ms"] = harness_overhead(min_time_s=0.2).summary_ms()
        for label, name, params in WORKLOADS:
            print(f"== {label}", file=sys.stderr)
            fp32 = from_reference(name, (40,), 10, params)
            records = run_benchmark(fp32, config, peak=results["peak"], progress=_say)
            int8 = from_module(apply(fp32.module, DynamicInt8()), (40,), f"{label}-int8")
            int8_config = config.model_copy(update={"backends": ["eager"]})
            for r in run_benchmark(int8, int8_config, peak=results["peak"], progress=_say):
                r["backend"] = "eager-int8"
                records.append(r)
            results["workloads"][label] = {
                "records": records,
                "timing_agreement": timing_agreement(fp32.module, 64, 0.2 if quick else 2.0),
            }
    return results


def _say(message: str) -> None:
    print(f"  {message}", file=sys.stderr)


# ----- BENCHMARKS.md -----------------------------------------------------------------------------------


def _pick(records: list[dict], backend: str) -> dict:
    ok = [r for r in records if r["backend"] == backend and r["status"] == "ok"]
    skipped = next((r for r in records if r["backend"] == backend and r["status"] != "ok"), None)
    offline = [r for r in ok if r["scenario"] == "offline"]
    return {
        "single": next((r for r in ok if r["scenario"] == "single-stream"), None),
        "offline": max(offline, key=lambda r: r["throughput_per_s"]) if offline else None,
        "server": next((r for r in ok if r["scenario"] == "server"), None),
        "skipped": skipped["reason"] if skipped else None,
    }


def _f(v: float | None, fmt: str) -> str:
    return "–" if v is None else format(v, fmt)


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}×" if a and b else "–"


def workload_table(records: list[dict]) -> list[str]:
    lines = [
        "| backend | p50 batch 1 (ms) | spread across repeats | offline (/s @ batch) "
        "| server (/s, p99 ≤ budget) | server bracket (/s) | % of GEMM peak (offline) | size |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for backend in dict.fromkeys(r["backend"] for r in records):
        p = _pick(records, backend)
        if p["skipped"] and not p["single"]:
            lines.append(f"| {backend} | skipped: {p['skipped']} | | | | | | |")
            continue
        s, o, v = p["single"], p["offline"], p["server"]
        share = (o or {}).get("roofline", {}).get("peak_share")
        bracket = v["server"]["rate_bracket_per_s"] if v else None
        lines.append(
            f"| {backend} | {_f(s and s['latency_ms']['p50'], '.4f')} "
            f"| {_f(s and 100 * s['latency_ms']['repeat_spread'], '.1f')}% "
            f"| {_f(o and o['throughput_per_s'], ',.0f')} @ {o['batch_size'] if o else '–'} "
            f"| {_f(v and v['throughput_per_s'], ',.0f')} "
            f"| {f'[{bracket[0]:,.0f}, {bracket[1]:,.0f}]' if bracket else '–'} "
            f"| {_f(share and 100 * share, '.2f')} "
            f"| {_f(s and s['size_bytes'] and s['size_bytes'] / 1024, ',.0f')} KiB |"
        )
    return lines


def _metrics(records: list[dict], backend: str) -> dict[str, float | None]:
    p = _pick(records, backend)
    return {
        "p50": p["single"]["latency_ms"]["p50"] if p["single"] else None,
        "offline": p["offline"]["throughput_per_s"] if p["offline"] else None,
        "server": p["server"]["throughput_per_s"] if p["server"] else None,
    }


def speedup_table(results: dict) -> list[str]:
    pairs = [
        ("onnxruntime", "eager"),
        ("compile", "eager"),
        ("eager-int8", "eager"),
        ("onnxruntime-int8", "onnxruntime"),
    ]
    lines = [
        "| workload | faster | than | p50 batch 1 | offline | server |",
        "|---|---|---|---:|---:|---:|",
    ]
    for label, data in results["workloads"].items():
        for new, base in pairs:
            a, b = _metrics(data["records"], new), _metrics(data["records"], base)
            lines.append(
                f"| {label} | {new} | {base} | {_ratio(b['p50'], a['p50'])} "
                f"| {_ratio(a['offline'], b['offline'])} | {_ratio(a['server'], b['server'])} |"
            )
    return lines


def markdown(results: dict, command: str, seconds: float) -> str:
    env, peak, cfg = results["environment"], results["peak"], results["config"]
    out = [
        START,
        "## Benchmarks",
        "",
        f"Written by `{command}` in {seconds:.0f} s. Every number below was measured in that one run.",
        "",
        f"- machine: {env['cpu']} ({env['cpu_count']} logical CPUs; "
        f"flags {', '.join(env['cpu_flags']) or '–'}), "
        f"device {env['device']}, {env['threads']} torch threads, torch {env['torch']}, "
        f"onnxruntime {env['onnxruntime']}, Python {env['python']}, {env['platform']}",
        f"- measured GEMM peak (n = {peak['size']}): fp32 {_f(peak['fp32_gflops'], ',.1f')} GFLOP/s, int8 "
        f"{_f(peak.get('int8_gops'), ',.1f')} GOP/s (torch._int_mm); "
        f"memory copy {_f(peak['memory_gbps'], '.1f')} GB/s",
        f"- harness overhead (null call, p50): {results['harness_overhead_ms']['p50'] * 1e3:.2f} µs",
        f"- settings: batch sweep {cfg['batch_sizes']}, LoadGen scale {cfg.get('loadgen_scale', 0)} "
        f"(minimum duration and query counts as that fraction of LoadGen's), server p99 budget "
        f"{cfg.get('latency_budget_ms', 10.0)} ms, max queue delay {cfg.get('max_queue_delay_ms', 1.0)} ms",
        "- server figures come from a discrete-event simulation of Poisson arrivals and a dynamic "
        "batcher, driven by the service times measured in the offline sweep (see "
        "`slimlab/bench/scenarios.py`); a rate passes when LoadGen's early-stopping test on p99 passes. "
        "The bracket is the best passing and the lowest failing rate the time-boxed search tried.",
        "- % of GEMM peak = FLOPs per inference (torch.utils.flop_counter) × throughput / measured peak "
        "of the backend's precision. Above 100% means the calibration ran while the machine was busier "
        "than during that model's run (the peak is the best of several blocks, cached per machine).",
        "",
    ]
    for label, data in results["workloads"].items():
        agree = data["timing_agreement"]
        out += [f"### {label}", "", *workload_table(data["records"]), ""]
        out.append(
            f"Eager timing check at batch 64: our harness {agree['ours_ms']:.4f} ms per call, "
            f"torch.utils.benchmark {agree['torch_utils_benchmark_ms']:.4f} ms (ratio {agree['ratio']:.3f})."
        )
        out.append("")
    out += ["### Speedups", "", *speedup_table(results), "", END]
    return "\n".join(out) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace this script's section of `path` (between its markers), keeping everything else."""
    text = path.read_text() if path.exists() else "# slimlab benchmarks\n\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        text = head + section.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke test: very short measurements")
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"))
    parser.add_argument("--json", type=Path, default=None, help="also write every record here")
    parser.add_argument("--threads", type=int, default=None, help="torch and ORT threads")
    args = parser.parse_args()
    start = time.perf_counter()
    results = run(args.quick, args.threads)
    seconds = time.perf_counter() - start
    command = "python benchmarks/run_benchmarks.py" + (" --quick" if args.quick else "")
    if args.threads:
        command += f" --threads {args.threads}"
    write_section(args.out, markdown(results, command, seconds))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=str))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
