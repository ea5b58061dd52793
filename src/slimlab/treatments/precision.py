"""Half precision (bf16, fp16): the weights are cast, and a thin wrapper casts inputs to that dtype and the
logits back to float32, so that evaluation, benchmarks and statistics work unchanged.

On CPU, bf16 runs through oneDNN, natively where the CPU has AVX-512 BF16 or AMX; fp16 Linear/Conv1d also
run on CPU in torch 2.x, but without AVX-512 FP16 / AMX-FP16 they take a slow path. On the project CPU
(AVX-512 BF16, no AMX, no AVX-512 FP16; torch 2.13) a quick same-run comparison (benchmarks/compression.py)
found bf16 faster than fp32 only for wide layers (512 units) at batch 64, about even or slower for the
MNIST-1D CNN and MLP, slower at batch 1; and fp16 several times slower than fp32 at batch 64 (up to ~30x
for the 512-wide MLP). So on such a CPU bf16 is worth trying for wide models, and fp16 is a GPU format.
On CUDA both are native.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from slimlab.data.batches import first_tensor
from slimlab.treatments.base import TreatmentConfig, TreatmentContext, register_treatment

DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}


class HalfPrecision(TreatmentConfig):
    """Cast every floating-point weight to `dtype` ("bf16" or "fp16"); the model still takes and returns
    float32 tensors."""

    kind = "half_precision"
    dtype: Literal["bf16", "fp16"] = "bf16"


class CastedModel(nn.Module):
    """Runs `inner` in `dtype`. Floating-point inputs (positional or keyword) are cast on the way in;
    integer and boolean inputs (token ids, attention masks, indices) pass through unchanged, since casting
    them would change their values (bf16 holds integers exactly only up to 256). The main output is
    returned as float32."""

    def __init__(self, inner: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.inner = inner
        self.dtype = dtype

    def _cast(self, value: Any) -> Any:
        if isinstance(value, Tensor) and value.is_floating_point():
            return value.to(self.dtype)
        return value

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        args = tuple(self._cast(a) for a in args)
        kwargs = {k: self._cast(v) for k, v in kwargs.items()}
        return first_tensor(self.inner(*args, **kwargs)).float()


@register_treatment(HalfPrecision)
def half_precision(model: nn.Module, config: HalfPrecision, context: TreatmentContext) -> nn.Module:
    dtype = DTYPES[config.dtype]
    inner = model.inner if isinstance(model, CastedModel) else model  # a second cast replaces the first
    return CastedModel(inner.to(dtype), dtype).eval()
