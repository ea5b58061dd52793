"""The trainer: seeded, device-aware, early stopping on the validation split (never on test)."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from slimlab.data import Dataset
from slimlab.data.batches import call, first_tensor, take, to_torch
from slimlab.errors import SlimlabError, TrainingDivergedError
from slimlab.identity import Hparams
from slimlab.models.inference import predict_logits
from slimlab.train.augment import AugmentConfig, build_augmenter
from slimlab.train.seeding import seed_everything
from slimlab.train.transfer import TransferConfig


class TrainConfig(Hparams):
    """Training settings; fields at their defaults stay out of trial ids (slimlab.identity)."""

    epochs: int = Field(default=60, gt=0, description="most epochs to train")
    batch_size: int = Field(default=100, gt=0)
    lr: float = Field(default=1e-2, gt=0, description="learning rate")
    weight_decay: float = Field(default=0.0, ge=0)
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    patience: int | None = Field(
        default=10,
        ge=1,
        description="stop after this many epochs without a better validation accuracy; "
        "null trains every epoch (the best epoch is still restored)",
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    select_on: Literal["accuracy", "loss"] = Field(
        default="accuracy",
        description="the validation score that picks the best epoch: accuracy, or the cross-entropy loss "
        "(for click models, whose accuracy barely moves from the majority class)",
    )
    min_steps: int | None = Field(
        default=None,
        gt=0,
        description="train at least this many optimizer steps: with few examples, epochs are raised "
        "to reach it, so that a small training set is not also a short training",
    )
    augment: AugmentConfig | None = Field(
        default=None,
        description='batch augmentation of the training split only: a preset ("signal", "image", '
        '"trivialaugment", ...) or a table of ops and a mix',
    )
    transfer: TransferConfig | None = Field(
        default=None, description="start from a pretrained model (a source task or a checkpoint)"
    )


@dataclass
class TrainResult:
    epochs_run: int
    best_epoch: int
    best_val_accuracy: float
    seconds: float
    history: list[dict] = field(default_factory=list)
    transfer: dict | None = None


EpochCallback = Callable[[int, int, dict], None]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SlimlabError("`train.device` is 'cuda' but torch sees no CUDA device; use 'auto' or 'cpu'")
    return torch.device(name)


class Trainer:
    """Trains a model on `data.train`, checks `data.val` after each epoch, and restores the best epoch.

    Treatments that need training (fine-tuning after pruning, lottery tickets) receive this object from
    their caller, so that every stage of a trial trains with one configuration.
    """

    def __init__(self, config: TrainConfig | None = None, on_epoch: EpochCallback | None = None):
        self.config = config or TrainConfig()
        self.on_epoch = on_epoch

    def _optimizer(
        self, model: nn.Module, lr: float, param_groups: list[dict] | None = None
    ) -> torch.optim.Optimizer:
        if param_groups:  # per-group learning rates (transfer learning's discriminative policy)
            params: list = [
                {"params": [p for p in g["params"] if p.requires_grad], "lr": lr * g.get("lr_scale", 1.0)}
                for g in param_groups
            ]
        else:
            params = [p for p in model.parameters() if p.requires_grad]
        c = self.config
        if c.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=lr, weight_decay=c.weight_decay)
        if c.optimizer == "adam":
            return torch.optim.Adam(params, lr=lr, weight_decay=c.weight_decay)
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=c.weight_decay)

    def fit(
        self,
        model: nn.Module,
        data: Dataset,
        seed: int,
        *,
        epochs: int | None = None,
        lr: float | None = None,
        max_steps: int | None = None,
        param_groups: list[dict] | None = None,
    ) -> TrainResult:
        """Train in place and restore the best validation epoch. `max_steps` stops after that many
        optimizer steps (e.g. to reach a lottery-ticket rewind point); the weights are then those at the
        last step, not the best epoch's. `param_groups` ({"params", "lr_scale"}) give groups their own
        learning rates. With `augment` set, each training batch is augmented on the training device;
        validation batches never are."""
        c = self.config
        epochs = epochs or c.epochs
        if c.min_steps and epochs == c.epochs:
            steps_per_epoch = max(1, math.ceil(len(data.train) / c.batch_size))
            epochs = max(epochs, math.ceil(c.min_steps / steps_per_epoch))
        generator = seed_everything(seed)
        device = resolve_device(c.device)
        home = next(model.parameters()).device
        model.to(device)
        optimizer = self._optimizer(model, lr or c.lr, param_groups)
        augment = build_augmenter(c.augment, data.input_shape, data.num_classes)
        classes = np.issubdtype(np.asarray(data.train.y).dtype, np.integer)
        loss_fn: nn.Module = nn.CrossEntropyLoss() if classes else nn.MSELoss()  # float targets: regression
        x = to_torch(data.train.x, device)  # every input keeps its dtype (int64 ids, masks, ...)
        y = torch.as_tensor(data.train.y, device=device)

        best_acc, best_epoch, best_state = -1.0, 0, copy.deepcopy(model.state_dict())
        best_score = -math.inf
        history: list[dict] = []
        start = time.perf_counter()
        epoch = steps = 0
        for epoch in range(1, epochs + 1):
            model.train()
            order = torch.randperm(len(y), generator=generator).to(device)
            total, count = 0.0, 0
            for i in range(0, len(order), c.batch_size):
                batch = order[i : i + c.batch_size]
                inputs, target = take(x, batch), y[batch]
                if augment is not None:
                    inputs, target = augment(inputs, target)
                loss = loss_fn(first_tensor(call(model, inputs)), target)
                if not torch.isfinite(loss):
                    raise TrainingDivergedError(f"training loss became {loss.item()} at epoch {epoch}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(batch)
                count += len(batch)
                steps += 1
                if max_steps is not None and steps >= max_steps:
                    break
            if max_steps is not None and steps >= max_steps:
                model.to(home)
                model.eval()
                return TrainResult(epoch, epoch, math.nan, time.perf_counter() - start, history)
            val_acc = accuracy_of(model, data.val.x, data.val.y)
            record = {"epoch": epoch, "train_loss": total / count, "val_accuracy": val_acc}
            score = val_acc
            if c.select_on == "loss":
                record["val_loss"] = loss_of(model, data.val.x, data.val.y)
                score = -record["val_loss"]
            history.append(record)
            if self.on_epoch:
                self.on_epoch(epoch, epochs, record)
            if score > best_score:
                best_score, best_acc, best_epoch = score, val_acc, epoch
                best_state = copy.deepcopy(model.state_dict())
            elif c.patience is not None and epoch - best_epoch >= c.patience:
                break
        model.load_state_dict(best_state)
        model.to(home)
        model.eval()
        return TrainResult(epoch, best_epoch, best_acc, time.perf_counter() - start, history)


def loss_of(model: nn.Module, x, y: np.ndarray) -> float:
    """Mean cross-entropy of the model's logits on (x, y); for float targets (regression), the mean
    squared error."""
    if len(y) == 0:
        return math.nan
    outputs = torch.as_tensor(predict_logits(model, x))
    if not np.issubdtype(np.asarray(y).dtype, np.integer):
        target = torch.as_tensor(np.asarray(y), dtype=outputs.dtype).reshape(outputs.shape)
        return float(nn.functional.mse_loss(outputs, target).item())
    return float(nn.functional.cross_entropy(outputs, torch.as_tensor(y)).item())


def accuracy_of(model: nn.Module, x, y: np.ndarray) -> float:
    """Top-1 accuracy for class labels; for float targets (regression), minus the mean squared error, so
    that higher is better either way (early stopping picks the largest)."""
    if len(y) == 0:
        return math.nan
    outputs = predict_logits(model, x)
    if not np.issubdtype(np.asarray(y).dtype, np.integer):
        return -float(np.mean((outputs.reshape(np.shape(y)) - y) ** 2))
    return float((outputs.argmax(1) == y).mean())
