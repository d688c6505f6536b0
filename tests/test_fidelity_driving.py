"""The highway-env adapter (benchmarks/fidelity/highway_adapter.py): highway-env's vehicles read in our layout.

`kinematics` is a second implementation of our observation rule, checked against the env's own on
hand-built states; with highway-env installed (bench extra), a hand-built highway-fast-v0 road read
through the adapter equals our env holding the same vehicles.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import rlsuite.envs  # noqa: F401  (registers rlsuite/ ids)
from rlsuite.envs.highway.observations import kinematics as kinematics_of

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from fidelity.highway_adapter import OursInHighwayEnv, kinematics  # noqa: E402

HAVE_HIGHWAY_ENV = importlib.util.find_spec("highway_env") is not None
needs_highway_env = pytest.mark.skipif(not HAVE_HIGHWAY_ENV, reason="needs the bench extra (highway-env)")


def _ours(states: np.ndarray) -> np.ndarray:
    """Our env's kinematics observation with its vehicles set to `states` (V, 5): x, y, vx, vy, heading."""
    env = gym.make("rlsuite/Highway-v0").unwrapped
    env.reset(seed=0)
    core, st = env.core, env.state
    V = st.x.shape[1]
    full = np.zeros((V, 5))
    full[:, 0] = 1e5 + 100 * np.arange(V)  # vehicles beyond the given ones: far away, unseen
    full[: len(states)] = states
    speed = np.hypot(full[:, 2], full[:, 3])
    st.x, st.y = full[None, :, 0].copy(), full[None, :, 1].copy()
    st.speed, st.heading = speed[None].copy(), full[None, :, 4].copy()
    return kinematics_of(core, st)[0, 0].reshape(-1).astype(np.float32)  # (E, K, rows, 6): env 0, the ego


def _random_states(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.uniform(0, 300, n)
    y = rng.integers(0, 3, n) * 4.0 + rng.normal(0, 0.4, n)
    speed, heading = rng.uniform(15, 32, n), rng.normal(0, 0.1, n)
    return np.stack([x, y, speed * np.cos(heading), speed * np.sin(heading), heading], axis=1)


def test_kinematics_equals_our_env_on_hand_built_states() -> None:
    rng = np.random.default_rng(0)
    for n in (1, 3, 12, 21):  # fewer vehicles than rows, and more
        states = _random_states(rng, n)
        np.testing.assert_allclose(kinematics(states), _ours(states), atol=1e-5)


def test_ranking_differs_from_highway_envs_where_it_should() -> None:
    # ego in the middle lane; A 12 m ahead in its lane, B 11.5 m ahead two lanes over (|dx| smaller, distance larger)
    states = np.array([[0.0, 4.0, 25, 0, 0], [12.0, 4.0, 20, 0, 0], [11.5, -4.0, 30, 0, 0]])
    ours, longitudinal = kinematics(states, obs_vehicles=2), kinematics(states, obs_vehicles=2, order="longitudinal")
    assert ours[7] == pytest.approx(12.0 / 200) and longitudinal[7] == pytest.approx(11.5 / 200)
    np.testing.assert_allclose(ours, _ours(states)[:12], atol=1e-6)  # our env ranks by distance


@needs_highway_env
def test_hand_built_highway_env_road_reads_as_our_env() -> None:
    import highway_env  # noqa: F401

    rng = np.random.default_rng(1)
    peer = OursInHighwayEnv(gym.make("highway-fast-v0"))
    peer.reset(seed=0)
    base = peer.unwrapped
    vehicles = [base.vehicle] + [v for v in base.road.vehicles if v is not base.vehicle]
    states = _random_states(rng, len(vehicles))
    for v, (x, y, vx, vy, heading) in zip(vehicles, states, strict=True):
        v.position = np.array([x, y])
        v.speed, v.heading = float(np.hypot(vx, vy)), float(heading)
    mapped = peer.observation(None)
    np.testing.assert_allclose(mapped, _ours(states), atol=1e-5)
    # highway-env's own observation agrees on what both define (others' relative x, y, vx, vy when the
    # |dx| ranking and ours pick the same vehicles), and differs on the ego's x (absolute there, 0 here)
    native = base.observation_type.observe()  # (5, 5): presence, x, y, vx, vy
    longitudinal = kinematics(states, order="longitudinal").reshape(5, 6)
    np.testing.assert_allclose(native[1:, :5], longitudinal[1:, :5], atol=1e-5)
    assert native[0, 1] == pytest.approx(min(1.0, states[0, 0] / 200), abs=1e-5) and mapped[1] == 0.0
