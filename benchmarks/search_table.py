"""The search's accepted variant against the best one-step alternative, per workload, in one interleaved run.

    PYTHONPATH=src python benchmarks/search_table.py [--workloads cnn,mlp512,mlp784,own_cnn,minilm]
        [--out runs/search_table] [--reps 5] [--min-time 0.2] [--json out.json] [--quick]

For each workload (benchmarks/search_table/NAME.toml):

1. `slimlab run` with its `[search]` section, as a user runs it: 5 or 10 seeds (MiniLM 3), structured
   pruning (the CNNs 25 and 50% of channels, the MLPs 50 and 75% of units) fine-tuned with distillation
   from the dense parent, static int8 (per-channel or per-tensor), ONNX Runtime's dynamic int8 (the MLPs and
   MiniLM), mixed precision (MiniLM: MatMul int8, the rest static or dynamic, no pruning), every candidate
   deployed on a bare ONNX Runtime session at 1 and 2 threads; verdicts by
   the Holm-corrected non-inferiority rule on the test split. A finished run in `--out` is reused.
2. The search's decision at batch 1 and at batch 64, from that run's trials (`search_decision`, the same
   function the report uses; the run itself ranks at batch 64).
3. One interleaved timing (A B C ... A B C ..., `--reps` rounds, each cell's p50 per round) of, at that
   batch size, on the seed-0 validation rows:
   - the one-step cells, at torch's default thread count: torch fp32 eager, torch bf16 eager, ORT fp32,
     ORT dynamic int8 (`quantize_dynamic`) and ORT static int8 QDQ (the run's plain static int8 candidate,
     per-channel, min-max), each a bare session;
   - with NNCF and OpenVINO installed (`pip install 'slimlab[compare]'`), what a user of Intel's tools gets in
     one call: `nncf.quantize` (300 calibration samples, its defaults) on the ONNX graph, run on ONNX
     Runtime, and on the OpenVINO model, run by OpenVINO, beside OpenVINO fp32 (static batch shape, the
     latency hint, one stream, the default threads);
   - the search's accepted variant as it deploys: its saved ONNX file on a session at the thread count the
     search chose. When nothing is accepted, the search keeps the dense model on its fastest session.
   The torch cells of a model slimlab trains (cnn, mlp512, mlp784, own_cnn) time the architecture with its
   initial weights: dense fp32 and bf16 kernels do the same work whatever the weights hold. MiniLM's are
   the pretrained encoder itself.

The ratio is best-cell p50 over accepted p50 within each round; the table gives its median and range over
rounds. The machine (lscpu), versions and the 1-minute load average before and after are recorded.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from slimlab.analysis.search import screening_metric, search_decision
from slimlab.bench.deploy import deployed_latency, session_options
from slimlab.bench.environment import environment
from slimlab.bench.latency import measure
from slimlab.config import load_experiment
from slimlab.data import load_dataset
from slimlab.data.batches import (
    Inputs,
    call,
    cycle_rows,
    leaves,
    map_leaves,
    n_rows,
    take,
    to_numpy,
    to_torch,
)
from slimlab.models.factory import build_configured_model
from slimlab.treatments import HalfPrecision, apply
from slimlab.treatments.ort_qdq import quantize_dynamic_graph

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent / "search_table"
WORKLOADS = {
    "cnn": HERE / "cnn.toml",
    "mlp512": HERE / "mlp512.toml",
    "mlp784": HERE / "mlp784.toml",
    "own_cnn": HERE / "own_cnn.toml",
    "minilm": HERE / "minilm.toml",
}
ONE_STEP = (
    "torch fp32",
    "torch bf16",
    "ORT fp32",
    "ORT dynamic int8",
    "ORT static int8 QDQ",
    # Intel's tools, when installed (pip install 'slimlab[compare]'): what a user of NNCF does in one call.
    "NNCF int8 on ORT",
    "OpenVINO fp32",
    "NNCF int8 on OpenVINO",
)


def run_search(name: str, out: Path, quick: bool) -> Path:
    """`slimlab run` of the workload into `out/NAME` (reused when finished)."""
    run_dir = out / name
    if (run_dir / "results.json").is_file():
        return run_dir
    env = dict(os.environ)
    extra = [str(ROOT / "examples" / "own_model"), str(ROOT / "examples"), str(ROOT / "src")]
    env["PYTHONPATH"] = os.pathsep.join([*extra, env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "slimlab", "run", str(WORKLOADS[name]), "--out", str(run_dir)]
    start = time.time()
    subprocess.run([*command, *(["--quick"] if quick else [])], check=True, env=env)
    (run_dir / "wall_seconds.txt").write_text(f"{time.time() - start:.1f}\n")
    return run_dir


def decide(results: dict, config, batch: int) -> dict:
    search, ev = config.search, config.evaluate
    decisions = search_decision(
        results,
        baseline=ev.baseline,
        margin=ev.margin,
        alpha=ev.alpha,
        batch_size=batch,
        reference_backend=search.reference_backend,
        deploy_backends=search.deploy_backends,
        **screening_metric(config),
    )
    return next(iter(decisions.values()))


def _trial(results: dict, variant: str) -> dict:
    """The variant's trial of the lowest seed that has a saved model."""
    trials = [t for t in results["trials"] if t["variant"] == variant and t.get("model_file")]
    if not trials:
        raise SystemExit(f"no saved model for {variant!r}: the run needs `[bench] save_models = true`")
    return min(trials, key=lambda t: t["seed"])


