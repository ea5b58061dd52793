"""Every backend runs a tiny model and agrees with eager; one that cannot run says why and the run goes on."""

import numpy as np
import pytest
import torch

from slimlab.bench import engine
from slimlab.bench.accuracy import accuracy_by_backend, flag_drops
from slimlab.bench.backends import (
    BackendSkipped,
    CompileBackend,
    EagerBackend,
    OnnxRuntimeBackend,
    check_outputs,
    choose_providers,
    get_backend,
)
from slimlab.bench.config import BenchConfig
from slimlab.bench.loading import LoadedModel, from_module, from_reference
from slimlab.errors import UnknownNameError
from slimlab.treatments import DynamicInt8, apply

FAST = {"min_time_s": 0.005, "min_iters": 5, "warmup_iters": 1}


@pytest.fixture(scope="module")
def mlp():
    return from_reference("mlp", (40,), 10, {"hidden": [16]})


def _eager(model, x):
    with torch.inference_mode():
        return model.module(x).numpy()


@pytest.mark.parametrize("name", ["eager", "onnxruntime"])
def test_backend_matches_eager(mlp, name):
    prepared = get_backend(name).prepare(mlp, torch.randn(2, 40))
    for batch in (1, 7):  # the exported graph has a dynamic batch axis
        x = torch.randn(batch, 40)
        np.testing.assert_allclose(prepared(x), _eager(mlp, x), rtol=1e-4, atol=1e-5)
    assert prepared.size_bytes and prepared.size_bytes > 0


def test_ort_int8_is_close_but_not_held_to_fp32_tolerance(mlp):
    prepared = get_backend("onnxruntime-int8").prepare(mlp, torch.randn(2, 40))
    x = torch.randn(64, 40)
    out, ref = prepared(x), _eager(mlp, x)
    # Dynamic int8 on a 16-wide random MLP is coarse: the worst single output can be off by 25% of the
    # largest logit on this CPU (AMD EPYC, ORT 1.32), so the bound is on the relative L2 error.
    assert np.linalg.norm(out - ref) < 0.25 * np.linalg.norm(ref)
    assert (out.argmax(1) == ref.argmax(1)).mean() > 0.8
    fp32 = get_backend("onnxruntime").prepare(mlp, torch.randn(2, 40))
    assert prepared.size_bytes < fp32.size_bytes  # int8 weights are smaller on disk
    assert (prepared.info["precision"], fp32.info["precision"]) == ("int8", "fp32")  # which peak applies


def test_compile_matches_eager(mlp):
    prepared = CompileBackend().prepare(mlp, torch.randn(2, 40))
    for batch in (2, 5):
        x = torch.randn(batch, 40)
        np.testing.assert_allclose(prepared(x), _eager(mlp, x), rtol=1e-4, atol=1e-5)


def test_quantized_torch_model_is_skipped_on_onnxruntime_with_a_reason(mlp):
    int8 = from_module(apply(mlp.module, DynamicInt8()), (40,), "mlp-int8")
    with pytest.raises(BackendSkipped, match="cannot be expressed in ONNX"):
        OnnxRuntimeBackend().prepare(int8, torch.randn(2, 40))
    assert EagerBackend().prepare(int8, torch.randn(2, 40)).info["precision"] == "int8"
    records = engine.run_benchmark(
        int8, BenchConfig(backends=["eager", "onnxruntime"], scenarios=["single-stream"], **FAST)
    )
    assert [(r["backend"], r["status"]) for r in records] == [("eager", "ok"), ("onnxruntime", "skipped")]
    assert "cannot be expressed in ONNX" in records[1]["reason"]


def test_onnx_input_skips_torch_backends():
    with pytest.raises(BackendSkipped, match="needs a PyTorch module; the input is a onnx file"):
        EagerBackend().prepare(LoadedModel("m", (4,), source="onnx"), torch.randn(1, 4))


def test_wrong_outputs_are_caught(mlp):
    prepared = EagerBackend().prepare(mlp, torch.randn(2, 40))
    x = torch.randn(3, 40)
    reference = _eager(mlp, x)
    assert check_outputs(prepared, reference, x, (1e-4, 1e-5)) == 0.0
    with pytest.raises(BackendSkipped, match="outputs differ from eager"):
        check_outputs(prepared, reference + 1.0, x, (1e-4, 1e-5))


def test_providers_are_chosen_from_what_is_available(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert choose_providers(["CUDAExecutionProvider", "CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert choose_providers(
        ["CPUExecutionProvider", "TensorrtExecutionProvider", "CUDAExecutionProvider"]
    ) == [
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    with pytest.raises(BackendSkipped, match="no usable execution provider"):
        choose_providers(["AzureExecutionProvider"])


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match="known: compile, eager, onnxruntime"):
        get_backend("tensorflow")


def test_accuracy_by_backend_flags_a_drop(mlp):
    x = np.random.default_rng(0).standard_normal((200, 40)).astype(np.float32)
    y = _eager(mlp, torch.as_tensor(x)).argmax(1)  # labels the fp32 model gets all right
    out = accuracy_by_backend(mlp, x, y, [EagerBackend(), get_backend("onnxruntime")], margin=0.01)
    assert [e["accuracy"] for e in out] == [1.0, 1.0]
    assert not any(e["accuracy_flagged"] for e in out)
    flagged = flag_drops(
        [{"backend": "eager", "accuracy": 0.9}, {"backend": "x", "accuracy": 0.85}], "eager", 0.01
    )
    assert flagged[1]["accuracy_flagged"] and flagged[1]["accuracy_drop"] == pytest.approx(0.05)


class _Bf16Conv(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(1, 2, 3).to(torch.bfloat16)

    def forward(self, x):
        return self.conv(x.to(torch.bfloat16)).float()


def test_an_unloadable_temporary_graph_is_skipped_with_a_reason_that_names_no_temporary_path():
    # ORT's CPU provider has no bfloat16 Conv; the reason used to carry /tmp/slimlab-onnx-XXXX/model.onnx,
    # a different string per trial, so a report listed the same skip once per seed.
    with pytest.raises(BackendSkipped, match="could not load the model") as info:
        OnnxRuntimeBackend().prepare(from_module(_Bf16Conv(), (1, 8)), torch.randn(2, 1, 8))
    assert "slimlab-onnx-" not in str(info.value) and "model.onnx" in str(info.value)


def test_an_ort_backed_module_is_benched_by_its_own_graph_not_a_trace_of_it(mlp):
    # The ORT backend traced a static-int8 module (an ORT session inside a module) into a graph of its
    # outputs as constants: a MiniLM "ran" in 0.009 ms at batch 32, whatever its input.
    from slimlab.treatments.static_quant import StaticInt8, _ort_static

    calib = torch.randn(64, 40, generator=torch.Generator().manual_seed(0))
    treated = _ort_static(mlp.module, calib, StaticInt8(calibration_samples=64))
    prepared = OnnxRuntimeBackend().prepare(from_module(treated, (40,)), torch.randn(2, 40))
    assert prepared.info["exporter"] == "treatment graph"
    x, other = torch.randn(5, 40), 3 * torch.randn(5, 40)
    with torch.inference_mode():
        expected, expected_other = treated(x).numpy(), treated(other).numpy()
    np.testing.assert_allclose(prepared.run(prepared.to_input(x)), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(prepared.run(prepared.to_input(other)), expected_other, rtol=1e-5, atol=1e-5)
