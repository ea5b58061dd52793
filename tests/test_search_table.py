"""benchmarks/search_table.py: its workloads are valid experiments whose search has the chains the table
claims (pruning distilled from the dense parent, static and mixed int8, ORT sessions), and (slow) one quick
run end to end."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from slimlab.config import load_experiment
from tests.conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "search_table.py"


def _script():
    return load_script(SCRIPT)


@pytest.mark.parametrize("name", ["cnn", "mlp512", "mlp784", "own_cnn"])
def test_workload_searches_distill_pruned_candidates_and_deploy_on_sessions(name, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "own_model"))  # as the script runs it
    path = _script().WORKLOADS[name]
    config = load_experiment(path)
    assert config.search.deploy_backends == ["onnxruntime-session"]
    assert config.bench.save_models and set(config.bench.batch_sizes) == {1, 64}
    names = [v.name for v in config.variants]
    assert "search-s0-static_int8" in names  # the one-step static int8 cell is timed from its saved file
    pruned = [v for v in config.variants if v.name.startswith("search-s50-")]
    assert pruned and all(
        [t.kind for t in v.treatments][:2] == ["structured_prune", "finetune"]
        and v.treatments[1].distill_alpha > 0
        for v in pruned
    )
    assert any(v.name.startswith("search-s0-mixed") for v in config.variants)


def test_digits_784_is_real_data_at_mnist_size():
    sys.path.insert(0, str(ROOT / "benchmarks" / "search_table"))
    try:
        from digits784 import digits_28x28
    finally:
        sys.path.pop(0)
    x, y = digits_28x28()
    assert x.shape == (1797, 784) and set(y) == set(range(10))
    assert x.min() >= 0 and x.max() <= 1 and x.std() > 0.1


@pytest.mark.slow
def test_quick_run_times_every_cell_and_the_search_pick(tmp_path):
    out = tmp_path / "out.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, str(SCRIPT), "--workloads", "cnn", "--quick", "--reps", "1"]
    command += ["--min-time", "0.01", "--out", str(tmp_path / "runs"), "--json", str(out)]
    subprocess.run(command, check=True, env=env, cwd=tmp_path, timeout=600)
    import json

    rows = json.loads(out.read_text())["rows"]
    assert [r["batch"] for r in rows] == [1, 64]
    for row in rows:
        assert set(row["p50_ms"]) >= {"torch fp32", "torch bf16", "ORT fp32", "ORT dynamic int8"}
        assert row["search_cell"].startswith("search: ") and row["ratio_median"] > 0
