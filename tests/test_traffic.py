"""TrafficGrid: Gymnasium API, determinism, vector rows, the queue model against hand-computed flows,
and the classic controllers."""

from __future__ import annotations

import copy
import itertools

import gymnasium as gym
import numpy as np
import pytest
import yaml
from gymnasium.utils.env_checker import check_env

import rlsuite.envs  # noqa: F401  (registers rlsuite/ ids)
from rlsuite.envs.traffic import (
    PHASE_GREEN,
    SCENARIO_DIR,
    ScenarioError,
    TrafficCore,
    TrafficGridEnv,
    TrafficGridVectorEnv,
    TrafficState,
    load_network,
    scenario_names,
    webster_plan,
)


def scenario(name: str = "single", **changes) -> dict:
    """A shipped single-intersection scenario with some keys replaced (a dict is a valid scenario)."""
    raw = yaml.safe_load((SCENARIO_DIR / f"{name}.yaml").read_text())
    for key, value in changes.items():
        raw[key] = value
    return raw


def quiet(raw: dict) -> dict:
    """No demand at all: vehicles only come from the test."""
    raw = copy.deepcopy(raw)
    for prof in raw["profiles"].values():
        prof["rates_vph"] = {d: 0 for d in "NESW"}
    return raw


def run_ticks(core: TrafficCore, st: TrafficState, ticks: int) -> list[dict[str, np.ndarray]]:
    core.prepare(st, ticks)
    return [core.tick(st) for _ in range(ticks)]


def check_invariants(core: TrafficCore, st: TrafficState) -> None:
    """Conservation and storage, for every row."""
    pipe_and_queue = st.pipe.sum(axis=0) + st.queue  # (N, L, 3)
    np.testing.assert_array_equal(pipe_and_queue, st.mov_occ)
    np.testing.assert_array_equal(st.mov_occ.sum(axis=2), st.link_occ)
    assert (st.link_occ <= core.net.capacity[None, :]).all()
    assert (st.queue >= 0).all() and (st.pipe >= 0).all() and (st.backlog >= 0).all()
    c = {"generated": st.generated, "entered": st.entered, "exited": st.exited}
    np.testing.assert_array_equal(c["generated"], c["exited"] + core.in_network(st) + st.backlog.sum(axis=1))
    np.testing.assert_array_equal(c["entered"], c["exited"] + core.in_network(st))


# --- API ----------------------------------------------------------------------------------------------------------------

def test_passes_gymnasium_check_env() -> None:
    check_env(gym.make("rlsuite/TrafficSingle-v0").unwrapped, skip_render_check=False)
    check_env(gym.make("rlsuite/TrafficGrid-v0", pressure=True, neighbour_phases=True).unwrapped)


def test_every_shipped_scenario_loads_and_webster_plans_are_valid() -> None:
    assert {"single", "arterial", "grid2x2", "grid4x4"} <= set(scenario_names())
    for name in scenario_names():
        net = load_network(name)
        plan = webster_plan(net)
        assert plan.shape == (net.num_nodes, 4)
        assert (plan * net.delta_time_s >= net.min_green_s + net.clearance_s).all()
        # every phase's movements leave by distinct exits, which the spillback check relies on
        for p in range(4):
            targets = net.target.reshape(net.num_nodes, 4, 3)[:, PHASE_GREEN[p]]
            for row in targets:
                internal = row[row >= 0]
                assert len(set(internal.tolist())) == len(internal)


def test_same_seed_same_trajectory_and_frames() -> None:
    def rollout(seed: int) -> tuple[list[np.ndarray], list[float], list[np.ndarray]]:
        env = gym.make("rlsuite/TrafficGrid-v0", render_mode="rgb_array")
        obs, _ = env.reset(seed=seed)
        env.action_space.seed(seed)
        observations, rewards, frames = [obs], [], [env.render()]
        for _ in range(30):
            obs, reward, _, _, _ = env.step(env.action_space.sample())
            observations.append(obs)
            rewards.append(reward)
            frames.append(env.render())
        return observations, rewards, frames

    a, b, c = rollout(3), rollout(3), rollout(4)
    for x, y in zip(a[0] + a[2], b[0] + b[2], strict=True):
        np.testing.assert_array_equal(x, y)
    assert a[1] == b[1]
    assert a[1] != c[1]
    frame = a[2][-1]
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3 and frame.std() > 0


