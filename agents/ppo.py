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

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch

from rlsuite.agents.interface import AgentError, TrainContext, TrainResult
from rlsuite.agents.normalize import ObsNormalizer, RewardScaler
from rlsuite.agents.onpolicy import (
    ActorCritic,
    ActorCriticPolicy,
    ActorCriticSettings,
    HandGradMLP,
    Rollout,
    RolloutCollector,
    TrainingRun,
    check_actor_critic_spaces,
    compute_gae,
    explained_variance,
    load_actor_critic_policy,
    normalize_advantages,
)
from rlsuite.agents.optim import FlatAdam
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


def masked_mean(x: torch.Tensor, mask: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Mean of `x` over the entries where `mask` is 1 (`count` of them)."""
    return (x * mask).sum() / count


def clipped_surrogate_loss(new_logprob: torch.Tensor, old_logprob: torch.Tensor, advantages: torch.Tensor,
                           clip_coef: float) -> torch.Tensor:
    """-E[min(r A, clip(r, 1-eps, 1+eps) A)] with r = pi_new / pi_old (per-sample, not reduced)."""
    ratio = (new_logprob - old_logprob).exp()
    return torch.max(-advantages * ratio, -advantages * ratio.clamp(1.0 - clip_coef, 1.0 + clip_coef))


def label_loss(logits: torch.Tensor, labels: torch.Tensor,
               mean: Callable[[torch.Tensor], torch.Tensor] = torch.mean) -> tuple[torch.Tensor, torch.Tensor]:
    """Auxiliary classification (aux_label_key): cross-entropy of (B, classes) logits against the env's labels
    (B,), and the accuracy (no gradient), both averaged by `mean`. Its gradient shapes the encoder features
    the policy reads (Jaderberg et al. 2017; Hermann et al. 2017 for grounding words)."""
    loss = mean(torch.nn.functional.cross_entropy(logits, labels, reduction="none"))
    with torch.no_grad():
        accuracy = mean((logits.argmax(-1) == labels).float())
    return loss, accuracy


def keypoint_error(keypoints: torch.Tensor, targets: torch.Tensor,
                   mean: Callable[[torch.Tensor], torch.Tensor] = torch.mean) -> torch.Tensor:
    """Auxiliary keypoint regression (aux_keypoint_key): squared distance between (B, C, 2) keypoints and the
    env's (B, C, 2) positions, summed over the C keypoints and averaged over the batch by `mean`."""
    return mean(((keypoints - targets) ** 2).sum((1, 2)))


def categorical_ppo_loss_grads(logits: torch.Tensor, value: torch.Tensor, actions: torch.Tensor, old_logprob: torch.Tensor,
                               advantages: torch.Tensor, returns: torch.Tensor, old_values: torch.Tensor, clip_coef: float,
                               vf_coef: float, ent_coef: float, clip_vloss: bool, all_terms: bool = True
                               ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """PPO's loss for a Categorical policy with its gradient written out (no autograd graph): the same loss as
    the autograd path in `train`, for HandGradMLP. Returns (terms, dL/dlogits (B, n), dL/dvalue (B,)), means
    over the B rows; terms holds approx_kl and clipfrac, and with `all_terms` also pg_loss, v_loss and
    entropy (only logged once per update, so the loop skips them on the other gradient steps)."""
    batch = logits.shape[0]
    logp_all = logits.log_softmax(-1)  # (B, n)
    probs = logp_all.exp()  # (B, n)
    logp = logp_all.gather(-1, actions[:, None]).squeeze(-1)  # (B,)
    log_ratio = logp - old_logprob  # (B,)
    ratio = log_ratio.exp()  # (B,) r
    unclipped, clipped = advantages * ratio, advantages * ratio.clamp(1.0 - clip_coef, 1.0 + clip_coef)  # (B,)
    # loss = mean(max(-A r, -A clip(r))): dL/dr = -A / B where the unclipped term is the one taken (ties happen
    # only inside the clip range or at A = 0, where autograd's gradient is the same), 0 where the clip holds r
    grad_logp = torch.where(unclipped <= clipped, advantages * ratio, 0.0) * (-1.0 / batch)  # (B,) dL/dlogp = dL/dr r
    # dlogp/dlogits = onehot(a) - softmax
    grad_logits = (probs * -grad_logp[:, None]).scatter_add_(-1, actions[:, None], grad_logp[:, None])  # (B, n)
    entropy: torch.Tensor | None = None
    if ent_coef or all_terms:
        logp_finite = logp_all.clamp(min=torch.finfo(logp_all.dtype).min)  # as CategoricalDist.entropy
        entropy = -(probs * logp_finite).sum(-1)  # (B,)
        if ent_coef:  # loss -= c mean(H); dH/dz_j = -p_j (log p_j + H)
            grad_logits += (ent_coef / batch) * probs * (logp_finite + entropy[:, None])

    error = value - returns  # (B,)
    if clip_vloss:
        delta = value - old_values
        error_clipped = old_values + delta.clamp(-clip_coef, clip_coef) - returns
        sq, sq_clipped = error * error, error_clipped * error_clipped
        # d max(sq, sq_clipped): the unclipped error where it is the larger, else the clipped one, which moves
        # with v only inside the range. Ties within the range agree with autograd; an exact tie outside it (a
        # measure-zero event) takes the unclipped gradient where autograd would take half of it.
        grad_value = torch.where(sq >= sq_clipped, error, error_clipped * (delta.abs() <= clip_coef)) * (vf_coef / batch)
    else:
        grad_value = error * (vf_coef / batch)  # (B,) d(c 0.5 mean(e^2))/dv
    terms = {"approx_kl": ((ratio - 1) - log_ratio).mean(), "clipfrac": ((ratio - 1.0).abs() > clip_coef).float().mean()}
    if all_terms:
        assert entropy is not None
        terms["pg_loss"] = -torch.min(unclipped, clipped).mean()
        terms["v_loss"] = 0.5 * (torch.max(sq, sq_clipped) if clip_vloss else error * error).mean()
        terms["entropy"] = entropy.mean()
    return terms, grad_logits, grad_value


def train(s: PPOSettings, ctx: TrainContext) -> TrainResult:
    torch.set_num_threads(s.torch_threads)
    device = resolve_device(s.device)
    envs = make_vec_env(s.env_id, s.n_envs, mode=s.vectorization, record_stats=False,  # the collector counts episodes
                        preset=s.env_preset, **s.env_kwargs)
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    check_spaces(obs_space, act_space)

    batch_size = s.n_envs * s.n_steps
    n_minibatches = s.n_minibatches
    num_updates = max(1, s.total_steps // batch_size)

    torch.manual_seed(s.seed)  # before the network: its initial weights are part of the seeded run
    np.random.seed(s.seed)
    network = ActorCritic(obs_space, act_space, s).to(device)
    optimizer = FlatAdam(network, lr=s.learning_rate, eps=1e-5)  # parameters in one buffer (agents/optim.py)
    obs_normalizer = ObsNormalizer(obs_space) if s.normalize_obs else None
    reward_scaler = RewardScaler(s.n_envs, s.gamma) if s.normalize_reward else None
    # MLP over flat observations with a Discrete action: hand-written backward instead of autograd (onpolicy.py)
    hand = HandGradMLP(network) if HandGradMLP.supports(network) else None
    policy = PPOPolicy(network, obs_space, act_space, obs_normalizer, device)
    run = TrainingRun(AGENT_NAME, s, ctx, network, optimizer, obs_normalizer, reward_scaler, device)
    run.start()  # fresh (seeded) or resumed: step, update, best return, optimiser, normalisers, RNG

    rollout = Rollout(obs_space, act_space, s.n_steps, s.n_envs, device)  # (T, N, ...)
    collector = RolloutCollector(envs, network, device, obs_normalizer, reward_scaler, ctx, numpy_forward=True)
    collector.label_key = s.aux_label_key
    collector.keypoint_key = s.aux_keypoint_key
    collector.reset(seed=run.env_seed)

    for update in range(run.update + 1, num_updates + 1):
        run.update = update
        progress_left = 1.0 - (update - 1) / num_updates
        lr = s.learning_rate * progress_left if s.anneal_lr else s.learning_rate
        clip_coef = s.clip_coef * progress_left if s.anneal_clip else s.clip_coef
        optimizer.lr = lr

        # --- rollout -------------------------------------------------------------------------------------------
        network.eval()
        run.global_step, _ = collector.collect(rollout, run.global_step)

        # --- returns --------------------------------------------------------------------------------------------
        next_value = collector.next_value()
        buf = rollout.scalars()  # rewards, terminated, dones, starts, valid: (T, N)
        if device.type == "cpu":  # a Python loop over T steps of (N,) vectors: NumPy's small ops cost far less than torch's
            adv_np, ret_np = compute_gae(rollout.rewards, rollout.values.numpy(), next_value.numpy(), rollout.terminated,
                                         rollout.dones, s.gamma, s.gae_lambda)
            advantages, returns = torch.from_numpy(adv_np), torch.from_numpy(ret_np)
        else:
            advantages, returns = compute_gae(buf["rewards"], rollout.values, next_value, buf["terminated"], buf["dones"],
                                              s.gamma, s.gae_lambda)

        # --- minibatch updates ----------------------------------------------------------------------------------
        network.train()
        flat_obs = flatten_obs(rollout.obs)
        flat_actions = rollout.actions.flatten(0, 1)
        flat = {name: x.flatten(0, 1) for name, x in (("logprobs", rollout.logprobs), ("advantages", advantages),
                                                           ("returns", returns), ("values", rollout.values),
                                                           ("valid", buf["valid"]))}
        if rollout.labels is not None:  # aux_label_key: the env's label of each observation
            flat["labels"] = torch.from_numpy(rollout.labels.reshape(-1)).to(device)
        if rollout.keypoints is not None:  # aux_keypoint_key: where each observation's keypoints should be
            flat["keypoints"] = torch.from_numpy(rollout.keypoints.reshape(-1, *rollout.keypoints.shape[2:])).to(device)
        if network.core is None:  # reset steps are left out once, so every loss below is a plain mean
            keep = torch.from_numpy(np.flatnonzero(rollout.valid.reshape(-1))).to(device)  # (K,) real steps
            flat_obs, flat_actions = index_obs(flat_obs, keep), flat_actions[keep]
            flat = {name: x[keep] for name, x in flat.items() if name != "valid"}
        env_indices = np.arange(s.n_envs)
        ratio_stats: list[torch.Tensor] = []
        whole_batch_adv: torch.Tensor | None = None
        approx_kl = torch.zeros(())
        for epoch in range(s.n_epochs):
            minibatches: list[Any]
            if network.core is None:  # a single minibatch is the whole batch: no shuffling, no gathering
                minibatches = [None] if n_minibatches == 1 else list(torch.randperm(len(flat_actions)).tensor_split(n_minibatches))
                lstm_args: list[tuple[Any, Any]] = [(None, None)] * n_minibatches
            else:  # whole env sequences, so the LSTM replays each one from its rollout-start state
                assert rollout.initial_state is not None
                np.random.shuffle(env_indices)
                env_groups = np.array_split(env_indices, n_minibatches)
                # flat index of (t, env) is t * n_envs + env
                minibatches = [(np.arange(s.n_steps)[:, None] * s.n_envs + g[None, :]).ravel() for g in env_groups]
                lstm_args = [(tuple(x[:, g] for x in rollout.initial_state), buf["starts"][:, g]) for g in env_groups]
            for mb_number, (mb_inds, (mb_state, mb_starts)) in enumerate(zip(minibatches, lstm_args, strict=True)):
                mb = flat if mb_inds is None else {name: x[mb_inds] for name, x in flat.items()}
                if hand is not None:  # the same loss and gradient with no autograd graph (HandGradMLP)
                    mb_adv = mb["advantages"]
                    if s.norm_adv:
                        if mb_inds is None:  # the whole batch is the same every epoch: normalise it once
                            if whole_batch_adv is None:
                                whole_batch_adv = normalize_advantages(mb_adv)
                            mb_adv = whole_batch_adv
                        else:
                            mb_adv = normalize_advantages(mb_adv)
                    logits, new_value = hand.forward(cast(torch.Tensor, flat_obs if mb_inds is None else flat_obs[mb_inds]))
                    terms, grad_logits, grad_value = categorical_ppo_loss_grads(
                        logits, new_value, flat_actions if mb_inds is None else flat_actions[mb_inds], mb["logprobs"],
                        mb_adv, mb["returns"], mb["values"], clip_coef, s.vf_coef, s.ent_coef, s.clip_vloss,
                        all_terms=mb_number == n_minibatches - 1 and (epoch == s.n_epochs - 1 or s.target_kl is not None))
                    hand.backward(grad_logits, grad_value)  # writes every gradient: no zero_grad needed
                    optimizer.clip_grad_norm_(s.max_grad_norm)
                    optimizer.step()
                    approx_kl = terms["approx_kl"]
                    ratio_stats.append(torch.stack([approx_kl, terms["clipfrac"]]))
                    if "pg_loss" in terms:  # the last gradient step of an epoch: what the update logs
                        pg_loss, v_loss, entropy_loss = terms["pg_loss"], terms["v_loss"], terms["entropy"]
                    continue
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
                    mb_adv = normalize_advantages(mb_adv, mean)
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
                if network.has_aux():
                    aux_loss, aux_accuracy = label_loss(network.aux_logits(actor_f), mb["labels"], mean)
                    loss = loss + s.aux_label_coef * aux_loss
                if "keypoints" in mb:
                    assert network.pointer is not None and network.pointer.last_keypoints is not None
                    keypoint_loss = keypoint_error(network.pointer.last_keypoints, mb["keypoints"], mean)
                    loss = loss + s.aux_keypoint_coef * keypoint_loss
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

        collector.refresh()  # the fused rollout forward copies the new weights

        # --- logging, evaluation, checkpoints ----------------------------------------------------------------------
        valid = buf["valid"].flatten().bool()
        metrics = {"charts/learning_rate": lr, "losses/value_loss": v_loss.item(),
                   "losses/policy_loss": pg_loss.item(), "losses/entropy": entropy_loss.item(),
                   "losses/approx_kl": float(approx_kl), "losses/clipfrac": float(torch.stack(ratio_stats)[:, 1].mean()),
                   "losses/explained_variance": explained_variance(rollout.values.flatten()[valid], returns.flatten()[valid])}
        if network.has_aux():
            metrics["losses/aux_label_loss"], metrics["losses/aux_label_accuracy"] = aux_loss.item(), aux_accuracy.item()
        if rollout.keypoints is not None:
            metrics["losses/aux_keypoint_error"] = keypoint_loss.item()
        if run.end_update(metrics, policy, collector.recent_returns, last=update == num_updates):
            break

    run.save("last")
    envs.close()
    return TrainResult(status=run.status, final_step=run.global_step)


def load_policy(checkpoint: Path, device: str = "cpu") -> ActorCriticPolicy:
    """Rebuild the network from the checkpoint's settings and the env's spaces; load the weights."""
    return load_actor_critic_policy(checkpoint, PPOSettings, device)
