"""Batched inference helpers shared by the trainer, the evaluators and the benchmarks."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from slimlab.data.batches import Inputs, call, first_tensor, n_rows, take, to_torch


def model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")  # quantized and parameter-free models run on the CPU


@torch.inference_mode()
def predict_logits(model: nn.Module, x: Inputs, batch_size: int = 1024) -> np.ndarray:
    """Outputs (logits, or any output tensor) for every row of `x` (an array, a tuple or a dict of arrays
    of any dtype), in eval mode, in batches, as float32; the model's train/eval mode is restored."""
    was_training = model.training
    model.eval()
    device = model_device(model)
    try:
        out = [
            first_tensor(call(model, to_torch(take(x, slice(i, i + batch_size)), device)))
            .float()
            .cpu()
            .numpy()
            for i in range(0, n_rows(x), batch_size)
        ]
    finally:
        model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)
