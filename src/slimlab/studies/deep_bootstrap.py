"""The Deep Bootstrap (Nakkiran, Neyshabur & Sedghi, ICLR 2021) on MNIST-1D.

Real World: train on N fixed samples for many epochs. Ideal World: the same model, initialisation,
optimizer, schedule and number of steps, but every batch is a fresh sample from the same distribution
(`train.online.MNIST1DSampler`, MNIST-1D's own generative process). Both worlds are scored on one fixed
test set drawn from that distribution, at the same steps, for hard error and soft error
(1 − p(correct class)). Test error = Ideal World error + the bootstrap gap.

Cells are (architecture × augmentation × world × seed). For a seed, every cell shares the initialisation
(per architecture), the Real World's N samples and the Ideal World's stream, so the gap is paired by seed.

Augmentation here is a small, local one (a random circular shift of up to `shift` points and Gaussian
noise of `noise` standard deviations), applied to every batch in both worlds.
"""

from __future__ import annotations

import time
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from slimlab.errors import TrainingDivergedError
from slimlab.models import MODELS, build_model
from slimlab.studies.common import (
    CellStore,
    Progress,
    cosine_lr,
    errors,
    eval_steps,
    make_optimizer,
)
from slimlab.train.online import MNIST1DSampler
from slimlab.train.seeding import seed_everything

TEST_SEED = 777_001  # the test set's sampler seed: one test set for every cell and seed


class Augmentation(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    shift: int = Field(default=3, ge=0, le=20, description="largest circular shift, in points")
    noise: float = Field(default=0.1, ge=0, description="Gaussian noise, in data standard deviations")


class DeepBootstrapConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    type: Literal["deep_bootstrap"] = "deep_bootstrap"
    architectures: list[str] = Field(default=["mlp", "cnn1d"], min_length=1, description="model names")
    model_params: dict[str, dict] = Field(
        default_factory=dict, description="per architecture, its hyperparameters (default: its own)"
    )
    augment: list[bool] = Field(default=[False, True], min_length=1, description="without and/or with")
    augmentation: Augmentation = Field(default_factory=Augmentation)
    real_samples: int = Field(default=2000, ge=10, description="N, the Real World's fixed training set")
    test_samples: int = Field(default=5000, ge=100)
    steps: int = Field(default=3000, ge=2)
    batch_size: int = Field(default=100, gt=0)
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = Field(default=0.05, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    eval_points: int = Field(default=30, ge=2, description="log-spaced evaluation steps")
    seeds: int = Field(default=3, ge=1)
    zero_error: float = Field(
        default=0.01, ge=0, lt=1, description="the Real World has converged at this train error"
    )

    @field_validator("architectures")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in MODELS]
        if unknown:
            raise ValueError(f"unknown model {unknown[0]!r}; known: {', '.join(MODELS.names())}")
        return names

    def quick(self) -> DeepBootstrapConfig:
        return self.model_copy(
            update={
                "steps": min(self.steps, 150),
                "real_samples": min(self.real_samples, 300),
                "test_samples": min(self.test_samples, 500),
                "eval_points": min(self.eval_points, 8),
                "seeds": min(self.seeds, 2),
            }
        )


def augment_batch(x: torch.Tensor, aug: Augmentation, generator: torch.Generator) -> torch.Tensor:
    n, length = x.shape[0], x.shape[-1]
    if aug.shift:
        shift = torch.randint(-aug.shift, aug.shift + 1, (n, 1), generator=generator)
        index = (torch.arange(length)[None, :] - shift) % length
        x = torch.gather(x.reshape(n, length), 1, index).view_as(x)
    if aug.noise:
        x = x + aug.noise * torch.randn(x.shape, generator=generator)
    return x


def _train_cell(
    config: DeepBootstrapConfig,
    arch: str,
    augment: bool,
    world: str,
    seed: int,
    data: dict,
) -> dict:
    seed_everything(seed)
    model = build_model(arch, config.model_params.get(arch, {}), (40,), 10)
    optimizer = make_optimizer(model, config.optimizer, config.lr, config.weight_decay)
    schedule = cosine_lr(optimizer, config.steps)
    loss_fn = nn.CrossEntropyLoss()
    order_gen = torch.Generator().manual_seed(seed)
    aug_gen = torch.Generator().manual_seed(seed + 1)
    real_x, real_y = data["real"]
    stream_x, stream_y = data["stream"]
    checkpoints = set(eval_steps(config.steps, config.eval_points))
    curve: dict[str, list] = {
        k: [] for k in ("step", "test_error", "test_soft_error", "train_error", "train_soft_error")
    }
    order = torch.randperm(len(real_y), generator=order_gen)
    cursor = 0
    start = time.perf_counter()
    for step in range(1, config.steps + 1):
        if world == "real":
            if cursor + config.batch_size > len(order):
                order, cursor = torch.randperm(len(real_y), generator=order_gen), 0
            batch = order[cursor : cursor + config.batch_size]
            cursor += config.batch_size
            x, y = real_x[batch], real_y[batch]
        else:  # every sample of the stream is used once
            lo = (step - 1) * config.batch_size
            x, y = stream_x[lo : lo + config.batch_size], stream_y[lo : lo + config.batch_size]
        if augment:
            x = augment_batch(x, config.augmentation, aug_gen)
        loss = loss_fn(model(x), y)
        if not torch.isfinite(loss):
            raise TrainingDivergedError(
                f"{arch} {world} seed {seed}: loss became {loss.item()} at step {step}"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step in checkpoints:
            test = errors(model, *data["test"])
            train = errors(model, real_x, real_y)  # the Real World's train set, in both worlds
            curve["step"].append(step)
            curve["test_error"].append(test["error"])
            curve["test_soft_error"].append(test["soft_error"])
            curve["train_error"].append(train["error"])
            curve["train_soft_error"].append(train["soft_error"])
    return {
        "arch": arch,
        "augment": augment,
        "world": world,
        "seed": seed,
        "seconds": time.perf_counter() - start,
        **curve,
    }


def _seed_data(config: DeepBootstrapConfig, seed: int, test: tuple) -> dict:
    real = MNIST1DSampler(seed=10_000 + seed).sample(config.real_samples)
    stream = MNIST1DSampler(seed=20_000 + seed).sample(config.steps * config.batch_size)
    as_t = lambda xy: (torch.from_numpy(xy[0]), torch.from_numpy(xy[1]))  # noqa: E731
    return {"real": as_t(real), "stream": as_t(stream), "test": test}


def run(config: DeepBootstrapConfig, store: CellStore, progress: Progress) -> list[dict]:
    """Every cell's record (curves), computed or reused from the store."""
    test = MNIST1DSampler(seed=TEST_SEED).sample(config.test_samples)
    test_t = (torch.from_numpy(test[0]), torch.from_numpy(test[1]))
    records = []
    for seed in range(config.seeds):
        data = None
        for arch in config.architectures:
            for augment in config.augment:
                for world in ("real", "ideal"):
                    key = {"arch": arch, "augment": augment, "world": world, "seed": seed}
                    record = store.get(key)
                    if record is None:
                        progress(
                            f"deep bootstrap: {arch} {'aug' if augment else 'no aug'} {world} seed {seed}"
                        )
                        data = data or _seed_data(config, seed, test_t)
                        record = _train_cell(config, arch, augment, world, seed, data)
                        store.put(key, record)
                    records.append(record)
    return records
