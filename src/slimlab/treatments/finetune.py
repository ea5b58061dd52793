"""Fine-tuning after a treatment, optionally with knowledge distillation from the dense teacher.

Plain fine-tuning is the caller's trainer. Distillation (Hinton et al., 2015) needs a different loss,
alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE, so it has its own small loop here, with the
trainer's settings (optimizer, batch size, patience, device), the same seeding, and the same early stopping
on the validation split. Weights that are exactly zero (from pruning earlier in the chain) are held at zero,
so fine-tuning does not undo sparsity.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from torch.nn.utils import prune

from slimlab.data import Dataset
from slimlab.errors import SlimlabError, TrainingDivergedError
from slimlab.models.inference import predict_logits
from slimlab.train import TrainConfig, Trainer, seed_everything
from slimlab.train.trainer import accuracy_of, resolve_device
from slimlab.treatments.base import TreatmentConfig, TreatmentContext, register_treatment
from slimlab.treatments.prune import PRUNABLE


class Finetune(TreatmentConfig):
    """Train the treated model for up to `epochs` more epochs at `lr` (default: the trainer's), restoring the
    best validation epoch. With `distill_alpha > 0` the loss mixes in distillation from the dense teacher
    (the runner's trained parent) at `temperature`; `distill_alpha = 1` is pure distillation."""

    kind = "finetune"
    epochs: int = Field(default=5, gt=0)
    lr: float | None = Field(default=None, gt=0, description="default: the trainer's lr")
    distill_alpha: float = Field(default=0.0, ge=0.0, le=1.0, description="weight of the distillation loss")
    temperature: float = Field(
        default=4.0, gt=0.0, description="softens both logits in the distillation loss"
    )
    hold_zeros: bool = Field(default=True, description="weights that are exactly zero stay zero")

    def quick(self) -> Finetune:
        return self.model_copy(update={"epochs": min(self.epochs, 1)})


def _optimizer(model: nn.Module, config: TrainConfig, lr: float) -> torch.optim.Optimizer:
    """The same optimizer the trainer builds from its config."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=config.weight_decay)


def kl_to_teacher(student: nn.Module, teacher_logits: np.ndarray, x: np.ndarray, temperature: float) -> float:
    """Mean KL(teacher_T || student_T) over `x`: how far the student's softened predictions are."""
    if len(x) == 0:
        return math.nan
    s = torch.as_tensor(predict_logits(student, x)) / temperature
    t = torch.as_tensor(teacher_logits) / temperature
    return float(F.kl_div(F.log_softmax(s, 1), F.log_softmax(t, 1), log_target=True, reduction="batchmean"))


def distill(
    model: nn.Module,
    teacher_logits: np.ndarray,
    data: Dataset,
    trainer: Trainer,
    seed: int,
    *,
    epochs: int,
    lr: float | None,
    alpha: float,
    temperature: float,
) -> dict[str, Any]:
    """Train `model` in place on alpha * T^2 * KL + (1 - alpha) * CE and restore its best validation epoch.
    `teacher_logits` are the teacher's logits on `data.train.x`, computed once."""
    c = trainer.config
    generator = seed_everything(seed)
    device = resolve_device(c.device)
    home = next(model.parameters()).device
    model.to(device)
    optimizer = _optimizer(model, c, lr or c.lr)
    x = torch.as_tensor(data.train.x, device=device)
    y = torch.as_tensor(data.train.y, device=device)
    soft = F.log_softmax(torch.as_tensor(teacher_logits, device=device) / temperature, 1)
    best_acc, best_epoch, best_state = -1.0, 0, copy.deepcopy(model.state_dict())
    epoch = 0
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(y), generator=generator).to(device)
        for i in range(0, len(order), c.batch_size):
            batch = order[i : i + c.batch_size]
            logits = model(x[batch])
            kd = F.kl_div(
                F.log_softmax(logits / temperature, 1), soft[batch], log_target=True, reduction="batchmean"
            )
            loss = alpha * temperature**2 * kd + (1 - alpha) * F.cross_entropy(logits, y[batch])
            if not torch.isfinite(loss):
                raise TrainingDivergedError(f"distillation loss became {loss.item()} at epoch {epoch}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        val_acc = accuracy_of(model, data.val.x, data.val.y)
        if val_acc > best_acc:
            best_acc, best_epoch, best_state = val_acc, epoch, copy.deepcopy(model.state_dict())
        elif c.patience is not None and epoch - best_epoch >= c.patience:
            break
    model.load_state_dict(best_state)
    model.to(home).eval()
    return {"epochs_run": epoch, "best_epoch": best_epoch, "best_val_accuracy": best_acc}


def _quantized(model: nn.Module) -> bool:
    """Quantized layers (torch.ao's, or an ONNX Runtime model) have no float weights to train."""
    from slimlab.treatments.static_quant import OrtModule

    return any(
        isinstance(m, OrtModule)
        or type(m).__module__.startswith(("torch.ao.nn.quantized", "torch.nn.quantized"))
        for m in model.modules()
    )


@register_treatment(Finetune)
def finetune(model: nn.Module, config: Finetune, context: TreatmentContext) -> nn.Module:
    trainer, data = context.require_training(config.kind)
    if _quantized(model) or not any(p.requires_grad and p.is_floating_point() for p in model.parameters()):
        raise SlimlabError(
            "treatment 'finetune' needs a model with trainable floating-point weights; put it before "
            "quantization in the chain"
        )
    held = []
    if config.hold_zeros:
        for module in model.modules():
            if isinstance(module, PRUNABLE) and bool((module.weight == 0).any()):
                prune.custom_from_mask(module, "weight", module.weight.detach() != 0)
                held.append(module)
    record: dict[str, Any] = {"distill_alpha": config.distill_alpha, "held_zero_layers": len(held)}
    if config.distill_alpha == 0:
        result = trainer.fit(model, data, context.seed, epochs=config.epochs, lr=config.lr)
        record |= {"epochs_run": result.epochs_run, "best_epoch": result.best_epoch}
        record["best_val_accuracy"] = result.best_val_accuracy
    else:
        if context.teacher is None:
            raise SlimlabError(
                "treatment 'finetune' with distill_alpha > 0 needs the dense teacher; pass a "
                "TreatmentContext with teacher (the runner passes the trained dense parent)"
            )
        teacher_train = predict_logits(context.teacher, data.train.x)
        teacher_val = predict_logits(context.teacher, data.val.x)
        record["temperature"] = config.temperature
        record["val_kl_to_teacher_before"] = kl_to_teacher(model, teacher_val, data.val.x, config.temperature)
        record |= distill(
            model,
            teacher_train,
            data,
            trainer,
            context.seed,
            epochs=config.epochs,
            lr=config.lr,
            alpha=config.distill_alpha,
            temperature=config.temperature,
        )
        record["val_kl_to_teacher_after"] = kl_to_teacher(model, teacher_val, data.val.x, config.temperature)
    for module in held:
        prune.remove(module, "weight")
    context.artifacts["finetune"] = record
    return model
