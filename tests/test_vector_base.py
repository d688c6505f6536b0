"""envs/vector.py's base against Gymnasium's own vector machinery: autoreset modes, partial reset, episode
statistics (Gymnasium's RecordEpisodeStatistics as the oracle)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import rlsuite.envs  # noqa: F401  (registers the ids)

ENV = "rlsuite/Highway-Fast-v0"  # terminates (crashes) and truncates (time limit)


def _make(num_envs: int, **kwargs):
    return gym.make_vec(ENV, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)


def test_same_step_autoreset_equals_next_step_with_the_reset_step_removed() -> None:
    """Same-step gives at once what next-step gives one step later (the reset observation), and the last
    observation of an episode in final_obs; fed the actions next-step used (not those its reset steps
    ignored), every row plays the same episodes."""
    n, steps = 4, 80
    nxt, same = _make(n), _make(n, autoreset_mode="same_step")
    assert same.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    nxt.reset(seed=3)
    same.reset(seed=3)
    rng = np.random.default_rng(0)
    used: list[list[int]] = [[] for _ in range(n)]  # per row: the actions next-step did not ignore
    plain: list[list[tuple]] = [[] for _ in range(n)]  # their transitions (obs, reward, done)
    restarts: list[list[np.ndarray]] = [[] for _ in range(n)]  # next-step's reset observations
    pending = np.zeros(n, dtype=bool)
    for _ in range(steps):
        actions = rng.integers(0, 5, size=n)
        obs, rewards, term, trunc, _ = nxt.step(actions)
        for i in range(n):
            if pending[i]:
                restarts[i].append(obs[i].copy())
            else:
                used[i].append(int(actions[i]))
                plain[i].append((obs[i].copy(), rewards[i], bool(term[i] or trunc[i])))
        pending = term | trunc
    length = min(len(u) for u in used)
    finals = 0
    for s in range(length):
        obs, rewards, term, trunc, info = same.step(np.array([used[i][s] for i in range(n)]))
        for i in range(n):
            expected_obs, expected_reward, expected_done = plain[i][s]
            done = bool(term[i] or trunc[i])
            assert (rewards[i], done) == (expected_reward, expected_done)
            np.testing.assert_array_equal(info["final_obs"][i] if done else obs[i], expected_obs)
            if done:
                finals += 1
                k = sum(d for _, _, d in plain[i][: s + 1]) - 1  # which episode ended
                if k < len(restarts[i]):
                    np.testing.assert_array_equal(obs[i], restarts[i][k])
    assert finals >= 2


def test_episode_statistics_equal_gymnasiums_record_episode_statistics() -> None:
    ours = _make(3, episode_statistics=True)
    oracle = gym.wrappers.vector.RecordEpisodeStatistics(_make(3))
    ours.reset(seed=1)
    oracle.reset(seed=1)
    rng = np.random.default_rng(2)
    episodes = 0
    for _ in range(70):
        actions = rng.integers(0, 5, size=3)
        *_, info = ours.step(actions)
        *_, expected = oracle.step(actions)
        assert ("episode" in info) == ("episode" in expected)
        if "episode" in expected:
            np.testing.assert_array_equal(info["_episode"], expected["_episode"])
            np.testing.assert_allclose(info["episode"]["r"], expected["episode"]["r"])
            np.testing.assert_array_equal(info["episode"]["l"], expected["episode"]["l"])
            episodes += int(expected["_episode"].sum())
    assert episodes >= 3


def test_partial_reset_resets_only_the_masked_rows_and_seeds_them_as_single_envs() -> None:
    envs = _make(3)
    obs, _ = envs.reset(seed=5)
    for _ in range(3):
        obs, *_ = envs.step(np.array([3, 3, 3]))
    mask = np.array([False, True, False])
    again, _ = envs.reset(seed=5, options={"reset_mask": mask})
    np.testing.assert_array_equal(again[[0, 2]], obs[[0, 2]])
    single = gym.make(ENV)
    np.testing.assert_array_equal(again[1], single.reset(seed=6)[0])


def test_bad_autoreset_mode_and_seed_count_are_refused() -> None:
    with pytest.raises(ValueError, match="autoreset_mode"):
        _make(2, autoreset_mode="sometimes")
    with pytest.raises(ValueError, match="3 seeds for 2 envs"):
        _make(2).reset(seed=[1, 2, 3])
