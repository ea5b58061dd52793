"""Per-node quantization sensitivity with intervals, and mixed precision built from its ranking."""

import importlib.util
import math

import numpy as np
import onnxruntime as ort
import pytest
import torch

from slimlab.config import DataConfig
from slimlab.data import load_dataset
from slimlab.data.batches import take, to_torch
from slimlab.errors import SlimlabError
from slimlab.models import build_model
from slimlab.train import TrainConfig, Trainer
from slimlab.treatments import MixedInt8, StaticInt8, TreatmentContext, apply
from slimlab.treatments.ort_qdq import quantizable_nodes, quantize_qdq, run_graph
from slimlab.treatments.sensitivity import layer_sensitivity, output_error
from slimlab.treatments.static_quant import export_onnx


@pytest.fixture(scope="module")
def data():
    return load_dataset(DataConfig(name="mnist1d", num_samples=800), 0)


@pytest.fixture(scope="module")
def trained(data):
    torch.manual_seed(0)
    model = build_model("cnn1d", {"channels": 8}, data.input_shape, data.num_classes)
    Trainer(TrainConfig(epochs=3, batch_size=50, patience=None, device="cpu")).fit(model, data, 0)
    return model.eval()


@pytest.fixture(scope="module")
def graph(trained, data):
    return export_onnx(trained, torch.as_tensor(data.train.x[:2]))


def test_output_error_is_sqnr_in_db():
    ref = np.array([[1.0, -1.0, 2.0, 0.0]])
    assert output_error(ref, ref) == {"sqnr_db": None, "mse": 0.0}
    noisy = ref + np.array([[0.1, 0.0, 0.0, 0.0]])
    out = output_error(ref, noisy)
    assert out["sqnr_db"] == pytest.approx(10 * math.log10(6 / 0.01))
    assert out["mse"] == pytest.approx(0.01 / 4)


def test_excluded_nodes_stay_float(graph, data):
    import onnx

    nodes = quantizable_nodes(graph)
    assert [op for _, op in nodes] == ["Conv", "Conv", "Conv", "Gemm"]
    calib = data.train.x[:64]
    first = nodes[0][0]
    mixed = onnx.load_from_string(quantize_qdq(graph, calib, nodes_to_exclude=[first]))
    # A quantized node's inputs come through DequantizeLinear; the excluded one reads float tensors.
    producers = {o: n.op_type for n in mixed.graph.node for o in n.output}
    by_name = {n.name: n for n in mixed.graph.node}
    assert all(producers.get(i) != "DequantizeLinear" for i in by_name[first].input)
    assert any(producers.get(i) == "DequantizeLinear" for i in by_name[nodes[1][0]].input)


def test_sensitivity_ranks_every_node_with_paired_intervals(graph, data):
    calib = data.train.x[:64]
    sens = layer_sensitivity(graph, calib, data.val.x, data.val.y, float_only=True)
    assert sens["split"] == "validation" and sens["n"] == len(data.val.y)
    assert sorted(sens["ranking"]) == sorted(n for n, _ in quantizable_nodes(graph))
    sqnrs = [row["alone"]["sqnr_db"] for row in sens["layers"]]
    assert sqnrs == sorted(sqnrs)  # ranked by SQNR, most error first
    for row in sens["layers"]:
        for mode in ("alone", "float_only"):
            lo, hi = row[mode]["ci"]
            assert -1 <= lo <= row[mode]["delta"] <= hi <= 1  # an accuracy change's interval
            assert 0 <= row[mode]["p_value"] <= 1
    # Cross-check one row against a plain ORT session and a hand count.
    top = sens["layers"][0]
    q = quantize_qdq(graph, calib, nodes_to_quantize=[top["node"]])
    session = ort.InferenceSession(q, providers=["CPUExecutionProvider"])
    logits = session.run(None, {"x": data.val.x.astype(np.float32)})[0]
    fp32 = run_graph(graph, data.val.x)
    delta = (logits.argmax(1) == data.val.y).mean() - (fp32.argmax(1) == data.val.y).mean()
    assert top["alone"]["delta"] == pytest.approx(delta)
    assert top["alone"]["sqnr_db"] == pytest.approx(output_error(fp32, logits)["sqnr_db"], rel=1e-4)
    # Quantizing everything is at least as noisy as quantizing the worst node alone.
    assert sens["all_int8"]["sqnr_db"] <= top["alone"]["sqnr_db"] + 1e-6


