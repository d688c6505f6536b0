"""MemoryCue: hand-computed episodes, single/vector equivalence, next-step autoreset."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rlsuite.envs  # noqa: F401  (registers rlsuite/ ids)


def test_passes_gymnasium_check_env() -> None:
    check_env(gym.make("rlsuite/MemoryCue-v0").unwrapped)


def test_single_episode_by_hand() -> None:
    env = gym.make("rlsuite/MemoryCue-v0", num_cues=3, delay=2)
    obs, _ = env.reset(seed=0)
    cue = int(np.argmax(obs[:3]))
    assert obs[cue] == 1 and obs.sum() == 1  # the cue, and no query flag yet
    for _ in range(2):  # the delay: blank observations, no reward, whatever the action
        obs, reward, terminated, truncated, _ = env.step((cue + 1) % 3)
        assert obs.sum() == 0 and reward == 0 and not terminated
    obs, reward, terminated, _, _ = env.step(0)
    assert obs[3] == 1 and obs[:3].sum() == 0 and reward == 0 and not terminated  # the query
    _, reward, terminated, truncated, info = env.step(cue)
    assert reward == 1 and terminated and not truncated and info["is_success"]


@pytest.mark.parametrize("answer_right", [True, False])
def test_vector_rows_equal_single_envs_and_autoreset_next_step(answer_right: bool) -> None:
    num_envs, delay = 4, 1
    vec = gym.make_vec("rlsuite/MemoryCue-v0", num_envs=num_envs, vectorization_mode="vector_entry_point", delay=delay)
    singles = [gym.make("rlsuite/MemoryCue-v0", delay=delay) for _ in range(num_envs)]
    vec_obs, _ = vec.reset(seed=11)
    single_obs = [env.reset(seed=11 + i)[0] for i, env in enumerate(singles)]
    np.testing.assert_array_equal(vec_obs, np.stack(single_obs))
    cues = vec_obs[:, :4].argmax(1)
    actions = cues if answer_right else (cues + 1) % 4
    for _ in range(delay + 1):
        vec.step(actions)
    vec_obs, rewards, terminated, truncated, _ = vec.step(actions)  # the answer
    np.testing.assert_array_equal(rewards, np.full(num_envs, float(answer_right)))
    assert terminated.all() and not truncated.any()
    vec_obs, rewards, terminated, _, _ = vec.step(actions)  # next-step autoreset: a new cue, reward 0
    assert (rewards == 0).all() and not terminated.any()
    assert (vec_obs[:, :4].sum(1) == 1).all()


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="num_cues"):
        gym.make("rlsuite/MemoryCue-v0", num_cues=1)


def test_spawned_subprocesses_build_our_envs() -> None:
    """A spawned child starts with an empty registry; the spec's string entry point imports rlsuite.envs there."""
    vec = gym.make_vec("rlsuite/MemoryCue-v0", num_envs=2, vectorization_mode="async", vector_kwargs={"context": "spawn"})
    try:
        obs, _ = vec.reset(seed=3)
        expected = np.stack([gym.make("rlsuite/MemoryCue-v0").reset(seed=3 + i)[0] for i in range(2)])
        np.testing.assert_array_equal(obs, expected)
    finally:
        vec.close()


def test_async_sync_and_native_vector_modes_agree() -> None:
    from rlsuite.envs import make_vec_env

    trajectories = {}
    for mode in ("sync", "async", "vector_entry_point"):
        vec = make_vec_env("rlsuite/MemoryCue-v0", 3, mode=mode, record_stats=False, delay=1)
        obs, _ = vec.reset(seed=5)
        steps = [obs]
        for t in range(8):
            obs, reward, terminated, truncated, _ = vec.step(np.full(3, t % 4))
            steps += [obs, reward, terminated, truncated]
        vec.close()
        trajectories[mode] = steps
    for mode in ("async", "vector_entry_point"):
        for a, b in zip(trajectories["sync"], trajectories[mode], strict=True):
            np.testing.assert_array_equal(a, b)