def test_vector_rows_equal_single_envs_through_autoreset() -> None:
    raw = scenario(duration_s=40)  # 8 decisions per episode
    num_envs, seed = 3, 21
    vec = TrafficGridVectorEnv(num_envs, scenario=raw)
    singles = [TrafficGridEnv(scenario=raw) for _ in range(num_envs)]
    vec_obs, _ = vec.reset(seed=seed)
    single_obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(singles)]
    np.testing.assert_array_equal(vec_obs, np.stack(single_obs))
    rng = np.random.default_rng(0)
    for _step in range(8):
        actions = rng.integers(0, 4, size=(num_envs, 1))
        vec_obs, vec_rew, _, vec_trunc, vec_info = vec.step(actions)
        for i, env in enumerate(singles):
            obs, rew, _, trunc, info = env.step(actions[i])
            np.testing.assert_array_equal(vec_obs[i], obs)
            assert vec_rew[i] == rew and vec_trunc[i] == trunc
            assert vec_info["travel_time"][i] == info["travel_time"]
    assert vec_trunc.all()
    # next-step autoreset: the action is ignored, the reward is 0 and row i starts afresh, exactly like
    # the single env reset without a new seed (its generator carries on)
    vec_obs, vec_rew, _, vec_trunc, vec_info = vec.step(np.zeros((num_envs, 1), dtype=np.int64))
    assert (vec_rew == 0).all() and not vec_trunc.any() and (vec_info["generated"] == 0).all()
    np.testing.assert_array_equal(vec_obs, np.stack([env.reset()[0] for env in singles]))
    actions = rng.integers(0, 4, size=(num_envs, 1))
    vec_obs, vec_rew, *_ = vec.step(actions)
    for i, env in enumerate(singles):
        obs, rew, *_ = env.step(actions[i])
        np.testing.assert_array_equal(vec_obs[i], obs)
        assert vec_rew[i] == rew


def test_bad_arguments_are_refused_with_the_accepted_values() -> None:
    with pytest.raises(ScenarioError, match="grid2x2"):
        gym.make("rlsuite/TrafficGrid-v0", scenario="nope")
    with pytest.raises(ScenarioError, match="held_out"):
        gym.make("rlsuite/TrafficGrid-v0", profile="weekday")
    with pytest.raises(ScenarioError, match="wait, queue, pressure"):
        gym.make("rlsuite/TrafficGrid-v0", reward="speed")
    with pytest.raises(ScenarioError, match="sum to 1"):
        raw = scenario()
        raw["profiles"]["ns_peak"]["turning"] = {"left": 0.5, "through": 0.7, "right": 0.1}
        load_network(raw)


# --- the model against hand-computed flows --------------------------------------------------------------------------

def test_hand_computed_queue_discharge_on_a_tiny_scenario() -> None:
    """Four vehicles stopped on the north approach's through movement, one through lane (0.5 veh/s):
    green from t=0 discharges one vehicle every 2 s (credit 0.5, 1.0 -> 1, 0.5, 1.0 -> 1, ...)."""
    raw = quiet(scenario())
    raw["link"]["lanes"] = {"left": 1, "through": 1, "right": 1}
    core = TrafficCore(load_network(raw), 1)
    st = core.init_state()
    core.reset_rows(st, np.array([0]), np.array([7], dtype=np.uint64), np.array([0]))
    st.queue[0, 0, 1] = st.mov_occ[0, 0, 1] = st.link_occ[0, 0] = 4  # link 0: node 0, approach N
    st.generated[0] = st.entered[0] = 4
    queues, exited = [], []
    for _ in range(9):
        run_ticks(core, st, 1)
        check_invariants(core, st)
        queues.append(int(st.queue[0, 0, 1]))
        exited.append(int(st.exited[0]))
    assert queues == [4, 3, 3, 2, 2, 1, 1, 0, 0]
    assert exited == [0, 1, 1, 2, 2, 3, 3, 4, 4]
    # in the system during each tick: 4, 4, 3, 3, 2, 2, 1, 1 (they leave at the end of ticks 2, 4, 6, 8): 20 s / 4
    assert core.metrics(st)["travel_time"][0] == pytest.approx((4 + 4 + 3 + 3 + 2 + 2 + 1 + 1) / 4)


