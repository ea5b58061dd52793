import numpy as np
import pytest
import torch

from slimlab.config import DataConfig
from slimlab.data import Dataset, Split, load_dataset
from slimlab.errors import SlimlabError, TrainingDivergedError
from slimlab.models import build_model
from slimlab.models.inference import predict_logits
from slimlab.train import TrainConfig, Trainer, seed_everything


def _train(seed: int, epochs: int = 3):
    data = load_dataset(DataConfig(name="mnist1d", num_samples=600), seed)
    seed_everything(seed)
    model = build_model("cnn1d", {"channels": 8}, data.input_shape, data.num_classes)
    result = Trainer(TrainConfig(epochs=epochs, batch_size=50, device="cpu")).fit(model, data, seed)
    return model, data, result


def test_same_seed_same_metrics_and_weights():
    m1, data, r1 = _train(0)
    m2, _, r2 = _train(0)
    assert r1.history == r2.history
    np.testing.assert_array_equal(predict_logits(m1, data.test.x), predict_logits(m2, data.test.x))
    _, _, r3 = _train(1)
    assert r3.history != r1.history


def test_learns_and_restores_the_best_validation_epoch():
    model, data, result = _train(0, epochs=6)
    best = max(h["val_accuracy"] for h in result.history)
    assert result.best_val_accuracy == best
    assert result.history[result.best_epoch - 1]["val_accuracy"] == best
    val_acc = float((predict_logits(model, data.val.x).argmax(1) == data.val.y).mean())
    assert val_acc == pytest.approx(best)
    assert best > 0.2  # well above the 10% of chance after a few epochs


def test_early_stopping_stops_after_patience():
    rng = np.random.default_rng(0)
    # Labels are noise: validation accuracy cannot keep improving, so training stops early.
    x = rng.normal(size=(200, 10)).astype(np.float32)
    y = rng.integers(0, 2, 200)
    data = Dataset("noise", Split(x[:150], y[:150]), Split(x[150:], y[150:]), Split(x[150:], y[150:]), 2)
    model = build_model("mlp", {"hidden": [8]}, (10,), 2)
    result = Trainer(TrainConfig(epochs=200, patience=3, device="cpu")).fit(model, data, 0)
    assert result.epochs_run < 200
    assert result.epochs_run - result.best_epoch == 3


def test_nan_loss_raises():
    x = np.full((40, 10), np.nan, dtype=np.float32)
    y = np.zeros(40, dtype=np.int64)
    data = Dataset("nan", Split(x, y), Split(x, y), Split(x, y), 2)
    model = build_model("mlp", {"hidden": [4]}, (10,), 2)
    with pytest.raises(TrainingDivergedError, match="training loss became nan at epoch 1"):
        Trainer(TrainConfig(epochs=2, device="cpu")).fit(model, data, 0)


def test_cuda_device_without_cuda_is_a_user_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SlimlabError, match=r"`train\.device` is 'cuda' but torch sees no CUDA device"):
        _fit_on_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_trains_on_cuda_and_returns_the_model_where_it_was():
    model, result = _fit_on_device("cuda")
    assert next(model.parameters()).device.type == "cpu"
    assert result.best_val_accuracy > 0.1


def _fit_on_device(device: str):
    data = load_dataset(DataConfig(name="mnist1d", num_samples=300), 0)
    model = build_model("mlp", {"hidden": [16]}, data.input_shape, data.num_classes)
    result = Trainer(TrainConfig(epochs=1, device=device)).fit(model, data, 0)
    return model, result


def test_max_steps_stops_at_that_step_deterministically():
    data = load_dataset(DataConfig(name="mnist1d", num_samples=300), 0)
    states = []
    for _ in range(2):
        seed_everything(0)
        model = build_model("mlp", {"hidden": [8]}, data.input_shape, data.num_classes)
        result = Trainer(TrainConfig(epochs=5, batch_size=50, device="cpu")).fit(model, data, 0, max_steps=7)
        states.append(model.state_dict())
    # 216 training samples in batches of 50 make 5 steps an epoch: step 7 is in epoch 2.
    assert result.epochs_run == 2
    for k, v in states[0].items():
        assert torch.equal(v, states[1][k])
