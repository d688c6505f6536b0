"""Our DQN in lockstep with Stable-Baselines3's DQN (RL Zoo's CartPole settings): the same algorithm, step for step.

Update side: both Q-networks start from the same weights (SB3's copied into ours), both replay buffers hold
the same trajectory (each stored the way its library's collection loop stores it: SB3's terminal
observations and timeouts, our next-step-autoreset rows), and SB3's sampler is patched to return, for every
gradient step, the transitions our sampler drew. Three phases of 128 gradient steps (batch 64) with the
target copy between them then give the same online and target weights to float32 tolerance, and the same
losses. Perturbing one thing on our side (gamma, the gradient clip, Adam's epsilon, the target copy's
timing, the loss) must break the agreement: that shows the comparison can fail.

Collection side: a short run of each library's own training loop, recording when each trains, when each
copies the target, the epsilon each acts with at every step and when each first consults its Q-network.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from rlsuite.agents import dqn, fast
from rlsuite.agents.fast.optim import FlatAdam
from rlsuite.agents.interface import TrainContext
from rlsuite.agents.logger import MetricLogger, read_metrics
from rlsuite.agents.replay import ReplayBuffer
from rlsuite.agents.run import RunFolder

sb3 = pytest.importorskip("stable_baselines3")
from stable_baselines3 import DQN  # noqa: E402
from stable_baselines3.common.logger import Logger  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv  # noqa: E402

pytestmark = pytest.mark.slow
torch.set_num_threads(1)  # two threads on the two shared cores only spin

# rl-baselines3-zoo hyperparams/dqn.yml, CartPole-v1
ZOO = {"learning_rate": 2.3e-3, "batch_size": 64, "buffer_size": 100_000, "learning_starts": 1000, "gamma": 0.99,
       "target_update_interval": 10, "train_freq": 256, "gradient_steps": 128, "exploration_fraction": 0.16,
       "exploration_final_eps": 0.04}
TRAJECTORY = 2000  # transitions in both buffers
MAX_EPISODE_STEPS = 40  # short episodes, so the buffers hold truncations as well as terminations


def short_cartpole() -> gym.Env:
    return gym.make("CartPole-v1", max_episode_steps=MAX_EPISODE_STEPS)


def sb3_model(seed: int = 0, **overrides: Any) -> DQN:
    settings = {**ZOO, **overrides}
    model = DQN("MlpPolicy", DummyVecEnv([short_cartpole]), policy_kwargs={"net_arch": [256, 256]}, seed=seed,
                device="cpu", verbose=0, **settings)
    model.set_logger(Logger(folder=None, output_formats=[]))
    return model


def our_settings(**overrides: Any) -> dqn.DQNSettings:
    fields = {**ZOO, "env_id": "CartPole-v1", "hidden_sizes": (256, 256), "activation": "relu", "init": "torch",
              "max_grad_norm": 10.0, "loss": "huber"}
    return dqn.DQNSettings(**{**fields, **overrides})


def copy_sb3_weights(model: DQN, network: dqn.QNetwork) -> None:
    """SB3's q_net (Linear, ReLU, Linear, ReLU, Linear) into our encoder's two Linears and the Q head."""
    sb3_linears = [m for m in model.q_net.q_net if isinstance(m, torch.nn.Linear)]
    ours = [m for m in network.encoder.net if isinstance(m, torch.nn.Linear)] + [network.head.q[0]]
    assert len(sb3_linears) == len(ours) == 3
    with torch.no_grad():
        for src, dst in zip(sb3_linears, ours, strict=True):
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)


def flat(params: Any) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in params])


def fill_both(model: DQN, buffer: ReplayBuffer, steps: int, seed: int = 7) -> dict[int, int]:
    """One random-action trajectory into both buffers, each stored as its collection loop stores it.

    SB3: DummyVecEnv (autoreset inside step, the final observation in infos) through `_store_transition`.
    Ours: a next-step-autoreset SyncVectorEnv through `ReplayBuffer.add` as `dqn.train` calls it (the step
    after an episode's end is a reset step whose action the env ignores). Returns our row -> SB3 index."""
    sb3_env = model.get_env()
    sb3_env.seed(seed)
    model._last_obs = sb3_env.reset()
    envs = SyncVectorEnv([short_cartpole], autoreset_mode=AutoresetMode.NEXT_STEP)
    obs, _ = envs.reset(seed=seed)
    np.testing.assert_array_equal(obs, model._last_obs)
    rng = np.random.default_rng(seed)
    prev_done, episode_start = np.zeros(1, bool), np.ones(1, bool)
    row_to_sb3: dict[int, int] = {}
    stored, rows = 0, 0
    while stored < steps:
        action = rng.integers(0, 2, size=1)
        next_obs, reward, terminated, truncated, _ = envs.step(action)
        buffer.add(obs, action, reward, terminated, truncated, ~prev_done, episode_start)
        if not prev_done[0]:  # a real transition: SB3 takes the same step
            new_obs, rewards, dones, infos = sb3_env.step(action)
            model._store_transition(model.replay_buffer, action, new_obs, rewards, dones, infos)
            row_to_sb3[rows] = stored
            stored += 1
            if not dones[0]:
                np.testing.assert_array_equal(next_obs, new_obs)
        done = np.logical_or(terminated, truncated)
        episode_start, prev_done = prev_done, done
        obs = next_obs
        rows += 1
    envs.close()
    assert model.replay_buffer.timeouts[:stored].any() and model.replay_buffer.dones[:stored].sum() > 10
    return row_to_sb3


def run_lockstep(phases: int = 3, perturb: dict[str, Any] | None = None, skip_target_copy_after: int | None = None,
                 adam_eps: float = 1e-8) -> dict[str, list[float]]:
    """Phases of 128 gradient steps on both sides; returns the largest parameter and loss differences per phase."""
    torch.manual_seed(0)
    model = sb3_model()
    s = our_settings(**(perturb or {}))
    obs_space = model.observation_space
    network, target = dqn.QNetwork(obs_space, 2, s), dqn.QNetwork(obs_space, 2, s)
    copy_sb3_weights(model, network)
    target.load_state_dict(network.state_dict())
    target.requires_grad_(False)
    assert fast.accelerate(network) and fast.accelerate(target)  # as dqn.train does for this network
    optimizer = FlatAdam(network, lr=s.learning_rate, eps=adam_eps)
    buffer = ReplayBuffer(obs_space, s.buffer_size, 1, n_step=s.n_step, gamma=s.gamma, seed=1)
    row_to_sb3 = fill_both(model, buffer, TRAJECTORY)

    pending: list[np.ndarray] = []  # SB3 indices of each gradient step's batch, in order

    def patched_sample(batch_size: int, env: Any = None) -> Any:
        return model.replay_buffer._get_samples(pending.pop(0))

    model.replay_buffer.sample = patched_sample  # type: ignore[method-assign]
    device = torch.device("cpu")
    report: dict[str, list[float]] = {"online": [], "target": [], "loss": [], "online_scale": []}
    for phase_index in range(phases):
        batch = buffer.sample(s.batch_size * s.gradient_steps)
        sb3_indices = np.array([row_to_sb3[int(row)] for row in batch.indices])  # one env, no wrap: slot = row
        pending.extend(np.split(sb3_indices, s.gradient_steps))
        phase = dqn.phase_tensors(batch, s, device, target)
        losses = []
        for g in range(s.gradient_steps):
            rows = slice(g * s.batch_size, (g + 1) * s.batch_size)
            q_taken, y, _ = dqn.td_gradient_step({k: v[rows] for k, v in phase.items()}, s, network, optimizer)
            losses.append(dqn.td_loss(q_taken, y, "huber").item())
        model.train(gradient_steps=ZOO["gradient_steps"], batch_size=ZOO["batch_size"])
        assert not pending
        # the target copy as each library schedules it: SB3's _on_step once per env step until the next phase
        # (a hard copy every 10 calls), ours every 10 env steps; no training happens in between
        for _ in range(ZOO["train_freq"]):
            model._on_step()
        if skip_target_copy_after != phase_index:
            dqn.update_target(list(target.parameters()), list(network.parameters()), s.tau)
        report["online"].append((flat(network.parameters()) - flat(model.q_net.parameters())).abs().max().item())
        report["online_scale"].append(flat(model.q_net.parameters()).abs().max().item())
        report["target"].append((flat(target.parameters()) - flat(model.q_net_target.parameters())).abs().max().item())
        report["loss"].append(abs(float(np.mean(losses)) - model.logger.name_to_value["train/loss"]))
    return report


TOLERANCE = 1e-4  # float32: different summation orders (our MLPTower backward vs SB3's modules), 384 Adam steps


def test_updates_agree_with_sb3_step_for_step_on_the_same_batches():
    report = run_lockstep()
    assert max(report["online"]) < TOLERANCE, report
    assert max(report["target"]) < TOLERANCE, report
    assert max(report["loss"]) < 1e-4, report
    assert min(report["online_scale"]) > 0.1  # the weights moved: a real comparison, not of zeros


@pytest.mark.parametrize("change", ["gamma", "max_grad_norm", "adam_eps", "target_timing", "loss"])
def test_lockstep_detects_a_single_perturbation(change):
    """Each of these differs from SB3 in one thing; the comparison above must see it."""
    kwargs: dict[str, Any] = {
        "gamma": {"perturb": {"gamma": 0.98}},
        "max_grad_norm": {"perturb": {"max_grad_norm": 0.5}},
        "adam_eps": {"adam_eps": 1e-5},
        "target_timing": {"skip_target_copy_after": 0},
        "loss": {"perturb": {"loss": "mse"}},
    }[change]
    report = run_lockstep(phases=2 if change == "target_timing" else 1, **kwargs)  # the target shows in phase 2
    assert max(report["online"]) > 100 * TOLERANCE, report


def test_collection_schedule_matches_sb3(tmp_path, monkeypatch):
    """Each library's own loop over a short run: train, target-copy and epsilon schedules, warm-up actions.

    RL Zoo's settings except a short run (2048 steps, a multiple of train_freq: SB3 always completes a
    256-step rollout, so for other lengths it runs up to 255 steps and one phase past total_timesteps),
    a slower epsilon decay (so epsilon still moves after learning_starts) and 2 gradient steps a phase."""
    total, overrides = 2048, {"exploration_fraction": 0.8, "gradient_steps": 2}
    # --- SB3: record at each env step the epsilon it acts with, its policy calls, train calls, target copies
    model = DQN("MlpPolicy", "CartPole-v1", policy_kwargs={"net_arch": [64, 64]}, seed=3, device="cpu", verbose=0,
                **{**ZOO, **overrides})
    sb3_eps: dict[int, float] = {}
    sb3_greedy: list[int] = []
    sb3_train: list[int] = []
    sb3_copies: set[int] = set()
    sample_action, policy_predict, train = model._sample_action, model.policy.predict, model.train

    def record_sample_action(*args: Any, **kwargs: Any) -> Any:
        sb3_eps[model.num_timesteps] = model.exploration_rate
        return sample_action(*args, **kwargs)

    def record_predict(*args: Any, **kwargs: Any) -> Any:
        sb3_greedy.append(model.num_timesteps)
        return policy_predict(*args, **kwargs)

    def record_train(*args: Any, **kwargs: Any) -> Any:
        sb3_train.append(model.num_timesteps)
        return train(*args, **kwargs)

    polyak = sb3.dqn.dqn.polyak_update
    monkeypatch.setattr(model, "_sample_action", record_sample_action)
    monkeypatch.setattr(model.policy, "predict", record_predict)
    monkeypatch.setattr(model, "train", record_train)
    monkeypatch.setattr(sb3.dqn.dqn, "polyak_update",
                        lambda *args, **kwargs: (sb3_copies.add(model.num_timesteps), polyak(*args, **kwargs)))
    model.learn(total_timesteps=total)

    # --- ours: the same records through dqn.train's own loop
    events: list[tuple[str, float]] = []  # ("eps", value) at the start of each step; "train", "target", "act"
    schedule, phase_tensors, update_target, forward = (dqn.linear_schedule, dqn.phase_tensors, dqn.update_target,
                                                       dqn.QNetwork.forward)
    settings = our_settings(**overrides, hidden_sizes=(64, 64), total_steps=total, seed=3, n_envs=1,
                            vectorization="sync", eval_every=0, tensorboard=False)

    def record_schedule(start: float, end: float, duration: float, step: float) -> float:
        value = schedule(start, end, duration, step)
        if (start, end) == (settings.exploration_initial_eps, settings.exploration_final_eps):
            events.append(("eps", value))
        return value

    def record_forward(self: dqn.QNetwork, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 1:  # acting on the one env (training passes are batches)
            events.append(("act", 0.0))
        return forward(self, x)

    monkeypatch.setattr(dqn, "linear_schedule", record_schedule)
    monkeypatch.setattr(dqn, "phase_tensors", lambda *a, **k: (events.append(("train", 0.0)), phase_tensors(*a, **k))[1])
    monkeypatch.setattr(dqn, "update_target", lambda *a, **k: (events.append(("target", 0.0)), update_target(*a, **k)))
    monkeypatch.setattr(dqn.QNetwork, "forward", record_forward)
    run = RunFolder.create(tmp_path, agent="dqn", env_id="CartPole-v1", seed=3, settings={}, command="test",
                           device="cpu", name="run")
    logger = MetricLogger(run.path, tensorboard=False)
    result = dqn.train(settings, TrainContext(run=run, logger=logger, progress=None, evaluate=None,
                                              stop_requested=lambda: False))
    logger.close()
    ours_eps: dict[int, float] = {}
    ours_greedy: list[int] = []
    ours_train: list[int] = []
    ours_copies: set[int] = set()
    step = -1  # the env steps taken before the current loop iteration
    for kind, value in events:
        if kind == "eps":
            step += 1
            ours_eps[step] = value
        elif kind == "act":
            ours_greedy.append(step)
        elif kind == "train":
            ours_train.append(step + 1)  # after the iteration's env step
        else:
            ours_copies.add(step + 1)

    assert result.final_step == model.num_timesteps == total
    assert read_metrics(run.path)["charts/updates"][1][-1] == model._n_updates == 5 * overrides["gradient_steps"]
    assert ours_train == sb3_train == list(range(1024, total + 1, 256))  # first at 1024 (> learning_starts 1000)
    assert ours_copies == sb3_copies == set(range(10, total + 1, 10))
    # the epsilon each acts with at every step from learning_starts on (before it, both act uniformly at random)
    acting = range(ZOO["learning_starts"], total)
    np.testing.assert_allclose([ours_eps[k] for k in acting], [sb3_eps[k] for k in acting], rtol=0, atol=1e-9)
    # neither consults its Q-network during the warm-up; afterwards on about 1 - epsilon of the steps
    assert min(ours_greedy) >= ZOO["learning_starts"] and min(sb3_greedy) >= ZOO["learning_starts"]
    expected = sum(1 - sb3_eps[k] for k in acting)
    spread = 4 * np.sqrt(sum(e * (1 - e) for e in (sb3_eps[k] for k in acting)))
    assert abs(len(ours_greedy) - expected) < spread and abs(len(sb3_greedy) - expected) < spread
