"""The speed seam: faster implementations of pieces of the plain PyTorch path, each tested equal to it.

The agents are written in plain PyTorch (module forward, autograd through their one loss function,
a flat-buffer Adam or RMSprop). On a CPU with the small networks of classic control a step's time goes to
dispatch, not arithmetic, so two pieces have faster versions here, and only here:

- `MLPTower` (fast/mlp.py): a `Linear -> tanh|ReLU -> ...` tower as one autograd node with its own
  hand-written backward. Loss-independent: autograd still differentiates the loss down to the tower.
- `FusedMLPForward` (fast/rollout.py): the rollout forward of a feed-forward MLP actor-critic as one matmul
  per layer for actor and critic together.
- `NatureCNN.forward_channels_last` (policies/encoders.py) for a Nature CNN on the CPU: the same function to
  float tolerance, its convolutions' oneDNN backward 1.1-1.35x cheaper per PPO update (docs/atari.md).

An agent calls `accelerate` once on its training network and hands `rollout_forward` to its collector;
both pick a fast piece only where it supports the network (and `fast=true` in the settings), else keep the
plain path, so the agent files never branch on it. Checkpoints and loaded policies are plain modules either
way (same parameters, same state_dict keys). tests/test_fast.py is the contract: outputs and gradients
equal to the plain path.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from rlsuite.agents.actor_critic import ActorCritic
from rlsuite.agents.fast.mlp import MLPTower, MLPTowerFunction
from rlsuite.agents.fast.rollout import FusedMLPForward
from rlsuite.agents.rollout import RolloutForward
from rlsuite.policies import MLPEncoder, NatureCNN

__all__ = ["FusedMLPForward", "MLPTower", "MLPTowerFunction", "accelerate", "rollout_forward"]


def accelerate(network: nn.Module, enabled: bool = True) -> list[str]:
    """Run every MLP encoder tower of `network` that MLPTower supports as an MLPTower, and every Nature CNN on
    the CPU by its channels-last forward (same parameters, same state_dict keys); returns the names of the
    modules changed (none when not `enabled`). Call after moving the network to its device."""
    swapped = []
    for name, module in list(network.named_modules()):
        if not enabled:
            break
        if isinstance(module, MLPEncoder) and MLPTower.supports(module.net):
            module.net = MLPTower(module.net)
            swapped.append(f"{name}.net")
        elif isinstance(module, NatureCNN) and next(module.parameters()).device.type == "cpu":
            module.forward = module.forward_channels_last  # type: ignore[method-assign]
            swapped.append(name)
    return swapped


def rollout_forward(network: ActorCritic, enabled: bool = True) -> Callable[[], RolloutForward]:
    """What RolloutCollector calls at the start of every rollout for the forward it acts with: the fused
    forward where it supports `network` (and `enabled`), else the network's own `act_value`."""
    if enabled and FusedMLPForward.supports(network):
        return FusedMLPForward(network).for_rollout
    return lambda: network.act_value
