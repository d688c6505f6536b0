"""Deep Q-Network (Mnih et al. 2015) with the switches of Rainbow's simpler parts, read top to bottom.

The order is CleanRL's: settings, network, then the loop (act epsilon-greedily, store, sample, TD update,
target sync, logging). Plumbing (run folder, checkpoints, metrics) is imported; the replay memory lives
in agents/replay.py and the network is assembled from the shared backbone in rlsuite.policies.

Switches: `double` (van Hasselt et al. 2016: the online net picks the next action, the target net
scores it), `dueling` (Wang et al. 2016, in policies.QHead), `per` (Schaul et al. 2016: proportional
prioritised replay, alpha, beta annealed from beta0 to 1 over training), `n_step` returns, `loss`
huber | mse, hard (`tau = 1`) or Polyak (`tau < 1`) target updates every `target_update_interval` env
steps, a linear epsilon schedule. `--set double=true dueling=true per=true n_step=3` is a Rainbow-lite;
the distributional head (C51) and noisy nets are left out (see docs/dqn.md).

`recurrent=true` is DRQN (Hausknecht & Stone 2015) with R2D2's burn-in (Kapturowski et al. 2019): the
buffer samples windows of `burn_in + sequence_length` steps; hidden states are NOT stored: each window
starts from a zero state, the first `burn_in` steps only warm it up (no gradient, no loss), and the
LSTM clears its state wherever an episode starts inside the window.

Vector envs use next-step autoreset: the buffer stores every observation once and takes the next
observation of row t from row t + 1; reset steps (the env ignored their action) are never sampled.
The replay buffer is not saved in checkpoints: a resumed run refills it for `learning_starts` steps
before it updates again (weights, optimiser, step count, schedules and RNG state are restored).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
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
from rlsuite.agents.mlp_grad import linear_backward, mlp_backward, mlp_forward
from rlsuite.agents.optim import FlatAdam
from rlsuite.agents.replay import Batch, ReplayBuffer
from rlsuite.agents.run import step_checkpoint_name
from rlsuite.agents.settings import ConfigError, TrainSettings, settings_from_dict, settings_to_dict
from rlsuite.agents.tensors import flatten_obs, index_obs, obs_to_tensor, resolve_device
from rlsuite.envs import make_env, make_vec_env
from rlsuite.policies import LSTMCore, MLPEncoder, QHead, SpaceError, make_encoder

AGENT_NAME = "dqn"
log = logging.getLogger(__name__)


@dataclass
class DQNSettings(TrainSettings):
    n_envs: int = 1
    """Number of sub-envs stepped together in one vector env."""
    learning_rate: float = 1e-4
    """Adam step size."""
    buffer_size: int = 100_000
    """Replay capacity in transitions (summed over sub-envs)."""
    learning_starts: int = 1_000
    """Env steps collected before the first update (again after a resume: the buffer is not saved)."""
    batch_size: int = 32
    """Transitions per gradient step (sequences per gradient step when recurrent)."""
    gamma: float = 0.99
    """Discount factor."""
    train_freq: int = 4
    """Env steps (summed over sub-envs) between training phases."""
    gradient_steps: int = 1
    """Gradient steps per training phase."""
    target_update_interval: int = 1_000
    """Env steps between target-network updates."""
    tau: float = 1.0
    """Target update: target <- tau * online + (1 - tau) * target; 1 is a hard copy, < 1 Polyak averaging."""
    exploration_fraction: float = 0.1
    """Fraction of total_steps over which epsilon falls linearly from its initial to its final value."""
    exploration_initial_eps: float = 1.0
    """Epsilon at the start of training."""
    exploration_final_eps: float = 0.05
    """Epsilon after the exploration fraction."""
    max_grad_norm: float = 10.0
    """Global gradient-norm clip."""
    loss: Literal["huber", "mse"] = "huber"
    """TD loss: huber (smooth L1, delta 1) or mse."""
    double: bool = False
    """Double DQN: the online net picks the next action, the target net scores it."""
    dueling: bool = False
    """Dueling head: Q = V + A - mean(A)."""
    per: bool = False
    """Proportional prioritised replay on a sum-tree, with importance-sampling weights."""
    per_alpha: float = 0.6
    """Prioritisation exponent: 0 is uniform sampling."""
    per_beta0: float = 0.4
    """Importance-sampling exponent at the start; annealed linearly to 1 at the end of training."""
    per_eps: float = 1e-6
    """Added to |TD error| so no transition's priority is 0."""
    n_step: int = 1
    """Steps in the return before bootstrapping (cut at episode ends)."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """MLP widths for vector observations."""
    activation: Literal["tanh", "relu", "elu", "silu"] = "relu"
    """MLP activation."""
    cnn: Literal["nature", "impala"] = "nature"
    """CNN for image observations."""
    recurrent: bool = False
    """DRQN: an LSTM between encoder and Q head, trained on replayed sequences with burn-in."""
    lstm_hidden: int = 64
    """LSTM hidden size when recurrent."""
    sequence_length: int = 8
    """Steps per replayed sequence that carry the loss (recurrent)."""
    burn_in: int = 8
    """Steps before each sequence that only warm up the zeroed hidden state (recurrent)."""
    init: Literal["orthogonal", "torch"] = "orthogonal"
    """Weight init: orthogonal (the shared backbone's, CleanRL's) or torch (PyTorch's default per layer,
    as SB3's DQN has: use it to compare with SB3 like for like)."""

    def validate(self) -> None:
        super().validate()
        self.require(self.learning_rate > 0, "learning_rate", "must be > 0")
        self.require(self.batch_size >= 1, "batch_size", "must be >= 1")
        self.require(self.buffer_size >= self.batch_size, "buffer_size", f"must be >= batch_size ({self.batch_size})")
        self.require(self.learning_starts >= 0, "learning_starts", "must be >= 0")
        self.require(0.0 <= self.gamma <= 1.0, "gamma", "must lie in [0, 1]")
        self.require(self.train_freq >= 1, "train_freq", "must be >= 1 env step")
        self.require(self.gradient_steps >= 1, "gradient_steps", "must be >= 1")
        self.require(self.target_update_interval >= 1, "target_update_interval", "must be >= 1 env step")
        self.require(0.0 < self.tau <= 1.0, "tau", "must lie in (0, 1] (1 = hard copy)")
        self.require(0.0 < self.exploration_fraction <= 1.0, "exploration_fraction", "must lie in (0, 1]")
        for name in ("exploration_initial_eps", "exploration_final_eps"):
            self.require(0.0 <= getattr(self, name) <= 1.0, name, "must lie in [0, 1]")
        self.require(self.loss in ("huber", "mse"), "loss", "must be one of 'huber', 'mse'")
        self.require(self.per_alpha >= 0, "per_alpha", "must be >= 0")
        self.require(0.0 <= self.per_beta0 <= 1.0, "per_beta0", "must lie in [0, 1]")
        self.require(self.per_eps > 0, "per_eps", "must be > 0")
        self.require(self.n_step >= 1, "n_step", "must be >= 1")
        self.require(self.sequence_length >= 1, "sequence_length", "must be >= 1")
        self.require(self.burn_in >= 0, "burn_in", "must be >= 0")
        self.require(self.init in ("orthogonal", "torch"), "init", "must be one of 'orthogonal', 'torch'")
        if self.recurrent and (self.per or self.n_step != 1):
            raise ConfigError("recurrent DQN replays whole sequences with 1-step targets: set per=false and n_step=1 "
                              "(or recurrent=false to keep prioritised replay and n-step returns).")


Settings = DQNSettings


def check_spaces(observation_space: gym.Space, action_space: gym.Space) -> None:
    """DQN scores each of a finite set of actions: Discrete action spaces only."""
    if not isinstance(action_space, spaces.Discrete):
        raise AgentError(
            f"dqn cannot act in {action_space}: it needs a Discrete action space (one Q-value per action). "
            f"For Box or MultiDiscrete actions use --agent ppo."
        )
    try:
        make_encoder(observation_space)
    except SpaceError as err:
        raise AgentError(f"dqn cannot read observations from {observation_space}: {err}") from None


class QNetwork(nn.Module):
    """Encoder from the observation space, an optional LSTM core, and a (dueling) Q head."""

    def __init__(self, observation_space: gym.Space, n_actions: int, s: DQNSettings) -> None:
        super().__init__()
        self.encoder = make_encoder(observation_space, mlp_hidden=s.hidden_sizes, activation=s.activation, cnn=s.cnn)
        features_dim = self.encoder.features_dim
        self.core = LSTMCore(features_dim, s.lstm_hidden) if s.recurrent else None
        if self.core is not None:
            features_dim = self.core.features_dim
        self.head = QHead(features_dim, n_actions, dueling=s.dueling)
        if s.init == "torch":  # PyTorch's default init (Kaiming-uniform weights, uniform biases), as SB3's DQN
            for module in self.modules():
                reset = getattr(module, "reset_parameters", None)
                if module is not self and callable(reset):
                    reset()

    def forward(self, obs: Any) -> torch.Tensor:
        """Q-values (B, A) of a feed-forward network."""
        return self.head(self.encoder(obs))

    def forward_sequence(self, obs: Any, episode_starts: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """Q-values (T, B, A) for (T, B, ...) observations, run through the LSTM from `state`."""
        assert self.core is not None
        steps, batch = episode_starts.shape
        features = self.encoder(flatten_obs(obs))  # (T*B, F)
        out, state = self.core(features.reshape(steps, batch, -1), state, episode_starts)  # (T, B, H)
        return self.head(out.reshape(steps * batch, -1)).reshape(steps, batch, -1), state


class MLPQFunction:
    """Forward and TD-loss backward of a plain MLP Q-network as explicit matmuls: no nn.Module calls, no autograd.

    For the common case, a flat Box observation through `Linear -> act -> ... -> Linear` (ReLU or tanh, no
    dueling, no LSTM), the backward of the TD loss is a short chain written out with agents/mlp_grad.py
    (why: its docstring); it writes straight into the parameters' `.grad` tensors (views into FlatAdam's
    gradient buffer). tests/test_dqn.py checks forward, loss and every gradient against autograd through
    the module. Any other network takes the module path.
    """

    def __init__(self, network: QNetwork) -> None:
        encoder = cast(MLPEncoder, network.encoder)
        self.hidden_layers = [m for m in encoder.net if isinstance(m, nn.Linear)]  # in forward order
        self.output_layer = cast(nn.Linear, network.head.q[0])  # hidden -> Q-values, no activation
        self.relu = isinstance(encoder.net[1], nn.ReLU) if len(encoder.net) else True

    @staticmethod
    def supports(network: QNetwork) -> bool:
        encoder, head = network.encoder, network.head
        if network.core is not None or head.dueling or len(head.q) != 1:
            return False
        if not isinstance(encoder, MLPEncoder) or encoder.kind != "flat":
            return False
        acts = [m for m in encoder.net if not isinstance(m, nn.Linear)]
        return all(isinstance(m, nn.ReLU) for m in acts) or all(isinstance(m, nn.Tanh) for m in acts)

    def _hidden(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Activations [x, h_1, ..., h_L] of the hidden layers, x the (B, in) input."""
        return mlp_forward(self.hidden_layers, x.reshape(x.shape[0], -1).float(), self.relu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Q-values (B, A); call under no_grad / inference_mode."""
        return torch.addmm(self.output_layer.bias, self._hidden(x)[-1], self.output_layer.weight.t())

    @torch.no_grad()
    def td_backward(self, x: torch.Tensor, actions: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None,
                    loss: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Set every parameter's .grad to d/dtheta of mean(w * loss(Q(x, a) - y)); returns (Q(x, a), d loss/d Q(x, a)) (B,)."""
        hidden = self._hidden(x)
        out = self.output_layer
        q = torch.addmm(out.bias, hidden[-1], out.weight.t())  # (B, A)
        batch = q.shape[0]
        q_taken = q.gather(1, actions[:, None]).squeeze(1)  # (B,)
        delta = q_taken - y  # (B,)
        # smooth L1 (delta 1): d/d delta = clamp(delta, -1, 1); MSE: 2 delta; then the mean's 1/B and the IS weights
        grad_taken = delta.clamp(-1.0, 1.0) if loss == "huber" else delta * 2.0
        grad_taken = grad_taken * weights / batch if weights is not None else grad_taken / batch
        grad_q = torch.zeros_like(q).scatter_(1, actions[:, None], grad_taken[:, None])  # (B, A) dL/dq
        linear_backward(out, hidden[-1], grad_q)
        if self.hidden_layers:
            mlp_backward(self.hidden_layers, hidden, grad_q @ out.weight, self.relu)  # dL/dh_L (B, H)
        return q_taken, grad_taken


class DQNPolicy:
    """Greedy actions from a Q-network (epsilon-greedy with `epsilon` when not deterministic)."""

    def __init__(self, network: QNetwork, observation_space: gym.Space, action_space: spaces.Discrete,
                 device: torch.device, epsilon: float = 0.0, seed: int = 0) -> None:
        self.network = network
        self.observation_space = observation_space
        self.action_space: gym.Space = action_space
        self.device = device
        self.epsilon = epsilon
        self._rng = np.random.default_rng(seed)
        self._state: Any = None

    def reset(self, num_envs: int) -> None:
        self._state = self.network.core.initial_state(num_envs, self.device) if self.network.core is not None else None

    @torch.inference_mode()
    def act(self, obs: Any, episode_start: np.ndarray, deterministic: bool = True) -> np.ndarray:
        obs_t = obs_to_tensor(obs, self.device)
        if self.network.core is None:
            q = self.network(obs_t)  # (B, A)
        else:
            if self._state is None or self._state[0].shape[1] != len(episode_start):
                self.reset(len(episode_start))
            starts = torch.as_tensor(episode_start, dtype=torch.float32, device=self.device)[None]  # (1, B)
            obs_seq = {k: v[None] for k, v in obs_t.items()} if isinstance(obs_t, dict) else obs_t[None]
            q, self._state = self.network.forward_sequence(obs_seq, starts, self._state)
            q = q[0]
        actions = q.argmax(dim=1).cpu().numpy()
        space = cast(spaces.Discrete, self.action_space)  # the constructor takes a Discrete
        if not deterministic and self.epsilon > 0:
            explore = self._rng.random(len(actions)) < self.epsilon
            actions[explore] = self._rng.integers(0, space.n, size=int(explore.sum()))
        return actions + int(space.start)


def linear_schedule(start: float, end: float, duration: float, step: float) -> float:
    """`start` at step 0, `end` from step `duration` on, linear in between."""
    return end + (start - end) * max(0.0, 1.0 - step / duration)


def td_targets(returns: torch.Tensor, discounts: torch.Tensor, next_q_target: torch.Tensor,
               next_q_online: torch.Tensor | None = None) -> torch.Tensor:
    """y = G + discount * Q_target(s', a*) for (B,) returns and (B, A) next Q-values.

    a* = argmax_a Q_target(s', a) (plain DQN), or argmax_a Q_online(s', a) with `next_q_online` (double DQN),
    which stops the max over noisy estimates from selecting and scoring with the same errors."""
    if next_q_online is None:
        next_value = next_q_target.max(dim=-1).values  # (B,)
    else:
        next_value = next_q_target.gather(-1, next_q_online.argmax(dim=-1, keepdim=True)).squeeze(-1)  # (B,)
    return returns + discounts * next_value


def _td_loss(q: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-element loss (not reduced)."""
    return F.smooth_l1_loss(q, y, reduction="none") if kind == "huber" else F.mse_loss(q, y, reduction="none")


def _to_tensors(batch: Batch, device: torch.device) -> dict[str, Any]:
    """A sampled batch as tensors (zero-copy on CPU)."""
    return {"obs": obs_to_tensor(batch.obs, device), "next_obs": obs_to_tensor(batch.next_obs, device),
            **{key: torch.from_numpy(getattr(batch, key)).to(device)
               for key in ("actions", "returns", "discounts", "weights")}}


def phase_tensors(batch: Batch, s: DQNSettings, device: torch.device,
                  target_q: Callable[[Any], torch.Tensor]) -> dict[str, Any]:
    """A whole training phase's (G*B) uniform draws as tensors, next observations scored by the target net.

    The target net is fixed during a phase, so one target pass serves every gradient step of it (and, without
    double Q, every TD target `y` is computed here at once)."""
    phase = _to_tensors(batch, device)
    with torch.no_grad():
        phase["next_q_target"] = target_q(phase["next_obs"])  # (G*B, A)
        if not s.double:
            phase["y"] = td_targets(phase["returns"], phase["discounts"], phase["next_q_target"])  # (G*B,)
    return phase


def td_gradient_step(b: dict[str, Any], s: DQNSettings, network: QNetwork, optimizer: FlatAdam,
                     online_q: Callable[[Any], torch.Tensor],
                     fast: MLPQFunction | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One gradient step of a feed-forward Q-network on batch `b` (with `y` or `next_q_target`): the TD loss's
    gradient (explicit matmuls when `fast`, autograd otherwise), the global-norm clip, one Adam step.
    Returns (Q(s, a) (B,), y (B,), IS weights or None). tests/test_dqn_vs_sb3.py runs it beside SB3's `DQN.train`."""
    if "y" in b:
        y = b["y"]
    else:
        with torch.no_grad():
            next_q_online = online_q(b["next_obs"]) if s.double else None  # (B, A)
            y = td_targets(b["returns"], b["discounts"], b["next_q_target"], next_q_online)  # (B,)
    weights = b["weights"] if s.per else None
    if fast is not None:
        q_taken, _ = fast.td_backward(b["obs"], b["actions"], y, weights, s.loss)  # grads set
    else:
        q_taken = network(b["obs"]).gather(1, b["actions"][:, None]).squeeze(1)  # (B,)
        per_sample = _td_loss(q_taken, y, s.loss)
        loss = (weights * per_sample).mean() if weights is not None else per_sample.mean()
        optimizer.zero_grad()
        loss.backward()
    optimizer.clip_grad_norm_(s.max_grad_norm)
    optimizer.step()
    return q_taken, y, weights


@torch.no_grad()
def update_target(target_params: list[torch.Tensor], online_params: list[torch.Tensor], tau: float) -> None:
    """target <- tau * online + (1 - tau) * target; tau = 1 is an exact copy."""
    torch._foreach_lerp_(target_params, online_params, tau)


def train(s: DQNSettings, ctx: TrainContext) -> TrainResult:
    torch.set_num_threads(s.torch_threads)
    device = resolve_device(s.device)
    # episode statistics are counted below (cheaper than Gymnasium's RecordEpisodeStatistics wrapper)
    envs = make_vec_env(s.env_id, s.n_envs, mode=s.vectorization, record_stats=False, preset=s.env_preset,
                        **s.env_kwargs)
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    check_spaces(obs_space, act_space)
    assert isinstance(act_space, spaces.Discrete)
    n_actions, action_start = int(act_space.n), int(act_space.start)

    torch.manual_seed(s.seed)  # before the networks: their initial weights are part of the seeded run
    np.random.seed(s.seed)
    network = QNetwork(obs_space, n_actions, s).to(device)
    target = QNetwork(obs_space, n_actions, s).to(device)
    target.load_state_dict(network.state_dict())
    target.requires_grad_(False)
    # parameters and gradients as views into two flat buffers: one-norm clipping, a six-op Adam (agents/optim.py)
    optimizer = FlatAdam(network, lr=s.learning_rate)
    online_params: list[torch.Tensor] = list(network.parameters())
    target_params: list[torch.Tensor] = list(target.parameters())
    fast = MLPQFunction(network) if MLPQFunction.supports(network) else None  # explicit matmuls, no autograd
    fast_target = MLPQFunction(target) if fast is not None else None
    online_q: Callable[[Any], torch.Tensor] = fast.forward if fast is not None else network  # (B, A) Q-values
    target_q = fast_target.forward if fast_target is not None else target
    policy = DQNPolicy(network, obs_space, act_space, device)
    exploration_steps = s.exploration_fraction * s.total_steps

    def save(name: str, step: int, best: float | None) -> None:
        tensors = module_tensors("model", network)
        tensors.update(module_tensors("target", target))
        rng_tensors, rng_meta = rng_state()
        tensors.update(optimizer.state_tensors("optim"))
        tensors.update(rng_tensors)
        meta = {"agent": AGENT_NAME, "settings": settings_to_dict(s), "step": step, "best_eval_return": best,
                "rng": rng_meta, "replay_saved": False}
        save_checkpoint(ctx.run.checkpoint_path(name), tensors, meta)

    # --- start or resume ---------------------------------------------------------------------------------
    global_step, best_return = 0, None
    if ctx.resume_from is not None:
        tensors, meta = load_checkpoint(ctx.resume_from, device)
        load_module_tensors("model", network, tensors)
        load_module_tensors("target", target, tensors)
        optimizer.load_state_tensors("optim", tensors)
        restore_rng_state(tensors, meta["rng"])
        global_step, best_return = meta["step"], meta["best_eval_return"]
    # Env states and the buffer are not checkpointed: a resumed run starts fresh episodes from new seeds.
    env_seed = s.seed + global_step
    rng = np.random.default_rng([s.seed, global_step])  # exploration
    buffer = ReplayBuffer(obs_space, s.buffer_size, s.n_envs, n_step=s.n_step, gamma=s.gamma, prioritized=s.per,
                          alpha=s.per_alpha, eps=s.per_eps, seed=s.seed + global_step + 1)
    log.info(buffer.describe())
    ctx.logger.log(global_step, {"charts/replay_buffer_bytes": buffer.nbytes})
    updates_from = global_step + s.learning_starts  # no updates until the (re)filled buffer holds this much

    raw_obs, _ = envs.reset(seed=env_seed)
    prev_done = np.zeros(s.n_envs, dtype=bool)  # the previous step ended an episode: this step is a reset step
    episode_start = np.ones(s.n_envs, dtype=bool)
    lstm_state = network.core.initial_state(s.n_envs, device) if network.core is not None else None
    recent_returns: deque[float] = deque(maxlen=20)
    next_eval = (global_step // s.eval_every + 1) * s.eval_every if s.eval_every else None
    next_snapshot = (global_step // s.checkpoint_every + 1) * s.checkpoint_every if s.checkpoint_every else None
    log_every = max(s.train_freq, 1_000)
    next_log = (global_step // log_every + 1) * log_every
    status = "finished"
    start_time, start_step = time.perf_counter(), global_step
    last_update: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None  # (Q(s, a), y, weights), for logging
    episode_return = np.zeros(s.n_envs)
    episode_length = np.zeros(s.n_envs, dtype=np.int64)
    n_updates = 0
    seq_len = s.burn_in + s.sequence_length

    while global_step < s.total_steps:
        # --- act epsilon-greedily --------------------------------------------------------------------------
        epsilon = linear_schedule(s.exploration_initial_eps, s.exploration_final_eps, exploration_steps, global_step)
        # uniform random actions for the first learning_starts steps (as SB3), then epsilon-greedy
        explore = rng.random(s.n_envs) < epsilon if global_step >= s.learning_starts else np.ones(s.n_envs, dtype=bool)  # (N,)
        if lstm_state is None and explore.all():
            actions = rng.integers(0, n_actions, size=s.n_envs)  # no forward pass needed
        else:
            with torch.inference_mode():
                obs_t = obs_to_tensor(raw_obs, device)
                if lstm_state is None:
                    q = online_q(obs_t)  # (N, A)
                else:
                    starts = torch.from_numpy(episode_start[None].astype(np.float32))  # (1, N)
                    obs_seq = {k: v[None] for k, v in obs_t.items()} if isinstance(obs_t, dict) else obs_t[None]
                    q, lstm_state = network.forward_sequence(obs_seq, starts.to(device), lstm_state)
                    q = q[0]
                actions = q.argmax(dim=1).cpu().numpy()
            if explore.any():
                actions[explore] = rng.integers(0, n_actions, size=int(explore.sum()))

        next_obs, reward, terminated, truncated, _ = envs.step(actions + action_start)
        buffer.add(raw_obs, actions, reward, terminated, truncated, ~prev_done, episode_start)
        done = np.logical_or(terminated, truncated)
        # a reset step (the previous step ended an episode) belongs to no episode: it restarts the counts
        episode_return = np.where(prev_done, 0.0, episode_return + reward)
        episode_length = np.where(prev_done, 0, episode_length + 1)
        episode_start, prev_done = prev_done, done  # the step after a reset step starts an episode
        raw_obs = next_obs
        previous_step, global_step = global_step, global_step + s.n_envs
        if done.any():
            for i in np.flatnonzero(done):
                recent_returns.append(float(episode_return[i]))
                ctx.logger.log(global_step, {"charts/episodic_return": float(episode_return[i]),
                                             "charts/episodic_length": float(episode_length[i])})

        # --- train ---------------------------------------------------------------------------------------
        if global_step >= updates_from and global_step // s.train_freq > previous_step // s.train_freq:
            beta = linear_schedule(s.per_beta0, 1.0, s.total_steps, global_step)
            phase = None
            if network.core is None and not s.per and buffer.can_sample():
                # Uniform draws do not depend on the updates: draw every batch of the phase at once
                phase = phase_tensors(buffer.sample(s.batch_size * s.gradient_steps), s, device, target_q)
            for g in range(s.gradient_steps):
                if network.core is None:
                    if phase is not None:
                        rows = slice(g * s.batch_size, (g + 1) * s.batch_size)
                        b: dict[str, Any] = {key: index_obs(value, rows) for key, value in phase.items()}
                    elif buffer.can_sample():
                        batch = buffer.sample(s.batch_size, beta)
                        b = _to_tensors(batch, device)
                        with torch.no_grad():
                            b["next_q_target"] = target_q(b["next_obs"])  # (B, A)
                    else:
                        break
                    q_taken, y, weights = td_gradient_step(b, s, network, optimizer, online_q, fast)
                else:
                    if buffer.written <= seq_len:
                        break
                    seq = buffer.sample_sequences(s.batch_size, seq_len)
                    obs_seq_b = obs_to_tensor(seq.obs, device)  # (L + 1, B, ...)
                    starts_b = torch.from_numpy(seq.episode_starts).to(device)  # (L + 1, B)
                    zero = network.core.initial_state(s.batch_size, device)
                    with torch.no_grad():
                        q_next_all, _ = target.forward_sequence(obs_seq_b, starts_b, zero)  # (L + 1, B, A)
                        burn_obs = {k: v[: s.burn_in] for k, v in obs_seq_b.items()} if isinstance(obs_seq_b, dict) \
                            else obs_seq_b[: s.burn_in]
                        state = network.forward_sequence(burn_obs, starts_b[: s.burn_in], zero)[1] if s.burn_in else zero
                    train_obs = {k: v[s.burn_in:] for k, v in obs_seq_b.items()} if isinstance(obs_seq_b, dict) \
                        else obs_seq_b[s.burn_in:]
                    q_online, _ = network.forward_sequence(train_obs, starts_b[s.burn_in:], state)  # (S + 1, B, A)
                    actions_b = torch.from_numpy(seq.actions[s.burn_in:]).to(device)  # (S, B)
                    rewards_b = torch.from_numpy(seq.rewards[s.burn_in:]).to(device)
                    discounts_b = s.gamma * (1.0 - torch.from_numpy(seq.terminated[s.burn_in:]).to(device))
                    y = td_targets(rewards_b, discounts_b, q_next_all[s.burn_in + 1:],
                                   q_online[1:].detach() if s.double else None)  # (S, B)
                    q_taken = q_online[:-1].gather(2, actions_b[..., None]).squeeze(2)  # (S, B)
                    mask = torch.from_numpy(seq.valid[s.burn_in:]).to(device)  # (S, B): no loss on reset steps
                    loss = (_td_loss(q_taken, y, s.loss) * mask).sum() / mask.sum().clamp(min=1.0)
                    weights = mask / mask.sum().clamp(min=1.0) * mask.numel()  # the masked mean as a weighted one
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.clip_grad_norm_(s.max_grad_norm)
                    optimizer.step()
                if s.per:
                    buffer.update_priorities(batch.indices, (q_taken - y).detach().cpu().numpy())
                last_update = (q_taken.detach(), y, weights)
                n_updates += 1

        # --- target network --------------------------------------------------------------------------------
        if global_step // s.target_update_interval > previous_step // s.target_update_interval:
            update_target(target_params, online_params, s.tau)

        # --- logging, evaluation, checkpoints ----------------------------------------------------------------
        finished = global_step >= s.total_steps
        if global_step >= next_log or finished:
            next_log = (global_step // log_every + 1) * log_every
            sps = (global_step - start_step) / max(time.perf_counter() - start_time, 1e-9)
            metrics = {"charts/epsilon": epsilon, "charts/sps": sps, "charts/updates": n_updates}
            if last_update is not None:
                q_taken_last, y_last, weights_last = last_update
                per_sample = _td_loss(q_taken_last, y_last, s.loss)
                td_loss = (weights_last * per_sample).mean() if weights_last is not None else per_sample.mean()
                metrics.update({"losses/td_loss": td_loss.item(), "losses/q_values": q_taken_last.mean().item()})
                if s.per:
                    metrics["charts/per_beta"] = beta
            ctx.logger.log(global_step, metrics)
            if recent_returns:
                metrics["charts/recent_return"] = float(np.mean(recent_returns))
            if ctx.progress is not None:
                ctx.progress(global_step, metrics)
        if ctx.evaluate is not None and next_eval is not None and (global_step >= next_eval or finished):
            eval_metrics = ctx.evaluate(policy, global_step)
            ctx.logger.log(global_step, eval_metrics)
            next_eval = (global_step // s.eval_every + 1) * s.eval_every
            if best_return is None or eval_metrics["eval/mean_return"] > best_return:
                best_return = eval_metrics["eval/mean_return"]
                save("best", global_step, best_return)
            if ctx.progress is not None:
                ctx.progress(global_step, eval_metrics)
        if next_snapshot is not None and global_step >= next_snapshot:
            save(step_checkpoint_name(global_step), global_step, best_return)
            next_snapshot = (global_step // s.checkpoint_every + 1) * s.checkpoint_every
        if ctx.stop_requested() and not finished:
            status = "interrupted"
            break

    save("last", global_step, best_return)
    envs.close()
    return TrainResult(status=status, final_step=global_step)


def load_policy(checkpoint: Path, device: str = "cpu") -> DQNPolicy:
    """Rebuild the network from the checkpoint's settings and the env's spaces; load the weights."""
    torch_device = resolve_device(device)
    tensors, meta = load_checkpoint(checkpoint, torch_device)
    s = settings_from_dict(DQNSettings, meta["settings"])
    env = make_env(s.env_id, preset=s.env_preset, **s.env_kwargs)
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    check_spaces(obs_space, act_space)
    assert isinstance(act_space, spaces.Discrete)
    network = QNetwork(obs_space, int(act_space.n), s).to(torch_device)
    load_module_tensors("model", network, tensors)
    network.eval()
    return DQNPolicy(network, obs_space, act_space, torch_device)
