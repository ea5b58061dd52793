"""Magnitude pruning (torch.nn.utils.prune), optionally fine-tuned with the mask held, then made permanent."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import nn
from torch.nn.utils import prune

from slimlab.treatments.base import TreatmentConfig, TreatmentContext, register_treatment

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d)


class MagnitudePrune(TreatmentConfig):
    """Zero the `sparsity` share of weights with the smallest magnitude (unstructured, L1).

    `scope="global"` ranks all prunable weights together; `"layer"` prunes each layer to `sparsity`.
    Biases are left dense. With `finetune_epochs > 0` the caller's trainer fine-tunes with the mask
    held (pruned weights stay zero), restoring the best epoch on the validation split.
    """

    kind = "magnitude_prune"
    sparsity: float = Field(ge=0.0, lt=1.0, description="share of prunable weights set to zero")
    scope: Literal["global", "layer"] = "global"
    finetune_epochs: int = Field(default=0, ge=0)
    finetune_lr: float | None = Field(default=None, gt=0, description="default: the trainer's lr")

    def quick(self) -> MagnitudePrune:
        return self.model_copy(update={"finetune_epochs": min(self.finetune_epochs, 1)})


def prunable_weights(model: nn.Module) -> list[tuple[nn.Module, str]]:
    return [(m, "weight") for m in model.modules() if isinstance(m, PRUNABLE)]


@register_treatment(MagnitudePrune)
def magnitude_prune(model: nn.Module, config: MagnitudePrune, context: TreatmentContext) -> nn.Module:
    targets = prunable_weights(model)
    if not targets:
        raise ValueError(f"magnitude_prune found no {', '.join(t.__name__ for t in PRUNABLE)} layer to prune")
    if config.scope == "global":
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=config.sparsity)
    else:
        for module, name in targets:
            prune.l1_unstructured(module, name, amount=config.sparsity)
    if config.finetune_epochs:
        trainer, data = context.require_training(config.kind)
        trainer.fit(model, data, context.seed, epochs=config.finetune_epochs, lr=config.finetune_lr)
    for module, name in targets:
        prune.remove(module, name)
    return model
