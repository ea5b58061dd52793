"""Bring your own model and data: import-path factories beside the experiment file, safe checkpoints,
npz / image-folder / torch-Dataset data with any input signature, and the run + report from a fresh
process. Each test here failed on the code before issue 12 (unknown model, unknown dataset, no loader)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from slimlab.config import load_experiment, parse_experiment
from slimlab.data import load_dataset
from slimlab.errors import DataFileError, SlimlabError
from slimlab.experiment.grid import expand
from slimlab.models.factory import build_configured_model
from slimlab.models.inference import predict_logits
from slimlab.models.loading import load_checkpoint
from slimlab.train import TrainConfig, Trainer
from tests.conftest import slimlab_in_fresh_process

MODELS_PY = """
import torch
from torch import nn


class TinyCNN(nn.Module):
    def __init__(self, channels: int = 4, num_classes: int = 10):
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 3, padding=1)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))
"""

DATA_PY = """
import numpy as np
from sklearn.datasets import load_digits


def digits_images(limit: int = 400):
    bunch = load_digits()
    x = (bunch.images[:limit].astype(np.float32) / 16.0)[:, None]
    return x, bunch.target[:limit].astype(np.int64)
"""

TOML = """
name = "byo"
[data]
factory = "my_data:digits_images"
[data.params]
limit = 300
[model]
factory = "my_models:TinyCNN"
[model.params]
channels = 4
[train]
epochs = 1
batch_size = 50
[[variants]]
name = "dense"
[[variants]]
name = "bf16"
treatments = [{kind = "half_precision"}]
[evaluate]
seeds = 1
[bench]
enabled = false
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "my_models.py").write_text(MODELS_PY)
    (tmp_path / "my_data.py").write_text(DATA_PY)
    (tmp_path / "exp.toml").write_text(TOML)
    return tmp_path


def test_factory_model_and_data_found_beside_the_experiment_file(project: Path, monkeypatch):
    monkeypatch.chdir(project.parent)  # not the experiment's folder: it is found beside the file anyway
    config = load_experiment(project / "exp.toml")
    assert config.model.name == "TinyCNN" and config.data[0].name == "digits_images"
    assert config.model.source["factory_file"] == str((project / "my_models.py").resolve())
    assert len(config.model.source["factory_sha256"]) == 64
    data = load_dataset(config.data[0], 0)
    assert data.train.x.shape[1:] == (1, 8, 8) and data.num_classes == 10
    model = build_configured_model(config.model, data.input_shape, data.num_classes)
    assert model.conv.out_channels == 4  # [model.params] reached the factory


def test_the_factory_file_hash_is_part_of_the_trial_identity(project: Path):
    before = {s.id for s in expand(load_experiment(project / "exp.toml"))}
    (project / "my_models.py").write_text(MODELS_PY + "\n# changed\n")
    after = {s.id for s in expand(load_experiment(project / "exp.toml"))}
    assert before.isdisjoint(after)
    # the stored (resolved) config re-parses to the same ids without touching the files
    config = load_experiment(project / "exp.toml")
    (project / "my_models.py").unlink()
    assert {s.id for s in expand(parse_experiment(config.to_dict()))} == after


def test_missing_factory_module_is_one_clear_error(tmp_path: Path):
    (tmp_path / "exp.toml").write_text(TOML)
    with pytest.raises(SlimlabError, match="module 'my_data' not found beside"):
        load_experiment(tmp_path / "exp.toml")


