"""Adam and RMSprop over all of a network's parameters held in one flat buffer: a few kernels per step, not Python loops.

On a CPU with the small networks of classic control, `clip_grad_norm_` and `torch.optim.Adam` spend most
of their time in Python: grouping and looping over a dozen parameter tensors, profiler hooks, checks
(measured: `torch.optim.Adam(fused=True).step()` costs about 10x the update kernel itself, and with
clipping about a third of a PPO gradient step). `FlatAdam` turns every parameter of a module into a view
of one buffer and every gradient into a view of a second one: backward accumulates straight into the
gradient buffer, the global norm is one reduction, and the Adam update is one kernel: the one
`torch.optim.Adam(fused=True)` runs (`torch._fused_adam_`), here on the one buffer without the Python around it.
The module itself works unchanged. The update is torch.optim.Adam's (Kingma and Ba, with epsilon added after
the bias-corrected square root, no weight decay); tests/test_optim.py checks it step for step, bit for bit
against torch.optim.Adam(fused=True).

Rules that keep the views intact: never move the module to another device afterwards, load weights with
`load_state_dict` (which copies into the views), and zero gradients with `FlatAdam.zero_grad`. The agents
get an optimiser from `rlsuite.agents.fast.optimizer`, which picks these where `FlatParameters.supports`
the module and torch.optim's otherwise (agents/optim.py, the same interface and checkpoint state).
"""

from __future__ import annotations

import torch
from torch import nn


class FlatParameters:
    """A module's trainable parameters as views into one buffer, their gradients as views into a second one."""

    def __init__(self, module: nn.Module, lr: float) -> None:
        params = [p for p in module.parameters() if p.requires_grad]  # shared parameters appear once
        if not params:
            raise ValueError(f"{type(self).__name__} needs a module with at least one trainable parameter.")
        self.lr = lr
        # (P,) with P = the number of parameter elements; parameters and grads become views into these
        # neither buffer requires grad, so the steps' in-place updates need no torch.no_grad around them (a
        # context entered per step costs as much as a small kernel)
        self.param = torch.cat([p.detach().reshape(-1) for p in params])
        self.grad = torch.zeros_like(self.param)
        offset = 0
        for p in params:
            size = p.numel()
            p.data = self.param[offset : offset + size].view_as(p)
            p.grad = self.grad[offset : offset + size].view_as(p)
            offset += size

    @staticmethod
    def supports(module: nn.Module) -> bool:
        """Trainable parameters that can share one buffer: at least one, all dense, one device, one float dtype."""
        params = [p for p in module.parameters() if p.requires_grad]
        return (bool(params) and all(p.layout == torch.strided and p.is_floating_point() for p in params)
                and len({(p.device, p.dtype) for p in params}) == 1)

    def zero_grad(self) -> None:
        self.grad.zero_()

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """Scale gradients so their global L2 norm is at most `max_norm` (as nn.utils.clip_grad_norm_); returns the norm."""
        total_norm = torch.linalg.vector_norm(self.grad)
        self.grad.mul_((max_norm / (total_norm + 1e-6)).clamp(max=1.0))
        return total_norm

    def step(self) -> None:
        raise NotImplementedError

    def state_tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def load_state_tensors(self, prefix: str, tensors: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError

    def _load_buffers(self, prefix: str, tensors: dict[str, torch.Tensor], names: tuple[str, ...]) -> None:
        for name in names:
            stored = tensors[f"{prefix}.{name}"]
            if stored.shape != self.param.shape:
                raise ValueError(
                    f"Checkpoint optimiser state {prefix}.{name} has shape {tuple(stored.shape)}, this network has "
                    f"{tuple(self.param.shape)} parameters: the checkpoint belongs to a different network configuration."
                )
            getattr(self, name).copy_(stored)


class FlatAdam(FlatParameters):
    """Adam with optional global-norm gradient clipping over the trainable parameters of `module`."""

    def __init__(self, module: nn.Module, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        super().__init__(module, lr)
        self.betas, self.eps = betas, eps
        self.exp_avg = torch.zeros_like(self.param)  # (P,) first moment
        self.exp_avg_sq = torch.zeros_like(self.param)  # (P,) second moment
        self.steps = 0
        self._step_tensor = torch.zeros((), dtype=torch.float32, device=self.param.device)  # the kernel reads t here

    def step(self) -> None:
        """m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2, p -= lr m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps),
        in one kernel over the buffer."""
        beta1, beta2 = self.betas
        self.steps += 1
        self._step_tensor.fill_(self.steps)
        torch._fused_adam_([self.param], [self.grad], [self.exp_avg], [self.exp_avg_sq], [], [self._step_tensor],
                           amsgrad=False, lr=self.lr, beta1=beta1, beta2=beta2, weight_decay=0.0, eps=self.eps,
                           maximize=False)

    def state_tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        """The optimiser state for a checkpoint (the step count travels as a 0-d tensor)."""
        return {f"{prefix}.exp_avg": self.exp_avg, f"{prefix}.exp_avg_sq": self.exp_avg_sq,
                f"{prefix}.steps": torch.tensor(self.steps, dtype=torch.int64)}

    def load_state_tensors(self, prefix: str, tensors: dict[str, torch.Tensor]) -> None:
        self._load_buffers(prefix, tensors, ("exp_avg", "exp_avg_sq"))
        self.steps = int(tensors[f"{prefix}.steps"])


class FlatRMSprop(FlatParameters):
    """RMSprop as torch.optim.RMSprop (no momentum, not centred, no weight decay) over one flat buffer:
    v = alpha v + (1 - alpha) g^2, then p -= lr g / (sqrt(v) + eps). A2C's optimiser (SB3: alpha 0.99, eps 1e-5)."""

    def __init__(self, module: nn.Module, lr: float, alpha: float = 0.99, eps: float = 1e-8) -> None:
        super().__init__(module, lr)
        self.alpha, self.eps = alpha, eps
        self.square_avg = torch.zeros_like(self.param)  # (P,) running mean of g^2

    def step(self) -> None:
        self.square_avg.mul_(self.alpha).addcmul_(self.grad, self.grad, value=1.0 - self.alpha)
        self.param.addcdiv_(self.grad, self.square_avg.sqrt().add_(self.eps), value=-self.lr)

    def state_tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        return {f"{prefix}.square_avg": self.square_avg}

    def load_state_tensors(self, prefix: str, tensors: dict[str, torch.Tensor]) -> None:
        self._load_buffers(prefix, tensors, ("square_avg",))