@pytest.mark.parametrize("name", ["single", "single_sumo"])
def test_no_discharge_on_red_or_yellow_and_clearance_timing(name: str) -> None:
    raw = quiet(scenario(name))
    net = load_network(raw)
    core = TrafficCore(net, 1)
    st = core.init_state()
    core.reset_rows(st, np.array([0]), np.array([1], dtype=np.uint64), np.array([0]))
    st.queue[0, :, :] = st.mov_occ[0, :, :] = 10
    st.link_occ[0, :] = 30
    st.generated[0] = st.entered[0] = 120
    core.apply_actions(st, np.array([[2]]))  # before min green: ignored
    assert st.phase[0, 0] == 0 and st.clear_left[0, 0] == 0
    flows = run_ticks(core, st, net.min_green_s)
    core.apply_actions(st, np.array([[2]]))  # now accepted: yellow, all-red, then east-west through
    assert st.phase[0, 0] == 2 and st.clear_left[0, 0] == net.clearance_s
    flows += run_ticks(core, st, net.clearance_s + 6)
    for t, f in enumerate(flows):
        green = f["green"][0]
        assert (f["discharged"][0][~green] == 0).all(), f"discharge on red/yellow at t={t}"
        in_clearance = net.min_green_s <= t < net.min_green_s + net.clearance_s
        assert green.any() != in_clearance
        if not in_clearance:
            expected = PHASE_GREEN[0 if t < net.min_green_s else 2]
            np.testing.assert_array_equal(green.reshape(4, 3), expected)
    check_invariants(core, st)


@pytest.mark.parametrize("name", ["single", "single_sumo"])
def test_max_green_forces_the_next_phase(name: str) -> None:
    raw = quiet(scenario(name))
    net = load_network(raw)
    core = TrafficCore(net, 1)
    st = core.init_state()
    core.reset_rows(st, np.array([0]), np.array([1], dtype=np.uint64), np.array([0]))
    held = 0
    while st.phase[0, 0] == 0:
        core.apply_actions(st, np.array([[0]]))  # always ask to keep phase 0
        run_ticks(core, st, net.delta_time_s)
        held += net.delta_time_s
    assert st.phase[0, 0] == 1
    assert held - net.delta_time_s == int(np.ceil(net.max_green_s / net.delta_time_s)) * net.delta_time_s


def test_single_sumo_constants_and_timing_by_hand() -> None:
    """sumo-rl's intersection: 142 m at 13.9 m/s is 10 s of travel; 3 lanes x 142 m / 7.5 m is 56 vehicles of
    storage, 56 / 3 a movement; 1800 veh/h per lane is 0.5 veh/s; 850 veh/h from the north in `vertical` is
    850 / 3600 arrivals per tick all episode; a change asked at 5 s of green shows 2 s of yellow, then green."""
    net = load_network("single_sumo")
    assert net.travel_time_s.tolist() == [10] * 4 and net.capacity.tolist() == [56] * 4
    np.testing.assert_allclose(net.mov_capacity, np.full((4, 3), 56 / 3))
    np.testing.assert_allclose(net.rate, np.full((4, 3), 0.5))
    vertical, horizontal = net.profile_names.index("vertical"), net.profile_names.index("horizontal")
    np.testing.assert_allclose(net.lam[vertical] * 3600, np.tile([850, 400, 850, 400], (net.duration_s, 1)))
    np.testing.assert_allclose(net.lam[horizontal] * 3600, np.tile([400, 850, 400, 850], (net.duration_s, 1)))
    np.testing.assert_allclose(net.turning, [[0.28, 0.64, 1.0]] * 2)
    with pytest.raises(ScenarioError, match="holds out no profile"):
        TrafficGridEnv(scenario="single_sumo", profile="held_out")
    core = TrafficCore(load_network(quiet(scenario("single_sumo"))), 1)
    st = core.init_state()
    core.reset_rows(st, np.array([0]), np.array([1], dtype=np.uint64), np.array([0]))
    st.queue[0, 1, 1] = st.mov_occ[0, 1, 1] = st.link_occ[0, 1] = 3  # 3 stopped on the east approach, through
    st.generated[0] = st.entered[0] = 3
    run_ticks(core, st, 5)
    core.apply_actions(st, np.array([[2]]))  # east-west through after 5 s of north-south green
    flows = run_ticks(core, st, 8)
    green = [bool(f["green"][0][1, 1]) for f in flows]
    assert green == [False, False, True, True, True, True, True, True]  # yellow 2 s, no all-red
    # discharge credit 0.5 a second from the first green second: one vehicle every 2 s
    assert [int(f["discharged"][0][1, 1]) for f in flows] == [0, 0, 0, 1, 0, 1, 0, 1]


