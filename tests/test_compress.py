"""N:M sparsity, static int8, half precision, and fine-tuning with distillation."""

import copy
import io
import pickle

import numpy as np
import pytest
import torch

from slimlab.config import DataConfig
from slimlab.data import load_dataset
from slimlab.errors import SlimlabError
from slimlab.evaluate import serialized_size
from slimlab.models import build_model
from slimlab.models.inference import predict_logits
from slimlab.train import TrainConfig, Trainer
from slimlab.treatments import (
    DynamicInt8,
    Finetune,
    HalfPrecision,
    MagnitudePrune,
    NMSparsity,
    StaticInt8,
    StructuredPrune,
    TreatmentContext,
    apply,
)
from slimlab.treatments.nm import nm_mask
from slimlab.treatments.static_quant import OrtModule, calibration_batch


@pytest.fixture(scope="module")
def data():
    return load_dataset(DataConfig(name="mnist1d", num_samples=1500), 0)


@pytest.fixture(scope="module")
def trained(data):
    """A small CNN trained for a few epochs: good enough that quantization errors would show."""
    torch.manual_seed(0)
    model = build_model("cnn1d", {"channels": 16}, data.input_shape, data.num_classes)
    Trainer(TrainConfig(epochs=8, batch_size=50, patience=None, device="cpu")).fit(model, data, 0)
    return model.eval()


def _accuracy(model, split) -> float:
    return float((predict_logits(model, split.x).argmax(1) == split.y).mean())


def _context(data, **kw) -> TreatmentContext:
    trainer = Trainer(TrainConfig(epochs=3, batch_size=50, patience=None, device="cpu"))
    return TreatmentContext(seed=0, trainer=trainer, data=data, **kw)


# --- N:M sparsity -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "m"), [(2, 4), (1, 4), (4, 8)])
def test_nm_masks_keep_exactly_n_of_every_m(n, m):
    torch.manual_seed(0)
    model = build_model("mlp", {"hidden": [64, 32]}, (40,), 10)
    context = TreatmentContext()
    sparse = apply(model, NMSparsity(n=n, m=m), context)
    for name, layer in sparse.named_modules():
        if isinstance(layer, torch.nn.Linear):
            groups = layer.weight.detach().view(layer.weight.shape[0], -1, m)
            assert torch.all((groups != 0).sum(-1) == n), name
            # the survivors are the largest in each group of the original weights
            original = dict(model.named_modules())[name].weight.detach().abs().view_as(groups)
            kept_min = torch.where(groups != 0, original, torch.inf).amin(-1)
            dropped_max = torch.where(groups == 0, original, -torch.inf).amax(-1)
            assert torch.all(kept_min >= dropped_max)
    record = context.artifacts["nm_sparsity"]
    assert record["pattern"] == f"{n}:{m}" and record["sparse_kernel"] is False  # tests force the CPU
    assert "no semi-structured sparse kernel" in record["note"]


def test_nm_leaves_layers_of_the_wrong_width_dense_and_says_so():
    torch.manual_seed(0)
    model = build_model("cnn1d", {"channels": 8}, (40,), 10)  # first conv: 1 channel x kernel 5 = 5 inputs
    context = TreatmentContext()
    sparse = apply(model, NMSparsity(), context)
    assert context.artifacts["nm_sparsity"]["dense_layers"] == ["features.0"]
    assert torch.equal(sparse.features[0].weight, model.features[0].weight)
    rows = sparse.features[2].weight.detach().flatten(1).view(8, -1, 4)
    assert torch.all((rows != 0).sum(-1) == 2)
    assert nm_mask(torch.randn(3, 6), 2, 4) is None
    with pytest.raises(ValueError, match="n must be smaller than m"):
        NMSparsity(n=4, m=4)


def test_nm_finetune_holds_the_pattern(data):
    torch.manual_seed(0)
    model = build_model("mlp", {"hidden": [32]}, data.input_shape, data.num_classes)
    sparse = apply(model, NMSparsity(finetune_epochs=1), _context(data))
    groups = sparse.net[0].weight.detach().view(32, -1, 4)
    assert torch.all((groups != 0).sum(-1) == 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_nm_uses_the_semi_structured_kernel_on_cuda():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(128, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128))
    context = TreatmentContext()
    sparse = apply(model, NMSparsity(), context)
    assert context.artifacts["nm_sparsity"]["sparse_kernel"] is True
    masked = apply(model, NMSparsity(sparse_kernel=False))
    x = torch.randn(64, 128)
    torch.testing.assert_close(sparse(x.cuda()).cpu(), masked(x), atol=0.05, rtol=0.05)


# --- static int8 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["onnxruntime", "torch_ao"])
def test_static_int8_is_close_to_fp32(backend, trained, data):
    context = _context(data)
    quantized = apply(trained, StaticInt8(calibration_samples=256, backend=backend), context)
    fp32, int8 = _accuracy(trained, data.test), _accuracy(quantized, data.test)
    assert fp32 > 0.3  # the model learned something, so agreement below is informative
    assert abs(int8 - fp32) <= 0.03
    agree = (
        predict_logits(quantized, data.test.x).argmax(1) == predict_logits(trained, data.test.x).argmax(1)
    ).mean()
    assert agree >= 0.85  # a weak model (about 50% accurate) has many near-ties that int8 may flip
    assert context.artifacts["static_int8"]["calibration_split"] == "train"
    logits = quantized(torch.as_tensor(data.test.x[:3]))
    assert logits.dtype == torch.float32 and logits.shape == (3, 10)


