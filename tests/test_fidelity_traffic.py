"""The SUMO adapter (benchmarks/fidelity/sumo_adapter.py): SUMO's state read in our layout equals our env's.

The pure mapping is checked against TrafficCore.observe on hand-built states; the SUMO side (needs the
bench extra: sumo-rl, eclipse-sumo, libsumo) places vehicles by hand in sumo-rl's single intersection,
reads them through the adapter and compares with our env holding the same vehicles.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from rlsuite.envs.traffic import PHASE_GREEN, TrafficGridVectorEnv, load_network

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from fidelity.sumo_adapter import approach_of, build_map, movement_counts, rlsuite_observation  # noqa: E402

HAVE_SUMO = all(importlib.util.find_spec(m) is not None for m in ("sumo_rl", "libsumo", "sumo"))
needs_sumo = pytest.mark.skipif(not HAVE_SUMO, reason="needs the bench extra (sumo-rl, eclipse-sumo, libsumo)")


def _our_observation(scenario: str, phase: int, can_change: bool, vehicles: np.ndarray, halting: np.ndarray) -> np.ndarray:
    """Our env's own observation of a single intersection holding these vehicles (approach x movement)."""
    env = TrafficGridVectorEnv(1, scenario)
    env.reset(seed=0)
    core, st = env.sim.core, env.state
    st.phase[0, 0] = phase
    st.clear_left[0, 0] = 0
    st.green_s[0, 0] = env.net.min_green_s if can_change else 0
    st.mov_occ[0] = vehicles.astype(np.int32)
    st.queue[0] = halting.astype(np.int32)
    return core.observe(st, False, False)[0, 0]  # (N, K, 29): row 0, intersection 0


@pytest.mark.parametrize("scenario", ["single", "single_sumo"])
def test_mapping_equals_our_observation_on_hand_built_counts(scenario: str) -> None:
    rng = np.random.default_rng(0)
    net = load_network(scenario)
    for phase in range(4):
        vehicles = rng.integers(0, 45, size=(4, 3))  # beyond storage sometimes: both sides clip at 1
        halting = np.minimum(vehicles, rng.integers(0, 30, size=(4, 3)))
        can_change = bool(phase % 2)
        mapped = rlsuite_observation(phase, can_change, vehicles, halting, net.mov_capacity[:4])
        np.testing.assert_allclose(mapped, _our_observation(scenario, phase, can_change, vehicles, halting), atol=1e-6)


def test_approach_is_where_vehicles_come_from() -> None:
    assert approach_of([(0.0, 300.0), (0.0, 160.0)]) == 0  # heading south: from the north
    assert approach_of([(300.0, 0.0), (160.0, 0.0)]) == 1  # heading west: from the east
    assert approach_of([(0.0, -300.0), (0.0, -160.0)]) == 2
    assert approach_of([(-300.0, 0.0), (-160.0, 0.0)]) == 3


@needs_sumo
def test_hand_placed_sumo_vehicles_read_as_our_env_holds_them() -> None:
    from fidelity.sumo_adapter import net_file, setup_sumo

    setup_sumo()
    import sumolib
    import traci as libsumo  # libsumo behind traci's names (LIBSUMO_AS_TRACI): importing libsumo first breaks traci

    libsumo.start([sumolib.checkBinary("sumo"), "-n", net_file(), "--no-step-log", "--no-warnings"])
    try:
        program = libsumo.trafficlight.getAllProgramLogics("t")[0].phases
        greens = [p.state for p in program if "y" not in p.state and set(p.state) != {"r"}]
        imap = build_map(libsumo, "t", greens)
        assert imap.phase_to_sumo == (0, 1, 2, 3)  # the net's program: NS through, NS left, EW through, EW left
        assert {lane: a for lane, a in imap.lane_approach.items() if lane.endswith("_1")} == {
            "n_t_1": 0, "e_t_1": 1, "s_t_1": 2, "w_t_1": 3}
        # (id, route, lane, position from the start of the 142 m approach, stopped)
        placed = [("nl0", ("n_t", "t_e"), 1, 120, True), ("nl1", ("n_t", "t_e"), 1, 110, True),
                  ("nl2", ("n_t", "t_e"), 1, 100, True), ("sl0", ("s_t", "t_w"), 1, 120, True),
                  ("ns0", ("n_t", "t_s"), 0, 120, True), ("nr0", ("n_t", "t_w"), 0, 110, True),
                  ("et0", ("e_t", "t_w"), 0, 10, False), ("wr0", ("w_t", "t_s"), 0, 10, False)]
        for vid, edges, lane, pos, stopped in placed:
            libsumo.route.add(f"r_{vid}", list(edges))
            libsumo.vehicle.add(vid, f"r_{vid}", departLane=str(lane), departPos=str(pos),
                                departSpeed="0" if stopped else "max")
        libsumo.simulationStep()
        for vid, *_, stopped in placed:
            if stopped:
                libsumo.vehicle.setSpeed(vid, 0.0)
        libsumo.simulationStep()
        vehicles, halting = movement_counts(libsumo, imap)
    finally:
        libsumo.close()
    expected_vehicles = np.zeros((4, 3))
    expected_halting = np.zeros((4, 3))
    for _, (src, dst), _, _, stopped in placed:
        cell = ({"n_t": 0, "e_t": 1, "s_t": 2, "w_t": 3}[src],
                {("n_t", "t_e"): 0, ("s_t", "t_w"): 0, ("n_t", "t_s"): 1, ("e_t", "t_w"): 1,
                 ("n_t", "t_w"): 2, ("w_t", "t_s"): 2}[(src, dst)])
        expected_vehicles[cell] += 1
        expected_halting[cell] += stopped
    np.testing.assert_array_equal(vehicles, expected_vehicles)
    np.testing.assert_array_equal(halting, expected_halting)
    # and the observation a policy trained on `single` reads equals our env's for the same vehicles
    net = load_network("single")
    mapped = rlsuite_observation(2, True, vehicles, halting, net.mov_capacity[:4])
    np.testing.assert_allclose(mapped, _our_observation("single", 2, True, expected_vehicles, expected_halting), atol=1e-6)
    assert PHASE_GREEN[2][1, 1] and PHASE_GREEN[2][3, 2]  # EW through+right serves the two moving vehicles


