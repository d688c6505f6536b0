"""Proximal Policy Optimization (Schulman et al. 2017), clipped surrogate with GAE, read top to bottom.

The order is CleanRL's: settings, network, then the loop (rollout, returns, minibatch updates, logging).
Plumbing (run folder, checkpoints, metrics, normalisers) is imported from beside this file; the network
is assembled from the shared backbone in rlsuite.policies.

Vector envs use next-step autoreset (envs/factory.py): the step after an episode ends is a reset step
whose action is ignored. Such steps are stored but masked out of every loss (`valid`), and the final
observation of an episode arrives as an ordinary next observation, so truncated episodes bootstrap
from V(final observation) without any `final_obs` bookkeeping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlsuite.agents import fast
from rlsuite.agents.actor_critic import (
    ActorCritic,
    ActorCriticPolicy,
    ActorCriticSettings,
    check_actor_critic_spaces,
    load_actor_critic_policy,
)
from rlsuite.agents.interface import AgentError, TrainContext, TrainResult
from rlsuite.agents.logger import LazyMetrics
from rlsuite.agents.onpolicy_setup import build_on_policy
from rlsuite.agents.rollout import (
    Rollout,
    compute_gae,
    explained_variance,
    masked_mean,
    normalize_advantages,
)
from rlsuite.agents.run_loop import RunLoop
from rlsuite.agents.settings import ConfigError
from rlsuite.agents.tensors import flatten_obs, index_obs
from rlsuite.policies.spoken_pointer import NETWORKS, make_front

__all__ = ["AgentError", "ActorCritic", "PPOPolicy", "PPOSettings", "check_spaces", "clipped_surrogate_loss",
           "compute_gae", "load_policy", "make_network", "ppo_loss", "train"]

AGENT_NAME = "ppo"


@dataclass
class PPOSettings(ActorCriticSettings):
    """PPO's hyperparameters; the network and normaliser fields come from ActorCriticSettings."""

    learning_rate: float = 2.5e-4
    """Adam step size at the start of training."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to 0 over training."""
    n_steps: int = 128
    """Env steps per sub-env per rollout; a rollout holds n_envs * n_steps transitions."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda: 0 is one-step TD, 1 is Monte Carlo."""
    n_minibatches: int = 4
    """Gradient steps per epoch; each takes n_envs * n_steps / n_minibatches transitions (whole env
    sequences when recurrent)."""
    n_epochs: int = 10
    """Passes over each rollout."""
    clip_coef: float = 0.2
    """PPO ratio clip."""
    anneal_clip: bool = False
    """Decay the clip coefficient linearly to 0 (RL Zoo's `lin_0.2`)."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient."""
    vf_coef: float = 0.5
    """Value loss coefficient."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    target_kl: float | None = None
    """Stop the epochs of an update early once the approximate KL exceeds this (None: never)."""
    network: str | None = None
    """A named network from rlsuite.policies in front of the actor and critic MLPs (spoken_pointer), with its
    auxiliary loss added to PPO's; None: the MLPs read the observation itself."""
    network_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the named network, e.g. {classes: 4, select: "state:8:16", offset: "6:8"}."""

    def validate(self) -> None:
        super().validate()
        batch_size = self.n_envs * self.n_steps
        if not 1 <= self.n_minibatches <= batch_size:
            raise ConfigError(f"n_minibatches must lie in [1, n_envs * n_steps = {batch_size}], got {self.n_minibatches}.")
        if self.recurrent and self.n_minibatches > self.n_envs:
            raise ConfigError(
                f"recurrent PPO splits minibatches by env: n_minibatches={self.n_minibatches} cannot exceed "
                f"n_envs={self.n_envs}; lower n_minibatches or raise n_envs."
            )
        for name in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must lie in [0, 1], got {getattr(self, name)}.")
        if self.n_steps < 1 or self.n_epochs < 1 or self.learning_rate <= 0 or self.clip_coef <= 0:
            raise ConfigError("n_steps, n_epochs, learning_rate and clip_coef must all be positive.")
        self.require(self.network is None or self.network in NETWORKS, "network", f"must be one of {sorted(NETWORKS)} or unset")
        self.require(self.network is not None or not self.network_kwargs, "network_kwargs", "needs network set")
        self.require(self.network is None or not self.recurrent, "network", "takes a feed-forward network: recurrent=false")


Settings = PPOSettings
PPOPolicy = ActorCriticPolicy


def check_spaces(observation_space: gym.Space, action_space: gym.Space) -> None:
    """PPO handles Discrete, MultiDiscrete and Box actions over any observation our encoders read."""
    check_actor_critic_spaces(AGENT_NAME, observation_space, action_space)



def make_network(observation_space: gym.Space, action_space: gym.Space, s: PPOSettings) -> ActorCritic:
    """The actor-critic, behind the named network `s.network` when one is set."""
    front = None
    if s.network is not None:
        try:
            front = make_front(s.network, observation_space, s.network_kwargs, hidden_sizes=s.hidden_sizes,
                               activation=s.activation, cnn=s.cnn)
        except ValueError as err:
            raise ConfigError(str(err)) from None
    return ActorCritic(observation_space, action_space, s, front)


def clipped_surrogate_loss(ratio: torch.Tensor, advantages: torch.Tensor, clip_coef: float) -> torch.Tensor:
    """-min(r A, clip(r, 1-eps, 1+eps) A) with r = pi_new / pi_old (per-sample, not reduced)."""
    return torch.max(-advantages * ratio, -advantages * ratio.clamp(1.0 - clip_coef, 1.0 + clip_coef))


def ppo_loss(network: ActorCritic, mb: dict[str, Any], clip_coef: float, s: PPOSettings,
             mean: Callable[[torch.Tensor], torch.Tensor] = torch.mean, state: Any = None,
             starts: torch.Tensor | None = None) -> tuple[torch.Tensor, LazyMetrics]:
    """PPO's loss on a minibatch: clipped surrogate + vf_coef * value loss - ent_coef * entropy, plus the named
    network's auxiliary loss; and its terms for the logs (no gradient, each computed when read). `mb` holds obs,
    actions and the rollout's logprobs, advantages (as the surrogate takes them: `epochs` normalises them per
    minibatch), returns (and aux: info values), rows averaged by `mean`; `state` and `starts` (T, B) feed a
    recurrent core."""
    dist, new_value, _ = network.act_value(mb["obs"], state, starts)  # new_value (B,)
    log_ratio = dist.log_prob(mb["actions"]) - mb["logprobs"]  # (B,) log(pi_new / pi_old)
    ratio = log_ratio.exp()
    pg_loss = mean(clipped_surrogate_loss(ratio, mb["advantages"], clip_coef))
    v_loss = 0.5 * mean((new_value - mb["returns"]) ** 2)
    loss = pg_loss + s.vf_coef * v_loss
    entropy = mean(dist.entropy()) if s.ent_coef else None  # a loss term, or only logged
    if entropy is not None:
        loss = loss - s.ent_coef * entropy
    aux_loss, aux_terms = network.aux_loss(mb.get("aux", {}), mean)
    if aux_loss is not None:
        loss = loss + aux_loss

    def logged_entropy() -> torch.Tensor:
        with torch.no_grad():
            return entropy.detach() if entropy is not None else mean(dist.entropy())

    def approx_kl() -> torch.Tensor:  # http://joschu.net/blog/kl-approx.html
        return mean((ratio.detach() - 1) - log_ratio.detach())

    def clipfrac() -> torch.Tensor:
        return mean(((ratio.detach() - 1.0).abs() > clip_coef).float())

    return loss, LazyMetrics(policy_loss=pg_loss.detach, value_loss=v_loss.detach, entropy=logged_entropy,
                             approx_kl=approx_kl, clipfrac=clipfrac, **aux_terms)


def flat_batch(rollout: Rollout, advantages: torch.Tensor, returns: torch.Tensor, keep_resets: bool) -> dict[str, Any]:
    """The rollout as (T*N, ...) rows for the loss; without `keep_resets` (feed-forward networks) the reset
    steps are left out once, so every mean over the rows is a plain one."""
    valid = torch.as_tensor(rollout.valid, device=rollout.device)
    batch: dict[str, Any] = {"obs": flatten_obs(rollout.obs), "actions": rollout.actions, "logprobs": rollout.logprobs,
                             "advantages": advantages, "returns": returns, "valid": valid}
    batch = {k: v if k == "obs" else v.flatten(0, 1) for k, v in batch.items()}
    batch["aux"] = {k: torch.as_tensor(v.reshape(-1, *v.shape[2:]), device=rollout.device) for k, v in rollout.aux.items()}
    if keep_resets:
        return batch
    keep = torch.from_numpy(np.flatnonzero(rollout.valid.reshape(-1))).to(rollout.device)  # (K,) real steps
    return take(batch, keep)


def take(batch: dict[str, Any], rows: Any) -> dict[str, Any]:
    """The rows `rows` of every entry (observations and aux values may be dicts of tensors)."""
    return {k: index_obs(v, rows) for k, v in batch.items()}


def epochs(s: PPOSettings, rollout: Rollout, batch: dict[str, Any], recurrent: bool
           ) -> Iterator[list[tuple[dict[str, Any], Any, Any]]]:
    """The update's epochs, each a list of minibatches (rows, LSTM state, episode starts) with advantages
    normalised per minibatch (as SB3's and CleanRL's PPO do by default): shuffled rows, or for a recurrent
    network whole env sequences, so the LSTM replays each from its rollout-start state. A single feed-forward minibatch is the whole batch, the
    same every epoch: no shuffling, no gathering, normalised once."""

    def normalised(mb: dict[str, Any]) -> dict[str, Any]:
        mean = partial(masked_mean, mask=mb["valid"]) if recurrent else torch.mean  # reset steps carry no loss
        return {**mb, "advantages": normalize_advantages(mb["advantages"], mean)}

    if not recurrent and s.n_minibatches == 1:
        whole = [(normalised(batch), None, None)]
        yield from (whole for _ in range(s.n_epochs))
        return
    for _ in range(s.n_epochs):
        if not recurrent:
            row_groups = torch.randperm(len(batch["actions"])).tensor_split(s.n_minibatches)
            yield [(normalised(take(batch, rows)), None, None) for rows in row_groups]
            continue
        assert rollout.initial_state is not None
        starts = torch.as_tensor(rollout.starts, device=rollout.device)  # (T, N)
        out = []
        for group in np.array_split(np.random.permutation(s.n_envs), s.n_minibatches):
            rows = (np.arange(s.n_steps)[:, None] * s.n_envs + group[None, :]).ravel()  # flat index of (t, env): t * N + env
            out.append((normalised(take(batch, rows)), tuple(x[:, group] for x in rollout.initial_state), starts[:, group]))
        yield out


def train(s: PPOSettings, ctx: TrainContext) -> TrainResult:
    # the vector env, the seeded network (agents/fast where it applies), normalisers, policy and rollout collector
    envs, network, obs_normalizer, reward_scaler, policy, collector, device = build_on_policy(
        AGENT_NAME, s, ctx, s.gamma, make_network)
    num_updates = max(1, s.total_steps // (s.n_envs * s.n_steps))
    optimizer = fast.optimizer(network, "adam", lr=s.learning_rate, eps=1e-5)  # flat-buffer Adam where it applies
    run = RunLoop(AGENT_NAME, s, ctx, envs, device=device, seed_rngs=True,
                  parts={"model": network, "optim": optimizer, "obs_rms": obs_normalizer, "ret_rms": reward_scaler})
    run.start()  # fresh (seeded) or resumed: step, update, best return, optimiser, normalisers, RNG

    rollout = Rollout(envs.single_observation_space, envs.single_action_space, s.n_steps, s.n_envs, device)  # (T, N, ...)
    collector.reset(seed=run.env_seed)
    if (carried := run.carry("collector", collector.state)) is not None:
        collector.load_state(carried)  # exact resume: the env and its open episodes continue where they stopped
    recurrent = network.core is not None

    for update in range(run.update + 1, num_updates + 1):
        run.update = update
        progress_left = 1.0 - (update - 1) / num_updates
        lr = s.learning_rate * progress_left if s.anneal_lr else s.learning_rate
        clip_coef = s.clip_coef * progress_left if s.anneal_clip else s.clip_coef
        optimizer.lr = lr

        # --- rollout -------------------------------------------------------------------------------------------
        network.eval()
        run.global_step, _ = collector.collect(rollout, run.global_step)

        # --- returns: a loop over T steps of (N,) vectors, in NumPy (the rewards' home; small ops cost less) ------
        adv_np, ret_np = compute_gae(rollout.rewards, rollout.values.cpu().numpy(), rollout.next_value.cpu().numpy(),
                                     rollout.terminated, rollout.dones, s.gamma, s.gae_lambda)
        advantages, returns = torch.as_tensor(adv_np, device=device), torch.as_tensor(ret_np, device=device)

        # --- minibatch updates ----------------------------------------------------------------------------------
        network.train()
        batch = flat_batch(rollout, advantages, returns, keep_resets=recurrent)
        clipfracs: list[torch.Tensor] = []
        for minibatches in epochs(s, rollout, batch, recurrent):
            for mb, mb_state, mb_starts in minibatches:
                # sequences keep their reset steps for the LSTM; the losses mask them out
                mean = partial(masked_mean, mask=mb["valid"]) if recurrent else torch.mean
                loss, terms = ppo_loss(network, mb, clip_coef, s, mean, mb_state, mb_starts)
                optimizer.zero_grad()
                loss.backward()
                optimizer.clip_grad_norm_(s.max_grad_norm)
                optimizer.step()
                clipfracs.append(terms["clipfrac"])
            if s.target_kl is not None and float(terms["approx_kl"]) > s.target_kl:
                break

        # --- logging (the last minibatch's losses, the update's mean clip fraction), evaluation, checkpoints ------
        valid = torch.as_tensor(rollout.valid, device=device).flatten().bool()
        metrics = {"charts/learning_rate": lr, **{f"losses/{k}": float(v) for k, v in terms.items()},
                   "losses/clipfrac": float(torch.stack(clipfracs).mean()),
                   "losses/explained_variance": explained_variance(rollout.values.flatten()[valid], returns.flatten()[valid])}
        if run.tick(metrics, policy, collector.recent_returns, last=update == num_updates):
            break

    result = run.finish()  # the final `last` checkpoint
    envs.close()
    return result


def load_policy(checkpoint: Path, device: str = "cpu") -> ActorCriticPolicy:
    """Rebuild the network from the checkpoint's settings and the env's spaces; load the weights."""
    return load_actor_critic_policy(checkpoint, PPOSettings, device, build=make_network)
