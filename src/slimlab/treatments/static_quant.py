"""Static int8 post-training quantization: weights and activations in int8, activation ranges calibrated
once on training samples (never on validation or test data).

Which engine: measured on the project CPU (Xeon with AVX-512 VNNI and BF16, no AMX; torch 2.13 CPU,
onnxruntime 1.32; 1 thread; median latency; noisy shared machine, ratios taken in one run; speed-up over
torch fp32 eager, higher is better):

    model               batch  torch.ao static  torchao pt2e+inductor  ORT static QDQ  ORT dynamic int8
    CNN1d (25 ch)          64           1.7-1.8x                  0.8x        3.4-3.5x             0.5x
    CNN1d (25 ch)           1              0.5x                   0.5x        3.9x                 2.1x
    MLP 40-100-100-10      64              0.8x                   0.5x        2.9x                 3.0x
    MLP 40-512-512-10      64              3.9x                   0.9x        6.3x                 6.4x

These models are small, so per-operator overhead dominates, and ONNX Runtime's fused int8 graph (QDQ
folded into QLinearConv / MatMulInteger kernels using VNNI) has the least of it. torch.ao's eager static
quantization (fbgemm/x86 engine, fused conv+ReLU) is second; pt2e's X86InductorQuantizer needs
torch.compile (3-11 s here) and was slower than fp32 at these sizes. So `backend="onnxruntime"` is the
default, and `backend="torch_ao"` is kept for a pure-PyTorch module (e.g. to count its int8 weights).

The ONNX Runtime model is wrapped in `OrtModule`, an nn.Module that takes and returns torch tensors, so
that evaluation and the eager benchmark work unchanged. Its ONNX bytes are a uint8 buffer, so
`state_dict()` and the serialized size are those of the int8 model.
"""

from __future__ import annotations

import copy
import io
import itertools
import logging
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

from slimlab.errors import SlimlabError
from slimlab.evaluate import count_flops
from slimlab.treatments.base import TreatmentConfig, TreatmentContext, register_treatment


class StaticInt8(TreatmentConfig):
    """Static int8 quantization calibrated on `calibration_samples` training samples (drawn with the trial
    seed). `backend="onnxruntime"`: ONNX export, QDQ quantization with per-channel weights and uint8
    activations, run in an ONNX Runtime CPU session; `"torch_ao"`: torch.ao eager static quantization
    (x86 engine) with Conv/Linear+ReLU fused."""

    kind = "static_int8"
    calibration_samples: int = Field(default=512, gt=0, description="training samples used to calibrate")
    backend: Literal["onnxruntime", "torch_ao"] = "onnxruntime"
    per_channel: bool = True
    calibration_method: Literal["minmax", "entropy", "percentile"] = Field(
        default="minmax", description="ONNX Runtime's CalibrationMethod for the activation ranges"
    )


@contextmanager
def _quiet() -> Iterator[None]:
    """The exporters and quantizers warn about their own deprecations and preprocessing advice; we call
    them knowingly, and pytest runs with warnings as errors."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
            warnings.filterwarnings("ignore", message=".*torch.quantize_per_tensor.*")
            warnings.filterwarnings("ignore", message=".*reduce_range will be deprecated.*")
            yield
    finally:
        root.setLevel(level)


def calibration_batch(context: TreatmentContext, samples: int, kind: str) -> Tensor:
    if context.data is None:
        raise SlimlabError(f"treatment {kind!r} needs calibration data; pass a TreatmentContext with data")
    x = context.data.train.x
    rng = np.random.default_rng(context.seed)
    index = np.sort(rng.choice(len(x), size=min(samples, len(x)), replace=False))
    return torch.as_tensor(x[index], dtype=torch.float32)


def export_onnx(model: nn.Module, example: Tensor) -> bytes:
    """The model as ONNX with a dynamic batch axis. The TorchScript exporter is used: it is deprecated,
    but it is fast (under a second here) and needs no torch.export-compatible model."""
    buffer = io.BytesIO()
    with _quiet(), torch.no_grad():
        torch.onnx.export(
            model.eval(),
            (example,),
            buffer,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
            dynamo=False,
        )
    return buffer.getvalue()


class OrtModule(nn.Module):
    """An ONNX model run by ONNX Runtime on the CPU, behind the nn.Module interface: torch tensors in, float32
    torch tensors out. The session is rebuilt from the stored bytes after a copy or unpickling, with
    torch's current thread count."""

    def __init__(self, onnx_bytes: bytes, info: dict[str, Any] | None = None):
        super().__init__()
        self.register_buffer("onnx_model", torch.frombuffer(bytearray(onnx_bytes), dtype=torch.uint8))
        self.info = info or {}
        self._session = self._make_session()

    def _make_session(self) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        return ort.InferenceSession(
            self.onnx_model.numpy().tobytes(), options, providers=["CPUExecutionProvider"]
        )

    def weight_counts(self) -> tuple[int, int]:
        """(weights, non-zero weights) in the ONNX graph's initializers, as `count_parameters` counts a torch
        model's: scales, zero points and shape constants are left out."""
        import onnx
        from onnx import numpy_helper

        graph = onnx.load_from_string(self.onnx_model.numpy().tobytes()).graph
        total = nonzero = 0
        for init in graph.initializer:
            if "scale" in init.name or "zero_point" in init.name or init.data_type == onnx.TensorProto.INT64:
                continue
            values = numpy_helper.to_array(init)
            total += values.size
            nonzero += int(np.count_nonzero(values))
        return total, nonzero

    def forward(self, x: Tensor) -> Tensor:
        # At these model sizes a call costs microseconds, so skip conversions that would be no-ops.
        if x.device.type != "cpu" or x.dtype != torch.float32:
            x = x.to("cpu", torch.float32)
        if x.requires_grad:
            x = x.detach()
        return torch.from_numpy(self._session.run(None, {"x": x.numpy()})[0])

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_session", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._session = self._make_session()

    def __deepcopy__(self, memo: dict) -> OrtModule:
        return OrtModule(self.onnx_model.numpy().tobytes(), copy.deepcopy(self.info, memo))