def test_discharge_never_exceeds_saturation_flow_and_conservation_each_tick() -> None:
    env = TrafficGridVectorEnv(4, scenario="grid2x2", profile="ew_peak")
    env.reset(seed=5)
    core, st, net = env.sim.core, env.state, env.net
    rng = np.random.default_rng(1)
    run = np.zeros((4, net.num_links, 3), dtype=np.int64)  # seconds of the current green run
    served = np.zeros_like(run)  # vehicles discharged in it
    total_born = 0
    for _ in range(60):
        core.apply_actions(st, rng.integers(0, 4, size=(4, net.num_nodes)))
        core.prepare(st, net.delta_time_s)
        for _ in range(net.delta_time_s):
            f = core.tick(st)
            check_invariants(core, st)
            total_born += int(f["born"].sum())
            run = np.where(f["green"], run + 1, 0)
            served = np.where(f["green"], served + f["discharged"], 0)
            assert (served <= net.rate[None] * run + 1).all()
            assert (f["discharged"] <= np.floor(net.rate[None] + 1)).all()
            assert (f["inflow"] <= core._turn_max).all()  # the turning table covers every count that occurs
    assert total_born > 100 and st.exited.sum() > 50


def test_turning_split_table_is_the_multinomial_of_independent_choices() -> None:
    """Each link-tick splits its n entering vehicles with one draw from a table; the table's outcome
    probabilities must equal those of n vehicles choosing independently (a slow loop over all 3^n choices)."""
    net = load_network("grid2x2")
    core = TrafficCore(net, 1)
    table, split, n_max = core._turn_table, core._turn_split, core._turn_max
    assert n_max >= 3
    for p in range(len(net.profile_names)):
        ratios = np.diff(np.concatenate([[0.0], net.turning[p]]))
        for n in range(n_max + 1):
            block = 2.0 * (p * (n_max + 1) + n)
            rows = np.flatnonzero((table >= block) & (table < block + 2.0))
            probs = np.diff(np.concatenate([[0.0], np.minimum(table[rows] - block, 1.0)]))
            reference: dict[tuple[int, ...], float] = {}
            for choice in itertools.product(range(3), repeat=n):
                counts = tuple(int(c) for c in np.bincount(np.array(choice, dtype=int), minlength=3))
                reference[counts] = reference.get(counts, 0.0) + float(np.prod(ratios[list(choice)]))
            got = {tuple(int(v) for v in split[r]): float(q) for r, q in zip(rows, probs, strict=True)}
            assert got.keys() == reference.keys()
            for key, q in reference.items():
                assert got[key] == pytest.approx(q, abs=1e-12)
    # and in the running network the movement shares follow the profile's turning ratios
    env = TrafficGridVectorEnv(8, scenario="grid2x2", profile="ns_peak")
    env.reset(seed=11)
    core, st = env.sim.core, env.state
    joined = np.zeros(3)
    rng = np.random.default_rng(0)
    for _ in range(100):
        before = st.mov_occ.copy()
        core.apply_actions(st, rng.integers(0, 4, size=(8, net.num_nodes)))
        core.prepare(st, net.delta_time_s)
        for _ in range(net.delta_time_s):
            f = core.tick(st)
            joined += (st.mov_occ - before + f["discharged"]).sum(axis=(0, 1))
            before = st.mov_occ.copy()
    ratios = np.diff(np.concatenate([[0.0], net.turning[net.profile_names.index("ns_peak")]]))
    assert joined.sum() > 2000
    np.testing.assert_allclose(joined / joined.sum(), ratios, atol=0.03)


