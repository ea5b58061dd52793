"""N:M semi-structured sparsity (2:4 by default): in every group of M consecutive weights along a layer's
input dimension, only the N largest in magnitude are kept.

NVIDIA's sparse tensor cores (Ampere and later) run 2:4-sparse fp16/bf16 matrix multiplies about twice as
fast as dense ones; torch reaches them through `torch.sparse.to_sparse_semi_structured`. On a CUDA machine
with `sparse_kernel=True` this treatment moves the model to the GPU in fp16/bf16 and converts every Linear
whose shape the kernel accepts. There is no such kernel on CPU: there the weights keep their zeros in
dense storage, the model costs exactly what the dense one does, and the artifacts say so.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn
from torch.nn.utils import prune

from slimlab.treatments.base import TreatmentConfig, TreatmentContext, register_treatment
from slimlab.treatments.precision import DTYPES, CastedModel
from slimlab.treatments.prune import PRUNABLE


class NMSparsity(TreatmentConfig):
    """Keep the `n` largest-magnitude weights in each group of `m` along the input dimension of every
    Linear/Conv1d/Conv2d layer (for a convolution: along its flattened (in_channels, kernel) axis). Layers
    whose input width is not a multiple of `m` are left dense and listed in the artifacts. With
    `finetune_epochs > 0` the caller's trainer fine-tunes with the masks held."""

    kind = "nm_sparsity"
    n: int = Field(default=2, ge=1)
    m: int = Field(default=4, ge=2)
    finetune_epochs: int = Field(default=0, ge=0)
    finetune_lr: float | None = Field(default=None, gt=0, description="default: the trainer's lr")
    sparse_kernel: bool = Field(default=True, description="on CUDA, use the semi-structured sparse kernel")
    cuda_dtype: Literal["fp16", "bf16"] = Field(default="fp16", description="the kernel's dtype on CUDA")

    @model_validator(mode="after")
    def _n_below_m(self) -> NMSparsity:
        if self.n >= self.m:
            raise ValueError(f"n must be smaller than m; got n={self.n}, m={self.m}")
        return self

    def quick(self) -> NMSparsity:
        return self.model_copy(update={"finetune_epochs": min(self.finetune_epochs, 1)})


def nm_mask(weight: Tensor, n: int, m: int) -> Tensor | None:
    """The N:M mask of `weight` along its flattened input dimension (None if that is not a multiple of m)."""
    rows = weight.detach().flatten(1)
    if rows.shape[1] % m:
        return None
    groups = rows.abs().view(rows.shape[0], -1, m)
    mask = torch.zeros_like(groups, dtype=torch.bool)
    mask.scatter_(2, torch.topk(groups, n, dim=2).indices, True)
    return mask.view_as(weight)


def _to_semi_structured(
    model: nn.Module, config: NMSparsity, masked: set[str]
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Move to CUDA in the kernel's dtype and swap the masked Linear weights for semi-structured tensors.
    Only masked layers: the compressor assumes the 2:4 pattern and does not check it."""
    from torch.sparse import to_sparse_semi_structured

    dtype = DTYPES[config.cuda_dtype]
    model = model.to(device="cuda", dtype=dtype).eval()
    done = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear) or name not in masked:
            continue
        try:
            module.weight = nn.Parameter(
                to_sparse_semi_structured(module.weight.detach()), requires_grad=False
            )
            done.append({"layer": name, "sparse_kernel": True})
        except (RuntimeError, ValueError) as e:  # shape or dtype the kernel does not accept
            done.append({"layer": name, "sparse_kernel": False, "reason": str(e).splitlines()[0]})
    return CastedModel(model, dtype), done


@register_treatment(NMSparsity)
def nm_sparsity(model: nn.Module, config: NMSparsity, context: TreatmentContext) -> nn.Module:
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, PRUNABLE)]
    if not layers:
        raise ValueError(f"nm_sparsity found no {', '.join(t.__name__ for t in PRUNABLE)} layer")
    masked, skipped = [], []
    for name, module in layers:
        mask = nm_mask(module.weight, config.n, config.m)
        if mask is None:
            skipped.append(name)
            continue
        prune.custom_from_mask(module, "weight", mask)
        masked.append((name, module))
    if config.finetune_epochs:
        trainer, data = context.require_training(config.kind)
        trainer.fit(model, data, context.seed, epochs=config.finetune_epochs, lr=config.finetune_lr)
    for _, module in masked:
        prune.remove(module, "weight")

    record: dict[str, Any] = {
        "pattern": f"{config.n}:{config.m}",
        "masked_layers": [name for name, _ in masked],
        "dense_layers": skipped,  # input width not a multiple of m
    }
    use_kernel = config.sparse_kernel and torch.cuda.is_available() and (config.n, config.m) == (2, 4)
    if use_kernel:
        model, layers_done = _to_semi_structured(model, config, {name for name, _ in masked})
        record["sparse_kernel"] = any(d["sparse_kernel"] for d in layers_done)
        record["kernel_layers"] = layers_done
        record["device"] = "cuda"
    else:
        record["sparse_kernel"] = False
        record["device"] = "cpu" if not torch.cuda.is_available() else "cuda"
        record["note"] = (
            "masks only: no semi-structured sparse kernel is used (none exists on CPU; on CUDA it needs 2:4 "
            "and sparse_kernel=true), so the zeros are stored densely and latency is that of the dense model"
        )
    context.artifacts["nm_sparsity"] = record
    return model
