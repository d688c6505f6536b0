"""Rollouts and returns for the on-policy agents (PPO, A2C, REINFORCE).

- `Rollout` + `RolloutCollector`: (T, N) storage and the loop that fills it from a next-step-autoreset
  vector env, with the recurrent state carried between rollouts.
- `compute_gae` and `discounted_returns`: advantage and return estimators over (T, N) rollouts.

Layout under next-step autoreset (envs/factory.py): the step after an episode ends is a reset step whose
action is ignored. It is stored with `valid = 0` and masked out of every loss; its stored observation is
the final observation of the episode before, so `values[t + 1]` after a truncated step t is V(final
observation), the right bootstrap, with no `final_obs` bookkeeping.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

import gymnasium as gym
import numpy as np
import torch

from rlsuite.agents.actor_critic import ActorCritic, LSTMState
from rlsuite.agents.interface import AgentError, TrainContext
from rlsuite.agents.normalize import ObsNormalizer, RewardScaler
from rlsuite.agents.tensors import empty_like_space, obs_to_tensor, store_obs


class RolloutStep(Protocol):
    """What the collector acts with: one step of (N,) envs, and the value of their observations."""

    def __call__(self, obs: Any, state: Any, starts: torch.Tensor | None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray, Any]:
        """(sampled action, its log-probability (N,), V (N,), the action as the env takes it, next LSTM state)
        for observations (N, ...), the LSTM state and the episode starts (1, N)."""
        ...

    def value(self, obs: Any, state: Any, starts: torch.Tensor | None) -> torch.Tensor:
        """V (N,) of the observations, continuing the LSTM state without changing it."""
        ...


class ModuleStep:
    """The plain rollout step: the network's own `act_value`, an action sampled from its distribution."""

    def __init__(self, network: ActorCritic) -> None:
        self.network = network

    def __call__(self, obs: Any, state: Any, starts: torch.Tensor | None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray, Any]:
        dist, value, state = self.network.act_value(obs, state, starts)
        action = dist.sample()
        return action, dist.log_prob(action), value, dist.to_env(action).cpu().numpy(), state

    def value(self, obs: Any, state: Any, starts: torch.Tensor | None) -> torch.Tensor:
        return self.network.act_value(obs, state, starts)[1]


Array = TypeVar("Array", torch.Tensor, np.ndarray)


def compute_gae(rewards: Array, values: Array, next_value: Array, terminated: Array,
                dones: Array, gamma: float, gae_lambda: float) -> tuple[Array, Array]:
    """Generalised advantage estimates and returns for (T, N) rollouts (torch tensors or NumPy arrays).

    `terminated[t]` cuts the bootstrap (the episode truly ended); `dones[t]` (terminated or truncated)
    cuts the advantage recursion. The value after step t is values[t + 1] (or `next_value` for the
    last step): under next-step autoreset that is V(final observation), the right bootstrap after a
    truncation.
    """
    advantages = rewards * 0.0  # (T, N)
    last_gae = next_value * 0.0  # (N,)
    for t in reversed(range(rewards.shape[0])):
        following_value = next_value if t == rewards.shape[0] - 1 else values[t + 1]
        delta = rewards[t] + gamma * following_value * (1.0 - terminated[t]) - values[t]
        last_gae = delta + gamma * gae_lambda * (1.0 - dones[t]) * last_gae
        advantages[t] = last_gae
    return advantages, advantages + values


def discounted_returns(rewards: Array, values: Array, next_value: Array, terminated: Array, dones: Array,
                       gamma: float) -> Array:
    """Discounted reward-to-go G_t for (T, N) rollouts (torch tensors or NumPy arrays), bootstrapped only
    where the data stops.

    G_t = r_t                       if step t terminated the episode,
          r_t + gamma * V(s_{t+1})  if it was truncated (values[t + 1] is V(final observation)),
          r_t + gamma * G_{t+1}     otherwise; after the last step G_T = next_value (the rollout's cut).

    REINFORCE reads it as the Monte Carlo return of complete episodes (the bootstrap only enters at a
    time-limit truncation); A2C as the n-step return with n running to the end of its short rollout.
    """
    returns = rewards * 0.0  # (T, N)
    following = next_value  # (N,) G_{t+1}
    for t in reversed(range(rewards.shape[0])):
        value_after = next_value if t == rewards.shape[0] - 1 else values[t + 1]  # (N,) V(s_{t+1})
        truncated = dones[t] * (1.0 - terminated[t])
        # terminated: no future; truncated: the critic's estimate of it; otherwise: the return that follows
        future = (1.0 - dones[t]) * following + truncated * value_after
        following = rewards[t] + gamma * future
        returns[t] = following
    return returns


def explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """1 - Var(target - predicted) / Var(target); nan when the target is constant."""
    var_y = torch.var(target)
    return float("nan") if var_y == 0 else float(1 - torch.var(target - predicted) / var_y)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x over the entries where mask is 1 (reset steps and unused tails are 0)."""
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def normalize_advantages(adv: torch.Tensor, mean: Callable[[torch.Tensor], torch.Tensor] = torch.mean) -> torch.Tensor:
    """(A - mean) / (std + 1e-8) with the population std, means taken by `mean` (masked where reset steps or
    padding carry no loss, e.g. `partial(masked_mean, mask=valid)`)."""
    adv_mean = mean(adv)
    return (adv - adv_mean) / (mean((adv - adv_mean) ** 2).sqrt() + 1e-8)


# ------------------------------------------------------------------------------------------ rollouts


class Rollout:
    """(T, N) storage for one rollout. Network inputs and outputs live in torch; per-step env scalars stay
    in NumPy during the rollout and cross to torch once, in `scalars()`."""

    def __init__(self, obs_space: gym.Space, act_space: gym.Space, n_steps: int, n_envs: int, device: torch.device) -> None:
        self.n_steps, self.n_envs, self.device = n_steps, n_envs, device
        self.obs = empty_like_space(obs_space, (n_steps, n_envs), device)
        # action heads take no Dict action space, so actions are one tensor
        self.actions = cast(torch.Tensor, empty_like_space(act_space, (n_steps, n_envs), device))
        self.logprobs = torch.zeros((n_steps, n_envs), device=device)
        self.values = torch.zeros((n_steps, n_envs), device=device)
        self.rewards = np.zeros((n_steps, n_envs), dtype=np.float32)
        self.terminated = np.zeros((n_steps, n_envs), dtype=np.float32)
        self.dones = np.zeros((n_steps, n_envs), dtype=np.float32)
        self.starts = np.zeros((n_steps, n_envs), dtype=np.float32)
        """1 where a step begins an episode: the LSTM clears that row's state before it."""
        self.valid = np.zeros((n_steps, n_envs), dtype=np.float32)
        """0 for reset steps (next-step autoreset), which no loss may see."""
        self.next_value = torch.zeros(n_envs, device=device)
        """V of the observations after the rollout's last step (N,): the bootstrap at its cut."""
        self.initial_state: LSTMState | None = None
        """The LSTM state before the first step, from which updates replay the sequences."""
        self.aux: dict[str, np.ndarray] = {}
        """(T, N, ...) env `info` values beside each stored observation, for the network's auxiliary loss."""

    def scalars(self, steps: int | None = None) -> dict[str, torch.Tensor]:
        """rewards, terminated, dones, starts, valid of the first `steps` steps as (T, N) tensors."""
        steps = self.n_steps if steps is None else steps
        return {name: torch.as_tensor(getattr(self, name)[:steps], device=self.device)
                for name in ("rewards", "terminated", "dones", "starts", "valid")}


