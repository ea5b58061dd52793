"""Structured pruning: whole hidden units (Linear rows) and channels (Conv1d filters) are removed and the
layers rebuilt smaller, so that ordinary dense kernels do less work. Unstructured zeros, by contrast, cost
a dense kernel exactly as much as the weights they replace.

The rebuild needs to know how layers feed each other, so it supports models whose layers form a chain:
slimlab's MLP and CNN1d, and any nn.Sequential of Linear/Conv1d layers with element-wise modules (ReLU,
Dropout, ...) and Flatten between them. Anything else gets an error that says so, rather than a silently
wrong model.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from slimlab.errors import SlimlabError
from slimlab.models.cnn1d import CNN1d
from slimlab.models.mlp import MLP
from slimlab.treatments.base import TreatmentConfig, TreatmentContext, register_treatment

# Modules that act on each unit separately (or only reshape), so a removed unit has nothing else to fix.
PASS_THROUGH = (
    nn.ReLU,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.LeakyReLU,
    nn.Dropout,
    nn.Identity,
    nn.Flatten,
)
LAYERS = (nn.Linear, nn.Conv1d)


class StructuredPrune(TreatmentConfig):
    """Remove the `sparsity` share of hidden units of every Linear layer and of output channels of every
    Conv1d layer, those with the smallest weight norm (`criterion` l1 or l2 of the unit's incoming weights),
    and rebuild the layers smaller. The output layer keeps all its units. With `finetune_epochs > 0` the
    caller's trainer fine-tunes the smaller model, restoring the best validation epoch."""

    kind = "structured_prune"
    sparsity: float = Field(
        ge=0.0, lt=1.0, description="share of units (neurons, channels) removed per layer"
    )
    criterion: Literal["l1", "l2"] = "l2"
    finetune_epochs: int = Field(default=0, ge=0)
    finetune_lr: float | None = Field(default=None, gt=0, description="default: the trainer's lr")
    # Any other architecture goes through Torch-Pruning's DependencyGraph (structured_graph.py).
    scope: Literal["channels", "heads"] = Field(
        default="channels", description="channels: Conv/Linear output channels; heads: attention heads"
    )
    exclude: list[str] = Field(default_factory=list, description="module names (fnmatch) left unpruned")

    def quick(self) -> StructuredPrune:
        return self.model_copy(update={"finetune_epochs": min(self.finetune_epochs, 1)})


@dataclass
class Slot:
    """Where a layer lives, so that a rebuilt one can take its place."""

    parent: nn.Module
    attr: str
    name: str

    @property
    def layer(self) -> nn.Module:
        return getattr(self.parent, self.attr)


def _sequential_slots(seq: nn.Sequential, prefix: str) -> list[Slot]:
    slots = []
    for attr, child in seq.named_children():
        if isinstance(child, LAYERS):
            slots.append(Slot(seq, attr, f"{prefix}{attr}"))
        elif not isinstance(child, PASS_THROUGH):
            raise SlimlabError(
                f"structured_prune cannot rebuild around {type(child).__name__} at {prefix}{attr}: only "
                f"{', '.join(t.__name__ for t in LAYERS + PASS_THROUGH)} may appear in the chain"
            )
    return slots


def layer_chain(model: nn.Module) -> list[Slot]:
    """The model's Linear/Conv1d layers in the order data flows through them."""
    if isinstance(model, MLP):
        slots = _sequential_slots(model.net, "net.")
    elif isinstance(model, CNN1d):
        slots = [*_sequential_slots(model.features, "features."), Slot(model, "classifier", "classifier")]
    elif isinstance(model, nn.Sequential):
        slots = _sequential_slots(model, "")
    else:
        raise SlimlabError(
            f"structured_prune can rebuild slimlab's MLP and CNN1d and nn.Sequential chains of Linear/Conv1d "
            f"layers; it does not know how the layers of {type(model).__name__} feed each other"
        )
    if not slots:
        raise SlimlabError("structured_prune found no Linear or Conv1d layer")
    for a, b in itertools.pairwise(slots):
        _check_link(a, b)
    return slots


def _check_link(a: Slot, b: Slot) -> None:
    prev, nxt = a.layer, b.layer
    if any(isinstance(m, nn.Conv1d) and m.groups != 1 for m in (prev, nxt)):
        raise SlimlabError(f"structured_prune does not rebuild grouped convolutions ({a.name} -> {b.name})")
    width = prev.out_features if isinstance(prev, nn.Linear) else prev.out_channels
    if isinstance(nxt, nn.Conv1d):
        ok = isinstance(prev, nn.Conv1d) and nxt.in_channels == width
    else:  # a Linear layer takes a previous Linear's units, or a Conv1d's flattened (channel, position) grid
        ok = nxt.in_features == width if isinstance(prev, nn.Linear) else nxt.in_features % width == 0
    if not ok:
        raise SlimlabError(f"structured_prune cannot connect {a.name} ({prev}) to {b.name} ({nxt})")


def unit_importance(layer: nn.Module, criterion: str) -> Tensor:
    """One score per output unit: the norm of its incoming weights."""
    rows = layer.weight.detach().flatten(1)
    return rows.abs().sum(1) if criterion == "l1" else rows.pow(2).sum(1).sqrt()


def units_to_keep(model: nn.Module, sparsity: float, criterion: str) -> dict[str, Tensor]:
    """For every layer but the output layer, the sorted indices of the units kept (at least one)."""
    keep = {}
    for slot in layer_chain(model)[:-1]:
        scores = unit_importance(slot.layer, criterion)
        n = max(1, len(scores) - round(sparsity * len(scores)))
        keep[slot.name] = torch.topk(scores, n).indices.sort().values
    return keep


def _rebuild(layer: nn.Module, rows: Tensor | None, cols: Tensor | None) -> nn.Module:
    """A copy of `layer` with only the output units `rows` and input columns `cols` (None: all)."""
    weight = layer.weight.detach()
    if rows is not None:
        weight = weight[rows]
    if cols is not None:
        weight = weight[:, cols]
    bias = layer.bias.detach()[rows] if layer.bias is not None and rows is not None else layer.bias
    kw = {"bias": layer.bias is not None, "device": weight.device, "dtype": weight.dtype}
    if isinstance(layer, nn.Linear):
        new = nn.Linear(weight.shape[1], weight.shape[0], **kw)
    else:
        new = nn.Conv1d(
            weight.shape[1],
            weight.shape[0],
            layer.kernel_size,
            stride=layer.stride,
            padding=layer.padding,
            dilation=layer.dilation,
            padding_mode=layer.padding_mode,
            **kw,
        )
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    return new.train(layer.training)


def _input_columns(prev: nn.Module, nxt: nn.Module, kept: Tensor) -> Tensor:
    if isinstance(prev, nn.Conv1d) and isinstance(nxt, nn.Linear):
        # flatten(1) of (channels, length) puts channel c at columns c*length ... c*length + length - 1
        length = nxt.in_features // prev.out_channels
        return (kept[:, None] * length + torch.arange(length, device=kept.device)).flatten()
    return kept


@register_treatment(StructuredPrune)
def structured_prune(model: nn.Module, config: StructuredPrune, context: TreatmentContext) -> nn.Module:
    if config.scope == "heads" or config.exclude or not _is_chain(model):
        return _graph_prune(model, config, context)
    slots = layer_chain(model)
    keep = units_to_keep(model, config.sparsity, config.criterion)
    before = sum(p.numel() for p in model.parameters())
    originals = [s.layer for s in slots]
    report = []
    for i, slot in enumerate(slots):
        rows = keep.get(slot.name)
        cols = None
        if i > 0 and slots[i - 1].name in keep:
            cols = _input_columns(originals[i - 1], originals[i], keep[slots[i - 1].name])
        setattr(slot.parent, slot.attr, _rebuild(originals[i], rows, cols))
        units = originals[i].weight.shape[0]
        report.append({"layer": slot.name, "units": units, "kept": len(rows) if rows is not None else units})
    if config.finetune_epochs:
        trainer, data = context.require_training(config.kind)
        trainer.fit(model, data, context.seed, epochs=config.finetune_epochs, lr=config.finetune_lr)
    context.artifacts["structured_prune"] = {
        "layers": report,
        "params_before": before,
        "params_after": sum(p.numel() for p in model.parameters()),
    }
    return model


def _is_chain(model: nn.Module) -> bool:
    """A model the chain rebuild handles (slimlab's MLP and CNN1d, nn.Sequential of Linear/Conv1d)."""
    try:
        layer_chain(model)
    except SlimlabError:
        return False
    return True


def _graph_prune(model: nn.Module, config: StructuredPrune, context: TreatmentContext) -> nn.Module:
    from slimlab.treatments.structured_graph import prune_graph

    if context.data is None:
        raise SlimlabError(
            "structured_prune traces the model on example inputs; pass a TreatmentContext with data"
        )
    example = context.data.example(2)
    context.artifacts["structured_prune"] = prune_graph(
        model, example, config.sparsity, config.criterion, config.scope, config.exclude
    )
    if config.finetune_epochs:
        trainer, data = context.require_training(config.kind)
        trainer.fit(model, data, context.seed, epochs=config.finetune_epochs, lr=config.finetune_lr)
    return model
