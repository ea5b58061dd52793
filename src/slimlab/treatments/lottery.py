"""Lottery tickets by iterative magnitude pruning (IMP), with rewinding and the paper's two controls.

Frankle & Carbin (ICLR 2019): train, prune the `rate` share of surviving weights with the smallest
magnitude, reset the survivors to their initial values θ0, retrain, repeat. Frankle et al. (ICML 2020):
rewind to θk, the weights after k steps of the dense run, instead of θ0. The controls keep everything but
one ingredient: `reinit` trains the ticket's masks from a fresh random initialisation, and `random_prune`
trains random masks with the ticket's per-layer sparsity from the same rewind point.

The trained dense parent handed to the handler is round 0. Every round's accuracies (and, by default, its
masks) go into `context.artifacts["lottery"]`, which the runner stores with the trial. Test accuracy is
recorded per round for the report's curve only: selection (the best epoch) uses the validation split.
"""

from __future__ import annotations

import base64
import copy
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn
from torch.nn.utils import prune

from slimlab.data import Dataset
from slimlab.errors import SlimlabError
from slimlab.train import Trainer
from slimlab.train.trainer import accuracy_of
from slimlab.treatments.base import TreatmentConfig, TreatmentContext, register_treatment
from slimlab.treatments.prune import PRUNABLE

Masks = dict[str, Tensor]


class LotteryTicket(TreatmentConfig):
    """Iterative magnitude pruning: `rounds` rounds, each removing `rate` of the surviving weights.

    After n rounds (1 - rate)^n of the prunable weights remain (with `output_rate` unset). `scope="layer"`
    prunes each layer at `rate` (the paper's LeNet recipe, with `output_rate = rate / 2` for the output
    layer); `"global"` ranks all layers together, with the output layer ranked on its own when
    `output_rate` is set. `rewind_step = 0` resets survivors to θ0; k > 0 to θk (θ0 trained k steps with
    the trial's seed). Each round trains for `epochs` (default: the trainer's) with early stopping.
    `control="reinit"` starts every round from one fresh sample of the initialisation (not rewound: a
    random network has no θk); it also trains the IMP networks, whose weights give the next round's masks,
    so it costs twice as much. `"random_prune"` with global scope does the same; with layer scope the
    per-layer counts are known without training IMP.
    """

    kind = "lottery_ticket"
    rate: float = Field(
        default=0.2, gt=0.0, lt=1.0, description="share of surviving weights pruned per round"
    )
    rounds: int = Field(default=8, ge=1, le=100)
    scope: Literal["global", "layer"] = "layer"
    output_rate: float | None = Field(default=None, ge=0.0, lt=1.0, description="rate of the output layer")
    rewind_step: int = Field(default=0, ge=0, description="0: rewind to θ0; k: to θk")
    control: Literal["none", "reinit", "random_prune"] = "none"
    epochs: int | None = Field(default=None, gt=0, description="epochs per round; default: the trainer's")
    lr: float | None = Field(default=None, gt=0, description="default: the trainer's lr")
    keep_masks: bool = Field(default=True, description="store each round's masks (bit-packed) in artifacts")

    def quick(self) -> LotteryTicket:
        return self.model_copy(update={"rounds": min(self.rounds, 2)})


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers IMP prunes, in module order; the last one is taken as the output layer."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, PRUNABLE)]