def test_static_int8_onnx_module_copies_pickles_and_is_smaller(trained, data):
    quantized = apply(trained, StaticInt8(calibration_samples=128), _context(data))
    assert isinstance(quantized, OrtModule)
    x = torch.as_tensor(data.test.x[:8])
    for clone in (copy.deepcopy(quantized), pickle.loads(pickle.dumps(quantized))):
        assert torch.equal(clone(x), quantized(x))
    buffer = io.BytesIO()
    torch.save(quantized.state_dict(), buffer)
    assert serialized_size(quantized)[0] < serialized_size(trained)[0]
    total, nonzero = quantized.weight_counts()
    params = sum(p.numel() for p in trained.parameters())
    assert total == params and 0.9 * params < nonzero <= params
    assert quantized.info["flops_batch1"] > 0


def test_static_int8_chains_after_structured_pruning(trained, data):
    chained = apply(
        trained, [StructuredPrune(sparsity=0.5), StaticInt8(calibration_samples=128)], _context(data)
    )
    pruned = apply(trained, StructuredPrune(sparsity=0.5))
    agree = (
        predict_logits(chained, data.test.x).argmax(1) == predict_logits(pruned, data.test.x).argmax(1)
    ).mean()
    assert agree >= 0.9


def test_calibration_uses_training_samples_only(data):
    batch = calibration_batch(_context(data), 100, "static_int8").numpy()
    train_rows = {row.tobytes() for row in data.train.x}
    assert len(batch) == 100 and all(row.tobytes() in train_rows for row in batch)
    with pytest.raises(SlimlabError, match="quantizes a float32 model"):
        apply(build_model("mlp", {}, (40,), 10), [HalfPrecision(), StaticInt8()], _context(data))
    with pytest.raises(SlimlabError, match="needs calibration data"):
        apply(build_model("mlp", {}, (40,), 10), StaticInt8())


# --- half precision ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_half_precision_returns_float32_close_to_fp32(dtype, trained, data):
    half = apply(trained, HalfPrecision(dtype=dtype))
    x = torch.as_tensor(data.test.x[:64])
    with torch.no_grad():
        out = half(x)
        assert out.dtype == torch.float32
        assert next(half.parameters()).dtype == (torch.bfloat16 if dtype == "bf16" else torch.float16)
        torch.testing.assert_close(out, trained(x), atol=0.1, rtol=0.05)
    assert abs(_accuracy(half, data.test) - _accuracy(trained, data.test)) <= 0.02

    def weight_bytes(m):
        return sum(p.numel() * p.element_size() for p in m.parameters())

    assert weight_bytes(half) * 2 == weight_bytes(trained)
    again = apply(half, HalfPrecision(dtype="bf16"))  # a second cast replaces the first, no double wrap
    assert not isinstance(again.inner, type(again))


# --- fine-tuning and distillation -------------------------------------------------------------------------


def test_distillation_moves_the_student_towards_the_teacher(trained, data):
    student = apply(trained, StructuredPrune(sparsity=0.75))
    context = _context(data, teacher=trained)
    tuned = apply(student, Finetune(epochs=3, lr=3e-3, distill_alpha=1.0, temperature=4.0), context)
    record = context.artifacts["finetune"]
    assert record["val_kl_to_teacher_after"] < record["val_kl_to_teacher_before"]
    assert record["best_epoch"] >= 1
    assert _accuracy(tuned, data.val) >= _accuracy(student, data.val)  # best epoch restored on validation


def test_finetune_holds_zeros_and_refuses_what_it_cannot_train(trained, data):
    pruned = apply(trained, MagnitudePrune(sparsity=0.8))
    zeros = [m.weight == 0 for m in pruned.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d))]
    tuned = apply(pruned, Finetune(epochs=1), _context(data))
    after = [m.weight == 0 for m in tuned.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d))]
    assert all(torch.all(b[a]) for a, b in zip(zeros, after, strict=True))
    assert not any(n.endswith("_orig") for n, _ in tuned.named_parameters())
    with pytest.raises(SlimlabError, match="needs the dense teacher"):
        apply(pruned, Finetune(distill_alpha=0.5), _context(data))
    with pytest.raises(SlimlabError, match="before quantization"):
        apply(trained, [DynamicInt8(), Finetune()], _context(data))


def test_dense_fine_tune_is_deterministic(trained, data):
    a = apply(trained, Finetune(epochs=1, distill_alpha=0.3), _context(data, teacher=trained))
    b = apply(trained, Finetune(epochs=1, distill_alpha=0.3), _context(data, teacher=trained))
    x = torch.as_tensor(data.test.x[:16])
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
    assert np.isfinite(predict_logits(a, data.test.x)).all()