def test_fifo_vehicles_reach_the_stop_line_in_entry_order_after_the_travel_time() -> None:
    """No overtaking on a link: the cumulative count reaching the stop line is the cumulative count that
    entered, shifted by the free-flow travel time (per link, per movement)."""
    env = TrafficGridVectorEnv(2, scenario="grid2x2", profile="ns_peak")
    env.reset(seed=2)
    core, st, net = env.sim.core, env.state, env.net
    T = int(net.travel_time_s[0])
    entered, arrived = [], []
    mov_before = st.mov_occ.copy()
    rng = np.random.default_rng(3)
    for _ in range(40):
        core.apply_actions(st, rng.integers(0, 4, size=(2, net.num_nodes)))
        core.prepare(st, net.delta_time_s)
        for _ in range(net.delta_time_s):
            f = core.tick(st)
            arrived.append(f["arrivals"])
            entered.append(st.mov_occ - mov_before + f["discharged"])  # joined each movement this tick
            mov_before = st.mov_occ.copy()
    entered_cum = np.cumsum(entered, axis=0)
    arrived_cum = np.cumsum(arrived, axis=0)
    np.testing.assert_array_equal(arrived_cum[T:], entered_cum[:-T])
    assert (arrived_cum[:T] == 0).all()
    # and a movement never discharges more vehicles than have reached its stop line
    discharged = st.exited.sum()
    assert discharged <= arrived_cum[-1].sum()


def test_spillback_blocks_discharge_into_a_full_link() -> None:
    """Arterial of two intersections: the east-bound link into node 1 is held on red; node 0 keeps its
    east-west green, so the link fills to its storage and node 0's east-bound through queue stops moving."""
    raw = scenario(grid={"rows": 1, "cols": 2})
    raw["link"]["length_m"] = 30.0  # storage: 30 m * 4 lanes / 7.5 m = 16 vehicles
    raw["profiles"] = {"west_only": {"rates_vph": {"N": 0, "S": 0, "E": 0, "W": 3000},
                                     "turning": {"left": 0.0, "through": 1.0, "right": 0.0}}}
    raw["train_profiles"], raw["held_out_profiles"] = ["west_only"], []
    raw["signal"]["max_green_s"] = 1000
    net = load_network(raw)
    core = TrafficCore(net, 1)
    st = core.init_state()
    core.reset_rows(st, np.array([0]), np.array([11], dtype=np.uint64), np.array([0]))
    west_in_0, west_in_1 = 0 * 4 + 3, 1 * 4 + 3  # approach W of node 0 and of node 1
    blocked_ticks = 0
    for step in range(60):
        core.apply_actions(st, np.array([[2, 0]]) if step >= 1 else np.array([[0, 0]]))  # node 0 EW green, node 1 NS green
        core.prepare(st, net.delta_time_s)
        for _ in range(net.delta_time_s):
            full = st.link_occ[0, west_in_1] == net.capacity[west_in_1]  # before the tick
            f = core.tick(st)
            check_invariants(core, st)
            if full and f["green"][0, west_in_0, 1]:
                blocked_ticks += 1
                assert f["discharged"][0, west_in_0, 1] == 0
    assert st.link_occ[0, west_in_1] == net.capacity[west_in_1]  # filled up
    assert blocked_ticks > 20
    assert st.exited[0] == 0  # nothing passed node 1 on red
    assert st.queue[0, west_in_0, 1] > 0  # green but blocked
    assert st.backlog[0, list(net.sources).index(west_in_0)] > 0  # the queue spilled back to the boundary


# --- controllers ----------------------------------------------------------------------------------------------------

def test_controllers_are_registered_baselines_for_traffic_envs_only() -> None:
    from rlsuite.agents.interface import AgentError
    from rlsuite.agents.registry import make_baseline

    env = gym.make("rlsuite/TrafficGrid-v0")
    obs, _ = env.reset(seed=0)
    for name in ("fixed-time", "max-pressure", "actuated"):
        policy = make_baseline(name, env)
        policy.reset(2)
        actions = policy.act(np.stack([obs, obs]), np.array([True, True]))
        assert actions.shape == (2, 4) and env.action_space.contains(actions[0].astype(np.int64))
    with pytest.raises(AgentError, match="random"):
        make_baseline("max-pressure", gym.make("CartPole-v1"))