def session(graph: bytes, threads: int) -> Callable[[Inputs], object]:
    import onnxruntime as ort

    sess = ort.InferenceSession(graph, session_options(threads), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]

    def run(x: Inputs) -> object:
        return sess.run(None, dict(zip(names, leaves(x), strict=True)))

    return run


def nncf_int8(graph: bytes, calibration: Inputs) -> tuple[bytes, object]:
    """NNCF's post-training int8 (`nncf.quantize`, its defaults: 300 samples, fast bias correction), as a
    user of Intel's tools does it in one call: on the ONNX graph (a QDQ graph for ONNX Runtime) and on the
    OpenVINO model converted from it."""
    import nncf
    import onnx

    names = [i.name for i in onnx.load_from_string(graph).graph.input]
    rows = [take(calibration, slice(i, i + 1)) for i in range(min(300, n_rows(calibration)))]
    feeds = nncf.Dataset(rows, lambda r: dict(zip(names, leaves(r), strict=True)))
    onnx_int8 = nncf.quantize(onnx.load_from_string(graph), feeds, subset_size=len(rows))
    ov_int8 = nncf.quantize(openvino_model(graph), feeds, subset_size=len(rows))
    return onnx_int8.SerializeToString(), ov_int8


def openvino_model(graph: bytes) -> object:
    """An ONNX graph as an OpenVINO model (`openvino.convert_model` reads it from a file)."""
    import tempfile

    import openvino as ov

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(graph)
        return ov.convert_model(str(path))


def openvino(model: object, batch_inputs: Inputs, threads: int) -> Callable[[Inputs], object]:
    """An OpenVINO model compiled for CPU at a static batch shape, `threads` inference threads, one
    stream, the latency hint: how OpenVINO's documentation deploys a latency-bound model."""
    import openvino as ov

    model = openvino_model(model) if isinstance(model, bytes) else model.clone()
    arrays = leaves(batch_inputs)
    model.reshape({i: list(a.shape) for i, a in enumerate(arrays)})
    config = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}
    request = ov.Core().compile_model(model, "CPU", config).create_infer_request()

    def run(x: Inputs) -> object:
        return request.infer(dict(enumerate(leaves(x))))

    return run


def torch_cell(module: torch.nn.Module, dtype: torch.dtype) -> Callable[[Inputs], object]:
    module = module.eval()

    @torch.inference_mode()
    def run(x: Inputs) -> object:
        return call(module, map_leaves(x, lambda a: a.to(dtype) if a.is_floating_point() else a))

    return run


def deployment(row: dict | None, dense: dict, batch: int) -> tuple[str, int]:
    """(variant, session threads) the search ships: the accepted row's, else the dense model's fastest."""
    if row and row["deployment"]:
        return row["variant"], int(row["deployment"]["threads"])
    return dense["variant"], int(deployed_latency(dense, batch, ("onnxruntime-session",))["threads"])


