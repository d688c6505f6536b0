"""A feed-forward MLP actor-critic's rollout forward as one chain of matmuls: actor and critic side by side.

With small networks on CPU, the time of a rollout step goes to dispatch (module calls, one small op after
another), not to arithmetic. Here the actor and critic MLPs run side by side: layer 1 stacks both weight
matrices ([W_actor; W_critic] on the same input), deeper layers and the heads are block-diagonal, so the
whole forward is one `addmm` + activation per layer. Same function as `ActorCritic.act_value`
(tests/test_fast.py checks it). The stacked weights are a copy: `for_rollout` re-reads the live
parameters and is what the collector calls at the start of every rollout.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch
from torch import nn

from rlsuite.agents.actor_critic import ActorCritic
from rlsuite.policies import ACTIVATIONS, CategoricalHead, GaussianHead, MLPEncoder
from rlsuite.policies.heads import ActionDist, CategoricalDist, GaussianDist


class FusedMLPForward:
    """The rollout-time forward of a feed-forward MLP actor-critic (flat Box observations; Categorical or
    Gaussian actions) as one chain of matmuls, no nn.Module calls; `for_rollout` each rollout."""

    def __init__(self, network: ActorCritic) -> None:
        self.network = network
        self.layers: list[tuple[torch.Tensor, torch.Tensor]] = []  # (W^T (in, out), b (out,)) per fused layer
        self.blocks: list[list[tuple[nn.Linear, slice, slice]]] = []
        self.activation: Any = None
        self.n_out = 0  # width of the actor head's output (logits or means)
        self.copies: list[tuple[torch.Tensor, torch.Tensor, nn.Linear]] = []  # (W^T block, b block, its layer)
        self.refresh()

    @staticmethod
    def supports(network: ActorCritic) -> bool:
        encoders = (network.actor_encoder, network.critic_encoder)
        return (network.core is None and network.front is None and isinstance(network.actor, (CategoricalHead, GaussianHead))
                and all(isinstance(e, MLPEncoder) and e.kind == "flat" for e in encoders))

    def _linears(self, encoder: nn.Module) -> list[nn.Linear]:
        return [m for m in encoder.modules() if isinstance(m, nn.Linear)]  # in forward order

    def for_rollout(self) -> FusedMLPForward:
        """This forward with the stacked weights re-read from the live parameters: call once per rollout."""
        self.refresh()
        return self

    @torch.no_grad()
    def refresh(self) -> None:
        """Copy the live parameters into the fused weights (the blocks and parameter views are found once)."""
        for w_block, b_block, linear in self.copies:  # every call but the first: only the copies; the parameters
            w_block.copy_(linear.weight.t())  # are read anew each time (an optimiser may have rebound their storage)
            b_block.copy_(linear.bias)
        if self.copies:
            return
        # first call: allocate the fused (W^T, b) per layer, zeros off the diagonal blocks; find where each goes
        net = self.network
        head = cast(nn.Linear, net.actor.linear if isinstance(net.actor, CategoricalHead) else net.actor.mean)
        actor = self._linears(net.actor_encoder) + [head]
        shared = net.critic_encoder is net.actor_encoder
        critic_head = cast(nn.Linear, net.critic.linear)
        critic = [critic_head] if shared else self._linears(net.critic_encoder) + [critic_head]
        self.activation = next(m for m in net.actor_encoder.modules() if isinstance(m, tuple(ACTIVATIONS.values())))
        self.n_out = head.weight.shape[0]
        self.blocks = self._blocks(actor, critic, shared)
        self.layers = [(torch.zeros(n_in, n_out), torch.zeros(n_out)) for n_in, n_out in self._sizes()]
        for (w_t, b), layer_blocks in zip(self.layers, self.blocks, strict=True):
            for linear, rows, cols in layer_blocks:  # W^T[rows, cols] = W.T, b[cols] = bias
                self.copies.append((w_t[rows, cols], b[cols], linear))
        self.refresh()

    def _blocks(self, actor: list[nn.Linear], critic: list[nn.Linear], shared: bool) -> list[list[tuple[nn.Linear, slice, slice]]]:
        """Where each original layer sits in the fused ones: (linear, input rows, output columns)."""
        blocks = []
        if shared:  # one chain; only the last layer holds both heads side by side
            for linear in actor[:-1]:
                blocks.append([(linear, slice(None), slice(None))])
            last_a, last_c = actor[-1], critic[-1]
            blocks.append([(last_a, slice(None), slice(0, last_a.out_features)),
                           (last_c, slice(None), slice(last_a.out_features, None))])
            return blocks
        for i, (la, lc) in enumerate(zip(actor, critic, strict=True)):
            rows_a = slice(None) if i == 0 else slice(0, la.in_features)  # layer 1: both read the observation
            rows_c = slice(None) if i == 0 else slice(la.in_features, None)
            blocks.append([(la, rows_a, slice(0, la.out_features)), (lc, rows_c, slice(la.out_features, None))])
        return blocks

    def _sizes(self) -> list[tuple[int, int]]:
        sizes = []
        for layer_blocks in self.blocks:
            first = layer_blocks[0][0]
            n_in = first.in_features if layer_blocks[0][1] == slice(None) else sum(lin.in_features for lin, _, _ in layer_blocks)
            sizes.append((n_in, sum(lin.out_features for lin, _, _ in layer_blocks)))
        return sizes

    def distribution(self, obs: torch.Tensor) -> tuple[ActionDist, torch.Tensor]:
        """(action distribution, V (B,)) for a (B, ...) float observation, as `ActorCritic.act_value`."""
        x = obs.reshape(obs.shape[0], -1).float()  # (B, in)
        act = self.activation
        for w_t, b in self.layers[:-1]:
            x = act(torch.addmm(b, x, w_t))  # (B, hidden_actor + hidden_critic)
        w_t, b = self.layers[-1]
        out = torch.addmm(b, x, w_t)  # (B, n_out + 1): actor head outputs, then V
        head_out, value = out[:, : self.n_out], out[:, self.n_out]
        head = self.network.actor
        if isinstance(head, CategoricalHead):
            return CategoricalDist(head_out, head.start), value
        gaussian = cast(GaussianHead, head)  # supports() admits only Categorical and Gaussian heads
        return GaussianDist(head_out, gaussian.log_std, gaussian.low, gaussian.high, gaussian.tanh,
                            gaussian.log_half_range), value

    def __call__(self, obs: torch.Tensor, state: Any = None, starts: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray, None]:
        """A rollout step (agents/rollout.py: RolloutStep); call under torch.inference_mode."""
        dist, value = self.distribution(obs)
        action = dist.sample()
        return action, dist.log_prob(action), value, dist.to_env(action).cpu().numpy(), None

    def value(self, obs: torch.Tensor, state: Any = None, starts: torch.Tensor | None = None) -> torch.Tensor:
        return self.distribution(obs)[1]


class NumpyCategoricalStep(FusedMLPForward):
    """FusedMLPForward's rollout step for a Categorical head on the CPU, computed in NumPy from views of the same
    stacked weights: a step sees a handful of observations, and NumPy dispatches such small ops several times
    faster than torch. The randomness is torch's: the Exp(1) draws of CategoricalDist.sample's Gumbel-max come
    from torch's generator, in the same shape and order, so the actions are those the module path samples."""

    def __init__(self, network: ActorCritic) -> None:
        super().__init__(network)
        self.np_layers = [(w_t.numpy(), b.numpy()) for w_t, b in self.layers]  # views: refresh() updates them
        self.relu = isinstance(self.activation, nn.ReLU)
        self.start = cast(CategoricalHead, network.actor).start

    @staticmethod
    def supports(network: ActorCritic) -> bool:
        return (FusedMLPForward.supports(network) and isinstance(network.actor, CategoricalHead)
                and next(network.parameters()).device.type == "cpu"
                and any(isinstance(m, (nn.Tanh, nn.ReLU)) for m in network.actor_encoder.modules()))

    def _out(self, obs: torch.Tensor) -> np.ndarray:
        x = obs.numpy().reshape(len(obs), -1).astype(np.float32, copy=False)  # (N, in)
        for w_t, b in self.np_layers[:-1]:
            x = x @ w_t
            x += b  # (N, hidden_actor + hidden_critic)
            if self.relu:
                np.maximum(x, 0.0, out=x)
            else:
                np.tanh(x, out=x)
        w_t, b = self.np_layers[-1]
        return x @ w_t + b  # (N, n_out + 1): logits, then V

    def __call__(self, obs: torch.Tensor, state: Any = None, starts: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray, None]:
        out = self._out(obs)
        logits = out[:, : self.n_out]  # (N, n)
        shifted = logits - logits.max(axis=1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # (N, n) log-softmax
        exp_draws = torch.empty(logp.shape).exponential_().numpy()  # (N, n) Exp(1), as CategoricalDist.sample
        action = (logp - np.log(exp_draws)).argmax(axis=1)  # (N,) Gumbel-max: an exact categorical sample
        rows = np.arange(len(action))
        return (torch.from_numpy(action), torch.from_numpy(logp[rows, action]), torch.from_numpy(out[:, self.n_out]),
                action + self.start if self.start else action, None)

    def value(self, obs: torch.Tensor, state: Any = None, starts: torch.Tensor | None = None) -> torch.Tensor:
        return torch.from_numpy(self._out(obs)[:, self.n_out])  # (N,)
