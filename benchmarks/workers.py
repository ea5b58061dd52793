"""`slimlab run --workers 2` against `--workers 1` on a grid of small trials, in wall time, interleaved.

    PYTHONPATH=src python benchmarks/workers.py [--seeds 10] [--reps 2] [--samples 4000] [--epochs 10]
        [--hidden 64] [--json out.json]

The grid: MNIST-1D (`--samples` samples), an MLP (`--hidden` units) or the reference CNN
(`--model cnn1d`), `--seeds` seeds x 2 variants (dense and dynamic int8), `--epochs` epochs, a short
eager benchmark: 2 x seeds trials in `seeds` groups. `--samples 1500 --epochs 4` is the grid of earlier
runs, of tenths of a second per group, where a worker's start-up is most of the work; `--seeds 20 --epochs
100` is 40 trials of about half a second, the grid of the issue-13 goal. Each repetition runs
`--workers 1` and then `--workers 2` (A B A B ...), each into a fresh folder, as separate `slimlab run`
processes, so that each pays what a user pays: interpreter start, imports, the report. On a machine shared
with other users the ratio is only meaningful within one run; the 1-minute load average is recorded before
and after each run, with `lscpu`'s model name.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRID = """
name = "workers"
[data]
name = "mnist1d"
num_samples = {samples}
[model]
{model}
[train]
epochs = {epochs}
batch_size = 100
patience = 50
[[variants]]
name = "dense"
[[variants]]
name = "int8"
treatments = [{{kind = "dynamic_int8"}}]
[evaluate]
seeds = {seeds}
baseline = "dense"
[bench]
backends = ["eager"]
scenarios = ["single-stream"]
min_time_s = 0.05
min_iters = 20
warmup_iters = 3
"""


def _model(args: argparse.Namespace) -> str:
    return 'name = "cnn1d"' if args.model == "cnn1d" else f'name = "mlp"\nhidden = [{args.hidden}]'


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return platform.processor()
    return next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "?")


def _run(config: Path, workers: int, out: Path) -> dict:
    load_before = os.getloadavg()[0]
    cli = "from slimlab.cli import main; main()"
    cmd = [sys.executable, "-c", cli, "run", str(config), "--out", str(out), "--workers", str(workers)]
    start = time.perf_counter()
    before = os.times()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    after = os.times()
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(
            f"slimlab run --workers {workers} failed ({done.returncode}):\n{done.stderr[-2000:]}"
        )
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return {
        "workers": workers,
        "wall_s": wall,
        "cpu_s": cpu,
        "load1_before": load_before,
        "load1_after": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=64, help="the MLP's hidden units")
    parser.add_argument("--model", choices=["mlp", "cnn1d"], default="mlp", help="cnn1d: the reference CNN")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="slimlab-workers-") as tmp:
        config = Path(tmp) / "workers.toml"
        config.write_text(
            GRID.format(seeds=args.seeds, samples=args.samples, epochs=args.epochs, model=_model(args))
        )
        for rep in range(args.reps):
            for workers in (1, 2):
                runs.append(_run(config, workers, Path(tmp) / f"r{rep}-w{workers}") | {"rep": rep})
                print(json.dumps(runs[-1]), flush=True)
    ratios = [
        next(r["wall_s"] for r in runs if r["rep"] == rep and r["workers"] == 1)
        / next(r["wall_s"] for r in runs if r["rep"] == rep and r["workers"] == 2)
        for rep in range(args.reps)
    ]
    summary = {
        "trials": 2 * args.seeds,
        "grid": {"samples": args.samples, "epochs": args.epochs, "model": _model(args)},
        "bytecode_written": not sys.flags.dont_write_bytecode,
        "groups": args.seeds,
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "speedup_per_rep": ratios,
        "speedup_median": statistics.median(ratios),
        "runs": runs,
    }
    print(
        f"--workers 2 over --workers 1, wall time: {summary['speedup_median']:.2f}x (per rep: "
        + ", ".join(f"{r:.2f}" for r in ratios)
        + f"); {summary['cpu']}, {summary['cores']} cores"
    )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
