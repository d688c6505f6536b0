"""FlatAdam against torch.optim.Adam and nn.utils.clip_grad_norm_ (the oracle), step for step."""

import copy

import pytest
import torch
from torch import nn

from rlsuite.agents.optim import FlatAdam, FlatRMSprop


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
