"""Every registered rlsuite/ id against the claims of envs/vector.py and the checkers of Gymnasium and SB3.

- Row i of an N-env vector env equals a single env reset with seed + i, under random actions of the id's
  own action space, bit for bit, through several episodes (next-step autoreset included).
- `gym.make` of every id passes Gymnasium's and SB3's env checkers, render included.
- State capture restores exactly, vector and single env, into the env itself and into another one, through a
  pickle-free round trip (safetensors + JSON).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import yaml

import rlsuite.envs  # noqa: F401  (registers the ids)
from rlsuite.envs.vector import EnvState, NumpyVectorEnv

IDS = sorted(env_id for env_id in gym.registry if env_id.startswith("rlsuite/"))
SCENARIOS = Path(rlsuite.envs.__file__).parent / "scenarios"


def _short(env_id: str) -> dict[str, Any]:
    """Env kwargs that make episodes short enough to see several in a test (traffic runs 1800 s)."""
    scenario = gym.spec(env_id).kwargs.get("scenario")
    if scenario is None:
        return {}
    raw = yaml.safe_load((SCENARIOS / f"{scenario}.yaml").read_text())
    raw["duration_s"] = 40  # 8 decisions of 5 s
    return {"scenario": raw}


def _steps(env_id: str) -> int:
    """Enough steps for at least two whole episodes of every row (most episodes end earlier)."""
    if "Spoken" in env_id:
        return 110
    if "Memory" in env_id:
        return 30
    if "Reacher" in env_id:  # Reacher and SpokenReach: 50-step episodes
        return 110
    if "Traffic" in env_id:
        return 20
    return 70  # highway: 30-decision episodes, shorter on a crash


def _row(obs: Any, i: int) -> Any:
    return {k: v[i] for k, v in obs.items()} if isinstance(obs, dict) else obs[i]


def _assert_obs_equal(a: Any, b: Any, where: str) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{where}: {k}")
    else:
        np.testing.assert_array_equal(a, b, err_msg=where)


@pytest.mark.parametrize("env_id", [i for i in IDS if "Shared" not in i])
def test_rows_equal_single_envs_under_random_actions(env_id: str) -> None:
    n, seed = 3, 17
    kwargs = _short(env_id)
    vec = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", **kwargs)
    singles = [gym.make(env_id, **kwargs) for _ in range(n)]
    obs, _ = vec.reset(seed=seed)
    for i, env in enumerate(singles):
        single_obs, _ = env.reset(seed=seed + i)
        _assert_obs_equal(_row(obs, i), single_obs, f"{env_id} row {i} at reset")
    vec.single_action_space.seed(5)
    pending = np.zeros(n, dtype=bool)
    episodes = np.zeros(n, dtype=int)
    for t in range(_steps(env_id)):
        actions = [vec.single_action_space.sample() for _ in range(n)]
        obs, rewards, terminated, truncated, info = vec.step(np.stack(actions))
        for i, env in enumerate(singles):
            where = f"{env_id} row {i} step {t}"
            if pending[i]:  # next-step autoreset: the row ignores its action and starts afresh
                single_obs, _ = env.reset()
                _assert_obs_equal(_row(obs, i), single_obs, where + " (autoreset)")
                assert rewards[i] == 0.0 and not terminated[i] and not truncated[i], where
                continue
            single_obs, reward, term, trunc, single_info = env.step(actions[i])
            _assert_obs_equal(_row(obs, i), single_obs, where)
            assert (rewards[i], terminated[i], truncated[i]) == (reward, term, trunc), where
            for key in single_info.keys() & info.keys():
                np.testing.assert_array_equal(info[key][i], single_info[key], err_msg=f"{where}: info {key}")
        pending = terminated | truncated
        episodes += pending
    assert episodes.min() >= 2, f"{env_id}: every row should finish two episodes, got {episodes}"


@pytest.mark.parametrize("env_id", [i for i in IDS if "Shared" in i])
def test_shared_rows_are_the_intersections_of_single_envs(env_id: str) -> None:
    """The parameter-sharing ids: rows j K .. j K + K - 1 are network j's intersections, which is the single
    (one-agent) env of the same scenario reset with seed + j; through several episodes."""
    from rlsuite.envs.traffic import load_network

    kwargs = _short(env_id)
    plain_id = env_id.replace("Shared", "")
    k = load_network(kwargs["scenario"]).num_nodes
    n, seed = 2, 3
    vec = gym.make_vec(env_id, num_envs=n * k, vectorization_mode="vector_entry_point", **kwargs)
    singles = [gym.make(plain_id, **kwargs) for _ in range(n)]
    obs, _ = vec.reset(seed=seed)
    width = singles[0].observation_space.shape[0] // k
    for j, env in enumerate(singles):
        np.testing.assert_array_equal(obs[j * k:(j + 1) * k, :width].ravel(), env.reset(seed=seed + j)[0])
    rng = np.random.default_rng(0)
    pending = np.zeros(n, dtype=bool)
    for _ in range(20):
        actions = rng.integers(0, 4, size=n * k)
        obs, rewards, _, truncated, _ = vec.step(actions)
        for j, env in enumerate(singles):
            if pending[j]:
                single_obs, _ = env.reset()
                reward = 0.0
            else:
                single_obs, reward, _, _, _ = env.step(actions[j * k:(j + 1) * k])
            np.testing.assert_array_equal(obs[j * k:(j + 1) * k, :width].ravel(), single_obs)
            assert rewards[j * k:(j + 1) * k].sum() == pytest.approx(reward)
        pending = truncated.reshape(n, k)[:, 0]


@pytest.mark.parametrize("env_id", IDS)
def test_made_env_passes_gymnasium_and_sb3_checkers(env_id: str) -> None:
    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    for render_mode in (None, "rgb_array"):
        env = gym.make(env_id, render_mode=render_mode)
        if render_mode is not None:
            assert render_mode in env.metadata["render_modes"]
        gym_check_env(env, skip_render_check=render_mode is None)
        env.close()
    env = gym.make(env_id, render_mode="rgb_array")
    sb3_check_env(env, warn=False, skip_render_check=False)
    env.reset(seed=0)
    frame = env.render()
    assert isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3


def test_render_mode_outside_the_declared_modes_is_refused() -> None:
    for env_id in ("rlsuite/MemoryCue-v0", "rlsuite/Reacher-v0", "rlsuite/Highway-v0", "rlsuite/TrafficSingle-v0"):
        with pytest.raises(ValueError, match="render_mode"):
            gym.make(env_id, render_mode="ansi")


def _roundtrip(state: EnvState) -> EnvState:
    """Through bytes, as a checkpoint stores it: safetensors (no pickle) for the arrays, JSON for the rest."""
    from safetensors.numpy import load, save

    return EnvState(load(save(state.arrays)), json.loads(json.dumps(state.meta)))


def _capture_steps(env_id: str) -> int:
    """Steps after the capture: through autoresets where cheap, a few for the rendered observations."""
    return 8 if "Pixels" in env_id or "Image" in env_id else _steps(env_id)


def _copy(out: tuple) -> tuple:
    obs = {k: v.copy() for k, v in out[0].items()} if isinstance(out[0], dict) else np.array(out[0], copy=True)
    return (obs, *(np.array(x, copy=True) for x in out[1:4]))


def _assert_steps_equal(a: tuple, b: tuple, where: str) -> None:
    _assert_obs_equal(a[0], b[0], where)
    for x, y in zip(a[1:4], b[1:4], strict=True):
        np.testing.assert_array_equal(x, y, err_msg=where)


@pytest.mark.parametrize("env_id", IDS)
def test_vector_state_capture_restores_exactly(env_id: str) -> None:
    """Capture mid-episode, step K random actions, restore, step the same actions: the same observations,
    rewards and dones, in the env itself and in another env with another history (autoresets and their
    random draws included), through a pickle-free round trip."""
    kwargs = _short(env_id)
    n = 3
    if "Shared" in env_id:  # one row per intersection: two networks
        from rlsuite.envs.traffic import load_network

        n = 2 * load_network(kwargs["scenario"]).num_nodes
    a = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", **kwargs)
    other = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", **kwargs)
    assert isinstance(a, NumpyVectorEnv) or "Shared" in env_id  # the shared ids: a view over one
    a.reset(seed=2)
    other.reset(seed=99)
    a.single_action_space.seed(1)
    k = _capture_steps(env_id)
    for _ in range(k // 2):
        a.step(np.stack([a.single_action_space.sample() for _ in range(n)]))
    saved = _roundtrip(a.get_state())
    actions = [np.stack([a.single_action_space.sample() for _ in range(n)]) for _ in range(k)]
    first = [_copy(a.step(x)) for x in actions]
    a.set_state(saved)
    other.set_state(saved)
    for t, x in enumerate(actions):
        _assert_steps_equal(first[t], a.step(x), f"{env_id} step {t} after restoring into itself")
        _assert_steps_equal(first[t], other.step(x), f"{env_id} step {t} after restoring into another env")


@pytest.mark.parametrize("env_id", IDS)
def test_single_env_state_capture_restores_exactly(env_id: str) -> None:
    """The same for the single env of every id (`gym.make`), its resets drawing from the restored generator."""
    kwargs = _short(env_id)
    a, other = gym.make(env_id, **kwargs), gym.make(env_id, **kwargs)
    a.reset(seed=1)
    other.reset(seed=2)
    a.action_space.seed(0)
    k = _capture_steps(env_id)

    def step(env: gym.Env, action: Any) -> tuple:
        out = _copy(env.step(action))
        if out[2] or out[3]:
            out = (*out, env.reset()[0])
        return out

    for _ in range(k // 2):
        step(a, a.action_space.sample())
    saved = _roundtrip(a.unwrapped.get_state())
    actions = [a.action_space.sample() for _ in range(k)]
    first = [step(a, x) for x in actions]
    a.unwrapped.set_state(saved)
    other.unwrapped.set_state(saved)
    for t, x in enumerate(actions):
        for env, where in ((a, "itself"), (other, "another env")):
            out = step(env, x)
            _assert_steps_equal(first[t], out, f"{env_id} step {t} after restoring into {where}")
            assert len(out) == len(first[t])
            if len(out) == 5:
                _assert_obs_equal(first[t][4], out[4], f"{env_id} reset after step {t} ({where})")


def test_state_from_another_env_is_refused() -> None:
    a = gym.make_vec("rlsuite/MemoryCue-v0", num_envs=3, vectorization_mode="vector_entry_point")
    b = gym.make_vec("rlsuite/MemoryCue-v0", num_envs=4, vectorization_mode="vector_entry_point")
    a.reset(seed=0)
    with pytest.raises(ValueError, match="3 envs"):
        b.set_state(a.get_state())