def test_mixed_int8_keeps_the_most_sensitive_nodes_float(trained, data):
    context = TreatmentContext(seed=3, data=data)
    mixed = apply(trained, MixedInt8(keep_float=2, calibration_samples=64), context)
    record = context.artifacts["mixed_int8"]
    assert record["kept_float"] == record["sensitivity"]["ranking"][:2]
    assert record["calibration"] == {
        "samples": 64,
        "seed": 3,
        "split": "train",
        "method": "minmax",
        "per_channel": True,
    }
    full = apply(trained, StaticInt8(calibration_samples=64), TreatmentContext(seed=3, data=data))
    x = torch.as_tensor(data.val.x)
    with torch.no_grad():
        ref = trained(x).numpy()
    # Keeping the two noisiest nodes in float brings the outputs closer to fp32 than full int8.
    assert output_error(ref, mixed(x).numpy())["sqnr_db"] > output_error(ref, full(x).numpy())["sqnr_db"]
    with pytest.raises(SlimlabError, match="only 4 quantizable nodes"):
        apply(trained, MixedInt8(keep_float=9, calibration_samples=64), TreatmentContext(seed=3, data=data))


def test_mixed_int8_on_dynamic_int8_keeps_the_ranked_nodes_float(trained, data, tmp_path):
    """scheme = "dynamic": the top-k nodes of the ranking stay fp32 and the rest take ONNX Runtime's dynamic
    int8, the same graph plain `quantize_dynamic` makes with those nodes excluded."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    context = TreatmentContext(seed=3, data=data)
    mixed = apply(trained, MixedInt8(keep_float=2, calibration_samples=64, scheme="dynamic"), context)
    record = context.artifacts["mixed_int8"]
    kept = record["kept_float"]
    assert kept == record["sensitivity"]["ranking"][:2] and record["scheme"] == "dynamic"
    proto = onnx.load_from_string(mixed.onnx_model.numpy().tobytes())
    ops = {n.name: n.op_type for n in proto.graph.node}
    # Still float: ORT splits a Gemm into <name>_MatMul + <name>_Add, and used to quantize the MatMul of an
    # excluded Gemm anyway.
    assert "/classifier/Gemm" in kept
    assert all(ops.get(name) == "Conv" or ops.get(f"{name}_MatMul") == "MatMul" for name in kept)
    assert not any(op.endswith("Integer") and name.startswith(tuple(kept)) for name, op in ops.items())
    assert "DynamicQuantizeLinear" in ops.values() and "QuantizeLinear" not in ops.values()
    src, dst = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    src.write_bytes(export_onnx(trained, torch.as_tensor(data.train.x[:2])))
    quantize_dynamic(
        src,
        dst,
        op_types_to_quantize=["Conv", "Gemm", "MatMul"],
        nodes_to_exclude=[*kept, *(f"{name}_MatMul" for name in kept)],
        weight_type=QuantType.QInt8,
    )
    x = data.val.x.astype(np.float32)
    reference = ort.InferenceSession(dst.read_bytes(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_allclose(mixed(torch.as_tensor(x)).numpy(), reference[0], atol=1e-5)


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_static_int8_records_its_calibration_and_method(trained, data, method):
    context = TreatmentContext(seed=5, data=data)
    config = StaticInt8(calibration_samples=64, calibration_method=method, per_channel=False)
    apply(trained, config, context)
    record = context.artifacts["static_int8"]
    assert (record["calibration_samples"], record["calibration_seed"]) == (64, 5)
    assert (record["calibration_method"], record["per_channel"]) == (method, False)
    assert config.to_dict()["calibration_method"] == method
    # At its default the new field stays out of the identity, so pinned trial ids do not move.
    assert "calibration_method" not in StaticInt8().to_dict()


# A pretrained label-free encoder with two int64 inputs (token ids and an attention mask), as MiniLM.
needs_transformers = pytest.mark.skipif(
    importlib.util.find_spec("transformers") is None, reason="needs transformers (slimlab[transformers])"
)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    from slimlab.models.loading import load_hf
    from tests.tiny_encoder import tiny_bert_dir

    return load_hf(tiny_bert_dir(tmp_path_factory.mktemp("tiny-bert")))


@pytest.fixture(scope="module")
def tokens():
    from tests.tiny_encoder import token_batch

    x = token_batch(96)
    return take(x, slice(0, 48)), take(x, slice(48, 96))  # calibration, validation


def _text_context(calibration, validation, seed=0):
    from slimlab.data import Dataset, Split

    zeros = np.zeros(48, dtype=np.int64)  # placeholder targets, as examples/minilm_data.py has
    return TreatmentContext(
        seed=seed, data=Dataset("text", Split(calibration, zeros), Split(validation, zeros), None, 0)
    )


@needs_transformers
def test_sensitivity_on_a_label_free_encoder_scores_per_sample_cosine_to_fp32(encoder, tokens):
    calibration, validation = tokens
    graph = export_onnx(encoder, to_torch(take(calibration, slice(0, 2))))
    sens = layer_sensitivity(graph, calibration, validation, None, op_types=["MatMul"])
    matmuls = [n for n, op in quantizable_nodes(graph, ["MatMul"])]
    assert len(matmuls) == 16 and sorted(sens["ranking"]) == sorted(matmuls)  # 8 per layer, 2 layers
    assert (sens["metric"], sens["n"], sens["fp32_score"]) == ("cosine", 48, pytest.approx(1.0))
    assert "fp32_accuracy" not in sens and sens["op_types"] == ["MatMul"]
    for row in sens["layers"]:
        alone = row["alone"]
        lo, hi = alone["ci"]
        assert lo <= alone["delta"] <= hi <= 1e-12  # a cosine to fp32 can only fall
        assert alone["sqnr_db"] is not None
        # A node whose int8 kernel changes every cosine by the same rounding error has no spread: its
        # paired test is degenerate (no p-value) and its interval is the point.
        assert 0 < alone["p_value"] <= 1 or (math.isnan(alone["p_value"]) and lo == hi)
    # One row by hand: the node quantized alone (no calibration cache), cosine per sentence to fp32.
    top = sens["layers"][0]
    alone = quantize_qdq(graph, calibration, nodes_to_quantize=[top["node"]], op_types=["MatMul"])
    fp32 = run_graph(graph, validation)
    cos = torch.nn.functional.cosine_similarity(
        torch.as_tensor(run_graph(alone, validation), dtype=torch.float64), torch.as_tensor(fp32).double()
    )
    assert top["alone"]["delta"] == pytest.approx(float(cos.mean()) - 1, abs=1e-9)
    assert top["alone"]["score"] == pytest.approx(float(cos.mean()), abs=1e-9)


@needs_transformers
def test_mixed_int8_on_a_label_free_encoder_keeps_the_top_k_matmuls_float(encoder, tokens):
    import onnx

    calibration, validation = tokens
    context = _text_context(calibration, validation, seed=2)
    mixed = apply(encoder, MixedInt8(keep_float=3, calibration_samples=48, op_types=["MatMul"]), context)
    record = context.artifacts["mixed_int8"]
    sens = record["sensitivity"]
    assert record["kept_float"] == sens["ranking"][:3] and sens["metric"] == "cosine"
    assert len(record["quantized_nodes"]) == 13
    assert record["calibration"] == {
        "samples": 48,
        "seed": 2,
        "split": "train",
        "method": "minmax",
        "per_channel": True,
    }
    graph = onnx.load_from_string(mixed.onnx_model.numpy().tobytes())
    producers = {o: n.op_type for n in graph.graph.node for o in n.output}
    by_name = {n.name: n for n in graph.graph.node}

    def quantized(name: str) -> bool:
        return any(producers.get(i) == "DequantizeLinear" for i in by_name[name].input)

    assert not any(quantized(n) for n in record["kept_float"])
    assert all(quantized(n) for n in record["quantized_nodes"])
    # MatMul-only: the only int8 weights are MatMuls' (by default ORT would also quantize the embeddings'
    # Gather tables).
    weights = {i.name for i in graph.graph.initializer}
    dequantized = {
        n.output[0] for n in graph.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in weights
    }
    assert {n.op_type for n in graph.graph.node if dequantized & set(n.input)} == {"MatMul"}
    with torch.no_grad():
        dense = encoder(**to_torch(validation))
        out = mixed(**to_torch(validation))
    assert float(torch.nn.functional.cosine_similarity(out, dense).mean()) > 0.95
