"""Lottery tickets: the pruning schedule, rewinding, and the two controls."""

import copy
import json

import pytest
import torch

from slimlab.config import DataConfig
from slimlab.data import load_dataset
from slimlab.errors import SlimlabError
from slimlab.models import build_model
from slimlab.train import TrainConfig, Trainer, TrainResult
from slimlab.treatments import LotteryTicket, TreatmentContext, apply
from slimlab.treatments.lottery import magnitude_masks, pack_mask, prunable_layers, unpack_mask


class RecordingTrainer(Trainer):
    """Records the (masked) weights each round starts from and does not train, except to reach a rewind
    point (max_steps), where it trains for real: the test then checks θk against the real trainer."""

    def __init__(self):
        super().__init__(TrainConfig(epochs=1, device="cpu"))
        self.starts: list[dict[str, torch.Tensor]] = []

    def fit(self, model, data, seed, *, epochs=None, lr=None, max_steps=None):
        if max_steps is not None:
            return super().fit(model, data, seed, epochs=epochs, lr=lr, max_steps=max_steps)
        self.starts.append({n: m.weight.detach().clone() for n, m in prunable_layers(model)})
        return TrainResult(1, 1, 0.5, 0.0)


@pytest.fixture(scope="module")
def data():
    return load_dataset(DataConfig(name="mnist1d", num_samples=300), 0)


def _parent(seed: int = 0):
    torch.manual_seed(seed)
    model = build_model("mlp", {"hidden": [24, 16]}, (40,), 10)
    return model, copy.deepcopy(model.state_dict())


def _context(trainer, data, initial):
    return TreatmentContext(seed=3, trainer=trainer, data=data, initial_state=initial)


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_remaining_fraction_follows_the_schedule(scope, data):
    model, initial = _parent()
    context = _context(RecordingTrainer(), data, initial)
    ticket = apply(model, LotteryTicket(rate=0.2, rounds=5, scope=scope), context)
    record = context.artifacts["lottery"]
    json.dumps(record)  # the runner stores it as JSON
    assert record["test_use"] == "report-only"
    total = record["prunable_weights"]
    for r in record["rounds"]:
        # round() per round, per layer: a few weights of slack per layer and round
        assert abs(r["remaining_fraction"] - 0.8 ** r["round"]) <= 3 * 5 * 3 / total
    weights = [m.weight for _, m in prunable_layers(ticket)]
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert zeros / total == pytest.approx(1 - record["rounds"][-1]["remaining_fraction"])
    assert not any(n.endswith("_orig") for n, _ in ticket.named_parameters())  # masks made permanent
    if scope == "layer":
        for n, frac in record["rounds"][-1]["layer_remaining"].items():
            assert abs(frac - 0.8**5) < 0.02, n


def test_output_rate_prunes_the_output_layer_slower(data):
    model, initial = _parent()
    context = _context(RecordingTrainer(), data, initial)
    apply(model, LotteryTicket(rate=0.2, rounds=3, output_rate=0.1), context)
    layers = context.artifacts["lottery"]["rounds"][-1]["layer_remaining"]
    assert layers["net.4"] == pytest.approx(0.9**3, abs=0.01)
    assert layers["net.0"] == pytest.approx(0.8**3, abs=0.01)


def test_rewinding_restores_theta0_on_surviving_weights(data):
    model, initial = _parent()
    trainer = RecordingTrainer()
    context = _context(trainer, data, initial)
    apply(model, LotteryTicket(rounds=3), context)
    assert len(trainer.starts) == 3
    for r, start in enumerate(trainer.starts, 1):
        mask = unpack_mask(context.artifacts["lottery"]["rounds"][r]["masks"]["net.0"])
        expected = initial["net.0.weight"] * mask
        assert torch.equal(start["net.0"], expected)
        assert int((start["net.0"] != 0).sum()) == int(mask.sum())


