"""Batch augmentation: every op keeps shapes and devices, mixes give soft labels that sum to 1, bad
configs name the field, and the trainer augments training batches only, never validation or test."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slimlab.data import Dataset, Split
from slimlab.errors import SlimlabError
from slimlab.models import build_model
from slimlab.train import TrainConfig, Trainer
from slimlab.train import augment as augment_module
from slimlab.train.augment import IMAGE_OPS, SIGNAL_OPS, AugmentConfig, Augmenter


def _signals(n: int = 16, length: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.randn(n, length), torch.arange(n) % 10


@pytest.mark.parametrize("op", SIGNAL_OPS)
def test_each_signal_op_keeps_shape_and_changes_the_batch(op):
    x, y = _signals()
    out, target = Augmenter(AugmentConfig(ops=[op], p=1.0), (40,), 10)(x, y)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert torch.equal(target, y)
    assert not torch.equal(out, x)
    assert torch.isfinite(out).all()


def test_roll_is_a_permutation_of_each_signal_and_scale_keeps_the_sign():
    x, y = _signals()
    rolled, _ = Augmenter(AugmentConfig(ops=["roll"], p=1.0), (40,), 10)(x, y)
    assert torch.allclose(rolled.sort(dim=1).values, x.sort(dim=1).values)
    scaled, _ = Augmenter(AugmentConfig(ops=["scale"], p=1.0, scale=(0.5, 2.0)), (40,), 10)(x, y)
    ratio = scaled / x
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), atol=1e-5)
    assert (ratio >= 0.5 - 1e-6).all() and (ratio <= 2.0 + 1e-6).all()


def test_time_warp_keeps_the_end_points():
    x, y = _signals()
    warped, _ = Augmenter(AugmentConfig(ops=["time_warp"], p=1.0, warp=0.5), (40,), 10)(x, y)
    assert torch.allclose(warped[:, 0], x[:, 0]) and torch.allclose(warped[:, -1], x[:, -1])


def test_p_zero_leaves_the_batch_alone():
    x, y = _signals()
    out, _ = Augmenter(AugmentConfig(ops=list(SIGNAL_OPS), p=0.0), (40,), 10)(x, y)
    assert torch.equal(out, x)


@pytest.mark.parametrize("op", IMAGE_OPS)
def test_each_image_op_runs_on_flat_digits(op):
    torch.manual_seed(0)
    x, y = torch.randn(8, 64), torch.arange(8) % 10
    config = AugmentConfig(ops=[op], p=1.0, image_shape=(1, 8, 8))
    out, target = Augmenter(config, (64,), 10)(x, y)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert torch.equal(target, y)


@pytest.mark.parametrize("mix", ["mixup", "cutmix"])
@pytest.mark.parametrize("shape", [(40,), (1, 8, 8)])
def test_mixes_give_soft_labels_that_match_the_mixed_inputs(mix, shape):
    torch.manual_seed(0)
    n = 12
    # Each sample is constant (its label), so the share of each label in the mixed input is readable.
    y = torch.arange(n) % 4
    x = y.to(torch.float32).view(n, *([1] * len(shape))).expand(n, *shape).contiguous()
    out, target = Augmenter(AugmentConfig(mix=mix), shape, 4)(x, y)
    assert target.shape == (n, 4)
    assert torch.allclose(target.sum(1), torch.ones(n))
    # The mean input of a mixed sample is the label-weighted mean of the labels it mixes.
    expected = (target * torch.arange(4.0)).sum(1)
    assert torch.allclose(out.flatten(1).mean(1), expected, atol=1e-4)


def test_unknown_op_and_mismatched_kind_are_clear_errors():
    with pytest.raises(ValueError, match="unknown augmentation op 'flip'"):
        AugmentConfig(ops=["flip"])
    with pytest.raises(ValueError, match="unknown augmentation preset 'strong'"):
        AugmentConfig.model_validate("strong")
    with pytest.raises(SlimlabError, match="need images"):
        Augmenter(AugmentConfig(ops=["rotate"]), (40,), 10)
    with pytest.raises(SlimlabError, match="signal ops"):
        Augmenter(AugmentConfig(ops=["time_warp"], image_shape=(1, 8, 8)), (64,), 10)
    with pytest.raises(SlimlabError, match="sizes do not match"):
        Augmenter(AugmentConfig(ops=["rotate"], image_shape=(1, 7, 7)), (64,), 10)


def test_train_config_takes_a_preset_or_a_table():
    assert TrainConfig(augment="signal").augment.ops == ["shift", "scale", "noise", "time_warp"]
    config = TrainConfig(augment={"ops": ["trivialaugment"], "image_shape": [1, 8, 8], "mix": "cutmix"})
    assert config.augment.mix == "cutmix"
    # Trial ids hash the dumped config: without augmentation the dump is what it was before.
    assert "augment" not in TrainConfig().model_dump(mode="json")


def _toy_data() -> Dataset:
    rng = np.random.default_rng(0)

    def split(n: int, offset: float) -> Split:
        return Split((rng.normal(size=(n, 40)) + offset).astype(np.float32), rng.integers(0, 10, n))

    # Distinct offsets make every split's rows recognisable.
    return Dataset("toy", split(60, 0.0), split(20, 100.0), split(20, -100.0), 10)


def test_trainer_augments_training_batches_only_on_the_training_device(monkeypatch):
    data = _toy_data()
    before = {name: getattr(data, name).x.copy() for name in ("train", "val", "test")}
    seen: list[torch.Tensor] = []
    devices: set[torch.device] = set()
    real = augment_module.Augmenter.__call__

    def spy(self, x, y):
        seen.append(x.detach().clone())
        out, target = real(self, x, y)
        devices.add(out.device)
        return out, target

    monkeypatch.setattr(augment_module.Augmenter, "__call__", spy)
    torch.manual_seed(0)
    model = build_model("mlp", {"hidden": [16]}, (40,), 10)
    config = TrainConfig(epochs=3, batch_size=20, patience=None, device="cpu", augment="signal_mixup")
    Trainer(config).fit(model, data, seed=0)
    assert len(seen) == 3 * 3  # 3 epochs x 3 batches of the 60 training rows, nothing else
    rows = torch.cat(seen)
    train = torch.as_tensor(data.train.x)
    # Every row the augmenter received is a training row (validation rows are near +100, test near -100).
    assert all(((train - row).abs().amax(1) == 0).any() for row in rows)
    assert rows.abs().amax() < 50
    assert devices == {torch.device("cpu")}
    for name, x in before.items():  # no split is changed in place
        assert np.array_equal(getattr(data, name).x, x)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_augmentation_runs_on_the_cuda_device():
    x, y = _signals()
    out, target = Augmenter(AugmentConfig(ops=list(SIGNAL_OPS), mix="cutmix"), (40,), 10)(x.cuda(), y.cuda())
    assert out.device.type == "cuda" and target.device.type == "cuda"


def test_augmented_training_is_deterministic_under_a_seed():
    data = _toy_data()
    config = TrainConfig(epochs=2, batch_size=20, patience=None, device="cpu", augment="signal_mixup")
    states = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_model("mlp", {"hidden": [16]}, (40,), 10)
        Trainer(config).fit(model, data, seed=3)
        states.append(torch.cat([p.flatten() for p in model.parameters()]))
    assert torch.equal(states[0], states[1])