def workload(name: str, run_dir: Path, batches: list[int], reps: int, min_time: float) -> list[dict]:
    results = json.loads((run_dir / "results.json").read_text())
    config = load_experiment(WORKLOADS[name])
    seed = min(t["seed"] for t in results["trials"])
    data = load_dataset(config.data[0], seed)
    baseline = config.evaluate.baseline
    dense_trial = _trial(results, baseline)
    dense_graph = (run_dir / dense_trial["model_file"]).read_bytes()
    module = build_configured_model(config.model, data.input_shape, data.num_classes)
    pretrained = config.model.is_pretrained  # else the torch cells hold the initial weights
    default = torch.get_num_threads()
    one_step = {
        "torch fp32": torch_cell(module, torch.float32),
        "torch bf16": torch_cell(apply(module, HalfPrecision(dtype="bf16")), torch.bfloat16),
        "ORT fp32": session(dense_graph, default),
        "ORT dynamic int8": session(quantize_dynamic_graph(dense_graph, None), default),
        "ORT static int8 QDQ": session(
            (run_dir / _trial(results, "search-s0-static_int8")["model_file"]).read_bytes(), default
        ),
    }
    intel = None
    if importlib.util.find_spec("nncf") and importlib.util.find_spec("openvino"):
        calibration = take(data.train.x, np.random.default_rng(seed).permutation(n_rows(data.train.x)))
        nncf_onnx, nncf_ov = nncf_int8(dense_graph, to_numpy(calibration))
        one_step["NNCF int8 on ORT"] = session(nncf_onnx, default)
        intel = nncf_ov
    rows = []
    for batch in batches:
        decision = decide(results, config, batch)
        accepted = next((r for r in decision["candidates"] if r["variant"] == decision["accepted"]), None)
        variant, threads = deployment(accepted, dense_trial, batch)
        graph = (run_dir / _trial(results, variant)["model_file"]).read_bytes()
        x_torch = to_torch(cycle_rows(data.val.x, batch))
        x_numpy = to_numpy(x_torch)
        cells = dict(one_step)
        if intel is not None:
            cells["OpenVINO fp32"] = openvino(dense_graph, x_numpy, default)
            cells["NNCF int8 on OpenVINO"] = openvino(intel, x_numpy, default)
        cells[f"search: {variant} @ {threads} thr"] = session(graph, threads)
        inputs = {label: x_torch if label.startswith("torch") else x_numpy for label in cells}
        p50s: dict[str, list[float]] = {label: [] for label in cells}
        for _ in range(reps):
            for label, run in cells.items():  # round-robin: load hits every cell alike
                lat = measure(
                    lambda r=run, x=inputs[label]: r(x), warmup_iters=3, min_time_s=min_time, min_iters=5
                )
                p50s[label].append(lat.percentile_ms(50))
        search_label = next(label for label in cells if label.startswith("search"))
        checked = fidelity(cells, data, batch, pretrained) if batch == max(batches) else None
        best = min((c for c in cells if c in ONE_STEP), key=lambda label: statistics.median(p50s[label]))
        ratios = [b / s for b, s in zip(p50s[best], p50s[search_label], strict=True)]
        rows.append(
            {
                "workload": name,
                "batch": batch,
                "p50_ms": {label: statistics.median(v) for label, v in p50s.items()},
                "p50_ms_per_round": p50s,
                "best_cell": best,
                "search_cell": search_label,
                "accepted": decision["accepted"],
                "verdict": _verdict(accepted),
                "ratio_median": statistics.median(ratios),
                "ratio_range": [min(ratios), max(ratios)],
                "in_run_speedup_vs_best_cell": accepted["speedup_vs_best_cell"] if accepted else None,
                "candidates": [_verdict(r) | {"variant": r["variant"]} for r in decision["candidates"]],
                "test_split_seed0": checked,
                "load1": os.getloadavg()[0],
            }
        )
        print(_line(rows[-1]), flush=True)
    return rows


def first_output(out: object) -> np.ndarray:
    """The first output of a torch module, an ORT session or an OpenVINO request, as float32 numpy."""
    if isinstance(out, torch.Tensor):
        return out.float().numpy()
    if isinstance(out, (list, tuple)):
        return first_output(out[0])
    if hasattr(out, "values") and not isinstance(out, np.ndarray):
        return first_output(next(iter(out.values())))
    first = getattr(out, "last_hidden_state", None)
    return first_output(first) if first is not None else np.asarray(out, dtype=np.float32)


