"""The evaluation harness against slow obvious rollouts and hand-computed statistics."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlsuite.agents.baselines import RandomPolicy
from rlsuite.evaluation import harness
from rlsuite.evaluation.harness import (
    EVAL_SEED_BASE,
    TEST_SEEDS,
    VALIDATION_SEEDS,
    EvaluationError,
    evaluate_policy,
    evaluation_seeds,
    make_eval_callback,
    median_episode,
    summarize,
    validation_seeds,
)
from rlsuite.evaluation.records import EpisodeRecord

torch.set_num_threads(1)

CARTPOLE = gym.make("CartPole-v1")


class LeanPolicy:
    """CartPole: push toward where the pole is falling (angle plus a little angular velocity).

    `velocity_gain=0` pushes toward the lean only: short, seed-dependent episodes (~45 steps);
    `velocity_gain=0.5` balances the full 500 steps.
    """

    observation_space = CARTPOLE.observation_space
    action_space = CARTPOLE.action_space

    def __init__(self, velocity_gain: float = 0.5) -> None:
        self.velocity_gain = velocity_gain

    def reset(self, num_envs: int) -> None:
        pass

    def act(self, obs: Any, episode_start: np.ndarray, deterministic: bool = True) -> np.ndarray:
        return (obs[:, 2] + self.velocity_gain * obs[:, 3] > 0).astype(np.int64)  # (n,)


class TorchSamplingPolicy:
    """CartPole actions drawn from torch's global RNG when stochastic: checks the harness seeds torch."""

    observation_space = CARTPOLE.observation_space
    action_space = CARTPOLE.action_space

    def reset(self, num_envs: int) -> None:
        pass

    def act(self, obs: Any, episode_start: np.ndarray, deterministic: bool = True) -> np.ndarray:
        if deterministic:
            return np.zeros(len(obs), dtype=np.int64)
        return torch.randint(0, 2, (len(obs),)).numpy()


def manual_rollout(policy: Any, env_id: str, seed: int) -> tuple[float, int]:
    """The oracle: one env from gym.make, reset(seed), one observation at a time."""
    env = gym.make(env_id)
    obs, _ = env.reset(seed=seed)
    policy.reset(1)
    total, length, start = 0.0, 0, True
    while True:
        action = policy.act(obs[None], np.array([start]))[0]
        obs, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        length += 1
        start = False
        if terminated or truncated:
            env.close()
            return total, length


class MetricsEnv(gym.Env):
    """Ends after 3-5 steps (seed-dependent); reward t at step t; final info carries metrics and noise."""

    metadata: dict[str, Any] = {"render_modes": []}
    observation_space = gym.spaces.Box(0.0, 1.0, (1,), dtype=np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, render_mode: str | None = None) -> None:
        self.render_mode = render_mode

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.t = 0
        self.horizon = int(self.np_random.integers(3, 6))
        return np.zeros(1, dtype=np.float32), {"distance": -1.0}

    def step(self, action: int):
        self.t += 1
        done = self.t >= self.horizon
        info: dict[str, Any] = {"distance": 0.1}
        if done:
            info = {
                "success": True,
                "distance": 2.5 * self.horizon,
                "name": "x",
                "_hidden": 1.0,
                "vec": np.zeros(2),
            }
        return np.zeros(1, dtype=np.float32), float(self.t), done, False, info


@pytest.fixture
def metrics_env_id():
    env_id = "HarnessMetricsTest-v0"
    gym.register(env_id, entry_point=MetricsEnv)
    yield env_id
    del gym.registry[env_id]


def returns(records: list[EpisodeRecord]) -> list[float]:
    return [r.episode_return for r in records]


def test_validation_seeds_are_disjoint_from_test_seeds(monkeypatch):
    """Training selects `best` on validation seeds; evaluate and reports measure on test seeds."""
    assert VALIDATION_SEEDS.stop <= TEST_SEEDS.start or TEST_SEEDS.stop <= VALIDATION_SEEDS.start  # disjoint
    assert min(TEST_SEEDS) > 100_000 and min(VALIDATION_SEEDS) > 100_000  # far above training seeds
    assert evaluation_seeds(20) == list(TEST_SEEDS[:20])
    assert validation_seeds(10) == list(VALIDATION_SEEDS[:10])
    seen = []
    monkeypatch.setattr(harness, "evaluate_policy", lambda policy, env_id, **kw: seen.append(kw["seeds"]) or
                        [EpisodeRecord(i, s, 1.0, 1) for i, s in enumerate(kw["seeds"])])
    make_eval_callback("CartPole-v1", episodes=4)(LeanPolicy(), 0)
    assert seen == [validation_seeds(4)]


