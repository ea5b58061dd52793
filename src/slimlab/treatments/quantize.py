"""Post-training quantization.

Dynamic int8 uses `torch.ao.quantization.quantize_dynamic` on purpose. torch.ao.quantization is deprecated
in favour of torchao, but on this project's reference CPU (Sapphire Rapids, torch 2.13) the fbgemm/onednn
dynamic int8 Linear kernel was about 4x faster than fp32 at batch 64 (512x1024 layer), while torchao's
`Int8DynamicActivationInt8WeightConfig` in eager mode was slower than fp32 (its tensor subclass needs
torch.compile to be fast). When a torch without torch.ao.quantization is installed we fall back to torchao.
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


@register_treatment(DynamicInt8)
def dynamic_int8(model: nn.Module, config: DynamicInt8, context: TreatmentContext) -> nn.Module:
    model = model.cpu().eval()  # quantized kernels are CPU kernels
    types = {_DYNAMIC_TYPES[name] for name in config.modules}
    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError:  # a future torch without torch.ao.quantization
        return _torchao_dynamic_int8(model)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.ao.quantization is deprecated.*")
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
        return quantize_dynamic(model, types, dtype=torch.qint8)


def _torchao_dynamic_int8(model: nn.Module) -> nn.Module:
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    quantize_(model, Int8DynamicActivationInt8WeightConfig())
    return model
