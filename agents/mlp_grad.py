"""Forward and backward of plain MLP towers as explicit matmuls, for the agents' CPU fast paths.

On a CPU the networks of classic control are small enough that a gradient step's time goes to dispatch
(nn.Module calls, autograd's graph and engine, one small op after another) more than to arithmetic. PPO
(agents/onpolicy.py: HandGradMLP) and DQN (agents/dqn.py: MLPQFunction) hand the loss's gradient at the
top of a `Linear -> activation -> ... -> Linear -> activation` tower to `mlp_backward`, which runs the chain
rule with plain matmuls and writes every parameter's gradient in place with `out=` (into FlatAdam's flat
gradient buffer, agents/optim.py, so nothing needs zeroing or accumulating). The weights are read live from
the modules, so nothing needs refreshing after an optimiser step. Each agent's tests compare the result
with autograd through the same modules.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

_tanh_backward = torch.ops.aten.tanh_backward.default  # (grad, tanh output) -> grad * (1 - output^2)
_relu_backward = torch.ops.aten.threshold_backward.default  # (grad, relu output, 0) -> grad * [output > 0]


def mlp_forward(layers: Sequence[nn.Linear], x: torch.Tensor, relu: bool) -> list[torch.Tensor]:
    """Activations [x, h_1, ..., h_L] of `act(Linear(...))` layers for x (B, in); call without gradients."""
    acts = [x]
    for linear in layers:
        pre = torch.addmm(linear.bias, acts[-1], linear.weight.t())  # (B, out)
        acts.append(pre.relu_() if relu else pre.tanh_())
    return acts


def linear_backward(linear: nn.Linear, inputs: torch.Tensor, grad_out: torch.Tensor) -> None:
    """Write dL/dW (out, in) and dL/db (out,) of `linear` from its inputs (B, in) and dL/d(output) (B, out)."""
    assert linear.weight.grad is not None and linear.bias.grad is not None  # views into FlatAdam's buffer
    torch.mm(grad_out.t(), inputs, out=linear.weight.grad)  # (out, in)
    torch.sum(grad_out, 0, out=linear.bias.grad)  # (out,)


def mlp_backward(layers: Sequence[nn.Linear], acts: Sequence[torch.Tensor], grad: torch.Tensor, relu: bool) -> None:
    """Write the gradients of every layer of a `mlp_forward` tower from grad = dL/dh_L (B, H_L)."""
    for i in range(len(layers) - 1, -1, -1):
        # dL/d(pre-activation): grad * [h > 0] for ReLU, grad * (1 - h^2) for tanh, each one kernel
        grad = _relu_backward(grad, acts[i + 1], 0.0) if relu else _tanh_backward(grad, acts[i + 1])
        linear_backward(layers[i], acts[i], grad)
        if i > 0:
            grad = grad @ layers[i].weight  # (B, in) dL/dh_{i}
