"""What a model costs to store and to run, counted from the model itself."""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def _state_tensors(value: object) -> Iterator[torch.Tensor]:
    """Every tensor in a state-dict value. Quantized layers keep weights in packed (tuple) form."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _state_tensors(item)


def _weights(model: nn.Module) -> Iterator[torch.Tensor]:
    for name, value in model.state_dict().items():
        if name.endswith(("scale", "zero_point", "dtype")) or "_mask" in name:
            continue
        for tensor in _state_tensors(value):
            if tensor.is_floating_point() or tensor.is_quantized:
                yield tensor


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(parameters, non-zero parameters), quantized layers included (their int8 values are counted)."""
    if hasattr(model, "weight_counts"):  # a module backed by another runtime (ONNX Runtime) counts its own
        return model.weight_counts()
    total = nonzero = 0
    for tensor in _weights(model):
        values = tensor.int_repr() if tensor.is_quantized else tensor
        total += values.numel()
        nonzero += int(torch.count_nonzero(values))
    return total, nonzero


def serialized_size(model: nn.Module, compressed: bool = True) -> tuple[int, int | None]:
    """(bytes of torch.save(state_dict), bytes after zlib). Unstructured sparsity shrinks only the second:
    the first is what a dense checkpoint costs, the second what sparse storage could approach.
    `compressed=False` skips zlib (None): on a 90 MB encoder it takes seconds, and the bench needs only
    the first."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    raw = buffer.getvalue()
    return len(raw), len(zlib.compress(raw, level=6)) if compressed else None


def _dynamic_linear_flops(input_shape, packed_params, *args, out_shape=None, **kwargs) -> int:
    # quantized::linear_dynamic is not in flop_counter's table: count it as the matmul it is.
    batch = 1
    for d in input_shape[:-1]:
        batch *= d
    return 2 * batch * input_shape[-1] * out_shape[-1]


def count_flops(model: nn.Module, example: torch.Tensor) -> int:
    """FLOPs of one forward pass on `example` (a multiply-add counts 2), by torch.utils.flop_counter.
    Pruned weights are still counted: dense kernels do the multiply whether the weight is zero or not."""
    info = getattr(model, "info", None)
    if isinstance(info, dict) and "flops_batch1" in info:  # counted on the float model before export
        return int(info["flops_batch1"]) * example.shape[0]
    mapping = {}
    if hasattr(torch.ops, "quantized") and hasattr(torch.ops.quantized, "linear_dynamic"):
        mapping[torch.ops.quantized.linear_dynamic] = _dynamic_linear_flops
    counter = FlopCounterMode(display=False, custom_mapping=mapping)
    with counter, torch.inference_mode():
        model.eval()(example)
    return int(counter.get_total_flops())