class RolloutCollector:
    """Steps a vector env with an actor-critic and fills a Rollout; keeps the env, LSTM and normaliser state
    between rollouts, and logs every finished episode (`charts/episodic_return`, `charts/episodic_length`).

    `step` builds the rollout step at the start of every rollout, so it acts with the current weights: by
    default a sample from the network's own `act_value`; agents/fast offers faster ones where they support
    the network."""

    def __init__(self, envs: gym.vector.VectorEnv, network: ActorCritic, device: torch.device,
                 obs_normalizer: ObsNormalizer | None, reward_scaler: RewardScaler | None, ctx: TrainContext,
                 step: Callable[[], RolloutStep] | None = None) -> None:
        self.envs, self.network, self.device = envs, network, device
        self.obs_normalizer, self.reward_scaler, self.ctx = obs_normalizer, reward_scaler, ctx
        self.make_step: Callable[[], RolloutStep] = step if step is not None else (lambda: ModuleStep(network))
        self.n_envs = envs.num_envs
        self.recent_returns: deque[float] = deque(maxlen=20)
        self.raw_obs: Any = None
        self.prev_done = np.zeros(self.n_envs, dtype=bool)  # the previous step ended an episode: this is a reset step
        self.episode_start = np.ones(self.n_envs, dtype=bool)
        self.lstm_state: LSTMState | None = None
        # Episode statistics kept here (what RecordEpisodeStatistics does, in three NumPy ops per step):
        # raw rewards, before any reward scaling; reset steps belong to no episode.
        self.episode_return = np.zeros(self.n_envs, dtype=np.float64)
        self.episode_length = np.zeros(self.n_envs, dtype=np.int64)
        self.raw_aux: dict[str, np.ndarray] = {}  # info[key] of the observations just returned, key in network.aux_keys

    def reset(self, seed: int | None) -> None:
        """Start fresh episodes in every sub-env (seeded when `seed` is given) with a zero LSTM state."""
        self.raw_obs, info = self.envs.reset(seed=seed)
        self._read_aux(info)
        self.prev_done[:] = False
        self.episode_start[:] = True
        self.lstm_state = self.network.initial_state(self.n_envs, self.device)
        self.episode_return[:] = 0.0
        self.episode_length[:] = 0

    def state(self) -> dict[str, Any]:
        """What the collector carries between rollouts (current observations, open episodes, LSTM state),
        as a tree of arrays for a checkpoint; `load_state` continues from it exactly."""
        lstm = None if self.lstm_state is None else tuple(x.detach().cpu().clone() for x in self.lstm_state)
        return {"raw_obs": self.raw_obs, "prev_done": self.prev_done.copy(), "episode_start": self.episode_start.copy(),
                "lstm_state": lstm, "episode_return": self.episode_return.copy(),
                "episode_length": self.episode_length.copy(), "recent_returns": list(self.recent_returns),
                "raw_aux": dict(self.raw_aux)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.raw_obs, self.raw_aux = state["raw_obs"], dict(state["raw_aux"])
        self.prev_done, self.episode_start = state["prev_done"], state["episode_start"]
        lstm = state["lstm_state"]
        self.lstm_state = None if lstm is None else (lstm[0].to(self.device), lstm[1].to(self.device))
        self.episode_return, self.episode_length = state["episode_return"], state["episode_length"]
        self.recent_returns.clear()
        self.recent_returns.extend(state["recent_returns"])

    def _read_aux(self, info: dict[str, Any]) -> None:
        """Keep info[key] (N, ...) for every key the network's auxiliary loss reads."""
        for key in self.network.aux_keys:
            if key not in info:
                raise AgentError(f"The network's auxiliary loss reads info[{key!r}], but the env's info has no such key "
                                 f"(it has {sorted(info)}); use a key the env reports at reset and every step.")
            self.raw_aux[key] = np.array(info[key])

    def _obs(self, update_stats: bool) -> Any:
        if self.obs_normalizer is None:
            return self.raw_obs
        if update_stats:
            self.obs_normalizer.update(self.raw_obs)
        return self.obs_normalizer.normalize(self.raw_obs)

    def collect(self, rollout: Rollout, global_step: int, stop_when_all_done: bool = False) -> tuple[int, int]:
        """Fill `rollout` step by step, then `rollout.next_value` with the same weights; returns (global_step
        after it, steps stored).

        With `stop_when_all_done`, stops early once every sub-env has ended at least one episode (REINFORCE's
        batches of complete episodes); otherwise runs all `rollout.n_steps` steps.
        """
        envs, device = self.envs, self.device
        act = self.make_step()  # reads the weights as they are now
        rollout.initial_state = (self.lstm_state[0].clone(), self.lstm_state[1].clone()) if self.lstm_state is not None else None
        for key, aux_value in self.raw_aux.items():
            if key not in rollout.aux:
                rollout.aux[key] = np.zeros((rollout.n_steps, *aux_value.shape), dtype=aux_value.dtype)
        ended = np.zeros(self.n_envs, dtype=bool)
        steps = rollout.n_steps
        with torch.inference_mode():  # entered once per rollout: entering it costs as much as a small op
            for step in range(rollout.n_steps):
                global_step += self.n_envs
                rollout.starts[step] = self.episode_start
                live = ~self.prev_done  # False on reset steps, whose action the env ignores
                rollout.valid[step] = live
                for key, aux_value in self.raw_aux.items():
                    rollout.aux[key][step] = aux_value
                obs_t = obs_to_tensor(self._obs(update_stats=True), device)
                store_obs(rollout.obs, step, obs_t)
                step_starts = (torch.as_tensor(rollout.starts[step][None], device=device)
                               if self.lstm_state is not None else None)  # (1, N)
                action, logprob, value, env_action, self.lstm_state = act(obs_t, self.lstm_state, step_starts)
                rollout.logprobs[step], rollout.values[step], rollout.actions[step] = logprob, value, action

                self.raw_obs, reward, terminated, truncated, info = envs.step(env_action)
                self._read_aux(info)
                done = np.logical_or(terminated, truncated)
                self.episode_return += reward * live
                self.episode_length += live
                if done.any():
                    for i in np.flatnonzero(done):
                        ret, length = float(self.episode_return[i]), float(self.episode_length[i])
                        self.recent_returns.append(ret)
                        self.ctx.logger.log(global_step, {"charts/episodic_return": ret, "charts/episodic_length": length})
                    self.episode_return[done] = 0.0
                    self.episode_length[done] = 0
                if self.reward_scaler is not None:
                    reward = self.reward_scaler.scale(reward, done)
                rollout.rewards[step], rollout.terminated[step], rollout.dones[step] = reward, terminated, done
                self.episode_start, self.prev_done = self.prev_done, done  # the step after a reset step starts an episode
                if stop_when_all_done:
                    ended |= done
                    if ended.all():
                        steps = step + 1
                        break
            # the bootstrap: V of the observations after the last step, continuing the LSTM state
            obs_t = obs_to_tensor(self._obs(update_stats=False), device)
            starts = torch.as_tensor(self.episode_start, dtype=torch.float32, device=device)[None]  # (1, N)
            rollout.next_value = act.value(obs_t, self.lstm_state, starts)  # (N,)
        return global_step, steps
