"""A feed-forward MLP actor-critic's training forward (both towers and both heads) as one autograd node.

With separate actor and critic MLPs on flat observations (classic control's networks), a gradient step
spends as much time on dispatch (module calls, an autograd node and a backward call per layer and head) as
on arithmetic. `FusedActorCritic.act_value` computes what `ActorCritic.act_value` computes, with the same
kernels in the same order, as one `torch.autograd.Function` whose backward is the chain rule through the
towers and their linear heads (fast/mlp.py). It knows nothing of the loss: autograd differentiates the
agent's loss down to the head outputs and hands this node dL/d(logits or means) and dL/dV.
tests/test_fast.py checks outputs and every gradient against the module path.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

from rlsuite.agents.actor_critic import ActorCritic
from rlsuite.agents.fast.mlp import chain_backward, chain_forward
from rlsuite.policies import CategoricalHead, GaussianHead, MLPEncoder
from rlsuite.policies.heads import ActionDist, CategoricalDist, GaussianDist


class ActorCriticFunction(torch.autograd.Function):
    """(actor head output (B, n_out), V (B,)) of an actor chain and a critic chain on the same input x (B, in);
    each chain is `Linear -> act -> ... -> Linear` (the last one its head), parameters interleaved
    (weight, bias), the actor's `n_actor` first."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, relu: bool, n_actor: int, *params: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        actor, critic = params[:n_actor], params[n_actor:]
        actor_acts = chain_forward(x, actor, relu, last_linear=True)  # [x, h_1, ..., head output (B, n_out)]
        critic_acts = chain_forward(x, critic, relu, last_linear=True)  # [x, g_1, ..., V (B, 1)]
        ctx.actor_acts, ctx.critic_acts, ctx.relu, ctx.actor, ctx.critic = actor_acts, critic_acts, relu, actor, critic
        return actor_acts[-1], critic_acts[-1].squeeze(1)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor, grad_value: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        need_x = ctx.needs_input_grad[0]
        actor_grads, actor_x = chain_backward(grad_out, ctx.actor_acts, ctx.actor, ctx.relu, True, need_x)
        critic_grads, critic_x = chain_backward(grad_value.unsqueeze(1), ctx.critic_acts, ctx.critic, ctx.relu, True, need_x)
        grad_x = actor_x + critic_x if actor_x is not None and critic_x is not None else None
        return (grad_x, None, None, *actor_grads, *critic_grads)


class FusedActorCritic:
    """`ActorCritic.act_value` of a feed-forward network with separate MLP towers on flat observations and a
    Categorical or Gaussian head, through ActorCriticFunction; the parameters are the network's own."""

    def __init__(self, network: ActorCritic) -> None:
        self.network = network
        actor_head = network.actor.linear if isinstance(network.actor, CategoricalHead) else network.actor.mean
        actor = _linears(network.actor_encoder) + [cast(nn.Linear, actor_head)]
        critic = _linears(network.critic_encoder) + [cast(nn.Linear, network.critic.linear)]
        self.actor_params = [p for linear in actor for p in (linear.weight, linear.bias)]
        self.critic_params = [p for linear in critic for p in (linear.weight, linear.bias)]
        self.relu = any(isinstance(m, nn.ReLU) for m in network.actor_encoder.modules())

    @staticmethod
    def supports(network: ActorCritic) -> bool:
        """Separate actor and critic MLPs (tanh or ReLU) on a flat Box, no front, no LSTM, Categorical or Gaussian head."""
        encoders = (network.actor_encoder, network.critic_encoder)
        if (network.core is not None or network.front is not None or network.critic_encoder is network.actor_encoder
                or not isinstance(network.actor, (CategoricalHead, GaussianHead))
                or not all(isinstance(e, MLPEncoder) and e.kind == "flat" for e in encoders)):
            return False
        kinds = {type(m) for e in encoders for m in cast(MLPEncoder, e).net if not isinstance(m, nn.Linear)}
        return kinds in ({nn.Tanh}, {nn.ReLU})

    def act_value(self, obs: torch.Tensor, state: Any = None,
                  episode_starts: torch.Tensor | None = None) -> tuple[ActionDist, torch.Tensor, Any]:
        """(action distribution, V (B,), None) for (B, ...) observations, as `ActorCritic.act_value`."""
        x = obs.reshape(obs.shape[0], -1).float()  # (B, in), as MLPEncoder.encode_input for a flat Box
        head_out, value = ActorCriticFunction.apply(x, self.relu, len(self.actor_params),
                                                    *self.actor_params, *self.critic_params)
        head = self.network.actor
        if isinstance(head, CategoricalHead):
            return CategoricalDist(head_out, head.start), value, None
        gaussian = cast(GaussianHead, head)
        return (GaussianDist(head_out, gaussian.log_std, gaussian.low, gaussian.high, gaussian.tanh,
                             gaussian.log_half_range), value, None)


def _linears(encoder: nn.Module) -> list[nn.Linear]:
    return [m for m in encoder.modules() if isinstance(m, nn.Linear)]  # in forward order
