"""Deep Q-Network (Mnih et al. 2015) with the switches of Rainbow's simpler parts, read top to bottom.

The order is CleanRL's: settings, network, then the loop (act epsilon-greedily, store, sample, TD update,
target sync, logging). Plumbing (run folder, checkpoints, metrics) is imported; the replay memory lives
in agents/replay.py and the network is assembled from the shared backbone in rlsuite.policies.

Switches: `double` (van Hasselt et al. 2016: the online net picks the next action, the target net
scores it), `dueling` (Wang et al. 2016, in policies.QHead), `per` (Schaul et al. 2016: proportional
prioritised replay, alpha, beta annealed from beta0 to 1 over training), `n_step` returns, `loss`
huber | mse, hard (`tau = 1`) or Polyak (`tau < 1`) target updates every `target_update_interval` env
steps, a linear epsilon schedule. `--set double=true --set dueling=true --set per=true --set n_step=3` is a Rainbow-lite;
the distributional head (C51) and noisy nets are left out (see docs/dqn.md).

`recurrent=true` is DRQN (Hausknecht & Stone 2015) with R2D2's burn-in (Kapturowski et al. 2019): the
buffer samples windows of `burn_in + sequence_length` steps; hidden states are NOT stored: each window
starts from a zero state, the first `burn_in` steps only warm it up (no gradient, no loss), and the
LSTM clears its state wherever an episode starts inside the window.

Vector envs use next-step autoreset: the buffer stores every observation once and takes the next
observation of row t from row t + 1; reset steps (the env ignored their action) are never sampled.
Checkpoints hold the replay buffer, the env and the loop's state where the env's state can be captured
(agents/env_state.py), so a resumed run continues exactly; elsewhere (Atari) a resumed run refills the buffer
for `learning_starts` steps before it updates again (weights, optimiser, step, schedules and RNGs restored).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, cast

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from gymnasium import spaces

from rlsuite.agents import fast
from rlsuite.agents.checkpoint import load_checkpoint, load_module_tensors, seed_global_rngs
from rlsuite.agents.interface import AgentError, TrainContext, TrainResult
from rlsuite.agents.optim import Optimizer
from rlsuite.agents.replay import Batch, ReplayBuffer, SequenceBatch
from rlsuite.agents.run_loop import RunLoop
from rlsuite.agents.settings import ConfigError, TrainSettings, settings_from_dict
from rlsuite.agents.tensors import flatten_obs, index_obs, obs_to_tensor, resolve_device
from rlsuite.envs import make_env, make_vec_env
from rlsuite.policies import LSTMCore, QHead, SpaceError, make_encoder

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
    bootstrap_epsilon: float = 0.0
    """Bootstrap from the epsilon-greedy policy's value at s' (expected SARSA): (1 - e) Q(s', a*) + e mean_a Q(s', a).
    0 is Q-learning's greedy target. Set to the evaluation's epsilon, the greedy policy learns the value of
    playing with the random actions it will be evaluated with (the best epsilon-soft policy)."""
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
    cnn: Literal["nature", "nips", "impala"] = "nature"
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
        self.require(0.0 <= self.bootstrap_epsilon <= 1.0, "bootstrap_epsilon", "must lie in [0, 1]")
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
               next_q_online: torch.Tensor | None = None, epsilon: float = 0.0) -> torch.Tensor:
    """y = G + discount * V(s') for (B,) returns and (B, A) next Q-values, V(s') = (1 - epsilon) Q_target(s', a*)
    + epsilon mean_a Q_target(s', a): the value of acting epsilon-greedily from s' (epsilon 0: Q-learning's max).

    a* = argmax_a Q_target(s', a) (plain DQN), or argmax_a Q_online(s', a) with `next_q_online` (double DQN),
    which stops the max over noisy estimates from selecting and scoring with the same errors."""
    if next_q_online is None:
        next_value = next_q_target.max(dim=-1).values  # (B,)
    else:
        next_value = next_q_target.gather(-1, next_q_online.argmax(dim=-1, keepdim=True)).squeeze(-1)  # (B,)
    if epsilon > 0:
        next_value = (1.0 - epsilon) * next_value + epsilon * next_q_target.mean(dim=-1)  # (B,)
    return returns + discounts * next_value


def td_loss(q_taken: torch.Tensor, y: torch.Tensor, kind: str, weights: torch.Tensor | None = None) -> torch.Tensor:
    """DQN's loss: mean over the batch of w * huber|mse(Q(s, a) - y) for Q(s, a) and targets y of any shape, with
    per-sample weights w (prioritised replay's importance weights, a sequence mask) or none."""
    per_sample = F.smooth_l1_loss(q_taken, y, reduction="none") if kind == "huber" else F.mse_loss(q_taken, y, reduction="none")
    return (weights * per_sample).mean() if weights is not None else per_sample.mean()


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
            phase["y"] = td_targets(phase["returns"], phase["discounts"], phase["next_q_target"],
                                    epsilon=s.bootstrap_epsilon)  # (G*B,)
    return phase


def td_gradient_step(b: dict[str, Any], s: DQNSettings, network: QNetwork,
                     optimizer: Optimizer) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One gradient step of a feed-forward Q-network on batch `b` (with `y` or `next_q_target`): autograd through
    `td_loss`, the global-norm clip, one Adam step. Returns (Q(s, a) (B,), y (B,), IS weights or None).
    tests/test_dqn_vs_sb3.py runs it beside SB3's `DQN.train`."""
    if "y" in b:
        y = b["y"]
    else:
        with torch.no_grad():
            next_q_online = network(b["next_obs"]) if s.double else None  # (B, A)
            y = td_targets(b["returns"], b["discounts"], b["next_q_target"], next_q_online, s.bootstrap_epsilon)  # (B,)
    weights = b["weights"] if s.per else None
    q_taken = network(b["obs"]).gather(1, b["actions"][:, None]).squeeze(1)  # (B,)
    optimizer.zero_grad()
    td_loss(q_taken, y, s.loss, weights).backward()
    optimizer.clip_grad_norm_(s.max_grad_norm)
    optimizer.step()
    return q_taken.detach(), y, weights


def drqn_gradient_step(seq: SequenceBatch, s: DQNSettings, network: QNetwork, target: QNetwork, optimizer: Optimizer,
                       device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One gradient step of a recurrent Q-network on `batch_size` windows of burn_in + sequence_length (+ 1) steps:
    both networks start each window from a zero state, the online one warms up over the burn-in without gradient,
    and `td_loss` is a mean over the trained steps that are not reset steps. Returns (Q(s, a), y, the loss's
    per-step weights), each (S, B)."""
    assert network.core is not None
    obs = obs_to_tensor(seq.obs, device)  # (L + 1, B, ...)
    starts = torch.from_numpy(seq.episode_starts).to(device)  # (L + 1, B)
    zero = network.core.initial_state(s.batch_size, device)

    def steps(lo: int, hi: int | None = None) -> Any:
        return {k: v[lo:hi] for k, v in obs.items()} if isinstance(obs, dict) else obs[lo:hi]

    with torch.no_grad():
        q_next_all, _ = target.forward_sequence(obs, starts, zero)  # (L + 1, B, A)
        state = network.forward_sequence(steps(0, s.burn_in), starts[: s.burn_in], zero)[1] if s.burn_in else zero
    q_online, _ = network.forward_sequence(steps(s.burn_in), starts[s.burn_in:], state)  # (S + 1, B, A)
    actions = torch.from_numpy(seq.actions[s.burn_in:]).to(device)  # (S, B)
    rewards = torch.from_numpy(seq.rewards[s.burn_in:]).to(device)
    discounts = s.gamma * (1.0 - torch.from_numpy(seq.terminated[s.burn_in:]).to(device))
    y = td_targets(rewards, discounts, q_next_all[s.burn_in + 1:], q_online[1:].detach() if s.double else None,
                   s.bootstrap_epsilon)  # (S, B)
    q_taken = q_online[:-1].gather(2, actions[..., None]).squeeze(2)  # (S, B)
    mask = torch.from_numpy(seq.valid[s.burn_in:]).to(device)  # (S, B): no loss on reset steps
    weights = mask / mask.sum().clamp(min=1.0) * mask.numel()  # the masked mean as a weighted one
    optimizer.zero_grad()
    td_loss(q_taken, y, s.loss, weights).backward()
    optimizer.clip_grad_norm_(s.max_grad_norm)
    optimizer.step()
    return q_taken.detach(), y, weights


@torch.no_grad()
def update_target(target_params: list[torch.Tensor], online_params: list[torch.Tensor], tau: float) -> None:
    """target <- tau * online + (1 - tau) * target; tau = 1 is an exact copy."""
    torch._foreach_lerp_(target_params, online_params, tau)


def update_metrics(s: DQNSettings, epsilon: float, n_updates: int,
                   last_update: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None, beta: float) -> dict[str, float]:
    """What DQN logs: epsilon, the update count, and the TD loss and mean Q(s, a) of the latest gradient step."""
    metrics = {"charts/epsilon": epsilon, "charts/updates": n_updates}
    if last_update is not None:
        q_taken, y, weights = last_update
        metrics.update({"losses/td_loss": td_loss(q_taken, y, s.loss, weights).item(), "losses/q_values": q_taken.mean().item()})
        if s.per:
            metrics["charts/per_beta"] = beta
    return metrics


def build(s: DQNSettings) -> tuple[gym.vector.VectorEnv, QNetwork, QNetwork, Optimizer, torch.device]:
    """Threads and device; the vector env (its spaces checked); the seeded online network, its frozen target copy
    (both through agents/fast: the same function, faster where it applies) and the optimiser."""
    torch.set_num_threads(s.torch_threads)
    device = resolve_device(s.device)
    # episode statistics are counted in the loop (cheaper than Gymnasium's RecordEpisodeStatistics wrapper)
    envs = make_vec_env(s.env_id, s.n_envs, mode=s.vectorization, record_stats=False, preset=s.env_preset,
                        **s.env_kwargs)
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    check_spaces(obs_space, act_space)
    n_actions = int(cast(spaces.Discrete, act_space).n)
    seed_global_rngs(s.seed)  # before the networks: their initial weights are part of the seeded run
    network = QNetwork(obs_space, n_actions, s).to(device)
    target = QNetwork(obs_space, n_actions, s).to(device)
    target.load_state_dict(network.state_dict())
    target.requires_grad_(False)
    fast.accelerate(network)
    fast.accelerate(target)
    # Adam (eps 1e-8); where agents/fast supports it, parameters and gradients as views into two flat buffers
    return envs, network, target, fast.optimizer(network, "adam", lr=s.learning_rate, eps=1e-8), device


def train(s: DQNSettings, ctx: TrainContext) -> TrainResult:
    envs, network, target, optimizer, device = build(s)
    obs_space, act_space = envs.single_observation_space, cast(spaces.Discrete, envs.single_action_space)
    n_actions, action_start = int(act_space.n), int(act_space.start)
    online_params: list[torch.Tensor] = list(network.parameters())
    target_params: list[torch.Tensor] = list(target.parameters())
    policy = DQNPolicy(network, obs_space, act_space, device)
    exploration_steps = s.exploration_fraction * s.total_steps
    run = RunLoop(AGENT_NAME, s, ctx, envs, device=device, log_every=max(s.train_freq, 1_000), progress_every_s=None,
                  parts={"model": network, "target": target, "optim": optimizer})
    run.start()  # fresh or resumed: weights, optimiser, RNG, step, best return

    global_step = run.global_step
    rng = np.random.default_rng([s.seed, global_step])  # exploration
    buffer = ReplayBuffer(obs_space, s.buffer_size, s.n_envs, n_step=s.n_step, gamma=s.gamma, prioritized=s.per,
                          alpha=s.per_alpha, eps=s.per_eps, seed=s.seed + global_step + 1)
    log.info(buffer.describe())
    if ctx.resume_from is None:
        ctx.logger.log(global_step, {"charts/replay_buffer_bytes": buffer.nbytes})
    updates_from = global_step + s.learning_starts  # no updates until the (re)filled buffer holds this much

    raw_obs, _ = envs.reset(seed=run.env_seed)
    prev_done = np.zeros(s.n_envs, dtype=bool)  # the previous step ended an episode: this step is a reset step
    episode_start = np.ones(s.n_envs, dtype=bool)
    lstm_state = network.core.initial_state(s.n_envs, device) if network.core is not None else None
    recent_returns: deque[float] = deque(maxlen=20)
    last_update: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None  # (Q(s, a), y, weights), for logging
    episode_return = np.zeros(s.n_envs)
    episode_length = np.zeros(s.n_envs, dtype=np.int64)
    n_updates, beta = 0, s.per_beta0

    def carried() -> dict[str, Any]:  # what the loop carries from one step to the next, for exact resume
        return {"obs": raw_obs, "prev_done": prev_done, "episode_start": episode_start, "lstm_state": lstm_state,
                "episode_return": episode_return, "episode_length": episode_length, "recent": list(recent_returns),
                "n_updates": n_updates, "updates_from": updates_from, "rng": dict(rng.bit_generator.state)}

    if (saved := run.carry("loop", carried)) is not None:  # exact resume: continue where the run stopped
        raw_obs, prev_done, episode_start = saved["obs"], saved["prev_done"], saved["episode_start"]
        episode_return, episode_length = saved["episode_return"], saved["episode_length"]
        lstm_state = None if saved["lstm_state"] is None else tuple(x.to(device) for x in saved["lstm_state"])
        recent_returns.extend(saved["recent"])
        n_updates, updates_from = saved["n_updates"], saved["updates_from"]
        rng.bit_generator.state = saved["rng"]
    if (saved_buffer := run.carry("replay", buffer.state)) is not None:
        buffer.load_state(saved_buffer)

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
                    q = network(obs_t)  # (N, A)
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
        run.global_step = global_step
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
                phase = phase_tensors(buffer.sample(s.batch_size * s.gradient_steps), s, device, target)
            for g in range(s.gradient_steps):
                if network.core is not None:
                    if buffer.written <= s.burn_in + s.sequence_length:
                        break
                    seq = buffer.sample_sequences(s.batch_size, s.burn_in + s.sequence_length)
                    last_update = drqn_gradient_step(seq, s, network, target, optimizer, device)
                else:
                    if phase is not None:
                        b: dict[str, Any] = {key: index_obs(value, slice(g * s.batch_size, (g + 1) * s.batch_size))
                                             for key, value in phase.items()}
                    elif buffer.can_sample():
                        batch = buffer.sample(s.batch_size, beta)
                        b = _to_tensors(batch, device)
                        with torch.no_grad():
                            b["next_q_target"] = target(b["next_obs"])  # (B, A)
                    else:
                        break
                    last_update = td_gradient_step(b, s, network, optimizer)
                if s.per:
                    buffer.update_priorities(batch.indices, (last_update[0] - last_update[1]).detach().cpu().numpy())
                n_updates += 1

        # --- target network --------------------------------------------------------------------------------
        if global_step // s.target_update_interval > previous_step // s.target_update_interval:
            update_target(target_params, online_params, s.tau)

        # --- logging, evaluation, checkpoints ----------------------------------------------------------------
        if run.tick(partial(update_metrics, s, epsilon, n_updates, last_update, beta), policy, recent_returns,
                    last=global_step >= s.total_steps):
            break

    result = run.finish()  # the final `last` checkpoint
    envs.close()
    return result


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
