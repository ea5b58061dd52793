"""`moe`: upcycle a trained dense transformer into a Switch mixture of experts, then fine-tune it.

Every dense FFN of slimlab's transformer (`models.transformer.DenseFFN`) becomes a `SwitchFFN` whose
experts are all copies of the dense weights, with a fresh router at the reduced initialization scale
(Komatsuzaki et al., "Sparse Upcycling", 2023, in the Switch formulation). While the router is near
uniform (p_i ≈ 1/N) the layer's output p_i · N · E_i(x) is the dense FFN's (`gate_scale = N`), so the
upcycled model starts close to its dense parent; the fidelity before fine-tuning (agreement of the
predictions with the parent on the validation split, and tokens dropped for capacity) is recorded in the
trial's artifacts. Fine-tuning goes through the caller's trainer; the Switch layers add their
load-balancing and z-losses to its loss by themselves.
"""

from __future__ import annotations

import copy

from pydantic import Field
from torch import nn

from slimlab.errors import SlimlabError
from slimlab.models.inference import predict_logits
from slimlab.models.switch import SwitchFFN, expert_load, switch_layers
from slimlab.models.transformer import DenseFFN
from slimlab.treatments.base import TreatmentConfig, TreatmentContext, register_treatment


class MoEUpcycle(TreatmentConfig):
    """Upcycle a transformer's dense FFNs into Switch layers (experts copied), then fine-tune."""

    kind = "moe"
    num_experts: int = Field(default=8, ge=2)
    capacity_factor: float = Field(default=1.25, gt=0)
    eval_capacity_factor: float | None = Field(default=2.0, gt=0, description="capacity at inference")
    alpha: float = Field(default=0.01, ge=0, description="load-balancing loss weight")
    z_loss: float = Field(default=1e-3, ge=0)
    jitter: float = Field(default=0.0, ge=0, lt=1)
    expert_dropout: float = Field(default=0.0, ge=0, lt=1)
    router_init_scale: float = Field(default=0.1, gt=0)
    finetune_epochs: int = Field(default=5, ge=0)
    finetune_lr: float | None = Field(default=None, gt=0, description="default: the trainer's lr / 10")

    def quick(self) -> MoEUpcycle:
        return self.model_copy(update={"finetune_epochs": min(self.finetune_epochs, 1)})


def upcycle_ffns(model: nn.Module, num_experts: int, **switch_kwargs) -> nn.Module:
    """A copy of `model` with every `DenseFFN` replaced by an upcycled `SwitchFFN`."""
    model = copy.deepcopy(model)
    targets = [(name, m) for name, m in model.named_modules() if isinstance(m, DenseFFN)]
    if not targets:
        raise SlimlabError(
            "treatment 'moe' upcycles the dense FFNs of slimlab's transformer (model.name = 'transformer'); "
            "this model has none"
        )
    for name, dense in targets:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, SwitchFFN.from_dense(dense.fc1, dense.fc2, num_experts, **switch_kwargs))
    return model


@register_treatment(MoEUpcycle)
def _upcycle(model: nn.Module, config: MoEUpcycle, context: TreatmentContext) -> nn.Module:
    dense = model
    moe = upcycle_ffns(
        dense,
        config.num_experts,
        capacity_factor=config.capacity_factor,
        eval_capacity_factor=config.eval_capacity_factor,
        alpha=config.alpha,
        z_loss=config.z_loss,
        jitter=config.jitter,
        expert_dropout=config.expert_dropout,
        router_init_scale=config.router_init_scale,
    )
    record: dict = {"num_experts": config.num_experts, "layers": len(switch_layers(moe))}
    if context.data is not None:
        x = context.data.val.x
        for layer in switch_layers(moe):
            layer.track_load = True
        agree = (predict_logits(moe, x).argmax(1) == predict_logits(dense, x).argmax(1)).mean()
        record["agreement_before_finetune"] = float(agree)
        record["dropped_before_finetune"] = expert_load(moe)["dropped_fraction"]
        for layer in switch_layers(moe):
            layer.track_load = False
            layer.reset_load()
    if config.finetune_epochs:
        trainer, data = context.require_training(config.kind)
        lr = config.finetune_lr or trainer.config.lr / 10
        result = trainer.fit(moe, data, context.seed, epochs=config.finetune_epochs, lr=lr)
        record["finetune_best_val_accuracy"] = result.best_val_accuracy
    context.artifacts["moe"] = record
    return moe.eval()
