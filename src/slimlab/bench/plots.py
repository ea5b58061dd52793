"""Bench plots as base64 PNGs, with matplotlib's object API (no pyplot state), like report/plots.py."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from slimlab.bench.records import select
from slimlab.plotting import png_base64

_png = png_base64  # the dpi these plots were always drawn at (110)


def _ok(records: list[dict], scenario: str) -> list[dict]:
    return select(records, scenario=scenario)


def latency_vs_batch(records: list[dict], title: str = "latency against batch size") -> str | None:
    """p50 latency of each backend's offline sweep against batch size (log-log), p90 as the upper whisker.
    None when there is no offline sweep to draw."""
    offline = _ok(records, "offline")
    if not offline:
        return None
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    for backend in dict.fromkeys(r["backend"] for r in offline):
        rows = sorted((r for r in offline if r["backend"] == backend), key=lambda r: r["batch_size"])
        x = [r["batch_size"] for r in rows]
        p50 = np.array([r["latency_ms"]["p50"] for r in rows])
        p90 = np.array([r["latency_ms"]["p90"] for r in rows])
        ax.errorbar(x, p50, yerr=[np.zeros_like(p50), p90 - p50], marker="o", capsize=3, label=backend)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("latency per batch (ms; p50, whisker to p90)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _png(fig)


def roofline_plot(records: list[dict], peak: dict, title: str = "roofline") -> str | None:
    """Each ok result at (arithmetic intensity, achieved GFLOP/s) under the machine's measured roofs: the
    fp32 (and int8) GEMM peaks and the memory-bandwidth slope. None without the needed figures."""
    points = [
        r
        for r in records
        if r.get("status") == "ok"
        and (r.get("roofline") or {}).get("achieved_gflops")
        and r["roofline"].get("intensity_flops_per_byte")
    ]
    if not points or not peak or not peak.get("fp32_gflops"):
        return None
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    xs = [r["roofline"]["intensity_flops_per_byte"] for r in points]
    lo, hi = min(xs) / 4, max(xs) * 4
    grid = np.geomspace(lo, hi, 200)
    for name, roof, style in (
        ("fp32 GEMM peak", peak["fp32_gflops"], "-"),
        ("bf16 GEMM peak", peak.get("bf16_gflops"), ":"),
        ("int8 GEMM peak", peak.get("int8_gops"), "--"),
    ):
        if not roof:
            continue
        attainable = (
            np.minimum(roof, grid * peak["memory_gbps"])
            if peak.get("memory_gbps")
            else np.full_like(grid, roof)
        )
        ax.plot(grid, attainable, style, color="black", alpha=0.6, label=f"{name} ({roof:.0f} G/s)")
    markers = {"single-stream": "o", "offline": "s", "server": "^"}
    colors: dict[str, str] = {}
    for r in points:
        first = r["backend"] not in colors
        color = colors.setdefault(r["backend"], f"C{len(colors)}")
        ax.scatter(
            r["roofline"]["intensity_flops_per_byte"],
            r["roofline"]["achieved_gflops"],
            marker=markers.get(r["scenario"], "o"),
            color=color,
            label=r["backend"] if first else None,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOPs per byte of weights and I/O)")
    ax.set_ylabel("achieved GFLOP/s")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)
