"""FlatAdam and FlatRMSprop against torch.optim and nn.utils.clip_grad_norm_ (the oracle), step for step; the
seam that picks between them and the plain TorchOptimizer."""

import copy

import pytest
import torch
from torch import nn

from rlsuite.agents import fast
from rlsuite.agents.fast.optim import FlatAdam, FlatRMSprop
from rlsuite.agents.optim import TorchOptimizer


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3))


@pytest.mark.parametrize("max_norm", [None, 0.05])
def test_matches_torch_adam_and_clipping(max_norm: float | None) -> None:
    ours, reference = _net(), _net()
    flat = FlatAdam(ours, lr=3e-3, eps=1e-5)
    torch_adam = torch.optim.Adam(reference.parameters(), lr=3e-3, eps=1e-5)
    for step in range(25):
        x = torch.randn(32, 5, generator=torch.Generator().manual_seed(step))
        flat.zero_grad()
        ours(x).pow(2).mean().backward()
        torch_adam.zero_grad()
        reference(x).pow(2).mean().backward()
        if max_norm is not None:
            ours_norm = flat.clip_grad_norm_(max_norm)
            reference_norm = nn.utils.clip_grad_norm_(reference.parameters(), max_norm)
            torch.testing.assert_close(ours_norm, reference_norm)
        flat.step()
        torch_adam.step()
        for a, b in zip(ours.parameters(), reference.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_adam_is_torch_fused_adam_bit_for_bit() -> None:
    """FlatAdam runs the kernel of torch.optim.Adam(fused=True): the same parameters to the last bit, lr changing
    between steps as the agents anneal it."""
    ours, reference = _net(), _net()
    flat = FlatAdam(ours, lr=3e-3, eps=1e-5)
    fused = torch.optim.Adam(reference.parameters(), lr=3e-3, eps=1e-5, fused=True)
    for step in range(25):
        x = torch.randn(32, 5, generator=torch.Generator().manual_seed(step))
        flat.zero_grad()
        ours(x).pow(2).mean().backward()
        fused.zero_grad()
        reference(x).pow(2).mean().backward()
        flat.step()
        fused.step()
        flat.lr = fused.param_groups[0]["lr"] = 3e-3 * (1 - step / 25)
        for a, b in zip(ours.parameters(), reference.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_rmsprop_matches_torch_rmsprop_and_clipping() -> None:
    ours, reference = _net(), _net()
    flat = FlatRMSprop(ours, lr=7e-4, alpha=0.99, eps=1e-5)
    torch_rmsprop = torch.optim.RMSprop(reference.parameters(), lr=7e-4, alpha=0.99, eps=1e-5)
    for step in range(25):
        x = torch.randn(32, 5, generator=torch.Generator().manual_seed(step))
        flat.zero_grad()
        ours(x).pow(2).mean().backward()
        torch_rmsprop.zero_grad()
        reference(x).pow(2).mean().backward()
        torch.testing.assert_close(flat.clip_grad_norm_(0.05), nn.utils.clip_grad_norm_(reference.parameters(), 0.05))
        flat.step()
        torch_rmsprop.step()
        for a, b in zip(ours.parameters(), reference.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_state_round_trip_continues_identically() -> None:
    net = _net()
    opt = FlatAdam(net, lr=1e-2)
    x = torch.randn(8, 5)
    for _ in range(3):
        opt.zero_grad()
        net(x).sum().backward()
        opt.step()
    saved_weights, saved_state = copy.deepcopy(net.state_dict()), {k: v.clone() for k, v in opt.state_tensors("o").items()}
    restored = _net()
    restored_opt = FlatAdam(restored, lr=1e-2)
    restored.load_state_dict(saved_weights)  # copies into the flat views
    restored_opt.load_state_tensors("o", saved_state)
    for model, optimizer in ((net, opt), (restored, restored_opt)):
        optimizer.zero_grad()
        model(x).sum().backward()
        optimizer.step()
    for a, b in zip(net.parameters(), restored.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_wrong_sized_state_is_refused() -> None:
    opt = FlatAdam(_net(), lr=1e-3)
    other = FlatAdam(nn.Linear(2, 2), lr=1e-3)
    with pytest.raises(ValueError, match="different network"):
        opt.load_state_tensors("o", other.state_tensors("o"))


def test_the_seam_takes_the_flat_optimisers_only_where_they_support_the_module() -> None:
    assert type(fast.optimizer(_net(), "adam", lr=1e-3, eps=1e-5)) is FlatAdam
    assert type(fast.optimizer(_net(), "rmsprop", lr=1e-3, eps=1e-5)) is FlatRMSprop
    mixed = nn.Sequential(nn.Linear(5, 16), nn.Linear(16, 3).double())  # two dtypes cannot share one buffer
    assert type(fast.optimizer(mixed, "adam", lr=1e-3, eps=1e-5)) is TorchOptimizer


@pytest.mark.parametrize("kind", ["adam", "rmsprop"])
def test_torch_optimizer_state_resumes_in_the_flat_one(kind: str) -> None:
    """TorchOptimizer, the plain path, and the flat optimisers keep one checkpoint form: three steps with
    torch.optim, its state loaded into the flat optimiser, and both take the same fourth step."""
    plain_net, flat_net = _net(), _net()
    plain = TorchOptimizer(plain_net, kind, lr=3e-3, eps=1e-5)  # type: ignore[arg-type]
    x = torch.randn(16, 5, generator=torch.Generator().manual_seed(0))
    for _ in range(3):
        plain.zero_grad()
        plain_net(x).pow(2).mean().backward()
        plain.clip_grad_norm_(0.05)
        plain.step()
    flat_net.load_state_dict(plain_net.state_dict())
    flat = FlatAdam(flat_net, lr=3e-3, eps=1e-5) if kind == "adam" else FlatRMSprop(flat_net, lr=3e-3, eps=1e-5)
    flat.load_state_tensors("o", plain.state_tensors("o"))
    plain.lr = flat.lr = 1e-3
    for net, opt in ((plain_net, plain), (flat_net, flat)):
        opt.zero_grad()
        net(x).pow(2).mean().backward()
        opt.clip_grad_norm_(0.05)
        opt.step()
    for a, b in zip(plain_net.parameters(), flat_net.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    restored = TorchOptimizer(_net(), kind, lr=1e-3, eps=1e-5)  # type: ignore[arg-type]
    restored.load_state_tensors("o", flat.state_tensors("o"))
    for key, value in flat.state_tensors("o").items():
        torch.testing.assert_close(restored.state_tensors("o")[key], value)
