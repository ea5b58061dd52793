"""Half precision (bf16, fp16): the weights are cast, and a thin wrapper casts inputs to that dtype and the
logits back to float32, so that evaluation, benchmarks and statistics work unchanged.

On CPU, bf16 has native support where the CPU has AVX-512 BF16 or AMX (oneDNN kernels); without them
torch emulates it and it is slower than fp32. fp16 Linear/Conv1d run on CPU in torch 2.x, but unless the
CPU has AVX-512 FP16 (or AMX-FP16) they are emulated and much slower than fp32: see the numbers in the
module comment of `static_quant.py` and the compression benchmark. On CUDA both are native.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from slimlab.treatments.base import TreatmentConfig, TreatmentContext, register_treatment

DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}


class HalfPrecision(TreatmentConfig):
    """Cast every floating-point weight to `dtype` ("bf16" or "fp16"); the model still takes and returns
    float32 tensors."""

    kind = "half_precision"
    dtype: Literal["bf16", "fp16"] = "bf16"


class CastedModel(nn.Module):
    """Runs `inner` in `dtype`: floating inputs are cast on the way in and outputs returned as float32."""

    def __init__(self, inner: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.inner = inner
        self.dtype = dtype

    def forward(self, x: Tensor) -> Tensor:
        if x.is_floating_point():
            x = x.to(self.dtype)
        return self.inner(x).float()


@register_treatment(HalfPrecision)
def half_precision(model: nn.Module, config: HalfPrecision, context: TreatmentContext) -> nn.Module:
    dtype = DTYPES[config.dtype]
    inner = model.inner if isinstance(model, CastedModel) else model  # a second cast replaces the first
    return CastedModel(inner.to(dtype), dtype).eval()
