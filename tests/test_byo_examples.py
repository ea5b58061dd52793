"""The examples a user copies, reduced (--quick), and the one-call Python API."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn
from typer.testing import CliRunner

import slimlab
from slimlab.cli import app
from slimlab.treatments import DynamicInt8, HalfPrecision
from tests.conftest import slimlab_in_fresh_process

EXAMPLES = Path(__file__).parents[1] / "examples"


def test_own_model_example_runs_quick_with_every_variant(tmp_path: Path):
    # The example itself, reduced further than --quick (one seed, eager only) to stay fast in `make test`.
    for name in ("my_models.py", "my_data.py"):
        (tmp_path / name).write_text((EXAMPLES / "own_model" / name).read_text())
    text = (EXAMPLES / "own_model" / "experiment.toml").read_text()
    text = text.replace("seeds = 5", "seeds = 1").replace(
        'backends = ["eager", "onnxruntime"]', 'backends = ["eager"]'
    )
    text = text.replace("batch_sizes = [1, 64]", "batch_sizes = [1]\nmin_time_s = 0.01\nmin_iters = 3")
    text = text.replace("channels = 32", "channels = 8")
    (tmp_path / "experiment.toml").write_text(text)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(tmp_path / "experiment.toml"), "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    trials = results["trials"]
    assert {t["variant"] for t in trials} == {"dense", "channels50", "int8", "bf16"}
    assert all(t["status"] == "ok" for t in trials), [t["error"] for t in trials if t["status"] != "ok"]
    pruned = next(t for t in trials if t["variant"] == "channels50")
    assert pruned["artifacts"]["structured_prune"]["engine"] == "torch_pruning.DependencyGraph"
    dense = next(t for t in trials if t["variant"] == "dense")
    assert pruned["metrics"]["params"] < dense["metrics"]["params"]
    bf16 = next(t for t in trials if t["variant"] == "bf16")
    assert bf16["fidelity"]["agreement"] > 0.95 and bf16["fidelity"]["cosine"] > 0.99
    # The report is rebuilt from the run folder alone, in a fresh process that never saw the user's files on
    # its path: the stored config names the factories' files and hashes.
    (out / "report.html").unlink()
    report = slimlab_in_fresh_process("report", str(out))
    assert report.returncode == 0, report.stdout + report.stderr
    assert "channels50" in (out / "report.html").read_text()


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):
        return self.net(x)


def test_compress_returns_the_results_object_that_run_writes(tmp_path: Path):
    torch.manual_seed(0)
    bunch = load_digits()
    x, y = (bunch.data / 16).astype(np.float32), bunch.target.astype(np.int64)
    results = slimlab.compress(
        Small(),
        (x, y),
        variants=[[DynamicInt8()], {"name": "bf16", "treatments": [HalfPrecision()]}],
        seeds=2,
        pretrained=False,
        train={"epochs": 2, "batch_size": 64},
        out=tmp_path / "api",
    )
    assert results == json.loads((tmp_path / "api" / "results.json").read_text())
    assert {t["variant"] for t in results["trials"]} == {"dense", "dynamic_int8", "bf16"}
    assert {c["variant"] for c in results["comparisons"]} >= {"dynamic_int8", "bf16"}
    report = CliRunner().invoke(app, ["report", str(tmp_path / "api")])  # from the store alone
    assert report.exit_code == 0, report.output
