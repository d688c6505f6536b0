"""REINFORCE (Williams 1992) with reward-to-go and a learned value baseline, read top to bottom.

Each update plays a batch of complete episodes and takes one gradient step on
    -sum_t log pi(a_t | s_t) * (G_t - V(s_t))  +  vf_coef * (G_t - V(s_t))^2  -  ent_coef * H(pi(.|s_t)),
where G_t is the discounted reward-to-go: the Monte Carlo return from step t to the end of its episode.

Batches of complete episodes from a vector env: every update resets all `n_envs` sub-envs and steps
them until each has finished at least one episode. All episodes that finished in the batch are used;
the unfinished tails of sub-envs that started another episode are dropped (masked), so every sample
comes from the current policy and every return is a complete Monte Carlo return. Reset steps
(next-step autoreset) are masked as in PPO.

Truncation: an episode cut by a time limit (or by `max_rollout_steps`, when a sub-env never finishes)
did not end, so its return bootstraps from the learned value: G_t = r_t + gamma V(final observation) at
the truncated step. Terminated episodes never bootstrap.

The network (ActorCritic from agents/actor_critic.py), rollout storage and run-folder plumbing are shared
with PPO and A2C.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from rlsuite.agents import fast
from rlsuite.agents.actor_critic import (
    ActorCritic,
    ActorCriticPolicy,
    ActorCriticSettings,
    check_actor_critic_spaces,
    load_actor_critic_policy,
)
from rlsuite.agents.interface import TrainContext, TrainResult
from rlsuite.agents.onpolicy_setup import build_on_policy
from rlsuite.agents.rollout import (
    Rollout,
    discounted_returns,
    explained_variance,
    masked_mean,
    normalize_advantages,
)
from rlsuite.agents.run_loop import RunLoop
from rlsuite.agents.tensors import flatten_obs, index_obs

AGENT_NAME = "reinforce"


@dataclass
class ReinforceSettings(ActorCriticSettings):
    """REINFORCE's hyperparameters; n_envs is the number of episodes (at least) per update."""

    learning_rate: float = 1e-3
    """Adam step size at the start of training."""
    anneal_lr: bool = False
    """Decay the learning rate linearly to 0 over training."""
    gamma: float = 0.99
    """Discount factor."""
    baseline: bool = True
    """Subtract the learned value V(s_t) from the return (False: plain REINFORCE; the critic still trains)."""
    normalize_advantage: bool = True
    """Standardise G_t - V(s_t) over each batch."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient."""
    vf_coef: float = 0.5
    """Value loss coefficient."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    max_rollout_steps: int = 1000
    """Most vector steps per batch; a sub-env still in its first episode then is cut there and bootstraps from V."""

    def validate(self) -> None:
        super().validate()
        self.require(self.learning_rate > 0, "learning_rate", "must be > 0")
        self.require(0.0 <= self.gamma <= 1.0, "gamma", "must lie in [0, 1]")
        self.require(self.max_grad_norm > 0, "max_grad_norm", "must be > 0")
        self.require(self.max_rollout_steps >= 2, "max_rollout_steps", "must be >= 2")


Settings = ReinforceSettings


def check_spaces(observation_space: gym.Space, action_space: gym.Space) -> None:
    """REINFORCE handles Discrete, MultiDiscrete and Box actions over any observation our encoders read."""
    check_actor_critic_spaces(AGENT_NAME, observation_space, action_space)


def complete_episode_mask(dones: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(T, N) 1 for the non-reset steps of episodes that finished inside the batch; a sub-env with no
    finished episode keeps all its steps (its single episode is cut at the end and bootstraps)."""
    # done at or after t: a finished episode still lies ahead of (or ends at) step t
    done_ahead = torch.flip(torch.cumsum(torch.flip(dones, (0,)), 0), (0,)) > 0  # (T, N)
    never_done = dones.sum(0, keepdim=True) == 0  # (1, N)
    return valid * (done_ahead | never_done).to(valid.dtype)