@pytest.mark.slow  # 16-33 s on 2 shared cores; the own_model example test rebuilds a report the same way
def test_run_then_report_from_a_fresh_process(project: Path):
    out = project / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    run = subprocess.run(
        [sys.executable, "-m", "slimlab", "run", str(project / "exp.toml"), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=project.parent,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    (out / "results.json").unlink()
    report = slimlab_in_fresh_process("report", str(out), env=env)
    assert report.returncode == 0, report.stdout + report.stderr
    results = json.loads((out / "results.json").read_text())
    trials = {t["variant"]: t for t in results["trials"]}
    assert set(trials) == {"dense", "bf16"} and all(t["status"] == "ok" for t in trials.values())
    assert trials["bf16"]["fidelity"]["cosine"] > 0.99  # every treated variant is checked against dense


# --- checkpoints ------------------------------------------------------------------------------------------


class Net(nn.Module):
    def __init__(self, hidden: int = 8):
        super().__init__()
        self.fc1 = nn.Linear(4, hidden)
        self.fc2 = nn.Linear(hidden, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def test_safetensors_checkpoint_loads_and_a_shape_mismatch_names_the_layer(tmp_path: Path):
    from safetensors.torch import save_file

    trained = Net(8)
    save_file(trained.state_dict(), tmp_path / "w.safetensors")
    fresh = load_checkpoint(Net(8), tmp_path / "w.safetensors")
    x = torch.randn(5, 4)
    assert torch.equal(fresh(x), trained(x))
    with pytest.raises(
        DataFileError, match=r"layer 'fc1\.(weight|bias)' has shape \(8.*\) in the checkpoint but \(16"
    ):
        load_checkpoint(Net(16), tmp_path / "w.safetensors")


def test_a_pickled_checkpoint_is_refused_before_anything_runs(tmp_path: Path):
    torch.save({"model": Net()}, tmp_path / "evil.pt")  # a pickled module, not a state dict
    with pytest.raises(DataFileError, match="weights_only=True"):
        load_checkpoint(Net(), tmp_path / "evil.pt")


def test_checkpoint_in_the_experiment_makes_the_model_pretrained(project: Path):
    torch.manual_seed(0)
    sys.path.insert(0, str(project))
    try:
        from my_models import TinyCNN  # the user's own class
    finally:
        sys.path.remove(str(project))
    torch.save(TinyCNN(4).state_dict(), project / "tiny.pt")
    text = TOML.replace(
        'factory = "my_models:TinyCNN"', 'factory = "my_models:TinyCNN"\ncheckpoint = "tiny.pt"'
    )
    (project / "exp.toml").write_text(text)
    config = load_experiment(project / "exp.toml")
    assert config.model.is_pretrained
    assert config.model.source["checkpoint_file"].endswith("tiny.pt")


# --- data from anywhere -----------------------------------------------------------------------------------


def _options(raw: dict, base: Path):
    return parse_experiment({"name": "d", "data": raw, "variants": [{"name": "dense"}]}, base_dir=base).data[
        0
    ]


def test_npz_file_with_two_named_inputs(tmp_path: Path):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 50, size=(60, 6)).astype(np.int64)
    mask = np.ones((60, 6), dtype=np.int64)
    np.savez(tmp_path / "d.npz", **{"x:ids": ids, "x:mask": mask, "y": np.arange(60) % 3})
    data = load_dataset(_options({"name": "npz", "path": "d.npz"}, tmp_path), 0)
    assert set(data.train.x) == {"ids", "mask"} and data.train.x["ids"].dtype == np.int64
    assert len(data.train) + len(data.val) + len(data.test) == 60 and data.num_classes == 3


def test_image_folder_one_subfolder_per_class(tmp_path: Path):
    from PIL import Image

    for label in ("cat", "dog"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(6):
            value = 40 if label == "cat" else 200
            Image.fromarray(np.full((5, 7), value + i, dtype=np.uint8)).save(
                tmp_path / "imgs" / label / f"{i}.png"
            )
    data = load_dataset(_options({"name": "images", "path": "imgs", "test_fraction": 0.34}, tmp_path), 0)
    assert data.train.x.shape[1:] == (1, 5, 7) and data.train.x.dtype == np.float32
    assert data.meta["classes"] == ["cat", "dog"] and data.num_classes == 2


class DictDataset(torch.utils.data.Dataset):
    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        ids = torch.tensor([i % 7, (i + 1) % 7, 0, 0], dtype=torch.long)
        return {"input_ids": ids, "attention_mask": (ids > 0).long()}, i % 2


class Bag(nn.Module):
    """Token ids and a mask in, two logits out: the signature of a text classifier."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(7, 8)
        self.head = nn.Linear(8, 2)

    def forward(self, input_ids, attention_mask):
        mask = attention_mask.unsqueeze(-1).float()
        return self.head((self.emb(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1))


def test_factory_returning_torch_datasets_of_dicts_trains_a_two_input_model(tmp_path: Path):
    (tmp_path / "tdata.py").write_text(
        textwrap.dedent("""
        from tests.test_byo_model import DictDataset

        def load():
            return {"train": DictDataset(80), "test": DictDataset(20)}
    """)
    )
    sys.path.insert(0, str(Path(__file__).parents[1]))
    try:
        data = load_dataset(_options({"factory": "tdata:load"}, tmp_path), 0)
    finally:
        sys.path.remove(str(Path(__file__).parents[1]))
    assert data.train.x["input_ids"].dtype == np.int64 and len(data.test) == 20
    model = Bag()
    Trainer(TrainConfig(epochs=2, batch_size=16, patience=None)).fit(model, data, 0)
    assert predict_logits(model, data.test.x).shape == (20, 2)


def test_transform_hook_maps_a_batch_to_the_model_inputs(tmp_path: Path):
    np.savez(tmp_path / "d.npz", x=np.arange(40, dtype=np.float64).reshape(20, 2), y=np.arange(20) % 2)
    (tmp_path / "hooks.py").write_text("def scale(x):\n    return x / 100.0\n")
    data = load_dataset(_options({"name": "npz", "path": "d.npz", "transform": "hooks:scale"}, tmp_path), 0)
    assert data.train.x.dtype == np.float32 and data.train.x.max() < 0.4


REGRESSION_PY = """
import numpy as np


def targets():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3)).astype(np.float32)
    return {"train": (x[:90], x[:90].sum(1, keepdims=True)), "test": (x[90:], x[90:].sum(1, keepdims=True)),
            "num_classes": 0}
"""


def test_preflight_accepts_data_without_classes_for_a_metric_without_them(tmp_path: Path):
    # Issue 11's preflight refused num_classes = 0 ("the labels have 0 class"), which is a regressor's or an
    # encoder's data (the MiniLM example), not a user error; it still is one under a class metric.
    from slimlab.experiment.preflight import check_datasets

    (tmp_path / "reg.py").write_text(REGRESSION_PY)
    raw = {
        "name": "reg",
        "data": {"factory": "reg:targets"},
        "model": {"name": "mlp"},
        "variants": [{"name": "dense"}],
        "evaluate": {"metric": "mse"},
    }
    check_datasets(parse_experiment(raw, base_dir=tmp_path))
    raw["evaluate"] = {"metric": "accuracy"}
    with pytest.raises(DataFileError, match=r"no class labels, which `evaluate\.metric = 'accuracy'` needs"):
        check_datasets(parse_experiment(raw, base_dir=tmp_path))


# --- fidelity in the headline -----------------------------------------------------------------------------


def _results_with_a_diverged_variant() -> dict:
    from slimlab.evaluate.fidelity import fidelity_summary

    def trial(variant: str, seed: int, cosine: float | None) -> dict:
        fid = None
        if cosine is not None:
            diverged = cosine < 0.99
            fid = {
                "cosine": cosine,
                "cosine_min": cosine,
                "agreement": 1.0,
                "max_abs_diff": 0.1,
                "min_cosine": 0.99,
                "diverged": diverged,
                "reasons": [f"cosine {cosine:.4f} < 0.99"] if diverged else [],
            }
        return {"status": "ok", "dataset": "d", "variant": variant, "seed": seed, "fidelity": fid}

    trials = [trial("dense", s, None) for s in (0, 1, 2)]
    trials += [trial("int8", s, 0.5) for s in (0, 1, 2)] + [trial("bf16", s, 0.9999) for s in (0, 1, 2)]
    row = {"n_ok": 3, "latency_p50_ms": None, "size_bytes": 100, "dataset": "d"}
    return {
        "experiment": {"config": {"evaluate": {"baseline": "dense"}}},
        "trials": trials,
        "summary": [
            {**row, "variant": "dense"},
            {**row, "variant": "int8", "size_bytes": 25},
            {**row, "variant": "bf16", "size_bytes": 50},
        ],
        "comparisons": [
            {
                "dataset": "d",
                "variant": v,
                "verdict": "non-inferior",
                "delta": 0.0,
                "ci": [-0.001, 0.001],
                "seeds": [0, 1, 2],
            }
            for v in ("int8", "bf16")
        ],
        "fidelity": fidelity_summary(trials),
    }


def test_a_diverged_variant_is_the_first_alert_of_the_headline_and_never_recommended():
    from slimlab.analysis.headline import headline, headline_lines

    h = headline(_results_with_a_diverged_variant())
    assert h["alerts"][0]["severity"] == "fail" and "int8: outputs diverge" in h["alerts"][0]["text"]
    # int8 is the smallest non-inferior variant, but its outputs are not the dense model's: bf16 it is.
    assert h["datasets"][0]["recommended"] == "bf16"
    lines = headline_lines(h)
    assert lines[0].startswith("d: recommended: bf16") and lines[1].startswith("fail: fidelity (d): int8")


def test_the_pareto_plot_of_a_model_without_accuracy_draws_its_metric():
    # An encoder scored by cosine to dense has no accuracy: the report's Pareto plot raised TypeError.
    from slimlab.report.plots import pareto_figure

    def row(variant: str, cosine: float, ms: float) -> dict:
        return {
            "variant": variant,
            "n_ok": 1,
            "latency_p50_ms": ms,
            "latency_batch_size": 1,
            "accuracy": {"mean": None, "ci": [None, None]},
            "metric": {"name": "cosine", "mean": cosine, "ci": [cosine - 0.01, cosine + 0.005]},
        }

    fig, hover = pareto_figure([row("dense", 1.0, 20.0), row("int8", 0.95, 9.0)], ["dense", "int8"], "t")
    assert fig.axes[0].get_ylabel().startswith("test cosine") and "cosine 0.95" in hover[1].tip


def test_a_margin_wider_than_the_metric_is_refused_in_its_units():
    # The margin is in the metric's units since issue 12 (mse margins may exceed 1), which dropped the
    # old `margin < 1`; for accuracy a margin of 1.5 (meant as points) must still be one clear error.
    raw = {"name": "m", "model": {"name": "mlp"}, "variants": [{"name": "dense"}]}
    with pytest.raises(SlimlabError, match=r"`evaluate\.margin` is 1\.5, but accuracy spans only 1"):
        parse_experiment({**raw, "evaluate": {"margin": 1.5}})
    assert parse_experiment({**raw, "evaluate": {"metric": "mse", "margin": 1.5}}).evaluate.margin == 1.5
