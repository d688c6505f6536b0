"""The speed seam: faster implementations of pieces of the plain PyTorch path, each tested equal to it.

The agents are written in plain PyTorch (module forward, autograd through their one loss function,
a flat-buffer Adam or RMSprop). On a CPU with the small networks of classic control a step's time goes to
dispatch, not arithmetic, so these pieces have faster versions here, and only here:

- `FusedActorCritic` (fast/actor_critic.py): `ActorCritic.act_value` of separate actor and critic MLPs on a
  flat observation, both towers and both heads as one autograd node with its own hand-written backward.
  Loss-independent: autograd still differentiates the loss down to the head outputs. Their tanh is
  2 sigmoid(2x) - 1 (fast/mlp.py: `tanh_`), within 2e-7 of torch's, whose float32 CPU kernel costs about 3x.
- `MLPTower` (fast/mlp.py): the same for one `Linear -> tanh|ReLU -> ...` tower, for the MLP networks the
  fused actor-critic does not cover (a shared encoder, a named network in front).
- `FusedMLPForward` (fast/rollout.py): the rollout step of a feed-forward MLP actor-critic as one matmul
  per layer for actor and critic together; `NumpyCategoricalStep` runs it in NumPy for a Categorical head on
  the CPU, sampling from torch's generator exactly as the module path does.
- `NatureCNN.forward_channels_last` (policies/encoders.py) for a channel-first Nature CNN on the CPU: the same function to
  float tolerance, its convolutions' oneDNN backward 1.1-1.35x cheaper per PPO update (docs/atari.md).
- `FlatAdam` and `FlatRMSprop` (fast/optim.py): torch.optim's Adam and RMSprop over the parameters held in one
  buffer, so clipping and the update are a few ops rather than a loop over parameter tensors.

An agent calls `accelerate` once on its training network (its loss calls `network.act_value`), hands
`rollout_step` to its collector and takes its optimiser from `optimizer`; each picks a fast piece only where it
supports the network, else keeps the plain path, so the agent files never branch on it. Checkpoints and loaded policies are plain modules either
way (same parameters, same state_dict keys). tests/test_fast.py is the contract: outputs and gradients
equal to the plain path (tests/test_optim.py for the optimisers: step for step equal to torch.optim's).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from rlsuite.agents.actor_critic import ActorCritic
from rlsuite.agents.fast.actor_critic import ActorCriticFunction, FusedActorCritic
from rlsuite.agents.fast.mlp import MLPTower, MLPTowerFunction
from rlsuite.agents.fast.optim import FlatAdam, FlatParameters, FlatRMSprop
from rlsuite.agents.fast.rollout import FusedMLPForward, NumpyCategoricalStep
from rlsuite.agents.optim import Optimizer, OptimizerKind, TorchOptimizer
from rlsuite.agents.rollout import ModuleStep, RolloutStep
from rlsuite.policies import MLPEncoder, NatureCNN

__all__ = ["ActorCriticFunction", "FlatAdam", "FlatRMSprop", "FusedActorCritic", "FusedMLPForward", "MLPTower",
           "MLPTowerFunction", "NumpyCategoricalStep", "accelerate", "optimizer", "rollout_step"]


def accelerate(network: nn.Module) -> list[str]:
    """Run `network.act_value` by FusedActorCritic where it supports the network; else every MLP encoder tower
    that MLPTower supports as an MLPTower, and every Nature CNN on the CPU by its channels-last forward. Same
    parameters, same state_dict keys; returns the names of what changed. Call after moving the network to its
    device."""
    if isinstance(network, ActorCritic) and FusedActorCritic.supports(network):
        network.act_value = FusedActorCritic(network).act_value  # type: ignore[method-assign]
        return ["act_value"]
    swapped = []
    for name, module in list(network.named_modules()):
        if isinstance(module, MLPEncoder) and MLPTower.supports(module.net):
            module.net = MLPTower(module.net)
            swapped.append(f"{name}.net")
        elif (isinstance(module, NatureCNN) and module.input.layout.order == "chw"
              and next(module.parameters()).device.type == "cpu"):
            module.forward = module.forward_channels_last  # type: ignore[method-assign]
            swapped.append(name)
    return swapped


def rollout_step(network: ActorCritic) -> Callable[[], RolloutStep]:
    """What RolloutCollector calls at the start of every rollout for the step it acts with (re-reading the
    weights): the NumPy step, else the fused one, where they support `network`, else the plain ModuleStep."""
    for fast_step in (NumpyCategoricalStep, FusedMLPForward):
        if fast_step.supports(network):
            return fast_step(network).for_rollout
    return lambda: ModuleStep(network)


def optimizer(module: nn.Module, kind: OptimizerKind, lr: float, eps: float, alpha: float = 0.99) -> Optimizer:
    """Adam (betas 0.9, 0.999) or RMSprop (`alpha`) over the trainable parameters of `module`: FlatAdam or
    FlatRMSprop where FlatParameters supports the module, torch.optim's through TorchOptimizer otherwise.
    Call after moving the module to its device."""
    if FlatParameters.supports(module):
        return FlatAdam(module, lr=lr, eps=eps) if kind == "adam" else FlatRMSprop(module, lr=lr, alpha=alpha, eps=eps)
    return TorchOptimizer(module, kind, lr=lr, eps=eps, alpha=alpha)
