"""Transfer learning: checkpoints round-trip through safetensors, a mismatched layer is named, each freeze
policy trains exactly what it says, pretraining is cached, and the source tasks are disjoint from their
targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from slimlab.cli import app
from slimlab.data import Dataset, Split, load_dataset
from slimlab.errors import DataFileError
from slimlab.models import build_model
from slimlab.train import TrainConfig, Trainer
from slimlab.train.transfer import (
    CheckpointMismatchError,
    TransferConfig,
    apply_policy,
    fit_recipe,
    layer_groups,
    load_weights,
    read_checkpoint,
    write_checkpoint,
)


def _cnn(num_classes: int = 10, channels: int = 8):
    torch.manual_seed(0)
    return build_model("cnn1d", {"channels": channels}, (40,), num_classes)


def test_checkpoint_round_trips_and_loads_without_the_head(tmp_path):
    source = _cnn()
    path = tmp_path / "m.safetensors"
    write_checkpoint(source, path, metadata={"what": "test"})
    state = read_checkpoint(path)
    torch.manual_seed(1)
    target = build_model("cnn1d", {"channels": 8}, (40,), 5)  # another head size
    head = [name for name, _ in layer_groups(target)[-1][1]]
    assert head == ["classifier.weight", "classifier.bias"]
    loaded = load_weights(target, state, "m.safetensors", skip=head)
    assert set(loaded) == set(source.state_dict()) - set(head)
    for name in loaded:
        assert torch.equal(target.state_dict()[name], source.state_dict()[name])


def test_mismatched_shapes_name_the_layer(tmp_path):
    path = tmp_path / "m.safetensors"
    write_checkpoint(_cnn(channels=8), path)
    with pytest.raises(CheckpointMismatchError, match=r"layer `features\.0\.weight` has shape \(8, 1, 5\)"):
        load_weights(_cnn(channels=16), read_checkpoint(path), "m.safetensors")
    with pytest.raises(CheckpointMismatchError, match=r"classifier\.weight"):
        load_weights(_cnn(num_classes=5), read_checkpoint(path), "m.safetensors")  # head kept
    mlp = build_model("mlp", {"hidden": [4]}, (40,), 10)
    with pytest.raises(CheckpointMismatchError, match="missing from the checkpoint"):
        load_weights(mlp, read_checkpoint(path), "m.safetensors")


def test_bad_checkpoint_files_are_clear_errors(tmp_path):
    with pytest.raises(DataFileError, match="checkpoint not found"):
        read_checkpoint(tmp_path / "none.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(DataFileError, match="cannot read checkpoint"):
        read_checkpoint(bad)
    other = tmp_path / "m.bin"
    other.write_bytes(b"x")
    with pytest.raises(DataFileError, match="unknown checkpoint format"):
        read_checkpoint(other)
    pt = tmp_path / "m.pt"
    torch.save(_cnn().state_dict(), pt)
    assert set(read_checkpoint(pt)) == set(_cnn().state_dict())


@pytest.mark.parametrize(
    ("policy", "extra", "trainable", "scales"),
    [
        ("linear_probe", {}, ["classifier"], [1.0]),
        ("freeze_first_k", {"k": 2}, ["features.4", "classifier"], [1.0, 1.0]),
        ("full", {}, ["features.0", "features.2", "features.4", "classifier"], [1.0] * 4),
        (
            "discriminative",
            {"lr_decay": 0.5},
            ["features.0", "features.2", "features.4", "classifier"],
            [0.125, 0.25, 0.5, 1.0],
        ),
    ],
)
def test_each_policy_freezes_and_scales_what_it_says(policy, extra, trainable, scales):
    model = _cnn()
    config = TransferConfig(checkpoint="unused.safetensors", policy=policy, **extra)
    groups = apply_policy(model, config)
    assert [g["name"] for g in groups] == trainable
    assert [g["lr_scale"] for g in groups] == scales
    frozen = {name for name, group in layer_groups(model) if name not in trainable}
    for name, params in layer_groups(model):
        assert all(p.requires_grad == (name not in frozen) for _, p in params)


def test_freezing_every_group_is_refused():
    with pytest.raises(Exception, match="k must leave at least the head"):
        apply_policy(_cnn(), TransferConfig(checkpoint="x.safetensors", policy="freeze_first_k", k=4))


def _toy(seed: int, offset: float = 0.0) -> Dataset:
    rng = np.random.default_rng(seed)

    def split(n):
        y = rng.integers(0, 10, n)
        x = (rng.normal(size=(n, 40)) + y[:, None] * 0.3 + offset).astype(np.float32)
        return Split(x, y)

    return Dataset("toy", split(80), split(20), split(20), 10)


def test_linear_probe_changes_only_the_head_and_unfreezes_after(tmp_path):
    source = _cnn()
    path = tmp_path / "user.safetensors"
    write_checkpoint(source, path)
    model = _cnn()
    config = TrainConfig(
        epochs=2,
        batch_size=20,
        patience=None,
        device="cpu",
        transfer={"checkpoint": str(path), "policy": "linear_probe"},
    )
    result = fit_recipe(Trainer(config), model, _toy(0), 0, {"name": "cnn1d", "channels": 8}, tmp_path)
    for name, tensor in model.state_dict().items():
        same = torch.equal(tensor, source.state_dict()[name])
        assert same == (not name.startswith("classifier")), name
    assert all(p.requires_grad for p in model.parameters())
    assert result.transfer["policy"] == "linear_probe"
    assert result.transfer["trainable_groups"] == ["classifier"]


def test_pretraining_is_saved_once_and_reused(tmp_path, monkeypatch):
    from slimlab.train import transfer as transfer_module

    source = {"name": "mnist1d_shifted", "num_samples": 400}
    config = TrainConfig(
        epochs=1, batch_size=50, patience=None, device="cpu", transfer={"source": source, "policy": "full"}
    )
    data = load_dataset(
        type(
            "O",
            (),
            {
                "name": "mnist1d",
                "num_samples": 400,
                "test_fraction": None,
                "val_fraction": 0.2,
                "split_seed": 0,
                "train_size": 60,
            },
        )(),
        0,
    )
    spec = {"name": "cnn1d", "channels": 8}
    first = fit_recipe(Trainer(config), _cnn(), data, 0, spec, tmp_path)
    assert first.transfer["cached"] is False and first.transfer["source_n_train"] > 0
    files = list(tmp_path.glob("pretrain-*.safetensors"))
    assert len(files) == 1
    calls = []
    monkeypatch.setattr(transfer_module, "write_checkpoint", lambda *a, **k: calls.append(a))
    again = fit_recipe(Trainer(config), _cnn(), data, 0, spec, tmp_path)
    assert again.transfer["cached"] is True and not calls
    assert again.transfer["source_val_accuracy"] == first.transfer["source_val_accuracy"]


def _options(name: str, **extra):
    fields = {"name": name, "num_samples": None, "test_fraction": None, "val_fraction": 0.2, "split_seed": 0}
    return type("Options", (), {**fields, **extra})()


def test_source_tasks_are_disjoint_from_their_targets():
    low, high = load_dataset(_options("digits_0_4"), 0), load_dataset(_options("digits_5_9"), 0)
    assert low.num_classes == high.num_classes == 5
    assert set(np.unique(low.train.y)) == set(np.unique(high.train.y)) == set(range(5))
    target = load_dataset(_options("mnist1d"), 0)
    source = load_dataset(_options("mnist1d_shifted", num_samples=2000), 0)
    rows = {r.tobytes() for r in np.concatenate([target.train.x, target.val.x, target.test.x])}
    assert not any(r.tobytes() in rows for r in np.concatenate([source.train.x, source.val.x, source.test.x]))


def test_train_size_keeps_n_labels_stratified_and_the_test_split_whole():
    full = load_dataset(_options("mnist1d"), 0)
    for seed in (0, 1):
        small = load_dataset(_options("mnist1d", train_size=50), seed)
        assert small.name == "mnist1d[n=50]"
        assert len(small.train) + len(small.val) == 50 and len(small.val) == 10
        assert set(np.unique(small.val.y)) == set(range(10))
        assert np.array_equal(small.test.x, full.test.x)
    a, b = (
        load_dataset(_options("mnist1d", train_size=50), 0),
        load_dataset(_options("mnist1d", train_size=50), 1),
    )
    assert not np.array_equal(a.train.x, b.train.x)  # each seed draws its own examples
    with pytest.raises(ValueError, match="needs at least 20"):
        load_dataset(_options("mnist1d", train_size=15), 0)


def test_a_mismatched_user_checkpoint_stops_the_run_before_any_work(tmp_path):
    path = tmp_path / "wrong.safetensors"
    write_checkpoint(_cnn(channels=8), path)
    (tmp_path / "exp.toml").write_text(
        f"""name = "t"
[data]
name = "mnist1d"
[model]
name = "cnn1d"
channels = 16
[train]
transfer = {{ checkpoint = "{path}", policy = "linear_probe" }}
[[variants]]
name = "dense"
[bench]
enabled = false
"""
    )
    result = CliRunner().invoke(app, ["run", str(tmp_path / "exp.toml"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "layer `features.0.weight` has shape (8, 1, 5) in the checkpoint but (16, 1, 5)" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out" / "slimlab.db").exists()  # checked before any work
