import torch

from slimlab.evaluate import count_flops, count_parameters, serialized_size
from slimlab.treatments import DynamicInt8, MagnitudePrune, apply


def _mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(40, 30), torch.nn.ReLU(), torch.nn.Linear(30, 10))


def test_flops_of_linear_layers_and_their_int8_versions():
    model = _mlp()
    expected = 2 * (40 * 30 + 30 * 10)
    assert count_flops(model, torch.zeros(1, 40)) == expected
    assert count_flops(apply(model, DynamicInt8()), torch.zeros(1, 40)) == expected
    assert count_flops(model, torch.zeros(4, 40)) == 4 * expected


def test_parameters_of_dense_pruned_and_quantized_models():
    model = _mlp()
    total = 40 * 30 + 30 + 30 * 10 + 10
    assert count_parameters(model) == (total, total)
    pruned = apply(model, MagnitudePrune(sparsity=0.5))
    assert count_parameters(pruned) == (total, total - 750)  # biases stay dense
    quantized = apply(pruned, DynamicInt8())
    params, nonzero = count_parameters(quantized)
    assert params == total and nonzero <= total - 750


def test_serialized_size():
    model = _mlp()
    size, compressed = serialized_size(model)
    assert size > 4 * 1540
    pruned_size, pruned_compressed = serialized_size(apply(model, MagnitudePrune(sparsity=0.9)))
    assert abs(pruned_size - size) < 200  # a dense checkpoint does not shrink with unstructured sparsity
    assert pruned_compressed < compressed * 0.6
    int8_size, _ = serialized_size(apply(model, DynamicInt8()))
    assert int8_size < size
