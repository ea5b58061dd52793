"""Switch Transformers (Fedus, Zoph & Shazeer, JMLR 2022) against dense at equal FLOPs per token.

A tiny transformer encoder (`models/transformer.py`) classifies MNIST-1D read as a sequence of patches.
The dense model and Switch models with 4, 8 and 16 experts (each expert the dense FFN's shape, so the
FLOPs per token are equal up to the router) train with one optimizer, schedule and number of steps. By
default the data is a stream of fresh samples (`train.online`), the regime of the paper's pre-training,
where more parameters at fixed compute can only help by learning faster, not by memorising; `data =
"fixed"` trains on a fixed set instead. Quality is the test cross-entropy (the paper's negative log
perplexity) and accuracy, on one fixed test set, against steps and against training wall-clock.

The speedup of a Switch model is, per seed, (steps the dense model needs to first reach its own final
test loss) / (steps the Switch model needs to reach that loss), by linear interpolation between
evaluations; the same for wall-clock. Summarised as a geometric mean over seeds with a t interval on the
log ratios. A model that never reaches the dense final loss has no speedup (recorded, not guessed).

An optional `upcycle` variant trains dense for half the steps, upcycles every FFN into a Switch FFN with
`treatments.moe` (experts copied from the dense weights) and trains the rest: "sparse upcycling".
"""

from __future__ import annotations

import time
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from slimlab.errors import TrainingDivergedError
from slimlab.evaluate import count_flops
from slimlab.models import build_model
from slimlab.models.switch import expert_load, switch_layers
from slimlab.models.transformer import TransformerParams
from slimlab.studies.common import (
    CellStore,
    Progress,
    cosine_lr,
    errors,
    make_optimizer,
)
from slimlab.train.online import MNIST1DSampler
from slimlab.train.seeding import seed_everything

TEST_SEED = 777_002


class SwitchMoEConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    type: Literal["switch_moe"] = "switch_moe"
    model: dict = Field(
        default_factory=dict, description="transformer hyperparameters shared by every variant"
    )
    experts: list[int] = Field(default=[4, 8, 16], min_length=1)
    capacity_factor: float = Field(default=1.25, gt=0, description="for the expert-count comparison")
    capacity_factors: list[float] = Field(
        default=[1.0, 1.25, 2.0], description="tried with `capacity_experts` experts"
    )
    capacity_experts: int = Field(default=8, ge=1)
    alpha: float = Field(default=0.01, ge=0, description="load-balancing loss weight")
    z_loss: float = Field(default=1e-3, ge=0)
    upcycle: bool = Field(default=False, description="also: dense for half the steps, then upcycled")
    data: Literal["stream", "fixed"] = "stream"
    fixed_samples: int = Field(default=4000, ge=100)
    test_samples: int = Field(default=5000, ge=100)
    steps: int = Field(default=1500, ge=2)
    batch_size: int = Field(default=64, gt=0)
    optimizer: Literal["sgd", "adam", "adamw"] = "adamw"
    lr: float = Field(default=3e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    warmup: int = Field(default=100, ge=0)
    eval_every: int = Field(default=100, gt=0)
    seeds: int = Field(default=3, ge=1)

    @field_validator("model")
    @classmethod
    def _params(cls, model: dict) -> dict:
        TransformerParams(**model)  # every key checked now, not after training starts
        banned = {"ffn", "num_experts", "capacity_factor", "alpha", "z_loss"} & set(model)
        if banned:
            raise ValueError(f"{sorted(banned)} are set by the study per variant; remove them from `model`")
        return model

    def quick(self) -> SwitchMoEConfig:
        return self.model_copy(
            update={
                "steps": min(self.steps, 60),
                "eval_every": min(self.eval_every, 20),
                "warmup": min(self.warmup, 5),
                "test_samples": min(self.test_samples, 500),
                "seeds": min(self.seeds, 2),
                "experts": self.experts[:2],
                "capacity_factors": self.capacity_factors[:2],
            }
        )

    def variants(self) -> list[dict]:
        """[{name, params}], dense first. Switch variants differ from dense only in their FFNs."""
        out = [{"name": "dense", "params": {**self.model, "ffn": "dense"}}]

        def switch(experts: int, factor: float) -> dict:
            return {
                "name": f"switch-{experts}" + ("" if factor == self.capacity_factor else f"-cf{factor:g}"),
                "params": {
                    **self.model,
                    "ffn": "switch",
                    "num_experts": experts,
                    "capacity_factor": factor,
                    "alpha": self.alpha,
                    "z_loss": self.z_loss,
                },
            }

        for e in self.experts:
            out.append(switch(e, self.capacity_factor))
        for f in self.capacity_factors:
            v = switch(self.capacity_experts, f)
            if v["name"] not in {o["name"] for o in out}:
                out.append(v)
        if self.upcycle:
            out.append({"name": f"upcycle-{self.capacity_experts}", "params": {**self.model, "ffn": "dense"}})
        return out


def _flops_per_token(model: nn.Module, tokens_per_sample: int) -> float:
    """Counted by torch's FLOP counter on a batch large enough that capacity padding is negligible."""
    x = torch.zeros(64, 40)
    return count_flops(model, x) / (64 * tokens_per_sample)


def _train_cell(config: SwitchMoEConfig, variant: dict, seed: int, data: dict) -> dict:
    seed_everything(seed)
    params = variant["params"]
    model = build_model("transformer", params, (40,), 10)
    tokens_per_sample = 40 // TransformerParams(**params).patch
    upcycle_at = config.steps // 2 if variant["name"].startswith("upcycle") else None
    optimizer = make_optimizer(model, config.optimizer, config.lr, config.weight_decay)
    schedule = cosine_lr(optimizer, config.steps, config.warmup)
    loss_fn = nn.CrossEntropyLoss()
    train_x, train_y = data["train"]
    order_gen = torch.Generator().manual_seed(seed)
    order, cursor = torch.randperm(len(train_y), generator=order_gen), 0
    curve: dict[str, list] = {
        k: [] for k in ("step", "seconds", "test_loss", "test_accuracy", "dropped_fraction", "aux_loss")
    }
    loads: list = []
    train_seconds = 0.0
    for layer in switch_layers(model):
        layer.track_load = True
    for step in range(1, config.steps + 1):
        if upcycle_at is not None and step == upcycle_at + 1:
            model, optimizer = _upcycle(model, config)
            schedule = cosine_lr(optimizer, config.steps, config.warmup, start=step - 1)
        if config.data == "stream":
            lo = (step - 1) * config.batch_size
            x, y = train_x[lo : lo + config.batch_size], train_y[lo : lo + config.batch_size]
        else:
            if cursor + config.batch_size > len(order):
                order, cursor = torch.randperm(len(train_y), generator=order_gen), 0
            batch = order[cursor : cursor + config.batch_size]
            cursor += config.batch_size
            x, y = train_x[batch], train_y[batch]
        began = time.perf_counter()
        loss = loss_fn(model(x), y)
        if not torch.isfinite(loss):
            raise TrainingDivergedError(f"{variant['name']} seed {seed}: loss {loss.item()} at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # the Switch layers' auxiliary losses join here (see models/switch.py)
        optimizer.step()
        schedule.step()
        train_seconds += time.perf_counter() - began
        if step % config.eval_every == 0 or step == config.steps:
            layers = switch_layers(model)
            load = expert_load(model)  # over the training steps since the last evaluation
            for m in layers:
                m.track_load = False
            test = errors(model, *data["test"])
            curve["step"].append(step)
            curve["seconds"].append(train_seconds)
            curve["test_loss"].append(test["loss"])
            curve["test_accuracy"].append(1 - test["error"])
            curve["dropped_fraction"].append(load["dropped_fraction"] if layers else 0.0)
            curve["aux_loss"].append(
                float(sum(float(m.aux_loss) for m in layers if m.aux_loss is not None)) if layers else 0.0
            )
            loads.append(load["fraction_per_expert"] if layers else [])
            for m in layers:
                m.track_load = True
                m.reset_load()
    params_total = sum(p.numel() for p in model.parameters())
    return {
        "variant": variant["name"],
        "seed": seed,
        "params": params_total,
        "flops_per_token": _flops_per_token(model, tokens_per_sample),
        "load_final": loads[-1] if loads else [],
        **curve,
    }


def _upcycle(model: nn.Module, config: SwitchMoEConfig) -> tuple[nn.Module, torch.optim.Optimizer]:
    from slimlab.treatments.moe import upcycle_ffns

    model = upcycle_ffns(
        model,
        num_experts=config.capacity_experts,
        capacity_factor=config.capacity_factor,
        alpha=config.alpha,
        z_loss=config.z_loss,
    )
    for layer in switch_layers(model):
        layer.track_load = True
    fresh = make_optimizer(model, config.optimizer, config.lr, config.weight_decay)
    return model, fresh


def _seed_data(config: SwitchMoEConfig, seed: int, test: tuple) -> dict:
    n = config.steps * config.batch_size if config.data == "stream" else config.fixed_samples
    x, y = MNIST1DSampler(seed=30_000 + seed).sample(n)
    return {"train": (torch.from_numpy(x), torch.from_numpy(y)), "test": test}


def run(config: SwitchMoEConfig, store: CellStore, progress: Progress) -> list[dict]:
    x, y = MNIST1DSampler(seed=TEST_SEED).sample(config.test_samples)
    test = (torch.from_numpy(x), torch.from_numpy(y))
    records = []
    # Round-robin by seed: each seed runs every variant in turn, so that a change in the machine's load
    # during the run falls on all variants alike (the wall-clock comparison depends on it).
    for seed in range(config.seeds):
        data = None
        for variant in config.variants():
            key = {"variant": variant["name"], "seed": seed}
            record = store.get(key)
            if record is None:
                progress(f"switch moe: {variant['name']} seed {seed}")
                data = data or _seed_data(config, seed, test)
                record = _train_cell(config, variant, seed, data)
                store.put(key, record)
            records.append(record)
    return records
