"""The optimisers' plain path: torch.optim's Adam or RMSprop with global-norm clipping, behind the small
interface the agents call (`zero_grad`, `clip_grad_norm_`, `step`, `lr`, checkpoint state).

The agents never pick an implementation: `rlsuite.agents.fast.optimizer` returns the flat-buffer versions
(agents/fast/optim.py) where they support the module and `TorchOptimizer` otherwise. Both keep their
checkpoint state in the same form (one (P,) tensor per moment, parameters in `module.parameters()` order,
and Adam's step count), so a checkpoint written by one resumes with the other.
"""

from __future__ import annotations

from typing import Literal, Protocol

import torch
from torch import nn

OptimizerKind = Literal["adam", "rmsprop"]
_MOMENTS = {"adam": ("exp_avg", "exp_avg_sq"), "rmsprop": ("square_avg",)}


class Optimizer(Protocol):
    """What an agent's loop calls on its optimiser."""

    lr: float

    def zero_grad(self) -> None: ...

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """Scale the gradients to a global L2 norm of at most `max_norm`; returns the norm before."""
        ...

    def step(self) -> None: ...

    def state_tensors(self, prefix: str) -> dict[str, torch.Tensor]: ...

    def load_state_tensors(self, prefix: str, tensors: dict[str, torch.Tensor]) -> None: ...


class TorchOptimizer:
    """torch.optim.Adam (betas, eps) or torch.optim.RMSprop (alpha, eps; no momentum, not centred) over the
    trainable parameters of `module`, with nn.utils.clip_grad_norm_."""

    def __init__(self, module: nn.Module, kind: OptimizerKind, lr: float, eps: float,
                 betas: tuple[float, float] = (0.9, 0.999), alpha: float = 0.99) -> None:
        self.kind = kind
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.optim = (torch.optim.Adam(self.params, lr=lr, betas=betas, eps=eps) if kind == "adam"
                      else torch.optim.RMSprop(self.params, lr=lr, alpha=alpha, eps=eps))

    @property
    def lr(self) -> float:
        return float(self.optim.param_groups[0]["lr"])

    @lr.setter
    def lr(self, value: float) -> None:
        self.optim.param_groups[0]["lr"] = value

    def zero_grad(self) -> None:
        self.optim.zero_grad()

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        return nn.utils.clip_grad_norm_(self.params, max_norm)

    def step(self) -> None:
        self.optim.step()

    def state_tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        """Each moment as one (P,) tensor (zeros before the first step), and Adam's step count."""
        state = [self.optim.state.get(p, {}) for p in self.params]
        out = {f"{prefix}.{name}": torch.cat([s[name].reshape(-1) if name in s else torch.zeros(p.numel(), device=p.device)
                                             for s, p in zip(state, self.params, strict=True)])
               for name in _MOMENTS[self.kind]}
        if self.kind == "adam":
            out[f"{prefix}.steps"] = torch.tensor(int(state[0]["step"]) if state[0] else 0, dtype=torch.int64)
        return out

    def load_state_tensors(self, prefix: str, tensors: dict[str, torch.Tensor]) -> None:
        total = sum(p.numel() for p in self.params)
        moments = {name: tensors[f"{prefix}.{name}"] for name in _MOMENTS[self.kind]}
        for name, flat in moments.items():
            if flat.shape != (total,):
                raise ValueError(
                    f"Checkpoint optimiser state {prefix}.{name} has shape {tuple(flat.shape)}, this network has "
                    f"({total},) parameters: the checkpoint belongs to a different network configuration.")
        steps = float(tensors[f"{prefix}.steps"]) if self.kind == "adam" else 0.0
        offset = 0
        for p in self.params:
            state = {name: flat[offset:offset + p.numel()].reshape(p.shape).to(p).clone() for name, flat in moments.items()}
            self.optim.state[p] = {"step": torch.tensor(steps), **state}
            offset += p.numel()
