"""Synchronous advantage actor-critic (A2C; Mnih et al. 2016, synchronous as in OpenAI Baselines and SB3).

One gradient step per short rollout of `n_steps` x `n_envs` transitions. The order is CleanRL's:
settings, then the loop (rollout, returns, update, logging); the network (ActorCritic from
agents/actor_critic.py, on the shared backbone), rollout storage and run-folder plumbing are imported.

Returns, switched by `advantage`:
- "nstep" (the classic A2C, SB3's default gae_lambda=1): R_t = r_t + gamma r_{t+1} + ... + gamma^k V(s_{t+k}),
  where the sum runs to the end of the rollout, so n shrinks from n_steps at the first step to 1 at the last.
- "gae": generalised advantage estimation with `gae_lambda` (Schulman et al. 2016).

Episode ends inside the window: a terminated step stops the sum with no bootstrap; a truncated step (time
limit) bootstraps from V(final observation), which under next-step autoreset is the stored value of the
reset step that follows. Reset steps are masked out of the loss.

The defaults are SB3's A2C (RMSprop with alpha 0.99 and eps 1e-5, lr 7e-4, n_steps 5, vf_coef 0.5,
max_grad_norm 0.5, value loss as a plain mean squared error); Adam is one switch away.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import torch
import torch.nn as nn

from rlsuite.agents import fast
from rlsuite.agents.actor_critic import (
    ActorCritic,
    ActorCriticPolicy,
    ActorCriticSettings,
    check_actor_critic_spaces,
    load_actor_critic_policy,
)
from rlsuite.agents.interface import TrainContext, TrainResult
from rlsuite.agents.logger import LazyMetrics
from rlsuite.agents.onpolicy_setup import build_on_policy
from rlsuite.agents.optim import Optimizer
from rlsuite.agents.rollout import (
    Array,
    Rollout,
    compute_gae,
    discounted_returns,
    explained_variance,
    masked_mean,
    normalize_advantages,
)
from rlsuite.agents.run_loop import RunLoop
from rlsuite.agents.tensors import flatten_obs

AGENT_NAME = "a2c"


@dataclass
class A2CSettings(ActorCriticSettings):
    """A2C's hyperparameters; the network and normaliser fields come from ActorCriticSettings."""

    learning_rate: float = 7e-4
    """Optimiser step size at the start of training."""
    anneal_lr: bool = False
    """Decay the learning rate linearly to 0 over training."""
    n_steps: int = 5
    """Env steps per sub-env per update; one gradient step per n_envs * n_steps transitions."""
    gamma: float = 0.99
    """Discount factor."""
    advantage: Literal["nstep", "gae"] = "nstep"
    """Return estimator: n-step returns to the end of the rollout, or GAE with gae_lambda."""
    gae_lambda: float = 0.95
    """GAE lambda (only with advantage=gae): 0 is one-step TD, 1 equals the n-step return."""
    normalize_advantage: bool = False
    """Standardise advantages over each rollout (off in SB3's A2C)."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient."""
    vf_coef: float = 0.5
    """Value loss coefficient."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    optimizer: Literal["rmsprop", "adam"] = "rmsprop"
    """RMSprop (as in the A2C paper, RL Zoo and SB3) or Adam."""
    rmsprop_alpha: float = 0.99
    """RMSprop's smoothing constant for the squared-gradient average."""
    optimizer_eps: float = 1e-5
    """Optimiser epsilon (RMSprop or Adam); SB3 uses 1e-5 for RMSprop."""
    log_interval: int = 20
    """Log losses every this many updates (A2C's updates are tiny and many; episodes are always logged)."""

    def validate(self) -> None:
        super().validate()
        self.require(self.n_steps >= 1, "n_steps", "must be >= 1")
        self.require(self.learning_rate > 0, "learning_rate", "must be > 0")
        self.require(0.0 <= self.gamma <= 1.0, "gamma", "must lie in [0, 1]")
        self.require(0.0 <= self.gae_lambda <= 1.0, "gae_lambda", "must lie in [0, 1]")
        self.require(0.0 <= self.rmsprop_alpha < 1.0, "rmsprop_alpha", "must lie in [0, 1)")
        self.require(self.optimizer_eps > 0, "optimizer_eps", "must be > 0")
        self.require(self.max_grad_norm > 0, "max_grad_norm", "must be > 0")
        self.require(self.log_interval >= 1, "log_interval", "must be >= 1")


Settings = A2CSettings


def check_spaces(observation_space: gym.Space, action_space: gym.Space) -> None:
    """A2C handles Discrete, MultiDiscrete and Box actions over any observation our encoders read."""
    check_actor_critic_spaces(AGENT_NAME, observation_space, action_space)


def make_optimizer(s: A2CSettings, network: nn.Module) -> Optimizer:
    """RMSprop or Adam over the network's parameters (in one flat buffer where agents/fast supports it)."""
    return fast.optimizer(network, s.optimizer, lr=s.learning_rate, eps=s.optimizer_eps, alpha=s.rmsprop_alpha)


