"""A loaded `.pt2` program as deployed: the graph called directly against `program.module()` and the
original module, batch 1 and 64, interleaved.

    PYTHONPATH=src python benchmarks/pt2_call.py [--reps 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import torch

from slimlab.bench.latency import measure
from slimlab.bench.loading import from_reference, load_exported_program


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    source = from_reference("cnn1d", (40,), 10, {"channels": 25}).module
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.pt2"
        program = torch.export.export(
            source, (torch.randn(2, 40),), dynamic_shapes=({0: torch.export.Dim("b")},)
        )
        torch.export.save(program, path)
        loaded = load_exported_program(path).module
    for batch in (1, 64):
        x = torch.randn(batch, 40)
        calls = {"original": source, "program.module()": loaded.program, "graph (slimlab)": loaded}
        p50 = {k: [] for k in calls}
        with torch.inference_mode():
            loaded(x)
            for _ in range(args.reps):
                for name, fn in calls.items():
                    p50[name].append(
                        measure(lambda f=fn, x=x: f(x), min_time_s=0.1, min_iters=50).percentile_ms(50)
                    )
        med = {k: statistics.median(v) for k, v in p50.items()}
        print(
            f"batch {batch}: "
            + ", ".join(f"{k} {v:.4f} ms ({v / med['original']:.2f}x)" for k, v in med.items())
            + f"; load1 {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
