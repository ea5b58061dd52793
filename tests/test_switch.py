"""The Switch layer's routing invariants, its losses, and the tiny transformer that uses it."""

import math

import pytest
import torch
import torch.nn.functional as F

from slimlab.evaluate import count_flops
from slimlab.models import build_model
from slimlab.models.switch import (
    SwitchFFN,
    expert_capacity,
    expert_load,
    load_balancing_loss,
    switch_layers,
)


def _layer(**kwargs) -> SwitchFFN:
    torch.manual_seed(0)
    defaults = {"capacity_factor": 1.0, "alpha": 0.01, "z_loss": 1e-3}
    return SwitchFFN(8, 16, 4, **{**defaults, **kwargs})


def _expert_forward(layer: SwitchFFN, e: int, x: torch.Tensor) -> torch.Tensor:
    """Expert e on its own, written as the dense FFN it is."""
    return F.gelu(x @ layer.w1[e] + layer.b1[e]) @ layer.w2[e] + layer.b2[e]


@pytest.mark.parametrize("factor", [0.5, 1.0, 1.25, 2.0])
def test_capacity_is_respected_and_every_token_is_routed_or_dropped(factor):
    layer = _layer(capacity_factor=factor)
    # A skewed router: most tokens prefer expert 0, so capacity binds.
    with torch.no_grad():
        layer.router.weight[0] += 0.5
    x = torch.randn(6, 10, 8, generator=torch.Generator().manual_seed(1))
    out = layer(x)
    stats = layer.last_stats
    capacity = expert_capacity(60, 4, factor)
    assert stats["capacity"] == capacity
    assert max(stats["counts"]) <= capacity
    assert sum(stats["counts"]) + stats["dropped"] == 60
    # Recompute the routing by hand: a token is kept iff fewer than `capacity` earlier tokens chose its
    # expert; kept tokens come out as p_i · E_i(x), dropped ones as exactly zero.
    tokens = x.reshape(-1, 8)
    probs = torch.softmax(tokens @ layer.router.weight.T, -1)
    gate, expert = probs.max(-1)
    seen = [0] * 4
    flat = out.reshape(-1, 8)
    dropped = 0
    for t in range(60):
        e = int(expert[t])
        if seen[e] < capacity:
            want = gate[t] * _expert_forward(layer, e, tokens[t])
            torch.testing.assert_close(flat[t], want, rtol=1e-4, atol=1e-5)
        else:
            assert torch.equal(flat[t], torch.zeros(8))
            dropped += 1
        seen[e] += 1
    assert dropped == stats["dropped"]
    if factor == 0.5:
        assert dropped > 0  # the test exercised dropping


def test_dropped_tokens_are_carried_by_the_residual():
    model = build_model(
        "transformer", {"ffn": "switch", "num_experts": 4, "capacity_factor": 0.25}, (40,), 10
    )
    block = model.blocks[0]
    x = torch.randn(4, 10, 32)
    h = x + block.attn(block.ln1(x))
    out = block(x)
    dropped_rows = (block.ffn(block.ln2(h)) == 0).all(-1)
    assert dropped_rows.any()
    torch.testing.assert_close(out[dropped_rows], h[dropped_rows])


def test_load_tracking_accounts_for_every_token():
    model = build_model("transformer", {"ffn": "switch", "num_experts": 8, "capacity_factor": 1.0}, (40,), 10)
    for layer in switch_layers(model):
        layer.track_load = True
    model(torch.randn(32, 40))
    model(torch.randn(16, 40))
    load = expert_load(model)
    assert load["tokens"] == 2 * 48 * 10  # two Switch layers, ten tokens per sample
    routed = sum(int(m.load_counts.sum()) for m in switch_layers(model))
    assert routed + load["dropped"] == load["tokens"]
    for fractions in load["fraction_per_expert"]:
        assert math.isclose(sum(fractions), 1.0)


def test_router_receives_gradients_through_the_gate_and_the_aux_loss():
    x = torch.randn(40, 8, generator=torch.Generator().manual_seed(2))
    # through p_i · E_i(x) alone
    layer = _layer(alpha=0.0, z_loss=0.0)
    layer(x).pow(2).sum().backward()
    assert layer.router.weight.grad is not None and layer.router.weight.grad.abs().sum() > 0
    # the auxiliary loss reaches the router without the caller adding it: the output's gradient is unchanged
    a, b = _layer(alpha=0.0, z_loss=0.0), _layer(alpha=0.5, z_loss=0.1)
    a(x).sum().backward()
    b(x).sum().backward()
    torch.testing.assert_close(a.w1.grad, b.w1.grad)
    assert not torch.allclose(a.router.weight.grad, b.router.weight.grad)
    aux_only = _layer(alpha=0.5, z_loss=0.1)
    aux = aux_only.alpha * load_balancing_loss(*_probs_and_choice(aux_only, x), 4)
    aux = aux + aux_only.z_loss * torch.logsumexp(x @ aux_only.router.weight.T, -1).square().mean()
    aux.backward()
    torch.testing.assert_close(b.router.weight.grad - a.router.weight.grad, aux_only.router.weight.grad)


