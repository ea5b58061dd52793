"""What importing slimlab costs a fresh process (each `slimlab` command and each `--workers` worker pays it).

    PYTHONPATH=src python benchmarks/imports.py [--module slimlab.experiment.runner] [--reps 3]
        [--other-src PATH]   # a second checkout's src/, measured interleaved with this one (A B A B ...)

Runs `python -X importtime -c "import MODULE"` `--reps` times and reports the median total, the median time
spent in torch (which every run needs), their ratio (robust to load on a shared machine: both grow alike),
and which heavy optional libraries the import pulled in.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "sklearn", "scipy", "pandas", "statsmodels", "matplotlib", "onnx", "onnxruntime")


def _once(module: str, src: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    top: dict[str, int] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        if name.strip() in HEAVY and name.strip() not in top:
            top[name.strip()] = int(cumulative)
        if name.strip() == module:
            total = int(cumulative)
    return {"total_s": total / 1e6, "torch_s": top.get("torch", 0) / 1e6, "loaded": sorted(top)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--module", default="slimlab.experiment.runner")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--other-src", type=Path, default=None)
    args = parser.parse_args()
    sources = {"this": Path(__file__).resolve().parents[1] / "src"}
    if args.other_src:
        sources["other"] = args.other_src.resolve()
    runs: dict[str, list[dict]] = {k: [] for k in sources}
    for _ in range(args.reps):
        for name, src in sources.items():  # interleaved, so that load hits both alike
            runs[name].append(_once(args.module, src))
    for name, rows in runs.items():
        total = statistics.median(r["total_s"] for r in rows)
        torch_s = statistics.median(r["torch_s"] for r in rows)
        print(
            f"{name}: import {args.module} {total:.2f} s, torch {torch_s:.2f} s "
            f"(total/torch {total / torch_s:.2f}); loaded: {', '.join(rows[-1]['loaded'])}; "
            f"load1 {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