def advantages_and_returns(s: A2CSettings, rewards: Array, values: Array, next_value: Array, terminated: Array,
                           dones: Array) -> tuple[Array, Array]:
    """(advantages, returns), each (T, N): n-step returns to the rollout's end minus V, or GAE."""
    if s.advantage == "nstep":
        returns = discounted_returns(rewards, values, next_value, terminated, dones, s.gamma)  # (T, N)
        return returns - values, returns
    return compute_gae(rewards, values, next_value, terminated, dones, s.gamma, s.gae_lambda)


def a2c_loss(network: ActorCritic, obs: Any, actions: torch.Tensor, advantages: torch.Tensor, returns: torch.Tensor,
             valid: torch.Tensor, vf_coef: float, ent_coef: float, state: Any = None,
             starts: torch.Tensor | None = None) -> tuple[torch.Tensor, LazyMetrics]:
    """pg_loss + vf_coef * v_loss - ent_coef * entropy through the modules, for autograd, every term a mean over
    the valid (T*N,) rows; and the terms for the logs (no gradient, each computed when read). `state` and
    `starts` (T, N) feed a recurrent core."""
    dist, value, _ = network.act_value(obs, state, starts)  # value (T*N,)
    logprob = dist.log_prob(actions)  # (T*N,)
    pg_loss = -masked_mean(advantages * logprob, valid)
    v_loss = masked_mean((returns - value) ** 2, valid)
    loss = pg_loss + vf_coef * v_loss
    entropy = masked_mean(dist.entropy(), valid) if ent_coef else None  # a loss term, or only logged
    if entropy is not None:
        loss = loss - ent_coef * entropy

    def logged_entropy() -> torch.Tensor:
        with torch.no_grad():
            return entropy.detach() if entropy is not None else masked_mean(dist.entropy(), valid)

    return loss, LazyMetrics(policy_loss=pg_loss.detach, value_loss=v_loss.detach, entropy=logged_entropy)


def train(s: A2CSettings, ctx: TrainContext) -> TrainResult:
    # the vector env, the seeded network (agents/fast where it applies), normalisers, policy and rollout collector
    envs, network, obs_normalizer, reward_scaler, policy, collector, device = build_on_policy(AGENT_NAME, s, ctx, s.gamma)
    num_updates = max(1, s.total_steps // (s.n_envs * s.n_steps))
    optimizer = make_optimizer(s, network)
    run = RunLoop(AGENT_NAME, s, ctx, envs, device=device, seed_rngs=True,
                  parts={"model": network, "optim": optimizer, "obs_rms": obs_normalizer, "ret_rms": reward_scaler})
    run.start()  # fresh (seeded) or resumed: step, update, best return, optimiser, normalisers, RNG

    rollout = Rollout(envs.single_observation_space, envs.single_action_space, s.n_steps, s.n_envs, device)  # (T, N, ...)
    collector.reset(seed=run.env_seed)
    if (carried := run.carry("collector", collector.state)) is not None:
        collector.load_state(carried)  # exact resume: the env and its open episodes continue where they stopped

    for update in range(run.update + 1, num_updates + 1):
        run.update = update
        lr = s.learning_rate * (1.0 - (update - 1) / num_updates) if s.anneal_lr else s.learning_rate
        optimizer.lr = lr

        # --- rollout (no layer of the backbone differs between train and eval mode: the loop never toggles) ----
        run.global_step, _ = collector.collect(rollout, run.global_step)

        # --- returns and advantages -----------------------------------------------------------------------------
        buf = rollout.scalars()  # rewards, terminated, dones, starts, valid: (T, N)
        # a (5, 8) recursion: NumPy's per-op cost is a fraction of torch's
        advantages_np, returns_np = advantages_and_returns(s, rollout.rewards, rollout.values.cpu().numpy(),
                                                           rollout.next_value.cpu().numpy(),  # V(s_T): the bootstrap
                                                           rollout.terminated, rollout.dones)
        advantages, returns = torch.as_tensor(advantages_np, device=device), torch.as_tensor(returns_np, device=device)

        # --- one gradient step on the whole rollout ------------------------------------------------------------
        valid = buf["valid"].flatten()  # (T*N,) 0 for reset steps
        adv = advantages.flatten()
        if s.normalize_advantage:
            adv = normalize_advantages(adv, partial(masked_mean, mask=valid))
        flat_returns = returns.flatten()
        last = update == num_updates
        log_now = update % s.log_interval == 0 or last
        loss, terms = a2c_loss(network, flatten_obs(rollout.obs), rollout.actions.flatten(0, 1), adv, flat_returns, valid,
                               s.vf_coef, s.ent_coef, rollout.initial_state, buf["starts"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.clip_grad_norm_(s.max_grad_norm)
        optimizer.step()

        # --- logging, evaluation, checkpoints ----------------------------------------------------------------------
        metrics = None
        if log_now:
            keep = valid.bool()
            metrics = {"charts/learning_rate": lr, **{f"losses/{k}": float(v) for k, v in terms.items()},
                       "losses/explained_variance": explained_variance(rollout.values.flatten()[keep], flat_returns[keep])}
        if run.tick(metrics, policy, collector.recent_returns, last=last):
            break

    result = run.finish()  # the final `last` checkpoint
    envs.close()
    return result


def load_policy(checkpoint: Path, device: str = "cpu") -> ActorCriticPolicy:
    """Rebuild the network from the checkpoint's settings and the env's spaces; load the weights."""
    return load_actor_critic_policy(checkpoint, A2CSettings, device)
