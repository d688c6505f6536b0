"""The highway-env adapter (benchmarks/fidelity/highway_adapter.py): highway-env's vehicles read in our layout.

`kinematics` is a second implementation of our observation rule, checked against the env's own on
hand-built states; with highway-env installed (bench extra), a hand-built highway-fast-v0 road read
through the adapter equals our env holding the same vehicles.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
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


def _ours(states: np.ndarray, env_id: str = "rlsuite/Highway-v0") -> np.ndarray:
    """Our env's kinematics observation with its vehicles set to `states` (V, 5): x, y, vx, vy, heading."""
    env = gym.make(env_id).unwrapped
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


def _random_states(rng: np.random.Generator, n: int, lanes: int = 3) -> np.ndarray:
    x = rng.uniform(0, 300, n)
    y = rng.integers(0, lanes, n) * 4.0 + rng.normal(0, 0.4, n)
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


@needs_highway_env
def test_hand_built_merge_road_reads_as_our_merge_env() -> None:
    import highway_env  # noqa: F401

    rng = np.random.default_rng(2)
    with pytest.raises(ValueError, match="lanes_count"):  # merge-v0 has no lanes_count setting to default to
        OursInHighwayEnv(gym.make("merge-v0"))
    peer = OursInHighwayEnv(gym.make("merge-v0"), lanes_count=2)
    peer.reset(seed=0)
    base = peer.unwrapped
    vehicles = [base.vehicle] + [v for v in base.road.vehicles if v is not base.vehicle]
    states = _random_states(rng, len(vehicles), lanes=3)  # the two lanes and the ramp beside them (y = 8 m)
    for v, (x, y, vx, vy, heading) in zip(vehicles, states, strict=True):
        v.position = np.array([x, y])
        v.speed, v.heading = float(np.hypot(vx, vy)), float(heading)
    mapped = peer.observation(None)
    np.testing.assert_allclose(mapped, _ours(states, "rlsuite/Merge-v0"), atol=1e-5)
    assert mapped[2] == pytest.approx(np.clip(states[0, 1] / 8.0, -1, 1), abs=1e-6)  # y over 2 lanes x 4 m


@needs_highway_env
@pytest.mark.slow
def test_benchmark_runs_end_to_end_from_another_directory(tmp_path: Path) -> None:
    """The quick check the script documents: train both arms briefly, evaluate, print the table (about a minute)."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "fidelity_driving.py"
    out = tmp_path / "runs"
    result = subprocess.run([sys.executable, str(script), "all", "--out", str(out), "--seeds", "0", "--steps", "2048",
                             "--episodes", "2", "--no-ablation"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| highway-idm (rlsuite, via adapter) |" in result.stdout
    assert "| ppo rlsuite, default | " in result.stdout and "| sb3-ppo highway-env, 1x CPU | " in result.stdout
    rows = json.loads((out / "table.json").read_text())["rows"]
    assert {len(rows[name]["crashed"]) for name in rows} == {1, 2}  # one run (seed 0) per trained row, 2 episodes per rule row
    assert json.loads(next(out.glob("ours/default/*/cpu_seconds.json")).read_text())["steps"] == 2048


@needs_highway_env
def test_merge_ablation_variants_carry_merge_v0s_settings() -> None:
    """Each `merge-*` variant of the benchmark puts one of merge-v0's settings on rlsuite/Merge-v0, read here
    from a reset merge-v0: its vehicles (3 on the road, 1 on the ramp), the ego's lane and speed, the lanes'
    speed limit (which caps every IDM vehicle's desired speed), its frequency, reward (weights and altruistic term),
    politeness, where its episodes end and where and when its ramp vehicle merges; the reference profile
    rlsuite/Merge-Reference-v0 registers all of them but the frequency."""
    import fidelity_driving as bench
    from highway_env.vehicle.behavior import IDMVehicle

    from rlsuite.envs.highway import fields_of

    peer = gym.make("merge-v0").unwrapped
    peer.reset(seed=0)
    ego = peer.vehicle
    traffic = [v for v in peer.road.vehicles if v is not ego]
    on_ramp = [v for v in traffic if v.lane_index[0] == "j"]
    kwargs = {name: bench.env_kwargs(name) for name in bench.VARIANTS if name.startswith("merge")}
    assert all(k["merge_ramp"] and k["lanes_count"] == 2 for k in kwargs.values())  # all on rlsuite/Merge-v0's road
    count = kwargs["merge-v0-traffic"]
    assert (count["vehicles_count"], count["ramp_vehicles"]) == (len(traffic), len(on_ramp)) == (4, 1)
    assert (count["initial_lane"], count["ego_speed"]) == (ego.lane_index[2], ego.speed)  # lane 1: the right lane
    limit = kwargs["merge-v0-traffic-speed"]["speed_limit"]  # our desired speeds: U(0.7, 0.8) x speed_limit
    assert 0.7 * limit < ego.lane.speed_limit < 0.8 * limit
    assert {v.lane.speed_limit for v in traffic} == {ego.lane.speed_limit}  # every lane's, ramp included
    assert kwargs["merge-15hz"]["simulation_frequency"] == peer.config["simulation_frequency"]
    reward = kwargs["merge-v0-reward"]
    assert (reward["high_speed_reward"], reward["lane_change_reward"]) == (
        peer.config["high_speed_reward"], peer.config["lane_change_reward"])
    weights = ("collision_reward", "right_lane_reward", "high_speed_reward", "lane_change_reward", "merging_speed_reward",
               "reward_speed_range")
    altruism = fields_of(kwargs["merge-v0-altruism"])  # the weights, its altruistic term's included, and speed range
    assert [getattr(altruism, w) for w in weights] == [tuple(peer.config[w]) if w == "reward_speed_range" else peer.config[w]
                                                       for w in weights]
    assert kwargs["merge-zero-politeness"]["politeness_range"] == (IDMVehicle.POLITENESS, IDMVehicle.POLITENESS)
    # the episode's end: terminated once the ego is past a line as far beyond the ramp's end as merge-v0's
    beyond = kwargs["merge-v0-end"]["end_position"] - fields_of(kwargs["merge-v0-end"]).ramp_end  # [m]
    ramp_end = peer.road.network.get_lane(("b", "c", 2)).end[0]  # where merge-v0's ramp (its merge lane) ends
    for x, ends in ((ramp_end + beyond, False), (ramp_end + beyond + 0.01, True)):
        ego.position = np.array([x, ego.position[1]])
        assert (peer._is_terminated(), peer._is_truncated()) == (ends, False), x
    # the merging rule: the ramp has a lane beside the road only on its last 80 m, and the merging vehicle has no
    # route, so MOBIL's incentive (not just safety) decides there
    network = peer.road.network
    assert network.side_lanes(("j", "k", 0)) == network.side_lanes(("k", "b", 0)) == []
    assert network.side_lanes(("b", "c", 2)) == [("b", "c", 1)]
    assert kwargs["merge-v0-merge"]["ramp_merge_length"] == network.get_lane(("b", "c", 2)).length
    assert not on_ramp[0].route
    # the reference profile rlsuite/Merge-Reference-v0 is all of these settings (merge-v0's, read above) but 15 Hz
    one_each = [n for n in kwargs if n not in ("merge", "merge-reference", "merge-15hz", "merge-v0-reward")]
    own = {k: v for n in one_each for k, v in bench.VARIANTS[n][1].items()}  # each variant's own settings
    assert kwargs["merge-reference"] == {**gym.spec("rlsuite/Merge-v0").kwargs, **own}
    assert bench.VARIANTS["merge-reference"] == ("rlsuite/Merge-Reference-v0", {})