def magnitude_masks(
    weights: dict[str, Tensor],
    masks: Masks,
    rate: float,
    scope: str,
    output: str | None = None,
    output_rate: float | None = None,
) -> Masks:
    """New masks with round(rate * alive) more weights removed: the smallest |w| among the survivors,
    ranked per layer or across all layers (the output layer apart when `output_rate` is given)."""
    names = list(weights)
    if scope == "layer":
        groups = [([n], output_rate if n == output and output_rate is not None else rate) for n in names]
    elif output is not None and output_rate is not None:
        groups = [([n for n in names if n != output], rate), ([output], output_rate)]
    else:
        groups = [(names, rate)]
    new = {n: m.clone() for n, m in masks.items()}
    for group, group_rate in groups:
        if not group:
            continue
        # Dead weights score +inf, so that only survivors are ranked; topk then removes exactly k of them.
        scores = torch.cat(
            [torch.where(masks[n], weights[n].detach().abs(), torch.inf).flatten() for n in group]
        )
        k = round(group_rate * int(sum(int(masks[n].sum()) for n in group)))
        if k == 0:
            continue
        flat = torch.cat([new[n].flatten() for n in group])
        flat[torch.topk(scores, k, largest=False).indices] = False
        for n, piece in zip(group, torch.split(flat, [masks[n].numel() for n in group]), strict=True):
            new[n] = piece.view_as(masks[n])
    return new


def random_masks(masks: Masks, counts: dict[str, int], generator: torch.Generator) -> Masks:
    """Nested random pruning: remove survivors of `masks` at random until each layer keeps `counts[n]`."""
    new = {}
    for n, mask in masks.items():
        flat = mask.flatten().clone()
        alive = flat.nonzero().flatten()
        drop = len(alive) - counts[n]
        if drop < 0:
            raise ValueError(f"layer {n!r} has {len(alive)} weights left, fewer than the {counts[n]} asked")
        flat[alive[torch.randperm(len(alive), generator=generator)[:drop]]] = False
        new[n] = flat.view_as(mask)
    return new


def pack_mask(mask: Tensor) -> dict[str, Any]:
    """A mask as JSON: its shape and its bits, packed and base64-encoded."""
    bits = np.packbits(mask.cpu().numpy().astype(bool).ravel())
    return {"shape": list(mask.shape), "bits": base64.b64encode(bits.tobytes()).decode("ascii")}


def unpack_mask(packed: dict[str, Any]) -> Tensor:
    bits = np.frombuffer(base64.b64decode(packed["bits"]), dtype=np.uint8)
    n = int(np.prod(packed["shape"]))
    return torch.from_numpy(np.unpackbits(bits)[:n].astype(bool)).view(*packed["shape"])


def _derived_seed(seed: int, purpose: int) -> int:
    """A seed for one random stream of the trial (fresh init, random masks) that differs from the trial's
    own stream, so that a control's randomness does not replay θ0's."""
    return int(np.random.SeedSequence([seed, purpose]).generate_state(1)[0])


def _load(model: nn.Module, state: dict[str, Tensor]) -> nn.Module:
    net = copy.deepcopy(model)
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise SlimlabError(
            "lottery_ticket: the initial state does not fit the model it was given (did an earlier treatment "
            f"change the architecture? lottery_ticket must come first in a chain): {e}"
        ) from None
    return net


def _rewind_state(
    model: nn.Module,
    initial: dict[str, Tensor],
    config: LotteryTicket,
    context: TreatmentContext,
    trainer: Trainer,
    data: Dataset,
) -> dict[str, Tensor]:
    if config.rewind_step == 0:
        return copy.deepcopy(initial)
    # θk of the dense run: the same init, seed and trainer (and so its lr, not the rounds' `lr`), stopped
    # after k optimizer steps.
    net = _load(model, initial)
    trainer.fit(net, data, context.seed, max_steps=config.rewind_step)
    return copy.deepcopy(net.state_dict())


def _fresh_state(model: nn.Module, seed: int) -> dict[str, Tensor]:
    """A new sample from the model's own initialisation distribution (each layer's reset_parameters)."""
    net = copy.deepcopy(model)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for module in net.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    return copy.deepcopy(net.state_dict())


def _train_round(
    model: nn.Module,
    start: dict[str, Tensor],
    masks: Masks,
    config: LotteryTicket,
    context: TreatmentContext,
    trainer: Trainer,
    data: Dataset,
) -> tuple[nn.Module, dict[str, Any]]:
    """Load `start`, hold `masks` (torch's pruning hooks: masked weights get no gradient and stay zero),
    train with early stopping on validation, and score the restored best epoch."""
    net = _load(model, start)
    modules = dict(net.named_modules())
    for name, mask in masks.items():
        prune.custom_from_mask(modules[name], "weight", mask)
    result = trainer.fit(net, data, context.seed, epochs=config.epochs, lr=config.lr)
    return net, {
        "val_accuracy": result.best_val_accuracy,
        "test_accuracy": accuracy_of(net, data.test.x, data.test.y),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
    }


