"""An MLP tower's forward and backward as one autograd node: the loss stays autograd's, the tower's chain rule is ours.

On a CPU the networks of classic control are small enough that a gradient step's time goes to dispatch
(nn.Module calls, one autograd node and AccumulateGrad per op and parameter) more than to arithmetic. A
`Linear -> act -> ... -> Linear -> act` tower (act: tanh or ReLU) here runs as one `torch.autograd.Function`:
the forward is `addmm` + in-place activation per layer, the backward the chain rule through those layers
with plain matmuls. It knows nothing of the loss above it: autograd hands it dL/d(output), whatever loss
that came from. tests/test_fast.py checks outputs and every gradient against the module path.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

_tanh_backward = torch.ops.aten.tanh_backward.default  # (grad, tanh output) -> grad * (1 - output^2)
_relu_backward = torch.ops.aten.threshold_backward.default  # (grad, relu output, 0) -> grad * [output > 0]


_ONE, _TWO = torch.tensor(1.0), torch.tensor(2.0)  # 0-d operands: a Python scalar costs a conversion per op


def tanh_(x: torch.Tensor) -> torch.Tensor:
    """tanh in place as 2 sigmoid(2x) - 1: torch's float32 CPU tanh kernel costs about 3x its sigmoid, so this
    is cheaper even as four ops (measured on (256, 64): 25 against 57 us); within 2e-7 of tanh (absolute),
    exact at the saturated ends."""
    return x.mul_(_TWO).sigmoid_().mul_(_TWO).sub_(_ONE)


def weight_grad(grad: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """dL/dW (out, in) = grad^T inputs for grad (B, out) and inputs (B, in). BLAS is slow when the product's
    second dimension is narrow (measured 3x on (64, 256) @ (256, 4)), so the wider side goes second."""
    if inputs.shape[1] < grad.shape[1]:
        return (inputs.t() @ grad).t()  # (in, out) transposed: a view
    return grad.t() @ inputs


def chain_forward(x: torch.Tensor, params: tuple[torch.Tensor, ...], relu: bool, last_linear: bool) -> list[torch.Tensor]:
    """[x, h_1, ..., h_L] of `Linear -> act` layers, weights (out, in) and biases (out,) interleaved in `params`;
    with `last_linear` the last layer has no activation (a head)."""
    acts = [x]
    n_layers = len(params) // 2
    for layer in range(n_layers):
        pre = torch.addmm(params[2 * layer + 1], acts[-1], params[2 * layer].t())  # (B, out)
        if not (last_linear and layer == n_layers - 1):
            pre = pre.relu_() if relu else tanh_(pre)
        acts.append(pre)
    return acts


def chain_backward(grad: torch.Tensor, acts: list[torch.Tensor], params: tuple[torch.Tensor, ...], relu: bool,
                   last_linear: bool, need_input_grad: bool) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """The chain rule back through `chain_forward`'s layers from dL/d(output): ([dL/dW_1, dL/db_1, ...], dL/dx)."""
    n_layers = len(params) // 2
    grads: list[torch.Tensor] = [grad] * len(params)  # every slot is overwritten below
    for layer in range(n_layers - 1, -1, -1):
        if not (last_linear and layer == n_layers - 1):
            # dL/d(pre-activation): grad * [h > 0] for ReLU, grad * (1 - h^2) for tanh, each one kernel
            grad = _relu_backward(grad, acts[layer + 1], 0.0) if relu else _tanh_backward(grad, acts[layer + 1])
        grads[2 * layer] = weight_grad(grad, acts[layer])  # (out, in) dL/dW
        grads[2 * layer + 1] = grad.sum(0)  # (out,) dL/db
        if layer > 0 or need_input_grad:
            grad = grad @ params[2 * layer]  # (B, in) dL/dh_{layer}
    return grads, grad if need_input_grad else None


class MLPTowerFunction(torch.autograd.Function):
    """y = act(W_L ... act(W_1 x + b_1) ... + b_L) for x (B, in), weights (out, in) and biases (out,) interleaved."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, relu: bool, *params: torch.Tensor) -> torch.Tensor:
        acts = chain_forward(x, params, relu, last_linear=False)  # [x, h_1, ..., h_L]
        ctx.acts, ctx.relu, ctx.params = acts, relu, params
        return acts[-1]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        grads, grad_x = chain_backward(grad, ctx.acts, ctx.params, ctx.relu, last_linear=False,
                                       need_input_grad=ctx.needs_input_grad[0])
        return (grad_x, None, *grads)


class MLPTower(nn.Sequential):
    """The same `Linear, act, Linear, act, ...` layers (same parameters, same state_dict keys) run by
    MLPTowerFunction in training and by the layers themselves elsewhere (inference, export)."""

    def __init__(self, layers: nn.Sequential) -> None:
        super().__init__(*layers)
        self.relu = isinstance(layers[1], nn.ReLU)
        self.linears = [m for m in layers if isinstance(m, nn.Linear)]

    @staticmethod
    def supports(layers: nn.Module) -> bool:
        """A non-empty `Linear, act, ...` Sequential with one activation kind, tanh or ReLU."""
        if not isinstance(layers, nn.Sequential) or len(layers) == 0 or len(layers) % 2:
            return False
        linears, acts = list(layers)[0::2], list(layers)[1::2]
        return (all(isinstance(m, nn.Linear) for m in linears)
                and (all(isinstance(m, nn.Tanh) for m in acts) or all(isinstance(m, nn.ReLU) for m in acts)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled():  # no backward follows: the layers' own forward is as cheap
            return super().forward(x)
        params = [p for linear in self.linears for p in (linear.weight, linear.bias)]
        return MLPTowerFunction.apply(x, self.relu, *params)  # (B, out)
