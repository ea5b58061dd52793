"""A study's tables, claims and figures for BENCHMARKS.md, from a finished run directory.

    slimlab run examples/deep_bootstrap.toml --out runs/deep_bootstrap
    slimlab run examples/switch_moe.toml --out runs/switch_moe
    PYTHONPATH=src python benchmarks/studies.py runs/deep_bootstrap runs/switch_moe [--img-dir docs/img]

Prints markdown (the machine, the tables with 95% t intervals over seeds, each paper claim and whether it
held) and writes the report's figures as PNGs into --img-dir (default: the run directory).
"""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path

from slimlab.report.studies import figures


def _ci(x: dict, scale: float = 100, digits: int = 1) -> str:
    if x.get("mean") is None:
        return "–"
    lo, hi = x.get("ci") or (None, None)
    text = f"{x['mean'] * scale:.{digits}f}"
    return text + (f" [{lo * scale:.{digits}f}, {hi * scale:.{digits}f}]" if lo is not None else "")


def _ratio(x: dict) -> str:
    if x.get("mean") is None:
        return "not reached"
    lo, hi = x["ci"]
    return f"{x['mean']:.2f}x" + (f" [{lo:.2f}, {hi:.2f}]" if lo is not None else "")


def deep_bootstrap_markdown(s: dict) -> list[str]:
    out = [
        "| setting | seeds converged | step | Real test err % | Ideal test err % | gap (pts) "
        "| soft gap (pts) | max soft gap before (pts) | final gap (pts) | final soft gap (pts) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for x in s["settings"]:
        c, f = x["converged"], x["final"]
        out.append(
            f"| {x['arch']}{' + aug' if x['augment'] else ''} | {c['seeds_converged']}/{c['seeds']} "
            f"| {_ci(c['step'], 1, 0)} | {_ci(c['real_error'])} | {_ci(c['ideal_error'])} | {_ci(c['gap'])} "
            f"| {_ci(c['soft_gap'])} | {_ci(c['max_soft_gap_before'])} | {_ci(f['gap'])} "
            f"| {_ci(f['soft_gap'])} |"
        )
    return out


def switch_markdown(s: dict) -> list[str]:
    out = [
        "| variant | params | FLOPs/token | test loss | test acc % | reached dense | speedup (steps) "
        "| speedup (time) | ms/step | dropped % |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v in s["variants"]:
        out.append(
            f"| {v['variant']} | {v['params']:,} | {v['flops_per_token']:,.0f} "
            f"| {_ci(v['final_test_loss'], 1, 3)} "
            f"| {_ci(v['final_test_accuracy'])} | {v['reached_dense_final']} | {_ratio(v['speedup_steps'])} "
            f"| {_ratio(v['speedup_time'])} | {_ci(v['seconds_per_step'], 1000, 1)} "
            f"| {_ci(v['dropped_fraction_final'], 100, 2)} |"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", type=Path, nargs="+")
    parser.add_argument("--img-dir", type=Path, default=None)
    args = parser.parse_args()
    for run in args.run_dirs:
        results = json.loads((run / "results.json").read_text())
        s, env = results["study"], results["environment"]
        print(f"### {results['experiment']['name']}\n")
        print(
            f"Machine: {env['cpu']}, {env['cpu_count']} cores shared with other developers, torch "
            f"{env['torch']}, {env['threads']} thread(s), 1-minute load average "
            f"{env.get('load_average_1min') or 0:.2f} at the end of the run.\n"
        )
        lines = deep_bootstrap_markdown(s) if s["type"] == "deep_bootstrap" else switch_markdown(s)
        print("\n".join(lines) + "\n")
        for c in s["claims"]:
            held = {True: "held", False: "not held", None: "n/a"}[c["held"]]
            print(f"- **{held}**: {c['claim']}. {c['detail']}.")
        print()
        img_dir = args.img_dir or run
        img_dir.mkdir(parents=True, exist_ok=True)
        for key, png in figures(results).items():
            if png:
                path = img_dir / f"{results['experiment']['name']}_{key}.png"
                path.write_bytes(base64.b64decode(png))
                print(f"![{results['experiment']['name']} {key}]({path})\n")


if __name__ == "__main__":
    main()
