"""Post-training quantization.

Dynamic int8 uses `torch.ao.quantization.quantize_dynamic` on purpose. torch.ao.quantization is deprecated
in favour of torchao, but on this project's reference CPU (Sapphire Rapids, torch 2.13) the fbgemm/onednn
dynamic int8 Linear kernel was about 4x faster than fp32 at batch 64 (512x1024 layer), while torchao's
`Int8DynamicActivationInt8WeightConfig` in eager mode was slower than fp32 (its tensor subclass needs
torch.compile to be fast). When a torch without torch.ao.quantization is installed we fall back to torchao.

`backend = "onnxruntime"` exports a PyTorch module to ONNX and runs ONNX Runtime's own dynamic quantizer on
it (MatMulInteger / DynamicQuantizeLinear), which is what a user of ORT would do in one line: on MiniLM it
was the fastest one-step cell (BENCHMARKS.md, issue 13), and a torch.ao module cannot be exported to ONNX,
so without it the search could not deploy dynamic int8 on a session. An ONNX model (a user's file) always
takes this path.
"""

from __future__ import annotations

import warnings
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from slimlab.treatments.base import TreatmentConfig, TreatmentContext, register_treatment

_DYNAMIC_TYPES: dict[str, type[nn.Module]] = {"Linear": nn.Linear, "LSTM": nn.LSTM, "GRU": nn.GRU}


class DynamicInt8(TreatmentConfig):
    """int8 weights, activations quantized on the fly per batch. Covers Linear (and LSTM/GRU) layers only:
    convolutions stay fp32, so a CNN gains only in its classifier."""

    kind = "dynamic_int8"
    modules: list[Literal["Linear", "LSTM", "GRU"]] = Field(default=["Linear"], min_length=1)
    backend: Literal["torch_ao", "onnxruntime"] = Field(
        default="torch_ao",
        description="torch_ao: torch.ao's eager kernels; onnxruntime: ONNX export and ORT's dynamic "
        "quantizer, run in an ONNX Runtime session (an ONNX model always uses ONNX Runtime)",
    )


# On an ONNX model (a user's file): ONNX Runtime's dynamic quantization, by op type.
_ONNX_OP_TYPES: dict[str, list[str]] = {"Linear": ["MatMul", "Gemm"], "LSTM": ["LSTM"]}


@register_treatment(DynamicInt8)
def dynamic_int8(model: nn.Module, config: DynamicInt8, context: TreatmentContext) -> nn.Module:
    from slimlab.models.ort import OrtModule

    if isinstance(model, OrtModule):
        return _ort_dynamic_int8(model, config)
    model = model.cpu().eval()  # quantized kernels are CPU kernels
    if config.backend == "onnxruntime":
        return _ort_dynamic_int8(_exported(model, context), config)
    types = {_DYNAMIC_TYPES[name] for name in config.modules}
    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError:  # a future torch without torch.ao.quantization
        return _torchao_dynamic_int8(model)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.ao.quantization is deprecated.*")
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
        return quantize_dynamic(model, types, dtype=torch.qint8)


def _exported(model: nn.Module, context: TreatmentContext) -> nn.Module:
    """A float32 PyTorch module as an fp32 OrtModule, exported on two training rows (every input, with
    its dtype), for ORT's quantizer."""
    from slimlab.data.batches import take
    from slimlab.models.ort import OrtModule
    from slimlab.treatments.static_quant import (
        _flops_or_none,
        calibration_batch,
        export_onnx,
        require_float32,
    )

    require_float32(model, "'dynamic_int8' with backend 'onnxruntime'")
    example = calibration_batch(context, 2, "dynamic_int8")
    info = {"engine": "onnxruntime", "flops_batch1": _flops_or_none(model, take(example, slice(0, 1)))}
    return OrtModule(export_onnx(model, example), info)


def _torchao_dynamic_int8(model: nn.Module) -> nn.Module:
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    quantize_(model, Int8DynamicActivationInt8WeightConfig())
    return model


def _ort_dynamic_int8(model: nn.Module, config: DynamicInt8) -> nn.Module:
    """An ONNX model through `onnxruntime.quantization.quantize_dynamic`: int8 weights, activations
    quantized per batch (MatMulInteger / DynamicQuantizeLinear), of the op types `modules` names."""
    from slimlab.errors import ConfigError
    from slimlab.models.ort import OrtModule
    from slimlab.treatments.ort_qdq import quantize_dynamic_graph

    if model.info.get("quantized"):
        raise ConfigError("dynamic_int8: this ONNX model is already quantized")
    unsupported = [m for m in config.modules if m not in _ONNX_OP_TYPES]
    if unsupported:
        raise ConfigError(
            f"dynamic_int8 of an ONNX model: `modules` {unsupported} have no ONNX Runtime kernel"
        )
    op_types = sorted({op for m in config.modules for op in _ONNX_OP_TYPES[m]})
    data = quantize_dynamic_graph(model.onnx_model.numpy().tobytes(), op_types)
    info = {**model.info, "format": "dynamic int8", "op_types": op_types, "quantized": True}
    return OrtModule(data, info)
