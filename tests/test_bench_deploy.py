"""The deployment backend: an ORT candidate is benched through a bare InferenceSession with its own
settings, never through the torch wrapper; exports are cheap and never attempted where bound to fail."""

import numpy as np
import pytest
import torch

from slimlab.bench import backends as backends_mod
from slimlab.bench import engine
from slimlab.bench.backends import BackendSkipped, OnnxRuntimeBackend, backends_for
from slimlab.bench.config import BenchConfig
from slimlab.bench.deploy import OrtSessionBackend, best_cell, deployable_onnx, wrapper_overhead
from slimlab.bench.loading import from_module, from_reference
from slimlab.treatments import DynamicInt8, apply
from slimlab.treatments.static_quant import OrtModule, StaticInt8, _ort_static

FAST = {"min_time_s": 0.005, "min_iters": 5, "warmup_iters": 1}


@pytest.fixture(scope="module")
def mlp():
    return from_reference("mlp", (40,), 10, {"hidden": [16]})


@pytest.fixture(scope="module")
def int8_module(mlp):
    calib = torch.randn(64, 40, generator=torch.Generator().manual_seed(0))
    return _ort_static(mlp.module, calib, StaticInt8(calibration_samples=64))


def test_session_backend_runs_the_treatments_own_graph_not_the_wrapper(int8_module):
    model = from_module(int8_module, (40,), "int8")
    prepared = OrtSessionBackend(threads=1).prepare(model, torch.randn(2, 40))
    assert prepared.info["graph"] == "treatment graph"
    assert prepared.info["precision"] == "int8" and prepared.info["threads"] == 1
    x = torch.randn(5, 40)
    # Same graph and kernels as the OrtModule: identical outputs, on numpy input (no torch in the loop).
    np.testing.assert_allclose(prepared(x), int8_module(x).numpy(), rtol=1e-5, atol=1e-6)
    (feed,) = prepared.to_input(x).values()  # the session's feeds, made before the timed call
    assert isinstance(feed, np.ndarray) and feed.dtype == np.float32
    assert prepared.size_bytes == int8_module.onnx_model.numel()


def test_session_backend_feeds_every_input_of_a_token_id_encoder(tmp_path):
    pytest.importorskip("transformers")
    from slimlab.data.batches import first_tensor
    from slimlab.models.loading import load_hf
    from tests.tiny_encoder import tiny_bert_dir, token_batch

    encoder = load_hf(tiny_bert_dir(tmp_path / "bert")).eval()
    batch = {k: torch.from_numpy(v) for k, v in token_batch(6).items()}
    model = from_module(encoder, (16,), "bert")
    prepared = OrtSessionBackend(threads=1).prepare(model, {k: v[:2] for k, v in batch.items()})
    feeds = prepared.to_input(batch)
    assert sorted(feeds) == ["attention_mask", "input_ids"] and feeds["input_ids"].dtype == np.int64
    with torch.inference_mode():
        expected = first_tensor(encoder(**batch)).numpy()
    np.testing.assert_allclose(prepared(batch), expected, rtol=1e-3, atol=1e-4)


def test_float_module_is_exported_with_the_torchscript_exporter(mlp):
    _graph, source = deployable_onnx(mlp, torch.randn(2, 40))
    assert source == "torch.onnx (torchscript)"
    prepared = OrtSessionBackend().prepare(mlp, torch.randn(2, 40))
    x = torch.randn(7, 40)
    with torch.inference_mode():
        np.testing.assert_allclose(prepared(x), mlp.module(x).numpy(), rtol=1e-4, atol=1e-5)


def test_onnxruntime_backend_no_longer_uses_the_dynamo_exporter(mlp):
    # Defect: every ORT bench paid the dynamo export (1.3 s per model here) for a graph the TorchScript
    # exporter makes in 0.02 s.
    prepared = OnnxRuntimeBackend().prepare(mlp, torch.randn(2, 40))
    assert prepared.info["exporter"] == "torch.onnx (torchscript)"


def test_torch_ao_int8_is_refused_without_an_export_attempt(mlp, monkeypatch):
    # Defect: the export of a torch.ao quantized module was attempted (and failed) in every trial.
    def boom(*_a, **_k):
        raise AssertionError("the exporter must not be called")

    monkeypatch.setattr(backends_mod, "_torchscript_export", boom)
    monkeypatch.setattr(backends_mod, "_dynamo_export", boom)
    int8 = from_module(apply(mlp.module, DynamicInt8()), (40,), "mlp-int8")
    with pytest.raises(BackendSkipped, match="cannot be expressed in ONNX"):
        OnnxRuntimeBackend().prepare(int8, torch.randn(2, 40))
    with pytest.raises(BackendSkipped, match="cannot be expressed in ONNX"):
        OrtSessionBackend().prepare(int8, torch.randn(2, 40))