def _weights(net: nn.Module, names: list[str]) -> dict[str, Tensor]:
    modules = dict(net.named_modules())
    return {n: modules[n].weight.detach().clone() for n in names}


@register_treatment(LotteryTicket)
def lottery_ticket(model: nn.Module, config: LotteryTicket, context: TreatmentContext) -> nn.Module:
    trainer, data = context.require_training(config.kind)
    if context.initial_state is None:
        raise SlimlabError(
            "treatment 'lottery_ticket' needs the dense parent's initial weights to rewind to; pass a "
            "TreatmentContext with initial_state (the runner does)"
        )
    layers = prunable_layers(model)
    if not layers:
        raise ValueError(f"lottery_ticket found no {', '.join(t.__name__ for t in PRUNABLE)} layer to prune")
    names = [n for n, _ in layers]
    output = names[-1]
    total = sum(m.weight.numel() for _, m in layers)

    rewind = _rewind_state(model, context.initial_state, config, context, trainer, data)
    start = _fresh_state(model, _derived_seed(context.seed, 1)) if config.control == "reinit" else rewind
    generator = torch.Generator().manual_seed(_derived_seed(context.seed, 2))
    # Random pruning with layer-wise scope needs only the ticket's per-layer counts, which do not depend on
    # the weights, so the IMP networks themselves need not be trained; with global scope they do.
    imp_needed = config.control == "reinit" or (config.control == "random_prune" and config.scope == "global")

    ticket = {n: torch.ones_like(m.weight, dtype=torch.bool) for n, m in layers}
    control = dict(ticket)
    trained = _weights(model, names)  # round 0 is the trained dense parent
    records: list[dict[str, Any]] = [
        {
            "round": 0,
            "remaining_fraction": 1.0,
            "val_accuracy": accuracy_of(model, data.val.x, data.val.y),
            "test_accuracy": accuracy_of(model, data.test.x, data.test.y),
            "best_epoch": None,
        }
    ]
    net = model
    for r in range(1, config.rounds + 1):
        ticket = magnitude_masks(trained, ticket, config.rate, config.scope, output, config.output_rate)
        if config.control == "none":
            net, scores = _train_round(model, rewind, ticket, config, context, trainer, data)
            trained = _weights(net, names)
            masks = ticket
        else:
            # The next round's ticket is pruned from this round's IMP network.
            if imp_needed and r < config.rounds:
                imp_net, _ = _train_round(model, rewind, ticket, config, context, trainer, data)
                trained = _weights(imp_net, names)
            if config.control == "random_prune":
                control = random_masks(control, {n: int(m.sum()) for n, m in ticket.items()}, generator)
            else:
                control = ticket
            net, scores = _train_round(model, start, control, config, context, trainer, data)
            masks = control
        remaining = sum(int(m.sum()) for m in masks.values())
        record = {"round": r, "remaining_fraction": remaining / total, **scores}
        record["layer_remaining"] = {n: int(m.sum()) / m.numel() for n, m in masks.items()}
        if config.keep_masks:
            record["masks"] = {n: pack_mask(m) for n, m in masks.items()}
        records.append(record)

    modules = dict(net.named_modules())
    for n in names:
        prune.remove(modules[n], "weight")
    context.artifacts["lottery"] = {
        "control": config.control,
        "scope": config.scope,
        "rate": config.rate,
        "output_rate": config.output_rate,
        "rewind_step": config.rewind_step,
        "prunable_weights": total,
        "test_use": "report-only",  # per-round test accuracy draws the curve; nothing is selected on it
        "rounds": records,
    }
    return net
