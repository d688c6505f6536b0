"""All of a network's parameters in one flat buffer, so clipping and Adam are a few kernels, not Python loops.

On a CPU with the small networks of classic control, `clip_grad_norm_` and `torch.optim.Adam` spend most
of their time grouping and looping over a dozen parameter tensors in Python (about a third of a PPO
gradient step, measured). `FlatParameters` turns every parameter of a module into a view of one buffer
and every gradient into a view of a second one: backward accumulates straight into the gradient buffer,
the global norm is one reduction, and a standard `torch.optim.Adam` over the single flat parameter does
the update (so optimiser checkpoints keep their usual format). The module itself works unchanged.

Rules that keep the views intact: never call `optimizer.zero_grad()` (it would drop the gradient buffer;
use `FlatParameters.zero_grad`), never move the module to another device afterwards, and load weights
with `load_state_dict` (which copies into the views).
"""

from __future__ import annotations

import torch
from torch import nn


class FlatParameters:
    """The trainable parameters of `module` as views into one contiguous buffer (and their grads too)."""

    def __init__(self, module: nn.Module) -> None:
        params = [p for p in module.parameters() if p.requires_grad]  # shared parameters appear once
        if not params:
            raise ValueError("FlatParameters needs a module with at least one trainable parameter.")
        first = params[0]
        # (P,) with P = total number of parameter elements
        self.param = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]).to(first.device, first.dtype))
        self.param.grad = torch.zeros_like(self.param)
        offset = 0
        for p in params:
            size = p.numel()
            p.data = self.param.data[offset : offset + size].view_as(p)
            p.grad = self.param.grad[offset : offset + size].view_as(p)
            offset += size

    @property
    def grad(self) -> torch.Tensor:
        assert self.param.grad is not None, "the gradient buffer was dropped: use FlatParameters.zero_grad()"
        return self.param.grad

    def zero_grad(self) -> None:
        self.grad.zero_()

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """Scale gradients so their global L2 norm is at most `max_norm` (as nn.utils.clip_grad_norm_); returns the norm."""
        total_norm = torch.linalg.vector_norm(self.grad)
        self.grad.mul_((max_norm / (total_norm + 1e-6)).clamp(max=1.0))
        return total_norm