@needs_sumo
def test_sumo_rl_env_gives_our_layout_and_takes_our_phases(tmp_path: Path) -> None:
    from fidelity.sumo_adapter import SumoProtocol, rlsuite_observation_class, run_episode

    net = load_network("single")
    features = TrafficGridVectorEnv(1, "single").agent_features[0]
    obs_class = rlsuite_observation_class(net, features)
    seen: list[np.ndarray] = []

    def make_actor():  # noqa: ANN202
        def act(obs: np.ndarray, env: object) -> int:
            seen.append(obs)
            return 2  # our EW through: the net's third green phase
        return act

    result = run_episode("vertical", 0, SumoProtocol(seconds=100), make_actor, tmp_path, obs_class)
    assert seen[0].shape == (32,) and seen[0][:4].tolist() == [1, 0, 0, 0]  # phase 0, then agent features
    np.testing.assert_array_equal(seen[0][29:], features)
    assert seen[-1][:4].tolist() == [0, 0, 1, 0]  # the requested phase is the committed one
    assert result["vehicles"] > 0 and result["waiting_time"] >= 0 and result["return"] <= 0


@needs_sumo
def test_single_sumo_scenario_is_read_from_sumo_rls_files() -> None:
    """The shipped `single_sumo` scenario against sumo-rl's net, its two route files and its env defaults."""
    import inspect
    import xml.etree.ElementTree as ET

    from fidelity.sumo_adapter import ROUTES, SumoProtocol, net_dir, route_file, setup_sumo

    setup_sumo()
    import sumo_rl  # after SUMO_HOME is set

    net = load_network("single_sumo")
    lanes = [lane for edge in ET.parse(net_dir() / "single-intersection.net.xml").getroot().iter("edge")
             if edge.get("to") == "t" for lane in edge.iter("lane")]  # the approaches' lanes
    assert len(lanes) == 8
    assert {round(float(lane.get("length"))) for lane in lanes} == {round(net.link_length_m)}
    assert {float(lane.get("speed")) for lane in lanes} == {13.9}
    assert (net.travel_time_s == round(net.link_length_m / 13.9)).all()
    # demand: veh/h per approach and the flow-weighted (left, through, right) split of each route file
    for p, route in enumerate(ROUTES):
        root = ET.parse(route_file(route)).getroot()
        edges = {r.get("id"): r.get("edges").split() for r in root.iter("route")}
        per_dir = np.zeros(4)
        per_move = np.zeros(3)
        for flow in root.iter("flow"):
            src, dst = edges[flow.get("route")]
            d, exit_dir = "nesw".index(src[0]), "nesw".index(dst[-1])  # from d (N, E, S, W), towards exit_dir
            heading = (d + 2) % 4
            move = [(heading + 3) % 4, heading, (heading + 1) % 4].index(exit_dir)  # left, through, right
            per_dir[d] += float(flow.get("vehsPerHour"))
            per_move[move] += float(flow.get("vehsPerHour"))
        assert net.profile_names[p] == route
        np.testing.assert_allclose(net.lam[p, 0, np.argsort(net.source_dir)] * 3600, per_dir)  # constant flows
        np.testing.assert_allclose(net.lam[p, -1], net.lam[p, 0])
        np.testing.assert_allclose(net.turning[p], np.cumsum(per_move / per_move.sum()))
    # signal timing: sumo-rl's env defaults (the protocol every row is evaluated with), no all-red, no max green
    defaults = inspect.signature(sumo_rl.SumoEnvironment).parameters
    protocol = SumoProtocol()
    assert net.delta_time_s == defaults["delta_time"].default == protocol.delta_time
    assert net.yellow_s == defaults["yellow_time"].default == protocol.yellow_time
    assert net.min_green_s == defaults["min_green"].default == protocol.min_green
    assert net.all_red_s == 0 and net.max_green_s >= net.duration_s == protocol.seconds