def _ort_static(model: nn.Module, calib: Tensor, config: StaticInt8) -> OrtModule:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"x": calib[i : i + 64].numpy()} for i in range(0, len(calib), 64)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp, _quiet():
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(export_onnx(model, calib[:2]))
        quantize_static(
            src,
            dst,
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=config.per_channel,
            activation_type=QuantType.QUInt8,  # u8 x s8 is the VNNI instruction's native pairing
            weight_type=QuantType.QInt8,
            calibrate_method=_calibration_method(config.calibration_method),
        )
        data = dst.read_bytes()
    # FLOPs cannot be counted inside ONNX Runtime; those of the float model it was made from are kept.
    info = {"engine": "onnxruntime", "format": "QDQ", "flops_batch1": count_flops(model, calib[:1])}
    return OrtModule(data, info)


def _calibration_method(name: str) -> Any:
    from slimlab.treatments.ort_qdq import calibration_method

    return calibration_method(name)  # type: ignore[arg-type]


def _fusable_pairs(model: nn.Module) -> list[list[str]]:
    pairs = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Sequential):
            children = list(module.named_children())
            for (a, first), (b, second) in itertools.pairwise(children):
                if isinstance(first, (nn.Conv1d, nn.Conv2d, nn.Linear)) and isinstance(second, nn.ReLU):
                    prefix = f"{name}." if name else ""
                    pairs.append([prefix + a, prefix + b])
    return pairs


def _torch_ao_static(model: nn.Module, calib: Tensor) -> nn.Module:
    from torch.ao import quantization as tq

    with _quiet():
        model = tq.fuse_modules(model.cpu().eval(), _fusable_pairs(model))
        wrapped = tq.QuantWrapper(model)  # quantize the input, dequantize the logits
        # torch's default engine on x86 CPUs is "x86" (fbgemm + onednn); we read it and leave it as it is
        wrapped.qconfig = tq.get_default_qconfig(torch.backends.quantized.engine)
        tq.prepare(wrapped, inplace=True)
        with torch.no_grad():
            wrapped(calib)
        tq.convert(wrapped, inplace=True)
    return wrapped.eval()


@register_treatment(StaticInt8)
def static_int8(model: nn.Module, config: StaticInt8, context: TreatmentContext) -> nn.Module:
    calib = calibration_batch(context, config.calibration_samples, config.kind)
    if any(p.dtype != torch.float32 for p in model.parameters()) or not any(True for _ in model.parameters()):
        raise SlimlabError(
            "treatment 'static_int8' quantizes a float32 model; put it after pruning and fine-tuning, and "
            "not after another quantization or half_precision"
        )
    model = model.cpu().eval()  # both engines are CPU engines
    if config.backend == "onnxruntime":
        quantized: nn.Module = _ort_static(model, calib, config)
    else:
        quantized = _torch_ao_static(model, calib)
    context.artifacts["static_int8"] = {
        "backend": config.backend,
        "calibration_samples": len(calib),
        "calibration_split": "train",
        # Which samples: drawn without replacement from the training split by this seed.
        "calibration_seed": context.seed,
        "calibration_method": (
            config.calibration_method
            if config.backend == "onnxruntime"
            else "torch.ao default qconfig observers"
        ),
        "per_channel": config.per_channel,
        "device": "cpu",
    }
    return quantized
