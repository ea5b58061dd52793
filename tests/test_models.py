import pytest
import torch

from slimlab.errors import UnknownNameError
from slimlab.models import build_model


def test_reference_cnn_matches_the_paper():
    model = build_model("cnn1d", {}, (40,), 10)
    assert sum(p.numel() for p in model.parameters()) == 5210  # 3 convs of 25 channels + 125->10 head
    assert model(torch.zeros(4, 40)).shape == (4, 10)


def test_mlp_is_configurable():
    model = build_model("mlp", {"hidden": [32, 16]}, (8, 8), 3)
    assert model(torch.zeros(5, 8, 8)).shape == (5, 3)


def test_unknown_model():
    with pytest.raises(UnknownNameError, match="unknown model 'vit'; known: cnn1d, dlrm, mlp"):
        build_model("vit", {}, (40,), 10)
