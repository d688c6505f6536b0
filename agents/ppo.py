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

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn

from rlsuite.agents.interface import AgentError, TrainContext, TrainResult
from rlsuite.agents.normalize import ObsNormalizer, RewardScaler
from rlsuite.agents.onpolicy import (
    ActorCritic,
    ActorCriticPolicy,
    ActorCriticSettings,
    Rollout,
    RolloutCollector,
    TrainingRun,
    check_actor_critic_spaces,
    compute_gae,
    explained_variance,
    load_actor_critic_policy,
)
from rlsuite.agents.settings import ConfigError
from rlsuite.agents.tensors import flatten_obs, index_obs, resolve_device
from rlsuite.envs import make_vec_env

__all__ = ["AgentError", "ActorCritic", "PPOPolicy", "PPOSettings", "check_spaces", "clipped_surrogate_loss",
           "compute_gae", "load_policy", "train"]

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
    clip_vloss: bool = False
    """Clip the value update around the old value estimate (off in SB3 by default)."""
    norm_adv: bool = True
    """Normalise advantages per minibatch."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient."""
    vf_coef: float = 0.5
    """Value loss coefficient."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    target_kl: float | None = None
    """Stop the epochs of an update early once the approximate KL exceeds this (None: never)."""

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


Settings = PPOSettings
PPOPolicy = ActorCriticPolicy


def check_spaces(observation_space: gym.Space, action_space: gym.Space) -> None:
    """PPO handles Discrete, MultiDiscrete and Box actions over any observation our encoders read."""
    check_actor_critic_spaces(AGENT_NAME, observation_space, action_space)


def clipped_surrogate_loss(new_logprob: torch.Tensor, old_logprob: torch.Tensor, advantages: torch.Tensor,
                           clip_coef: float) -> torch.Tensor:
    """-E[min(r A, clip(r, 1-eps, 1+eps) A)] with r = pi_new / pi_old (per-sample, not reduced)."""
    ratio = (new_logprob - old_logprob).exp()
    return torch.max(-advantages * ratio, -advantages * ratio.clamp(1.0 - clip_coef, 1.0 + clip_coef))


def train(s: PPOSettings, ctx: TrainContext) -> TrainResult:
    torch.set_num_threads(s.torch_threads)
    device = resolve_device(s.device)
    envs = make_vec_env(s.env_id, s.n_envs, mode=s.vectorization, record_stats=False)  # the collector counts episodes
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    check_spaces(obs_space, act_space)

    batch_size = s.n_envs * s.n_steps
    n_minibatches = s.n_minibatches
    num_updates = max(1, s.total_steps // batch_size)

    network = ActorCritic(obs_space, act_space, s).to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=s.learning_rate, eps=1e-5, fused=True)  # one kernel for all tensors
    obs_normalizer = ObsNormalizer(obs_space) if s.normalize_obs else None
    reward_scaler = RewardScaler(s.n_envs, s.gamma) if s.normalize_reward else None
    policy = PPOPolicy(network, obs_space, act_space, obs_normalizer, device)
    run = TrainingRun(AGENT_NAME, s, ctx, network, optimizer, obs_normalizer, reward_scaler, device)
    run.start()  # fresh (seeded) or resumed: step, update, best return, optimiser, normalisers, RNG

    rollout = Rollout(obs_space, act_space, s.n_steps, s.n_envs, device)  # (T, N, ...)
    collector = RolloutCollector(envs, network, device, obs_normalizer, reward_scaler, ctx)
    collector.reset(seed=run.env_seed)

    for update in range(run.update + 1, num_updates + 1):
        run.update = update
        progress_left = 1.0 - (update - 1) / num_updates
        lr = s.learning_rate * progress_left if s.anneal_lr else s.learning_rate
        clip_coef = s.clip_coef * progress_left if s.anneal_clip else s.clip_coef
        for group in optimizer.param_groups:
            group["lr"] = lr

        # --- rollout -------------------------------------------------------------------------------------------
        network.eval()
        run.global_step, _ = collector.collect(rollout, run.global_step)

        # --- returns --------------------------------------------------------------------------------------------
        next_value = collector.next_value()
        buf = rollout.scalars()  # rewards, terminated, dones, starts, valid: (T, N)
        advantages, returns = compute_gae(buf["rewards"], rollout.values, next_value, buf["terminated"], buf["dones"],
                                          s.gamma, s.gae_lambda)

        # --- minibatch updates ----------------------------------------------------------------------------------
        network.train()
        flat_obs = flatten_obs(rollout.obs)
        flat_actions = rollout.actions.flatten(0, 1)
        flat = {name: buf.flatten(0, 1) for name, buf in (("logprobs", rollout.logprobs), ("advantages", advantages),
                                                           ("returns", returns), ("values", rollout.values),
                                                           ("valid", buf["valid"]))}
        env_indices = np.arange(s.n_envs)
        clip_fractions, approx_kl = [], torch.zeros(())
        for _epoch in range(s.n_epochs):
            if network.core is None:
                minibatches = np.array_split(np.random.permutation(batch_size), n_minibatches)
                lstm_args: list[tuple[Any, Any]] = [(None, None)] * n_minibatches
            else:  # whole env sequences, so the LSTM replays each one from its rollout-start state
                assert rollout.initial_state is not None
                np.random.shuffle(env_indices)
                env_groups = np.array_split(env_indices, n_minibatches)
                # flat index of (t, env) is t * n_envs + env
                minibatches = [(np.arange(s.n_steps)[:, None] * s.n_envs + g[None, :]).ravel() for g in env_groups]
                lstm_args = [(tuple(x[:, g] for x in rollout.initial_state), buf["starts"][:, g]) for g in env_groups]
            for mb_inds, (mb_state, mb_starts) in zip(minibatches, lstm_args, strict=True):
                mb_valid = flat["valid"][mb_inds]  # (M,) 0 for reset steps
                n_valid = mb_valid.sum().clamp(min=1.0)
                actor_f, critic_f, _ = network.features(index_obs(flat_obs, mb_inds), mb_state, mb_starts)
                dist = network.actor(actor_f)
                new_logprob = dist.log_prob(flat_actions[mb_inds])
                entropy = dist.entropy()
                new_value = network.critic(critic_f)

                mb_adv = flat["advantages"][mb_inds]
                if s.norm_adv:
                    adv_mean = (mb_adv * mb_valid).sum() / n_valid
                    adv_std = (((mb_adv - adv_mean) ** 2 * mb_valid).sum() / n_valid).sqrt()
                    mb_adv = (mb_adv - adv_mean) / (adv_std + 1e-8)
                log_ratio = new_logprob - flat["logprobs"][mb_inds]
                with torch.no_grad():  # http://joschu.net/blog/kl-approx.html
                    approx_kl = (((log_ratio.exp() - 1) - log_ratio) * mb_valid).sum() / n_valid
                    clip_fractions.append(float((((log_ratio.exp() - 1.0).abs() > clip_coef).float() * mb_valid).sum() / n_valid))
                pg_loss = (clipped_surrogate_loss(new_logprob, flat["logprobs"][mb_inds], mb_adv, clip_coef) * mb_valid).sum() / n_valid

                mb_returns, mb_old_values = flat["returns"][mb_inds], flat["values"][mb_inds]
                v_loss_unclipped = (new_value - mb_returns) ** 2
                if s.clip_vloss:
                    v_clipped = mb_old_values + (new_value - mb_old_values).clamp(-clip_coef, clip_coef)
                    v_loss_per = torch.max(v_loss_unclipped, (v_clipped - mb_returns) ** 2)
                else:
                    v_loss_per = v_loss_unclipped
                v_loss = 0.5 * (v_loss_per * mb_valid).sum() / n_valid
                entropy_loss = (entropy * mb_valid).sum() / n_valid

                loss = pg_loss - s.ent_coef * entropy_loss + s.vf_coef * v_loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(network.parameters(), s.max_grad_norm, foreach=True)
                optimizer.step()
            if s.target_kl is not None and float(approx_kl) > s.target_kl:
                break
        collector.refresh()  # the fused rollout forward copies the new weights

        # --- logging, evaluation, checkpoints ----------------------------------------------------------------------
        valid = flat["valid"].bool()
        metrics = {"charts/learning_rate": lr, "losses/value_loss": v_loss.item(),
                   "losses/policy_loss": pg_loss.item(), "losses/entropy": entropy_loss.item(),
                   "losses/approx_kl": float(approx_kl), "losses/clipfrac": float(np.mean(clip_fractions)),
                   "losses/explained_variance": explained_variance(flat["values"][valid], flat["returns"][valid])}
        if run.end_update(metrics, policy, collector.recent_returns, last=update == num_updates):
            break

    run.save("last")
    envs.close()
    return TrainResult(status=run.status, final_step=run.global_step)


def load_policy(checkpoint: Path, device: str = "cpu") -> ActorCriticPolicy:
    """Rebuild the network from the checkpoint's settings and the env's spaces; load the weights."""
    return load_actor_critic_policy(checkpoint, PPOSettings, device)
