"""A conformance suite over every registered treatment, then the specifics of each."""

import copy
import json

import numpy as np
import pytest
import torch

from slimlab.bench import BenchConfig, from_module, run_benchmark
from slimlab.config import DataConfig
from slimlab.data import load_dataset
from slimlab.errors import ConfigError, SlimlabError, UnknownNameError
from slimlab.evaluate import count_flops, count_parameters, serialized_size
from slimlab.models import build_model
from slimlab.models.inference import predict_logits
from slimlab.train import TrainConfig, Trainer
from slimlab.treatments import (
    DynamicInt8,
    EmbeddingCompress,
    EmbeddingFp16,
    EmbeddingInt8,
    Finetune,
    HalfPrecision,
    LinearHalf,
    LotteryTicket,
    MagnitudePrune,
    MixedInt8,
    MoEUpcycle,
    NMSparsity,
    StaticInt8,
    StructuredPrune,
    TreatmentConfig,
    TreatmentContext,
    apply,
    known_treatments,
    parse_treatment,
    treatment_types,
)

# One representative config per registered treatment; a new treatment must be added here.
EXAMPLES: dict[str, TreatmentConfig] = {
    "magnitude_prune": MagnitudePrune(sparsity=0.7),
    "dynamic_int8": DynamicInt8(),
    "lottery_ticket": LotteryTicket(rounds=2, rate=0.3, rewind_step=2, epochs=1, keep_masks=False),
    "structured_prune": StructuredPrune(sparsity=0.5, finetune_epochs=1),
    "nm_sparsity": NMSparsity(n=2, m=4),
    "static_int8": StaticInt8(calibration_samples=64),
    "mixed_int8": MixedInt8(calibration_samples=64, keep_float=1),
    "half_precision": HalfPrecision(dtype="bf16"),
    "finetune": Finetune(epochs=1, distill_alpha=0.5),
    "moe": MoEUpcycle(num_experts=4, finetune_epochs=1),
    "linear_half": LinearHalf(dtype="bf16"),
    # These need embedding tables; tests/test_dlrm.py runs them on a trained DLRM.
    "embedding_int8": EmbeddingInt8(),
    "embedding_fp16": EmbeddingFp16(),
    "embedding_compress": EmbeddingCompress(finetune_epochs=1),
}
NEEDS_TABLES = {"embedding_int8", "embedding_fp16", "embedding_compress"}


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("cnn1d", {"channels": 8}, (40,), 10).eval()


def _model_for(kind: str, seed: int = 0) -> torch.nn.Module:
    """The treatment's test model: the CNN, except where a treatment needs another architecture."""
    if kind == "moe":  # upcycles a transformer's dense FFNs
        torch.manual_seed(seed)
        return build_model("transformer", {"d_model": 16, "d_ff": 32}, (40,), 10).eval()
    return _model(seed)


def test_every_treatment_has_an_example():
    assert sorted(EXAMPLES) == known_treatments()
    assert {type(c) for c in EXAMPLES.values()} == set(treatment_types())


@pytest.fixture(scope="module")
def tiny_data():
    return load_dataset(DataConfig(name="mnist1d", num_samples=300), 0)


def _context(data) -> TreatmentContext:
    """What the runner passes: its trainer (here 1 epoch), the data, and the parent's θ0."""
    return TreatmentContext(
        seed=0,
        trainer=Trainer(TrainConfig(epochs=1, batch_size=50, device="cpu")),
        data=data,
        initial_state=_model(seed=1).state_dict(),
        teacher=_model(seed=2),
    )


