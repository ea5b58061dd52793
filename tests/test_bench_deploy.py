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
    assert isinstance(prepared.to_input(x), np.ndarray)
    assert prepared.size_bytes == int8_module.onnx_model.numel()


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
