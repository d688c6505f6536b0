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

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
from gymnasium import spaces

from rlsuite.agents.checkpoint import (
    load_checkpoint,
    load_module_tensors,
    module_tensors,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)
from rlsuite.agents.interface import AgentError, TrainContext, TrainResult
from rlsuite.agents.normalize import ObsNormalizer, RewardScaler
from rlsuite.agents.optim import FlatAdam
from rlsuite.agents.run import step_checkpoint_name
from rlsuite.agents.settings import ConfigError, TrainSettings, settings_from_dict, settings_to_dict
from rlsuite.agents.tensors import (
    empty_like_space,
    flatten_obs,
    index_obs,
    obs_to_tensor,
    resolve_device,
    store_obs,
)
from rlsuite.envs import make_env, make_vec_env
from rlsuite.policies import (
    Encoder,
    LSTMCore,
    SpaceError,
    ValueHead,
    is_image_space,
    make_action_head,
    make_encoder,
)

AGENT_NAME = "ppo"


@dataclass
class PPOSettings(TrainSettings):
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
    normalize_obs: bool = False
    """Running mean/std normalisation of float observations (saved in checkpoints)."""
    normalize_reward: bool = False
    """Scale rewards by the std of the discounted return (saved in checkpoints)."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """MLP widths for vector observations."""
    activation: Literal["tanh", "relu", "elu", "silu"] = "tanh"
    """MLP activation."""
    share_encoder: bool | None = None
    """Actor and critic share one encoder; None: shared for images, dicts and recurrent, separate for vectors."""
    cnn: Literal["nature", "impala"] = "nature"
    """CNN for image observations."""
    squash: Literal["clip", "tanh"] = "clip"
    """Box actions: clip Gaussian samples to the bounds, or squash them with tanh."""
    log_std_init: float = 0.0
    """Initial log standard deviation of Gaussian actions."""
    recurrent: bool = False
    """Insert an LSTM between encoder and heads; minibatches are then whole env sequences."""
    lstm_hidden: int = 128
    """LSTM hidden size when recurrent."""

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


def check_spaces(observation_space: gym.Space, action_space: gym.Space) -> None:
    """PPO handles Discrete, MultiDiscrete and Box actions over any observation our encoders read."""
    if not isinstance(action_space, (spaces.Discrete, spaces.MultiDiscrete, spaces.Box)):
        raise AgentError(
            f"ppo cannot act in {action_space}: it supports Discrete, MultiDiscrete and Box action spaces."
        )
    try:
        make_encoder(observation_space)
    except SpaceError as err:
        raise AgentError(f"ppo cannot read observations from {observation_space}: {err}") from None


class ActorCritic(nn.Module):
    """Encoder(s) from the observation space, an optional LSTM, an action head and a value head."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, s: PPOSettings) -> None:
        super().__init__()
        vector_obs = not (isinstance(observation_space, spaces.Dict) or is_image_space(observation_space))
        shared = s.share_encoder if s.share_encoder is not None else (not vector_obs or s.recurrent)
        if s.recurrent and not shared:
            raise ConfigError("recurrent PPO needs share_encoder=true (one LSTM feeds both heads).")

        def encoder() -> Encoder:
            return make_encoder(observation_space, mlp_hidden=s.hidden_sizes, activation=s.activation, cnn=s.cnn)

        self.actor_encoder = encoder()
        self.critic_encoder = self.actor_encoder if shared else encoder()
        features_dim = self.actor_encoder.features_dim
        self.core = LSTMCore(features_dim, s.lstm_hidden) if s.recurrent else None
        if self.core is not None:
            features_dim = self.core.features_dim
        self.actor = make_action_head(action_space, features_dim, squash=s.squash, log_std_init=s.log_std_init)
        self.critic = ValueHead(features_dim)

    def features(self, obs: Any, state: Any = None, episode_starts: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """Actor and critic features for (B, ...) inputs, or (T, B, ...) flattened to (T*B, ...) when recurrent."""
        actor_features = self.actor_encoder(obs)  # (B, F)
        if self.core is None:
            critic_features = actor_features if self.critic_encoder is self.actor_encoder else self.critic_encoder(obs)
            return actor_features, critic_features, None
        assert episode_starts is not None
        steps, batch = episode_starts.shape  # (T, B)
        out, state = self.core(actor_features.reshape(steps, batch, -1), state, episode_starts)  # (T, B, H)
        out = out.reshape(steps * batch, -1)  # (T*B, H)
        return out, out, state


class PPOPolicy:
    """The inference side of a PPO network: what evaluation, recording and reports call."""

    def __init__(self, network: ActorCritic, observation_space: gym.Space, action_space: gym.Space,
                 obs_normalizer: ObsNormalizer | None, device: torch.device) -> None:
        self.network = network
        self.observation_space = observation_space
        self.action_space = action_space
        self.obs_normalizer = obs_normalizer
        self.device = device
        self._state: Any = None

    def reset(self, num_envs: int) -> None:
        self._state = self.network.core.initial_state(num_envs, self.device) if self.network.core is not None else None

    @torch.inference_mode()
    def act(self, obs: Any, episode_start: np.ndarray, deterministic: bool = True) -> np.ndarray:
        if self.obs_normalizer is not None:
            obs = self.obs_normalizer.normalize(obs)
        if self.network.core is not None and (self._state is None or self._state[0].shape[1] != len(episode_start)):
            self.reset(len(episode_start))
        starts = torch.as_tensor(episode_start, dtype=torch.float32, device=self.device)[None]  # (1, B)
        actor_features, _, self._state = self.network.features(obs_to_tensor(obs, self.device), self._state, starts)
        dist = self.network.actor(actor_features)
        action = dist.mode() if deterministic else dist.sample()
        return dist.to_env(action).cpu().numpy()


def compute_gae(rewards: torch.Tensor, values: torch.Tensor, next_value: torch.Tensor, terminated: torch.Tensor,
                dones: torch.Tensor, gamma: float, gae_lambda: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and returns for (T, N) rollouts.

    `terminated[t]` cuts the bootstrap (the episode truly ended); `dones[t]` (terminated or truncated)
    cuts the advantage recursion. The value after step t is values[t + 1] (or `next_value` for the
    last step): under next-step autoreset that is V(final observation), the right bootstrap after a
    truncation.
    """
    advantages = torch.zeros_like(rewards)  # (T, N)
    last_gae = torch.zeros_like(next_value)  # (N,)
    for t in reversed(range(rewards.shape[0])):
        following_value = next_value if t == rewards.shape[0] - 1 else values[t + 1]
        delta = rewards[t] + gamma * following_value * (1.0 - terminated[t]) - values[t]
        last_gae = delta + gamma * gae_lambda * (1.0 - dones[t]) * last_gae
        advantages[t] = last_gae
    return advantages, advantages + values


def masked_mean(x: torch.Tensor, mask: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Mean of `x` over the entries where `mask` is 1 (`count` of them)."""
    return (x * mask).sum() / count


def clipped_surrogate_loss(new_logprob: torch.Tensor, old_logprob: torch.Tensor, advantages: torch.Tensor,
                           clip_coef: float) -> torch.Tensor:
    """-E[min(r A, clip(r, 1-eps, 1+eps) A)] with r = pi_new / pi_old (per-sample, not reduced)."""
    ratio = (new_logprob - old_logprob).exp()
    return torch.max(-advantages * ratio, -advantages * ratio.clamp(1.0 - clip_coef, 1.0 + clip_coef))


def train(s: PPOSettings, ctx: TrainContext) -> TrainResult:
    torch.set_num_threads(s.torch_threads)
    device = resolve_device(s.device)
    envs = make_vec_env(s.env_id, s.n_envs, mode=s.vectorization, record_stats=False)  # episode stats kept below
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    check_spaces(obs_space, act_space)

    batch_size = s.n_envs * s.n_steps
    n_minibatches = s.n_minibatches
    num_updates = max(1, s.total_steps // batch_size)

    network = ActorCritic(obs_space, act_space, s).to(device)
    optimizer = FlatAdam(network, lr=s.learning_rate, eps=1e-5)  # parameters in one buffer (agents/optim.py)
    obs_normalizer = ObsNormalizer(obs_space) if s.normalize_obs else None
    reward_scaler = RewardScaler(s.n_envs, s.gamma) if s.normalize_reward else None
    policy = PPOPolicy(network, obs_space, act_space, obs_normalizer, device)

    def save(name: str, step: int, update: int, best: float | None) -> None:
        tensors = module_tensors("model", network)
        rng_tensors, rng_meta = rng_state()
        tensors.update(optimizer.state_tensors("optim"))
        tensors.update(rng_tensors)
        if obs_normalizer is not None:
            tensors.update(obs_normalizer.state_tensors("obs_rms"))
        if reward_scaler is not None:
            tensors.update(reward_scaler.state_tensors("ret_rms"))
        meta = {"agent": AGENT_NAME, "settings": settings_to_dict(s), "step": step, "update": update,
                "best_eval_return": best, "rng": rng_meta}
        save_checkpoint(ctx.run.checkpoint_path(name), tensors, meta)

    # --- start or resume ---------------------------------------------------------------------------------
    global_step, start_update, best_return = 0, 1, None
    env_seed = s.seed
    if ctx.resume_from is not None:
        tensors, meta = load_checkpoint(ctx.resume_from, device)
        load_module_tensors("model", network, tensors)
        optimizer.load_state_tensors("optim", tensors)
        restore_rng_state(tensors, meta["rng"])
        if obs_normalizer is not None:
            obs_normalizer.load_state_tensors("obs_rms", tensors)
        if reward_scaler is not None:
            reward_scaler.load_state_tensors("ret_rms", tensors)
        global_step, start_update, best_return = meta["step"], meta["update"] + 1, meta["best_eval_return"]
        # Env states cannot be checkpointed in general: a resumed run restarts its episodes from fresh seeds.
        env_seed = s.seed + 1_000 * start_update
    else:
        torch.manual_seed(s.seed)
        np.random.seed(s.seed)

    # --- rollout storage: (T, N, ...) ------------------------------------------------------------------------
    obs_buf = empty_like_space(obs_space, (s.n_steps, s.n_envs), device)
    actions_buf = empty_like_space(act_space, (s.n_steps, s.n_envs), device)
    assert isinstance(actions_buf, torch.Tensor)  # check_spaces admits no Dict actions
    logprobs_buf = torch.zeros((s.n_steps, s.n_envs), device=device)
    values_buf = torch.zeros((s.n_steps, s.n_envs), device=device)
    # Per-step scalars from the env stay in NumPy during the rollout and cross to torch once per update.
    rewards_np = np.zeros((s.n_steps, s.n_envs), dtype=np.float32)
    terminated_np = np.zeros((s.n_steps, s.n_envs), dtype=np.float32)
    dones_np = np.zeros((s.n_steps, s.n_envs), dtype=np.float32)
    starts_np = np.zeros((s.n_steps, s.n_envs), dtype=np.float32)
    valid_np = np.zeros((s.n_steps, s.n_envs), dtype=np.float32)

    raw_obs, _ = envs.reset(seed=env_seed)
    prev_done = np.zeros(s.n_envs, dtype=bool)  # the previous step ended an episode: this step is a reset step
    episode_start = np.ones(s.n_envs, dtype=bool)
    lstm_state = network.core.initial_state(s.n_envs, device) if network.core is not None else None
    recent_returns: deque[float] = deque(maxlen=20)
    episode_returns = np.zeros(s.n_envs)  # undiscounted, unscaled return of each env's current episode
    episode_lengths = np.zeros(s.n_envs, dtype=np.int64)
    next_eval = (global_step // s.eval_every + 1) * s.eval_every if s.eval_every else None
    next_snapshot = (global_step // s.checkpoint_every + 1) * s.checkpoint_every if s.checkpoint_every else None
    status, update = "finished", start_update - 1
    start_time, start_step = time.perf_counter(), global_step

    for update in range(start_update, num_updates + 1):
        progress_left = 1.0 - (update - 1) / num_updates
        lr = s.learning_rate * progress_left if s.anneal_lr else s.learning_rate
        clip_coef = s.clip_coef * progress_left if s.anneal_clip else s.clip_coef
        optimizer.lr = lr
        initial_lstm_state = tuple(x.clone() for x in lstm_state) if lstm_state is not None else None

        # --- rollout -------------------------------------------------------------------------------------------
        network.eval()
        for step in range(s.n_steps):
            global_step += s.n_envs
            if obs_normalizer is not None:
                obs_normalizer.update(raw_obs)
                obs = obs_normalizer.normalize(raw_obs)
            else:
                obs = raw_obs
            obs_t = obs_to_tensor(obs, device)
            store_obs(obs_buf, step, obs_t)
            starts_np[step] = episode_start
            valid_np[step] = ~prev_done
            with torch.inference_mode():
                step_starts = torch.as_tensor(starts_np[step][None], device=device) if lstm_state is not None else None
                actor_f, critic_f, lstm_state = network.features(obs_t, lstm_state, step_starts)
                dist = network.actor(actor_f)
                action = dist.sample()
                logprobs_buf[step] = dist.log_prob(action)
                values_buf[step] = network.critic(critic_f)
            actions_buf[step] = action

            raw_obs, reward, terminated, truncated, _ = envs.step(dist.to_env(action).cpu().numpy())
            done = np.logical_or(terminated, truncated)
            episode_returns += reward  # a reset step's reward is 0, and its length is not counted
            episode_lengths += ~prev_done
            for i in np.flatnonzero(done):
                recent_returns.append(float(episode_returns[i]))
                ctx.logger.log(global_step, {"charts/episodic_return": float(episode_returns[i]),
                                             "charts/episodic_length": float(episode_lengths[i])})
            episode_returns[done], episode_lengths[done] = 0.0, 0
            if reward_scaler is not None:
                reward = reward_scaler.scale(reward, done)
            rewards_np[step], terminated_np[step], dones_np[step] = reward, terminated, done
            episode_start, prev_done = prev_done, done  # the step after a reset step starts an episode

        # --- returns --------------------------------------------------------------------------------------------
        with torch.inference_mode():
            next_obs = obs_normalizer.normalize(raw_obs) if obs_normalizer is not None else raw_obs
            next_starts = torch.as_tensor(episode_start, dtype=torch.float32, device=device)[None]
            _, critic_f, _ = network.features(obs_to_tensor(next_obs, device), lstm_state, next_starts)
            next_value = network.critic(critic_f)
        rewards_buf, terminated_buf, dones_buf, starts_buf, valid_buf = (
            torch.as_tensor(x, device=device) for x in (rewards_np, terminated_np, dones_np, starts_np, valid_np))
        advantages, returns = compute_gae(rewards_buf, values_buf, next_value, terminated_buf, dones_buf,
                                          s.gamma, s.gae_lambda)

        # --- minibatch updates ----------------------------------------------------------------------------------
        network.train()
        flat_obs = flatten_obs(obs_buf)
        flat_actions = actions_buf.flatten(0, 1)
        flat = {name: buf.flatten(0, 1) for name, buf in (("logprobs", logprobs_buf), ("advantages", advantages),
                                                           ("returns", returns), ("values", values_buf),
                                                           ("valid", valid_buf))}
        if network.core is None:  # reset steps are left out once, so every loss below is a plain mean
            keep = torch.from_numpy(np.flatnonzero(valid_np.reshape(-1))).to(device)  # (K,) real steps
            flat_obs, flat_actions = index_obs(flat_obs, keep), flat_actions[keep]
            flat = {name: buf[keep] for name, buf in flat.items() if name != "valid"}
        env_indices = np.arange(s.n_envs)
        ratio_stats: list[torch.Tensor] = []
        approx_kl = torch.zeros(())
        for _epoch in range(s.n_epochs):
            minibatches: list[Any]
            if network.core is None:  # a single minibatch is the whole batch: no shuffling, no gathering
                minibatches = [None] if n_minibatches == 1 else list(torch.randperm(len(flat_actions)).tensor_split(n_minibatches))
                lstm_args: list[tuple[Any, Any]] = [(None, None)] * n_minibatches
            else:  # whole env sequences, so the LSTM replays each one from its rollout-start state
                assert initial_lstm_state is not None
                np.random.shuffle(env_indices)
                env_groups = np.array_split(env_indices, n_minibatches)
                # flat index of (t, env) is t * n_envs + env
                minibatches = [(np.arange(s.n_steps)[:, None] * s.n_envs + g[None, :]).ravel() for g in env_groups]
                lstm_args = [(tuple(x[:, g] for x in initial_lstm_state), starts_buf[:, g]) for g in env_groups]
            for mb_inds, (mb_state, mb_starts) in zip(minibatches, lstm_args, strict=True):
                mb = flat if mb_inds is None else {name: buf[mb_inds] for name, buf in flat.items()}
                mean: Callable[[torch.Tensor], torch.Tensor] = torch.mean
                if network.core is not None:  # sequences keep their reset steps for the LSTM; the losses mask them out
                    mean = partial(masked_mean, mask=mb["valid"], count=mb["valid"].sum().clamp(min=1.0))

                mb_obs = flat_obs if mb_inds is None else index_obs(flat_obs, mb_inds)
                actor_f, critic_f, _ = network.features(mb_obs, mb_state, mb_starts)
                dist = network.actor(actor_f)
                new_logprob = dist.log_prob(flat_actions if mb_inds is None else flat_actions[mb_inds])
                new_value = network.critic(critic_f)

                mb_adv = mb["advantages"]
                if s.norm_adv:
                    adv_mean = mean(mb_adv)
                    mb_adv = (mb_adv - adv_mean) / (mean((mb_adv - adv_mean) ** 2).sqrt() + 1e-8)
                old_logprob = mb["logprobs"]
                log_ratio = new_logprob - old_logprob
                with torch.no_grad():  # http://joschu.net/blog/kl-approx.html
                    ratio = log_ratio.exp()
                    approx_kl = mean((ratio - 1) - log_ratio)
                    ratio_stats.append(torch.stack([approx_kl, mean(((ratio - 1.0).abs() > clip_coef).float())]))
                pg_loss = mean(clipped_surrogate_loss(new_logprob, old_logprob, mb_adv, clip_coef))

                mb_returns, mb_old_values = mb["returns"], mb["values"]
                v_loss_unclipped = (new_value - mb_returns) ** 2
                if s.clip_vloss:
                    v_clipped = mb_old_values + (new_value - mb_old_values).clamp(-clip_coef, clip_coef)
                    v_loss_per = torch.max(v_loss_unclipped, (v_clipped - mb_returns) ** 2)
                else:
                    v_loss_per = v_loss_unclipped
                v_loss = 0.5 * mean(v_loss_per)
                loss = pg_loss + s.vf_coef * v_loss
                if s.ent_coef:
                    entropy_loss = mean(dist.entropy())
                    loss = loss - s.ent_coef * entropy_loss
                else:  # not part of the loss: measured for the logs only
                    with torch.no_grad():
                        entropy_loss = mean(dist.entropy())
                optimizer.zero_grad()
                loss.backward()
                optimizer.clip_grad_norm_(s.max_grad_norm)
                optimizer.step()
            if s.target_kl is not None and float(approx_kl) > s.target_kl:
                break

        # --- logging, evaluation, checkpoints ----------------------------------------------------------------------
        valid = valid_buf.flatten().bool()
        y_pred, y_true = values_buf.flatten()[valid], returns.flatten()[valid]
        var_y = torch.var(y_true)
        explained_var = float("nan") if var_y == 0 else float(1 - torch.var(y_true - y_pred) / var_y)
        sps = (global_step - start_step) / max(time.perf_counter() - start_time, 1e-9)
        metrics = {"charts/learning_rate": lr, "charts/sps": sps, "losses/value_loss": v_loss.item(),
                   "losses/policy_loss": pg_loss.item(), "losses/entropy": entropy_loss.item(),
                   "losses/approx_kl": float(approx_kl), "losses/clipfrac": float(torch.stack(ratio_stats)[:, 1].mean()),
                   "losses/explained_variance": explained_var}
        ctx.logger.log(global_step, metrics)
        if recent_returns:
            metrics["charts/recent_return"] = float(np.mean(recent_returns))

        if ctx.evaluate is not None and next_eval is not None and (global_step >= next_eval or update == num_updates):
            network.eval()
            eval_metrics = ctx.evaluate(policy, global_step)
            ctx.logger.log(global_step, eval_metrics)
            metrics.update(eval_metrics)
            next_eval = (global_step // s.eval_every + 1) * s.eval_every
            if best_return is None or eval_metrics["eval/mean_return"] > best_return:
                best_return = eval_metrics["eval/mean_return"]
                save("best", global_step, update, best_return)
        if next_snapshot is not None and global_step >= next_snapshot:
            save(step_checkpoint_name(global_step), global_step, update, best_return)
            next_snapshot = (global_step // s.checkpoint_every + 1) * s.checkpoint_every
        if ctx.progress is not None:
            ctx.progress(global_step, metrics)
        if ctx.stop_requested() and update < num_updates:
            status = "interrupted"
            break

    save("last", global_step, update, best_return)
    envs.close()
    return TrainResult(status=status, final_step=global_step)


def load_policy(checkpoint: Path, device: str = "cpu") -> PPOPolicy:
    """Rebuild the network from the checkpoint's settings and the env's spaces; load the weights."""
    torch_device = resolve_device(device)
    tensors, meta = load_checkpoint(checkpoint, torch_device)
    s = settings_from_dict(PPOSettings, meta["settings"])
    env = make_env(s.env_id)
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    network = ActorCritic(obs_space, act_space, s).to(torch_device)
    load_module_tensors("model", network, tensors)
    network.eval()
    obs_normalizer = None
    if s.normalize_obs:
        obs_normalizer = ObsNormalizer(obs_space)
        obs_normalizer.load_state_tensors("obs_rms", tensors)
    return PPOPolicy(network, obs_space, act_space, obs_normalizer, torch_device)