@pytest.mark.parametrize("kind", sorted(set(EXAMPLES) - NEEDS_TABLES))
def test_conformance(kind, tiny_data):
    config = EXAMPLES[kind]
    model = _model_for(kind)
    before = copy.deepcopy(model.state_dict())
    x = torch.randn(16, 40, generator=torch.Generator().manual_seed(0))
    context = _context(tiny_data)
    treated = apply(model, config, context)
    json.dumps(context.artifacts)  # stored with the trial as JSON
    # the output shape is preserved, and the input model is untouched
    assert treated(x).shape == model(x).shape
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    # the config round-trips through its tagged dict form
    assert parse_treatment(config.to_dict()) == config
    assert config.to_dict()["kind"] == kind
    # deterministic
    again = apply(model, config, _context(tiny_data))
    with torch.no_grad():
        assert torch.equal(treated(x), again(x))
    # it runs where the runner will run it: evaluation, the model statistics, and the eager benchmark
    logits = predict_logits(treated, tiny_data.test.x[:20])
    assert logits.dtype == np.float32 and logits.shape == (20, 10)
    count_parameters(treated)
    serialized_size(treated)
    count_flops(treated, torch.as_tensor(tiny_data.test.x[:1]))
    bench = BenchConfig(warmup_iters=1, min_time_s=0.001, min_iters=2, throughput_batch_size=8)
    records = run_benchmark(from_module(treated, (40,)), bench)
    assert all(r["status"] == "ok" for r in records)
    assert [r["batch_size"] for r in records if r["scenario"] == "offline"] == [1, 8]
    # frozen
    with pytest.raises(Exception, match="frozen"):
        config.kind_alias = 1  # type: ignore[attr-defined]


def test_global_magnitude_prune_hits_the_sparsity_exactly():
    model = _model()
    pruned = apply(model, MagnitudePrune(sparsity=0.9))
    weights = [m.weight for m in pruned.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d))]
    total = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert zeros == round(0.9 * total)
    assert not any(name.endswith("_orig") for name, _ in pruned.named_parameters())  # made permanent
    # The global criterion keeps the largest magnitudes across layers.
    flat = torch.cat(
        [
            w.detach().abs().flatten()
            for w in (m.weight for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d)))
        ]
    )
    threshold = flat.kthvalue(round(0.9 * total)).values
    kept = torch.cat([w.detach().abs().flatten() for w in weights])
    assert kept[kept > 0].min() >= threshold


def test_layer_scope_prunes_each_layer():
    pruned = apply(_model(), MagnitudePrune(sparsity=0.5, scope="layer"))
    for m in pruned.modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d)):
            assert int((m.weight == 0).sum()) == round(0.5 * m.weight.numel())


def test_finetune_keeps_pruned_weights_at_zero_and_needs_a_trainer():
    data = load_dataset(DataConfig(name="mnist1d", num_samples=400), 0)
    model = _model()
    context = TreatmentContext(seed=0, trainer=Trainer(TrainConfig(epochs=1, device="cpu")), data=data)
    config = MagnitudePrune(sparsity=0.8, finetune_epochs=2)
    pruned = apply(model, config, context)
    _, nonzero = count_parameters(pruned)
    params, _ = count_parameters(model)
    biases = sum(m.bias.numel() for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d)))
    assert nonzero <= round(0.2 * (params - biases)) + biases
    with pytest.raises(SlimlabError, match="needs training"):
        apply(model, config)


def test_dynamic_int8_is_close_to_fp32_and_chains_after_pruning():
    model = _model()
    x = torch.randn(32, 40, generator=torch.Generator().manual_seed(1))
    quantized = apply(model, DynamicInt8())
    assert any(type(m).__module__.startswith("torch.ao.nn.quantized.dynamic") for m in quantized.modules())
    np.testing.assert_allclose(quantized(x).detach(), model(x).detach(), atol=0.05)
    chained = apply(model, [MagnitudePrune(sparsity=0.9), DynamicInt8()])
    params, nonzero = count_parameters(chained)
    assert nonzero / params < 0.2