def test_atari_is_evaluated_epsilon_greedy_and_other_envs_greedy():
    assert harness.eval_epsilon("ALE/Breakout-v5") == harness.ATARI_EVAL_EPSILON == 0.05
    assert harness.eval_epsilon("CartPole-v1") == 0.0
    with pytest.raises(EvaluationError, match="Discrete action space"):  # epsilon needs a finite action set
        harness.EpisodeActions(RandomPolicy(gym.spaces.Box(-1, 1, (2,)), gym.spaces.Box(-1, 1, (1,))), [0], True, 0.1)


def test_evaluation_seeds_are_far_above_training_seeds():
    assert evaluation_seeds(3) == [EVAL_SEED_BASE, EVAL_SEED_BASE + 1, EVAL_SEED_BASE + 2]
    assert EVAL_SEED_BASE == 1_000_000
    assert evaluation_seeds(2, base=7) == [7, 8]
    with pytest.raises(EvaluationError, match="at least 1"):
        evaluation_seeds(0)


def test_random_policy_scores_like_random_on_cartpole():
    policy = RandomPolicy(CARTPOLE.observation_space, CARTPOLE.action_space, seed=0)
    records = evaluate_policy(policy, "CartPole-v1", episodes=30)
    assert 15 <= np.mean(returns(records)) <= 30
    assert [r.seed for r in records] == evaluation_seeds(30)


def test_scripted_policy_scores_far_above_random():
    records = evaluate_policy(LeanPolicy(), "CartPole-v1", episodes=10)
    assert np.mean(returns(records)) > 100


def test_same_policy_same_seeds_same_returns():
    policy = RandomPolicy(CARTPOLE.observation_space, CARTPOLE.action_space, seed=3)
    first = evaluate_policy(policy, "CartPole-v1", episodes=12, n_envs=5)
    second = evaluate_policy(policy, "CartPole-v1", episodes=12, n_envs=5)
    assert first == second
    assert len(set(returns(first))) > 1  # really random episodes, not a constant


def test_stochastic_evaluation_is_reproducible_and_leaves_torch_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = evaluate_policy(TorchSamplingPolicy(), "CartPole-v1", episodes=6, deterministic=False)
    assert torch.equal(torch.rand(3), expected_next)  # the caller's (training's) stream is untouched
    second = evaluate_policy(TorchSamplingPolicy(), "CartPole-v1", episodes=6, deterministic=False)
    assert first == second
    pushes_left = evaluate_policy(TorchSamplingPolicy(), "CartPole-v1", episodes=6, deterministic=True)
    assert first != pushes_left  # `deterministic` reaches the policy


@pytest.mark.parametrize("seed", [0, 17, 1_000_123])
def test_single_seed_matches_manual_rollout(seed):
    policy = LeanPolicy(velocity_gain=0.0)
    (record,) = evaluate_policy(policy, "CartPole-v1", episodes=1, seeds=[seed])
    assert (record.episode_return, record.length) == manual_rollout(policy, "CartPole-v1", seed)
    assert record.seed == seed and record.index == 0


def test_one_wave_of_unequal_episodes_matches_manual_rollouts():
    # Sub-envs finish at different steps; what they do after their first end must not count.
    policy = LeanPolicy(velocity_gain=0.0)
    seeds = [5, 6, 7, 8]
    records = evaluate_policy(policy, "CartPole-v1", episodes=4, seeds=seeds, n_envs=4)
    expected = [manual_rollout(policy, "CartPole-v1", s) for s in seeds]
    assert [(r.episode_return, r.length) for r in records] == expected
    assert len({length for _, length in expected}) > 1


def test_waves_give_one_record_per_seed_in_order():
    policy = LeanPolicy(velocity_gain=0.0)
    seeds = [40 + k for k in range(10)]
    waves = evaluate_policy(policy, "CartPole-v1", episodes=10, seeds=seeds, n_envs=4)  # 4 + 4 + 2
    one_wave = evaluate_policy(policy, "CartPole-v1", episodes=10, seeds=seeds, n_envs=10)
    assert [r.index for r in waves] == list(range(10))
    assert [r.seed for r in waves] == seeds
    assert waves == one_wave