def _probs_and_choice(layer: SwitchFFN, x: torch.Tensor):
    probs = torch.softmax(x @ layer.router.weight.T, -1)
    return probs, probs.argmax(-1)


def test_no_aux_loss_is_added_outside_training():
    layer = _layer(alpha=1.0).eval()
    x = torch.randn(20, 8)
    layer(x).sum().backward()
    plain = layer.router.weight.grad.clone()
    layer.zero_grad()
    layer.alpha = 0.0
    layer(x).sum().backward()
    torch.testing.assert_close(plain, layer.router.weight.grad)


def test_load_balancing_loss_is_minimal_for_a_uniform_assignment():
    n = 4
    uniform_choice = torch.arange(400) % n
    assert load_balancing_loss(torch.full((400, n), 1 / n), uniform_choice, n).item() == pytest.approx(1.0)
    # A confident router (p close to one-hot on its choice): N · Σ f_i², at least 1, equal only if uniform.
    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        weights = torch.rand(n, generator=generator) ** 3 + 0.01
        choice = torch.multinomial(weights, 400, replacement=True, generator=generator)
        probs = F.one_hot(choice, n).float() * 0.999 + 0.001 / n
        loss = load_balancing_loss(probs, choice, n).item()
        f = torch.bincount(choice, minlength=n).float() / 400
        assert loss >= 1.0 - 1e-6
        assert (loss > 1.0 + 1e-4) == bool((f - 1 / n).abs().max() > 1e-2)
    collapsed = torch.zeros(400, dtype=torch.long)
    assert load_balancing_loss(F.one_hot(collapsed, n).float(), collapsed, n).item() == pytest.approx(n)


def test_the_aux_loss_alone_balances_a_collapsed_router():
    layer = _layer(alpha=1.0, z_loss=0.0)
    with torch.no_grad():
        layer.router.weight.zero_()
        layer.router.weight[0] = 1.0  # most tokens choose expert 0
    x = torch.randn(512, 8, generator=torch.Generator().manual_seed(3)).abs()
    optimizer = torch.optim.SGD(layer.router.parameters(), lr=0.5)

    def top_share() -> float:
        return torch.bincount(_probs_and_choice(layer, x)[1], minlength=4).max().item() / 512

    before = top_share()
    for _ in range(200):
        optimizer.zero_grad()
        probs, choice = _probs_and_choice(layer, x)
        load_balancing_loss(probs, choice, 4).backward()
        optimizer.step()
    assert before > 0.9
    assert top_share() < 0.5


def test_router_runs_in_float32_under_autocast():
    layer = _layer()
    x = torch.randn(30, 8)
    seen = {}
    original = layer._route

    def spy(tokens):
        logits, probs = original(tokens)
        seen["dtype"] = (logits.dtype, probs.dtype)
        return logits, probs

    layer._route = spy  # type: ignore[method-assign]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x.bfloat16())
    assert seen["dtype"] == (torch.float32, torch.float32)
    assert out.dtype == torch.bfloat16


def test_jitter_applies_in_training_only():
    layer = _layer(jitter=0.5, capacity_factor=4.0)
    x = torch.randn(50, 8)
    layer.eval()
    torch.testing.assert_close(layer(x), layer(x))
    layer.train()
    torch.manual_seed(0)
    a = layer(x)
    torch.manual_seed(1)
    assert not torch.allclose(a, layer(x))


def test_reduced_init_scale():
    layer = SwitchFFN(256, 512, 4, init_scale=0.1)
    assert layer.w1.std().item() == pytest.approx(math.sqrt(0.1 / 256) * 0.88, rel=0.1)  # truncated at 2σ
    assert layer.w1.abs().max().item() <= 2 * math.sqrt(0.1 / 256) + 1e-6


def test_upcycled_layer_starts_as_the_dense_ffn():
    torch.manual_seed(0)
    fc1, fc2 = torch.nn.Linear(8, 16), torch.nn.Linear(16, 8)
    layer = SwitchFFN.from_dense(fc1, fc2, 4, capacity_factor=4.0, router_init_scale=1e-6).eval()
    x = torch.randn(30, 8)
    torch.testing.assert_close(layer(x), fc2(F.gelu(fc1(x))), rtol=1e-2, atol=2e-3)
    for e in range(4):
        torch.testing.assert_close(layer.w1[e], fc1.weight.T)


def test_switch_transformer_has_the_dense_flops_per_token_and_more_parameters():
    dense = build_model("transformer", {}, (40,), 10)
    switch = build_model(
        "transformer", {"ffn": "switch", "num_experts": 8, "capacity_factor": 1.0}, (40,), 10
    )
    x = torch.randn(80, 40)  # 800 tokens: 100 per expert at capacity factor 1, no padding
    router = 2 * 800 * 32 * 8 * 2  # two layers of d_model × experts
    assert count_flops(switch, x) == count_flops(dense, x) + router
    n_dense = sum(p.numel() for p in dense.parameters())
    n_switch = sum(p.numel() for p in switch.parameters())
    ffn_per_layer = 32 * 64 + 64 + 64 * 32 + 32
    assert n_switch - n_dense == 2 * (7 * ffn_per_layer + 32 * 8)  # 7 more experts and a router, per layer