def reinforce_loss(network: ActorCritic, obs: Any, actions: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
                   s: ReinforceSettings, state: Any = None, starts: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """-mean(log pi(a|s) * A) + vf_coef * 0.5 mean((G - V)^2) - ent_coef * mean(H), A = G - V(s) (detached) with a
    baseline, else G; every mean over the (T*N,) rows where `mask` is 1. Also the terms for the logs and V (no
    gradient). `state` and `starts` (T, N) feed a recurrent core."""
    dist, value, _ = network.act_value(obs, state, starts)  # value (T*N,)
    logprob = dist.log_prob(actions)  # (T*N,)
    adv = returns - value.detach() if s.baseline else returns  # (T*N,)
    if s.normalize_advantage:
        adv = normalize_advantages(adv, partial(masked_mean, mask=mask))
    pg_loss = -masked_mean(adv * logprob, mask)
    v_loss = 0.5 * masked_mean((returns - value) ** 2, mask)
    entropy = masked_mean(dist.entropy(), mask)
    loss = pg_loss - s.ent_coef * entropy + s.vf_coef * v_loss
    return loss, {"policy_loss": pg_loss.detach(), "value_loss": v_loss.detach(), "entropy": entropy.detach()}


def train(s: ReinforceSettings, ctx: TrainContext) -> TrainResult:
    # the vector env, the seeded network (agents/fast where it applies), normalisers, policy and rollout collector
    envs, network, obs_normalizer, reward_scaler, policy, collector, device = build_on_policy(AGENT_NAME, s, ctx, s.gamma)
    optimizer = fast.optimizer(network, "adam", lr=s.learning_rate, eps=1e-5)  # flat-buffer Adam where it applies
    run = RunLoop(AGENT_NAME, s, ctx, envs, device=device, seed_rngs=True,
                  parts={"model": network, "optim": optimizer, "obs_rms": obs_normalizer, "ret_rms": reward_scaler})
    run.start()  # fresh (seeded) or resumed: step, update, best return, optimiser, normalisers, RNG

    rollout = Rollout(envs.single_observation_space, envs.single_action_space, s.max_rollout_steps, s.n_envs,
                      device)  # (T_max, N, ...)
    seed: int | None = run.env_seed  # seeds the first batch; later resets continue each sub-env's generator
    if (carried := run.carry("collector", collector.state)) is not None:
        collector.load_state(carried)  # exact resume: the env's generators continue where they stopped

    while run.global_step < s.total_steps:
        run.update += 1
        lr = s.learning_rate * max(0.0, 1.0 - run.global_step / s.total_steps) if s.anneal_lr else s.learning_rate
        optimizer.lr = lr

        # --- a batch of complete episodes -----------------------------------------------------------------------
        collector.reset(seed=seed)
        seed = None
        run.global_step, steps = collector.collect(rollout, run.global_step, stop_when_all_done=True)

        # --- reward-to-go ---------------------------------------------------------------------------------------
        buf = rollout.scalars(steps)  # rewards, terminated, dones, starts, valid: (T, N)
        values = rollout.values[:steps]  # (T, N)
        # rollout.next_value (N,) is only read by a sub-env cut at max_rollout_steps
        returns = discounted_returns(buf["rewards"], values, rollout.next_value, buf["terminated"], buf["dones"], s.gamma)
        mask = complete_episode_mask(buf["dones"], buf["valid"]).flatten()  # (T*N,)

        # --- one gradient step ---------------------------------------------------------------------------------
        flat_obs = index_obs(flatten_obs(rollout.obs), slice(0, steps * s.n_envs))
        flat_returns = returns.flatten()
        loss, terms = reinforce_loss(network, flat_obs, rollout.actions[:steps].flatten(0, 1), flat_returns, mask, s,
                                     rollout.initial_state, buf["starts"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.clip_grad_norm_(s.max_grad_norm)
        optimizer.step()

        # --- logging, evaluation, checkpoints ----------------------------------------------------------------------
        keep = mask.bool()
        metrics = {"charts/learning_rate": lr, **{f"losses/{k}": float(v) for k, v in terms.items()},
                   "charts/batch_steps": float(mask.sum()),
                   "losses/explained_variance": explained_variance(values.flatten()[keep], flat_returns[keep])}
        if run.tick(metrics, policy, collector.recent_returns, last=run.global_step >= s.total_steps):
            break

    result = run.finish()  # the final `last` checkpoint
    envs.close()
    return result


def load_policy(checkpoint: Path, device: str = "cpu") -> ActorCriticPolicy:
    """Rebuild the network from the checkpoint's settings and the env's spaces; load the weights."""
    return load_actor_critic_policy(checkpoint, ReinforceSettings, device)