def outputs(run: Callable[[Inputs], object], x: Inputs, batch: int, as_torch: bool) -> np.ndarray:
    """`run` over all rows of `x` in chunks of exactly `batch` rows (the last one filled cyclically, as
    a static-shape compiled model needs), the first output of each, concatenated."""
    n, parts = n_rows(x), []
    for start in range(0, n, batch):
        chunk = cycle_rows(take(x, slice(start, min(start + batch, n))), batch)
        chunk = to_torch(chunk) if as_torch else to_numpy(chunk)
        parts.append(first_output(run(chunk))[: min(batch, n - start)])
    return np.concatenate(parts)


def fidelity(cells: dict, data, batch: int, trained_torch: bool) -> dict[str, dict]:
    """Each cell on seed 0's test split against the trained dense model (its ONNX file, ORT fp32): the
    accuracy change (a point estimate, the way one-step tools judge it) when there are labels, and the
    mean cosine of the outputs. The torch cells are left out when they hold initial weights."""
    x = data.test.x
    reference = outputs(cells["ORT fp32"], x, batch, False)
    out = {}
    for label, run in cells.items():
        if label.startswith("torch") and not trained_torch:
            continue
        y = outputs(run, x, batch, label.startswith("torch"))
        a, b = y.reshape(len(y), -1).astype(np.float64), reference.reshape(len(y), -1).astype(np.float64)
        cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
        row = {"mean_cosine_to_fp32": float(cosine.mean())}
        if data.test.y is not None and y.ndim == 2:
            row["accuracy"] = float((y.argmax(1) == data.test.y).mean())
            row["accuracy_change"] = row["accuracy"] - float((reference.argmax(1) == data.test.y).mean())
        out[label] = row
    return out


def _verdict(row: dict | None) -> dict:
    if row is None:
        return {"verdict": "none accepted: the dense model stays"}
    return {
        "delta": row["test_delta"],
        "ci": row["test_ci"],
        "p_holm": row["p_noninferiority_holm"],
        "non_inferior": row["non_inferior"],
        "screened_in": row["screened_in"],
        "latency_ms_in_run": row["latency_ms"],
        "deployment": row["deployment"],
    }


def _line(row: dict) -> str:
    p50 = row["p50_ms"]
    v = row["verdict"]
    verdict = (
        f"delta {100 * v['delta']:+.2f} pts [{100 * v['ci'][0]:+.2f}, {100 * v['ci'][1]:+.2f}], "
        f"Holm p {v['p_holm']:.2g}"
        if "delta" in v and v["delta"] is not None and v["ci"] and v["p_holm"] is not None
        else v.get("verdict", "?")
    )
    lo, hi = row["ratio_range"]
    return (
        f"| {row['workload']} | {row['batch']} | {row['best_cell']} {p50[row['best_cell']]:.4f} | "
        f"{row['search_cell']} {p50[row['search_cell']]:.4f} | {verdict} | "
        f"{row['ratio_median']:.2f}x [{lo:.2f}, {hi:.2f}] |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--out", default="runs/search_table")
    parser.add_argument("--batches", default="1,64")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=0.2)
    parser.add_argument("--json", default=None)
    parser.add_argument("--quick", action="store_true", help="smoke test: slimlab run --quick")
    parser.add_argument("--runs-only", action="store_true", help="run the searches, time nothing")
    args = parser.parse_args()
    names = args.workloads.split(",")
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise SystemExit(f"--workloads: unknown {unknown}; expected some of {sorted(WORKLOADS)}")
    sys.path[:0] = [str(ROOT / "examples" / "own_model"), str(ROOT / "examples")]  # the workloads' factories
    out = {"machine": environment(), "load1_start": os.getloadavg()[0], "runs": {}, "rows": []}
    for name in names:
        run_dir = run_search(name, Path(args.out), args.quick)
        wall = run_dir / "wall_seconds.txt"
        out["runs"][name] = {
            "dir": str(run_dir),
            "wall_s": float(wall.read_text()) if wall.exists() else None,
        }
    if args.runs_only:
        return
    print("| workload | batch | best single cell, p50 ms | search's pick, p50 ms | verdict | ratio |")
    print("|---|---|---|---|---|---|")
    for name in names:
        out["rows"] += workload(
            name, Path(out["runs"][name]["dir"]), [int(b) for b in args.batches.split(",")], args.reps,
            args.min_time,
        )  # fmt: skip
    out["load1_end"] = os.getloadavg()[0]
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