def test_dynamic_int8_on_onnxruntime_quantizes_the_exported_graph(tiny_data, tmp_path):
    """backend = "onnxruntime": ORT's dynamic quantizer on the exported graph, an OrtModule a session can
    deploy (a torch.ao module cannot be exported), cross-checked against plain ONNX Runtime's
    quantize_dynamic of the same export."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from slimlab.models.ort import OrtModule
    from slimlab.treatments.static_quant import export_onnx

    model = _model()
    context = _context(tiny_data)
    quantized = apply(model, DynamicInt8(backend="onnxruntime"), context)
    assert isinstance(quantized, OrtModule) and quantized.info["format"] == "dynamic int8"
    graph = quantized.onnx_model.numpy().tobytes()
    ops = {n.op_type for n in onnx.load_from_string(graph).graph.node}
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= ops  # the classifier's Gemm, as ORT quantizes it
    x = torch.as_tensor(tiny_data.test.x[:64])
    src, dst = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    src.write_bytes(export_onnx(model, x[:2]))
    quantize_dynamic(src, dst, op_types_to_quantize=["MatMul", "Gemm"], weight_type=QuantType.QInt8)
    reference = ort.InferenceSession(dst.read_bytes(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x.numpy()}
    )[0]
    np.testing.assert_allclose(quantized(x).numpy(), reference, atol=1e-5)
    with torch.no_grad():
        np.testing.assert_allclose(quantized(x).numpy(), model(x).numpy(), atol=0.1)
    assert isinstance(model, torch.nn.Module) and not isinstance(model, OrtModule)  # the parent is untouched


def test_dynamic_int8_on_onnxruntime_takes_keyword_inputs():
    from slimlab.data.dataset import Dataset, Split
    from slimlab.models.ort import OrtModule

    torch.manual_seed(0)
    model = _KeywordModel().eval()
    x = {
        "input_ids": np.random.default_rng(0).integers(0, 20, (32, 6)),
        "attention_mask": np.ones((32, 6), dtype=np.int64),
    }
    y = np.zeros(32, dtype=np.int64)
    data = Dataset("tokens", Split(x, y), Split(x, y), Split(x, y), num_classes=3)
    quantized = apply(model, DynamicInt8(backend="onnxruntime"), TreatmentContext(seed=0, data=data))
    assert isinstance(quantized, OrtModule) and quantized.input_names == ["input_ids", "attention_mask"]
    batch = {k: torch.as_tensor(v) for k, v in x.items()}
    with torch.no_grad():
        np.testing.assert_allclose(quantized(**batch).numpy(), model(**batch).numpy(), atol=0.1)


def test_dynamic_int8_on_onnxruntime_refuses_a_model_already_in_bf16(tiny_data):
    with pytest.raises(SlimlabError, match="quantizes a float32 model"):
        apply(
            _model(),
            [HalfPrecision(dtype="bf16"), DynamicInt8(backend="onnxruntime")],
            _context(tiny_data),
        )


def test_unknown_treatment_lists_the_known():
    with pytest.raises(
        UnknownNameError,
        match="known: dynamic_int8, embedding_compress, embedding_fp16, embedding_int8, finetune",
    ):
        parse_treatment({"kind": "svd"})
    with pytest.raises(ConfigError, match="must be a table with a `kind`"):
        parse_treatment("prune")

    class NotRegistered(TreatmentConfig):
        kind = "unregistered"

    with pytest.raises(UnknownNameError, match="unknown treatment config 'NotRegistered'"):
        apply(_model(), NotRegistered())


class _KeywordModel(torch.nn.Module):
    """Two keyword inputs and dropout, as a Hugging Face encoder has them."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(20, 8)
        self.drop = torch.nn.Dropout(0.5)
        self.out = torch.nn.Linear(8, 3)

    def forward(self, input_ids, attention_mask):
        hidden = self.drop(self.embed(input_ids)) * attention_mask.unsqueeze(-1)
        return self.out(hidden.mean(1))


@pytest.mark.parametrize("training", [False, True])
def test_export_of_a_keyword_input_model_leaves_its_mode_and_outputs_alone(training):
    from slimlab.treatments.static_quant import export_onnx

    torch.manual_seed(0)
    model = _KeywordModel().eval()
    batch = {"input_ids": torch.randint(0, 20, (4, 6)), "attention_mask": torch.ones(4, 6, dtype=torch.long)}
    with torch.no_grad():
        before = model(**batch)
    model.train(training)
    export_onnx(model, batch)
    # The old export left the module in training mode (dropout on), whatever mode it came in.
    assert model.training == training and model.drop.training == training
    if not training:
        with torch.no_grad():
            torch.testing.assert_close(model(**batch), before)
