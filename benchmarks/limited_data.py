"""The learning-curve table, data multipliers and figure for BENCHMARKS.md, from a finished run directory.

    slimlab run examples/limited_data.toml --out runs/limited_data
    PYTHONPATH=src python benchmarks/limited_data.py runs/limited_data [--png docs/img/limited_data.png]

Prints, per dataset, a markdown table (mean test accuracy with its t-CI over seeds per recipe and n, and
each recipe's data multiplier against the scratch baseline with its bootstrap-over-seeds interval), the
summary lines at the smallest and largest n, the machine (lscpu model, 1-minute load average), and writes
the accuracy-vs-n figure.
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import subprocess
from pathlib import Path

from slimlab.analysis.learning_curve import learning_curve_sections
from slimlab.experiment.runner import load_run
from slimlab.report.learning_curve import learning_curve_markdown, learning_curve_plot


def _cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        lines = out.splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--png", type=Path, default=None, help="default: RUN_DIR/limited_data.png")
    args = parser.parse_args()
    config, env, records = load_run(args.run_dir)
    if config is None or not records:
        raise SystemExit(f"no trials in {args.run_dir}")
    trials = [t.to_dict() for t in records]
    sections = learning_curve_sections(trials, config)
    seconds = sum(t["metrics"].get("train_seconds", 0) for t in trials if t["status"] == "ok")
    print(
        f"Machine: {_cpu()}, torch threads: {env.get('threads')}, torch {env.get('torch')}; 1-minute load "
        f"average {os.getloadavg()[0]:.1f} when this was written (the machine was shared with other "
        f"developers); {len(trials)} trials, {seconds / 60:.1f} min of training in total."
    )
    for section in sections:
        print(f"\n### {section['dataset']}: recipes against {section['baseline']}\n")
        print(learning_curve_markdown(section))
        print()
        for line in section["summary"]:
            print(f"- {line}")
        png = args.png or args.run_dir / "limited_data.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        png.write_bytes(base64.b64decode(learning_curve_plot(section)))
        print(f"\nfigure: {png}")


if __name__ == "__main__":
    main()
