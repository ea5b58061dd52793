import os
import subprocess
import sys
from pathlib import Path

import pytest

# Tests force the CPU and write only to temporary roots.
os.environ["CUDA_VISIBLE_DEVICES"] = ""


@pytest.fixture(autouse=True, scope="session")
def _cache(tmp_path_factory):
    os.environ["SLIMLAB_CACHE"] = str(tmp_path_factory.mktemp("slimlab-cache"))
    import torch

    torch.set_num_threads(1)  # deterministic and not oversubscribed on 2-core CI
    yield


def slimlab_in_fresh_process(
    *args: str, env: dict | None = None, cwd: str | Path = "/", timeout: float = 300
) -> subprocess.CompletedProcess:
    """`python -m slimlab ARGS` in a new interpreter (from `cwd`, "/" by default: nothing of the caller's
    path leaks in), with slimlab's source on PYTHONPATH, its output captured."""
    env = env or {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    return subprocess.run(
        [sys.executable, "-m", "slimlab", *args], capture_output=True, text=True, env=env, cwd=cwd,
        timeout=timeout,
    )  # fmt: skip


TINY_TOML = """
name = "tiny"
description = "a tiny experiment for tests"
[data]
name = "mnist1d"
num_samples = 600
[model]
name = "cnn1d"
channels = 8
[train]
epochs = 2
batch_size = 50
[[variants]]
name = "dense"
[[variants]]
name = "prune50"
treatments = [{kind = "magnitude_prune", sparsity = 0.5, finetune_epochs = 1}]
[[variants]]
name = "int8"
treatments = [{kind = "dynamic_int8"}]
[evaluate]
seeds = 2
[bench]
throughput_batch_size = 32
min_time_s = 0.01
min_iters = 5
warmup_iters = 1
"""


@pytest.fixture
def tiny_toml(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_TOML)
    return path


@pytest.fixture(scope="session")
def tiny_report(tmp_path_factory):
    """One quick tiny run benchmarked on eager and ONNX Runtime (whose int8 skip note the report shows),
    with free text that must reach the page intact: (run directory, report.html text)."""
    from typer.testing import CliRunner

    from slimlab.cli import app

    root = tmp_path_factory.mktemp("report")
    toml = TINY_TOML.replace(
        'description = "a tiny experiment for tests"', 'description = "the paper\'s check"'
    )
    toml = toml.replace("[bench]", '[bench]\nbackends = ["eager", "onnxruntime"]')
    (root / "r.toml").write_text(toml)
    result = CliRunner().invoke(app, ["run", str(root / "r.toml"), "--out", str(root / "out"), "--quick"])
    assert result.exit_code == 0, result.output + result.stderr
    return root / "out", (root / "out" / "report.html").read_text(encoding="utf-8")


def load_script(path: Path):
    """A script outside the package (benchmarks/*.py) imported as a module, so that tests call its parts."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