def test_max_pressure_serves_the_heaviest_phase() -> None:
    from rlsuite.envs.traffic import MaxPressureController

    env = TrafficGridEnv(scenario="single")
    obs, _ = env.reset(seed=0)
    obs = obs.copy()
    obs[17:29] = 0.0
    obs[17 + 3 * 1 + 0] = 0.8  # east approach, left turn: lots stopped -> phase 3 (EW left)
    obs[17 + 3 * 0 + 1] = 0.1  # north through: a few (pressure 4 veh x 1 veh/s vs 16 x 0.5)
    policy = MaxPressureController(env)
    assert policy.act(obs[None], np.array([False]))[0, 0] == 3


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ["rlsuite/TrafficSingle-v0", "rlsuite/TrafficArterial-v0", "rlsuite/TrafficGrid-v0"])
def test_max_pressure_beats_fixed_time_on_travel_time(env_id: str) -> None:
    from rlsuite.agents.registry import make_baseline
    from rlsuite.evaluation.harness import evaluate_policy

    env = gym.make(env_id)
    travel = {}
    for name in ("fixed-time", "max-pressure"):
        records = evaluate_policy(make_baseline(name, env), env_id, episodes=3)
        travel[name] = np.mean([r.metrics["travel_time"] for r in records])
    assert travel["max-pressure"] < 0.95 * travel["fixed-time"], travel


# --- multi-agent: PettingZoo and the parameter-sharing view -------------------------------------------------------

def test_pettingzoo_parallel_api_and_seed_tests() -> None:
    from pettingzoo.test import parallel_api_test, parallel_seed_test

    from rlsuite.envs.traffic import TrafficParallelEnv

    parallel_api_test(TrafficParallelEnv(scenario="single"), num_cycles=30)
    parallel_seed_test(lambda: TrafficParallelEnv(scenario="grid2x2"), num_cycles=20)


def test_pettingzoo_agents_see_the_same_network_as_the_gymnasium_env() -> None:
    from rlsuite.envs.traffic import TrafficParallelEnv

    par, single = TrafficParallelEnv(scenario="grid2x2"), TrafficGridEnv(scenario="grid2x2")
    obs, infos = par.reset(seed=9)
    flat, _ = single.reset(seed=9)
    np.testing.assert_array_equal(np.concatenate([obs[a] for a in par.possible_agents]), flat)
    rng = np.random.default_rng(0)
    for _ in range(12):
        action = rng.integers(0, 4, size=4)
        obs, rewards, _, _, infos = par.step(dict(zip(par.possible_agents, action.tolist(), strict=True)))
        flat, reward, _, _, info = single.step(action)
        np.testing.assert_array_equal(np.concatenate([obs[a] for a in par.possible_agents]), flat)
        assert sum(rewards.values()) == pytest.approx(reward)
    agent_info = infos["tl_1_0"]
    assert agent_info["travel_time"] == info["travel_time"]  # network-wide metric
    assert agent_info["reward"] == rewards["tl_1_0"] and "queue" in agent_info and "waiting_time" in agent_info


def test_shared_view_rows_are_agents_with_id_features_and_turn_taking_matches() -> None:
    from rlsuite.envs import make_env, make_vec_env

    vec = make_vec_env("rlsuite/TrafficGridShared-v0", 8, record_stats=False)  # 2 networks x 4 intersections
    obs, _ = vec.reset(seed=4)
    assert obs.shape == (8, 29 + 4 + 2)
    np.testing.assert_array_equal(obs[:, 29:33], np.tile(np.eye(4), (2, 1)))  # agent one-hot
    full = TrafficGridVectorEnv(2, scenario="grid2x2")
    full_obs, _ = full.reset(seed=4)
    np.testing.assert_array_equal(obs[:, :29].reshape(2, -1), full_obs)
    turn = make_env("rlsuite/TrafficGridShared-v0")
    turn_obs, _ = turn.reset(seed=4)
    np.testing.assert_array_equal(turn_obs, obs[0])
    rng = np.random.default_rng(1)
    for _ in range(5):
        actions = rng.integers(0, 4, size=8)
        obs, rewards, _, _, info = vec.step(actions)
        full_obs, full_rewards, _, _, full_info = full.step(actions.reshape(2, 4))
        np.testing.assert_array_equal(obs[:, :29].reshape(2, -1), full_obs)
        np.testing.assert_allclose(rewards.reshape(2, 4).sum(axis=1), full_rewards)
        team = 0.0
        for a in range(4):
            turn_obs, r, *_ , turn_info = turn.step(actions[a])
            team += r
        np.testing.assert_array_equal(turn_obs, obs[0])
        assert team == pytest.approx(full_rewards[0]) and turn_info["travel_time"] == full_info["travel_time"][0]
        assert turn_info["agent_queue_2"] == full.agent_info()["agent_queue"][0, 2]  # per-intersection metrics
    with pytest.raises(ScenarioError, match="multiple of 4"):
        make_vec_env("rlsuite/TrafficGridShared-v0", 6)