def test_session_threads_are_an_axis_and_recorded(int8_module):
    config = BenchConfig(
        backends=["onnxruntime-session"],
        session_threads=[1, 2],
        scenarios=["offline"],
        batch_sizes=[4],
        **FAST,
    )
    assert [b.threads for b in backends_for(config.backends, config.session_threads)] == [1, 2]
    records = engine.run_benchmark(from_module(int8_module, (40,), "int8"), config)
    assert [(r["backend"], r["threads"], r["status"]) for r in records] == [
        ("onnxruntime-session", 1, "ok"),
        ("onnxruntime-session", 2, "ok"),
    ]
    assert best_cell(records, 4) in records
    assert best_cell(records, 64) is None


def test_session_threads_default_leaves_trial_ids_alone():
    assert "session_threads" not in BenchConfig().model_dump()
    with pytest.raises(ValueError, match="session_threads"):
        BenchConfig(session_threads=[0])


def test_wrapper_overhead_compares_the_same_graph(int8_module):
    out = wrapper_overhead(int8_module, torch.randn(1, 40), rounds=2, calls=20)
    assert out["wrapper_ms"] > 0 and out["session_ms"] > 0 and out["ratio"] > 0
    with pytest.raises(TypeError):
        wrapper_overhead(torch.nn.Linear(2, 2), torch.randn(1, 2))
    assert isinstance(int8_module, OrtModule)


def _trial(cells: list[tuple[str, int, float]]) -> dict:
    return {
        "bench": [
            {
                "backend": b,
                "threads": t,
                "status": "ok",
                "scenario": "offline",
                "batch_size": 64,
                "latency_ms": {"p50": p},
            }
            for b, t, p in cells
        ]
    }


def test_one_step_cells_use_the_default_threads_and_the_search_may_use_others():
    from slimlab.bench.deploy import deployed_latency, one_step_cells

    dense = _trial([("eager", 2, 1.0), ("onnxruntime", 2, 0.5), ("onnxruntime-int8", 2, 0.6)])
    static = _trial([("eager", 2, 0.45), ("onnxruntime-session", 2, 0.4), ("onnxruntime-session", 1, 0.2)])
    cells = one_step_cells({"dense": [dense], "search-s0-static_int8": [static]}, "dense", 64)
    assert [c["cell"] for c in cells] == ["ORT static int8 QDQ", "ORT fp32", "ORT dynamic int8", "torch fp32"]
    assert cells[0]["latency_ms"] == 0.4  # the 1-thread session is a search result, not a one-step cell
    best = deployed_latency(static, 64, ("eager", "onnxruntime-session"))
    assert best == {"backend": "onnxruntime-session", "threads": 1, "p50_ms": 0.2}
    assert deployed_latency(static, 64, ("eager",))["p50_ms"] == 0.45
    assert deployed_latency(static, 1, None) is None


def test_search_axes_expand_into_named_candidates():
    from slimlab.config import SearchConfig

    search = SearchConfig(
        structured_sparsity=[0.0],
        precision=["static_int8"],
        per_channel=[True, False],
        calibration_method=["minmax", "entropy"],
        mixed_precision_keep=[1],
    )
    names = [v.name for v in search.candidates()]
    assert names[:4] == [
        "search-s0-static_int8",
        "search-s0-static_int8-entropy",
        "search-s0-static_int8-pt",
        "search-s0-static_int8-pt-entropy",
    ]
    assert "search-s0-mixed1" in names and "search-s0-mixed1-pt-entropy" in names
    # The default axes keep the old candidate and its chain, hence its trial ids.
    plain = SearchConfig(structured_sparsity=[0.0], precision=["static_int8"]).candidates()
    assert [t.to_dict() for t in plain[0].treatments] == [
        {
            "kind": "static_int8",
            "version": 1,
            "calibration_samples": 512,
            "backend": "onnxruntime",
            "per_channel": True,
        }
    ]
    with pytest.raises(ValueError, match="positive number of nodes"):
        SearchConfig(mixed_precision_keep=[0])