def test_max_episode_steps_truncates():
    records = evaluate_policy(LeanPolicy(), "CartPole-v1", episodes=3, max_episode_steps=20)
    assert [(r.episode_return, r.length) for r in records] == [(20.0, 20)] * 3


def test_env_metrics_come_from_the_final_info(metrics_env_id):
    policy = RandomPolicy(MetricsEnv.observation_space, MetricsEnv.action_space)
    seeds = [1, 2, 3, 4, 5]
    records = evaluate_policy(policy, metrics_env_id, episodes=5, seeds=seeds, n_envs=2)
    for record, seed in zip(records, seeds, strict=True):
        horizon = int(np.random.default_rng(seed).integers(3, 6))  # what MetricsEnv draws after reset(seed)
        assert record.length == horizon
        assert record.episode_return == horizon * (horizon + 1) / 2  # 1 + 2 + ... + horizon
        assert record.metrics == {"success": 1.0, "distance": 2.5 * horizon}


def test_space_mismatch_names_both_sides():
    pendulum = gym.make("Pendulum-v1")
    policy = RandomPolicy(pendulum.observation_space, pendulum.action_space)
    with pytest.raises(
        EvaluationError, match=r"observations of shape \(3,\).*CartPole-v1 gives shape \(4,\)"
    ):
        evaluate_policy(policy, "CartPole-v1", episodes=2)
    wrong_actions = RandomPolicy(CARTPOLE.observation_space, gym.spaces.Discrete(3))
    with pytest.raises(
        EvaluationError, match=r"actions of Discrete\(3\) but CartPole-v1 gives Discrete\(2\)"
    ):
        evaluate_policy(wrong_actions, "CartPole-v1", episodes=2)


def test_bad_requests_say_what_to_do():
    with pytest.raises(EvaluationError, match="one seed per episode"):
        evaluate_policy(LeanPolicy(), "CartPole-v1", episodes=3, seeds=[1, 2])
    with pytest.raises(EvaluationError, match="n_envs must be at least 1"):
        evaluate_policy(LeanPolicy(), "CartPole-v1", episodes=3, n_envs=0)


def test_eval_callback_reports_the_eval_namespace(metrics_env_id):
    callback = make_eval_callback("CartPole-v1", episodes=6)
    policy = LeanPolicy(velocity_gain=0.0)
    metrics = callback(policy, 1000)
    assert set(metrics) == {
        "eval/mean_return",
        "eval/std_return",
        "eval/median_return",
        "eval/iqm_return",
        "eval/mean_length",
    }
    expected = returns(evaluate_policy(policy, "CartPole-v1", episodes=6, seeds=validation_seeds(6)))
    assert metrics["eval/mean_return"] == pytest.approx(np.mean(expected))
    assert callback(policy, 2000) == metrics  # fixed seeds every call

    env_metrics = make_eval_callback(metrics_env_id, episodes=4)(
        RandomPolicy(MetricsEnv.observation_space, MetricsEnv.action_space), 0
    )
    horizons = [int(np.random.default_rng(s).integers(3, 6)) for s in validation_seeds(4)]
    assert env_metrics["eval/success"] == 1.0
    assert env_metrics["eval/distance"] == pytest.approx(2.5 * np.mean(horizons))


def _records(values: list[float]) -> list[EpisodeRecord]:
    return [EpisodeRecord(index=i, seed=i, episode_return=v, length=i + 1) for i, v in enumerate(values)]


def test_summary_statistics_by_hand():
    stats = summarize(_records([1, 2, 3, 4, 100, 5, 6, 7]))
    assert stats["eval/mean_return"] == pytest.approx(128 / 8)
    assert stats["eval/median_return"] == pytest.approx(4.5)
    assert stats["eval/iqm_return"] == pytest.approx(4.5)  # drop 1, 2 and 7, 100: mean of 3, 4, 5, 6
    assert stats["eval/std_return"] == pytest.approx(
        np.sqrt(np.mean((np.array([1, 2, 3, 4, 100, 5, 6, 7]) - 16) ** 2))
    )
    assert stats["eval/mean_length"] == pytest.approx(4.5)  # lengths 1..8


def test_median_episode():
    assert median_episode(_records([5, 1, 3])).index == 2
    assert median_episode(_records([4, 1, 3, 2])).index == 3  # returns 1 2 3 4: lower middle is 2
    assert median_episode(_records([2, 1, 2, 1])).index == 3  # (1, #1) (1, #3) (2, #0) (2, #2)
    assert median_episode(_records([7])).index == 0
    with pytest.raises(EvaluationError):
        median_episode([])