def test_pixel_observations_are_the_rendered_frames() -> None:
    env = gym.make("rlsuite/TrafficSingle-v0", obs_mode="pixels", render_mode="rgb_array")
    obs, _ = env.reset(seed=1)
    assert env.observation_space.contains(obs) and obs.dtype == np.uint8
    for _ in range(20):
        obs, *_ = env.step(np.array([2]))
    np.testing.assert_array_equal(obs, env.render())
    vec = gym.make_vec("rlsuite/TrafficSingle-v0", num_envs=2, vectorization_mode="vector_entry_point", obs_mode="pixels")
    vobs, _ = vec.reset(seed=1)
    first, _ = env.reset(seed=1)
    np.testing.assert_array_equal(vobs[0], first)
    with pytest.raises(ScenarioError, match="vector, pixels"):
        gym.make("rlsuite/TrafficSingle-v0", obs_mode="rgb")


@pytest.mark.slow
def test_parameter_shared_ppo_beats_fixed_time_on_the_2x2_grid(tmp_path) -> None:
    """One PPO policy for all four intersections (the preset's settings, with 80k of its 150k agent steps
    to fit the CI budget), evaluated on the same 8 seeds as Webster fixed-time: lower average travel time."""
    import torch

    from rlsuite.agents.registry import load_policy, make_baseline
    from rlsuite.agents.run import RunFolder
    from rlsuite.agents.settings import settings_to_dict
    from rlsuite.evaluation.harness import evaluate_policy
    from rlsuite.train import prepare_settings, run_training

    torch.set_num_threads(1)
    env_id = "rlsuite/TrafficGridShared-v0"
    settings = prepare_settings("ppo", env_id, cli_values={"seed": 0, "tensorboard": False, "total_steps": 80_000})
    assert settings.n_envs == 32 and settings.learning_rate == 1.0e-3  # the preset's block for the shared traffic ids
    run = RunFolder.create(tmp_path, agent="ppo", env_id=env_id, seed=0, settings=settings_to_dict(settings),
                           command="test", device="cpu")
    run_training("ppo", settings, run, show_progress=False)
    ppo = evaluate_policy(load_policy(run.path, "last").policy, env_id, episodes=8)
    fixed = evaluate_policy(make_baseline("fixed-time", gym.make("rlsuite/TrafficGrid-v0")), "rlsuite/TrafficGrid-v0", episodes=8)
    ppo_travel = np.mean([r.metrics["travel_time"] for r in ppo])
    fixed_travel = np.mean([r.metrics["travel_time"] for r in fixed])
    assert ppo_travel < 0.9 * fixed_travel, (ppo_travel, fixed_travel)


def test_profiles_train_and_held_out_are_disjoint_draws() -> None:
    net = load_network("grid2x2")
    held = {net.profile_names[i] for i in net.held_out_profiles}
    train = {net.profile_names[i] for i in net.train_profiles}
    assert held and train and not held & train
    seen_train = {TrafficGridEnv(scenario="single").reset(seed=s)[1]["profile"] for s in range(12)}
    seen_held = {TrafficGridEnv(scenario="single", profile="held_out").reset(seed=s)[1]["profile"] for s in range(4)}
    assert seen_train == train and seen_held == held
    # the time-varying rate follows the profile's shape: the held-out peak swings from NS to EW
    shifting = net.profile_names.index("shifting_peak")
    north = net.source_dir == 0
    east = net.source_dir == 1
    assert net.lam[shifting, 0, north].mean() > 3 * net.lam[shifting, 0, east].mean()
    assert net.lam[shifting, -1, east].mean() > 3 * net.lam[shifting, -1, north].mean()