def test_rewinding_to_step_k_restores_theta_k(data):
    model, initial = _parent()
    trainer = RecordingTrainer()
    context = _context(trainer, data, initial)
    apply(model, LotteryTicket(rounds=1, rewind_step=4), context)
    theta_k = _parent()[0]
    Trainer(TrainConfig(epochs=1, device="cpu")).fit(theta_k, data, 3, max_steps=4)
    mask = unpack_mask(context.artifacts["lottery"]["rounds"][1]["masks"]["net.0"])
    assert torch.equal(trainer.starts[0]["net.0"], theta_k.net[0].weight.detach() * mask)
    assert not torch.equal(theta_k.net[0].weight.detach(), initial["net.0.weight"])  # k steps did move it


def test_reinit_keeps_the_ticket_masks_with_a_fresh_init(data):
    model, initial = _parent()
    imp, reinit = TreatmentContext(), TreatmentContext()
    for context, control in ((imp, "none"), (reinit, "reinit")):
        context.trainer, context.data, context.initial_state, context.seed = (
            RecordingTrainer(),
            data,
            initial,
            3,
        )
        apply(model, LotteryTicket(rounds=2, control=control), context)
    for a, b in zip(imp.artifacts["lottery"]["rounds"], reinit.artifacts["lottery"]["rounds"], strict=True):
        assert a.get("masks") == b.get("masks")
    start = reinit.trainer.starts[-1]["net.0"]  # the reinit trainer also trained IMP's round 1 first
    mask = start != 0
    assert not torch.allclose(start[mask], initial["net.0.weight"][mask])
    # a sample of the same distribution: similar scale
    assert float(start[mask].std()) == pytest.approx(float(initial["net.0.weight"].std()), rel=0.3)


def test_random_prune_matches_the_per_layer_sparsity_with_other_masks(data):
    model, initial = _parent()
    imp = _context(RecordingTrainer(), data, initial)
    rnd = _context(RecordingTrainer(), data, initial)
    apply(model, LotteryTicket(rounds=3, scope="global"), imp)
    apply(model, LotteryTicket(rounds=3, scope="global", control="random_prune"), rnd)
    for a, b in zip(
        imp.artifacts["lottery"]["rounds"][1:], rnd.artifacts["lottery"]["rounds"][1:], strict=True
    ):
        assert a["layer_remaining"] == b["layer_remaining"]
        assert a["masks"]["net.0"] != b["masks"]["net.0"]
    # survivors are rewound like IMP's
    start = rnd.trainer.starts[-1]["net.0"]
    mask = unpack_mask(rnd.artifacts["lottery"]["rounds"][-1]["masks"]["net.0"])
    assert torch.equal(start, initial["net.0.weight"] * mask)


def test_magnitude_masks_remove_the_smallest_survivors():
    w = {"a": torch.tensor([0.1, -0.5, 0.3, 0.05]), "b": torch.tensor([2.0, -0.2, 0.01, 1.0])}
    alive = {"a": torch.tensor([True, True, True, False]), "b": torch.ones(4, dtype=torch.bool)}
    new = magnitude_masks(w, alive, 0.5, "global")  # 7 alive: remove round(3.5) = 4 smallest survivors
    assert new["a"].tolist() == [False, True, False, False]
    assert new["b"].tolist() == [True, False, False, True]
    mask = torch.rand(5, 7) > 0.5
    assert torch.equal(unpack_mask(pack_mask(mask)), mask)


def test_lottery_needs_the_initial_state(data):
    model, _ = _parent()
    with pytest.raises(SlimlabError, match="initial weights"):
        apply(model, LotteryTicket(rounds=1), TreatmentContext(trainer=RecordingTrainer(), data=data))


def test_a_real_round_trains_and_scores(data):
    model, initial = _parent()
    Trainer(TrainConfig(epochs=2, device="cpu")).fit(model, data, 3)
    context = _context(Trainer(TrainConfig(epochs=2, device="cpu")), data, initial)
    apply(model, LotteryTicket(rounds=1, rate=0.5), context)
    r1 = context.artifacts["lottery"]["rounds"][1]
    assert 0 < r1["val_accuracy"] <= 1 and 0 < r1["test_accuracy"] <= 1 and r1["best_epoch"] in (1, 2)
