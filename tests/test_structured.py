"""Structured pruning rebuilds a smaller model that computes exactly what the unit-masked dense one does."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from slimlab.data import Dataset, Split
from slimlab.errors import SlimlabError
from slimlab.models import build_model
from slimlab.treatments import StructuredPrune, TreatmentContext, apply
from slimlab.treatments.structured import layer_chain, unit_importance, units_to_keep


def _masked_dense(model: nn.Module, keep: dict[str, torch.Tensor]) -> nn.Module:
    """The dense model with the removed units' weights and biases zeroed: after ReLU they output 0."""
    masked = copy.deepcopy(model)
    modules = dict(masked.named_modules())
    with torch.no_grad():
        for name, kept in keep.items():
            layer = modules[name]
            drop = torch.ones(layer.weight.shape[0], dtype=torch.bool)
            drop[kept] = False
            layer.weight[drop] = 0
            layer.bias[drop] = 0
    return masked


@pytest.mark.parametrize(
    ("name", "params"),
    [("mlp", {"hidden": [64, 48]}), ("cnn1d", {"channels": 16}), ("cnn1d", {"num_layers": 2})],
)
@pytest.mark.parametrize("criterion", ["l1", "l2"])
def test_rebuilt_model_equals_the_masked_dense_model(name, params, criterion):
    torch.manual_seed(0)
    model = build_model(name, params, (40,), 10).eval()
    config = StructuredPrune(sparsity=0.5, criterion=criterion)
    keep = units_to_keep(model, config.sparsity, config.criterion)
    context = TreatmentContext()
    small = apply(model, config, context)
    x = torch.randn(32, 40, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(small(x), _masked_dense(model, keep)(x), rtol=1e-5, atol=1e-5)
    assert sum(p.numel() for p in small.parameters()) < 0.6 * sum(p.numel() for p in model.parameters())
    chain = layer_chain(small)
    assert chain[-1].layer.weight.shape[0] == 10  # the output layer keeps its units
    layers = context.artifacts["structured_prune"]["layers"]
    assert all(r["kept"] == r["units"] - round(0.5 * r["units"]) for r in layers[:-1])


def test_the_weakest_units_go():
    torch.manual_seed(0)
    model = build_model("mlp", {"hidden": [8]}, (40,), 10)
    with torch.no_grad():
        model.net[0].weight[3] = 0.0  # unit 3 has no incoming weight at all
    keep = units_to_keep(model, 0.25, "l1")["net.0"]
    assert 3 not in keep.tolist() and len(keep) == 6
    scores = unit_importance(model.net[0], "l2")
    assert torch.all(scores[keep].min() >= scores[[i for i in range(8) if i not in keep.tolist()]])


def test_plain_sequential_is_rebuilt_and_others_go_through_the_dependency_graph():
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Linear(40, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 10))
    small = apply(seq, StructuredPrune(sparsity=0.75))
    assert small[0].out_features == 8 and small[3].in_features == 8
    # Anything the chain rebuild does not know is traced by Torch-Pruning on real example inputs; without
    # data there is nothing to trace, and the error says so (it used to refuse the architecture).
    with_bn = nn.Sequential(nn.Linear(40, 32), nn.BatchNorm1d(32), nn.Linear(32, 10))
    with pytest.raises(SlimlabError, match="traces the model on example inputs"):
        apply(with_bn, StructuredPrune(sparsity=0.5))
    x = np.random.default_rng(0).standard_normal((20, 40)).astype(np.float32)
    split = Split(x, np.arange(20) % 10)
    context = TreatmentContext(data=Dataset("t", split, split, split, 10))
    pruned = apply(with_bn, StructuredPrune(sparsity=0.5), context)
    assert pruned[0].out_features == 16 and pruned[1].num_features == 16 and pruned[2].out_features == 10
