"""rlsuite traffic policies in SUMO: sumo-rl's single intersection seen through our observation layout.

sumo-rl describes a signal by its incoming lanes (density and queue per lane) and its green phases in
the order of the net's program. rlsuite describes it by movements: approach N, E, S, W (where vehicles
come from) x left, through, right, normalised by the storage of each movement in the scenario the policy
was trained on, and four phases (NS through+right, NS left, EW through+right, EW left). The map is
derived from the net, never typed in: an incoming lane's approach from its heading, a movement from the
direction of the connection a vehicle takes next (SUMO's `dir`: l, s, r), a green phase from the
movements its `G`/`g` links serve. Each vehicle on an incoming lane is counted in the movement of its
next edge, so a lane shared by through and right-turning vehicles splits exactly.

The observation the policy reads is then computed by the same formula as `TrafficCore.observe`:
phase one-hot (the committed phase, also during yellow), the change-accepted flag, vehicles / storage
and halting vehicles (speed < 0.1 m/s, SUMO's and sumo-rl's threshold) / storage per movement, clipped
to 1, followed by the shared policy's agent features.

libsumo allows one simulation per process (sumo-rl #47): `setup_sumo()` selects it and must run before
anything imports sumo_rl or traci.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from rlsuite.envs.traffic import PHASE_GREEN, Network

HALTING_SPEED = 0.1  # m/s: SUMO's getLastStepHaltingNumber threshold, also sumo-rl's queue
ROUTES = ("vertical", "horizontal")  # sumo-rl's demand files for its single intersection
_DIRS = {"l": 0, "L": 0, "t": 0, "s": 1, "r": 2, "R": 2}  # SUMO link direction -> our movement (turnaround: left)


def setup_sumo() -> None:
    """Point SUMO_HOME at the pip-installed SUMO and select libsumo (before sumo_rl / traci are imported)."""
    import sumo

    os.environ.setdefault("SUMO_HOME", os.path.dirname(sumo.__file__))
    os.environ["LIBSUMO_AS_TRACI"] = "1"


def net_dir() -> Path:
    """sumo-rl's `nets/2way-single-intersection` folder (net and route files)."""
    setup_sumo()
    import sumo_rl

    return Path(sumo_rl.__file__).parent / "nets" / "2way-single-intersection"


def net_file() -> str:
    return str(net_dir() / "single-intersection.net.xml")


def route_file(route: str) -> str:
    if route not in ROUTES:
        raise ValueError(f"Unknown demand {route!r}; sumo-rl's single intersection ships {', '.join(ROUTES)}.")
    return str(net_dir() / f"single-intersection-{route}.rou.xml")


# --- the map from SUMO's net to our layout ------------------------------------------------------------------------

def approach_of(shape: list[tuple[float, float]]) -> int:
    """Our approach index (0 N, 1 E, 2 S, 3 W: where vehicles come from) of a lane by its last segment."""
    (x0, y0), (x1, y1) = shape[-2], shape[-1]
    dx, dy = x1 - x0, y1 - y0
    if abs(dy) >= abs(dx):
        return 0 if dy < 0 else 2  # heading south: comes from the north
    return 3 if dx > 0 else 1  # heading east: comes from the west


@dataclass(frozen=True)
class IntersectionMap:
    """How one SUMO traffic light reads in rlsuite's layout."""

    lane_approach: dict[str, int]  # incoming lane -> approach
    movement: dict[tuple[str, str], int]  # (incoming edge, outgoing edge) -> movement (0 left, 1 through, 2 right)
    phase_to_sumo: tuple[int, ...]  # our phase p -> sumo-rl's green phase index
    sumo_to_phase: tuple[int, ...]  # sumo-rl's green phase index -> our phase


def build_map(conn: Any, tls_id: str, green_states: list[str]) -> IntersectionMap:
    """Derive the map of traffic light `tls_id` from the running simulation `conn` (traci or libsumo).

    `green_states` are the signal states of sumo-rl's green phases, in its action order.
    """
    links = conn.trafficlight.getControlledLinks(tls_id)  # per link index: [(in lane, out lane, via)]
    lane_approach: dict[str, int] = {}
    movement: dict[tuple[str, str], int] = {}
    link_cell: list[tuple[int, int] | None] = []
    for group in links:
        if not group:
            link_cell.append(None)
            continue
        in_lane, out_lane, _ = group[0]
        if in_lane not in lane_approach:
            lane_approach[in_lane] = approach_of(conn.lane.getShape(in_lane))
            for to_lane, *_, direction, _length in conn.lane.getLinks(in_lane):
                if direction not in _DIRS:
                    raise ValueError(f"Lane {in_lane} has a link with direction {direction!r}, which the four-leg "
                                     f"layout cannot place; use a four-leg intersection.")
                movement[(_edge(in_lane), _edge(to_lane))] = _DIRS[direction]
        link_cell.append((lane_approach[in_lane], movement[(_edge(in_lane), _edge(out_lane))]))
    sumo_to_phase = []
    for state in green_states:
        green = np.zeros((4, 3), dtype=bool)
        for index, cell in enumerate(link_cell):
            if cell is not None and state[index] in "Gg":
                green[cell] = True
        match = [p for p in range(4) if (PHASE_GREEN[p] == green).all()]
        if not match:
            raise ValueError(f"Traffic light {tls_id}: green phase {state!r} serves movements {green.astype(int).tolist()}, "
                             f"which none of rlsuite's four phases serves.")
        sumo_to_phase.append(match[0])
    if sorted(sumo_to_phase) != [0, 1, 2, 3]:
        raise ValueError(f"Traffic light {tls_id}: its green phases map to our phases {sumo_to_phase}, not to each of 0-3 once.")
    phase_to_sumo = tuple(int(np.argsort(sumo_to_phase)[p]) for p in range(4))
    return IntersectionMap(lane_approach, movement, phase_to_sumo, tuple(sumo_to_phase))


def _edge(lane: str) -> str:
    return lane.rsplit("_", 1)[0]


def movement_counts(conn: Any, imap: IntersectionMap) -> tuple[np.ndarray, np.ndarray]:
    """(vehicles, halting) per (approach, movement), (4, 3) each, from the vehicles on the incoming lanes."""
    vehicles = np.zeros((4, 3))
    halting = np.zeros((4, 3))
    for lane, approach in imap.lane_approach.items():
        for veh in conn.lane.getLastStepVehicleIDs(lane):
            route, i = conn.vehicle.getRoute(veh), conn.vehicle.getRouteIndex(veh)
            m = imap.movement[(route[i], route[i + 1])]
            vehicles[approach, m] += 1
            halting[approach, m] += conn.vehicle.getSpeed(veh) < HALTING_SPEED
    return vehicles, halting


def rlsuite_observation(phase: int, can_change: bool, vehicles: np.ndarray, halting: np.ndarray,
                        mov_capacity: np.ndarray) -> np.ndarray:
    """(29,) our per-intersection layout from counts (4, 3), as TrafficCore.observe computes it.

    `mov_capacity` (4, 3) is the storage of each movement in the scenario the policy was trained on.
    """
    return np.concatenate([
        np.eye(4, dtype=np.float32)[phase], [float(can_change)],
        np.minimum(vehicles / mov_capacity, 1.0).ravel(), np.minimum(halting / mov_capacity, 1.0).ravel(),
    ]).astype(np.float32)


def rlsuite_observation_class(net: Network, features: np.ndarray) -> type:
    """A sumo-rl ObservationFunction that writes our layout for a policy trained on `net`.

    `features` are appended after the layout (a shared policy's agent features; empty for the plain env).
    The map is built on the first call (sumo-rl creates the function before the signal knows its lanes).
    """
    setup_sumo()
    from sumo_rl.environment.observations import ObservationFunction

    capacity = net.mov_capacity[:4].astype(np.float64)  # (4, 3): the first intersection's approaches
    extra = np.asarray(features, dtype=np.float32)

    class RlsuiteObservation(ObservationFunction):  # type: ignore[misc]
        imap: IntersectionMap | None = None

        def __call__(self) -> np.ndarray:
            ts = self.ts
            if self.imap is None:
                self.imap = build_map(ts.sumo, ts.id, [p.state for p in ts.green_phases])
            vehicles, halting = movement_counts(ts.sumo, self.imap)
            can_change = ts.time_since_last_phase_change >= ts.min_green + ts.yellow_time
            obs = rlsuite_observation(self.imap.sumo_to_phase[ts.green_phase], can_change, vehicles, halting, capacity)
            return np.concatenate([obs, extra])

        def observation_space(self) -> gym.spaces.Box:
            low = np.zeros(29 + len(extra), dtype=np.float32)
            return gym.spaces.Box(low, np.ones_like(low), dtype=np.float32)

    return RlsuiteObservation


# --- episodes ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SumoProtocol:
    """One evaluation protocol for every row: sumo-rl's defaults plus our episode length."""

    seconds: int = 1800  # simulated seconds per episode (rlsuite's single intersection runs 1800 s)
    delta_time: int = 5
    yellow_time: int = 2
    min_green: int = 5


def make_sumo_env(route: str, protocol: SumoProtocol, observation_class: type | None = None, fixed_ts: bool = False,
                  tripinfo: Path | None = None) -> Any:
    """sumo-rl's single-agent env on its single intersection with demand `route`, through libsumo."""
    setup_sumo()
    import sumo_rl
    from sumo_rl.environment.observations import DefaultObservationFunction

    extra = f"--tripinfo-output {tripinfo} --tripinfo-output.write-unfinished" if tripinfo is not None else None
    return sumo_rl.SumoEnvironment(
        net_file=net_file(), route_file=route_file(route), single_agent=True, use_gui=False,
        num_seconds=protocol.seconds, delta_time=protocol.delta_time, yellow_time=protocol.yellow_time,
        min_green=protocol.min_green, fixed_ts=fixed_ts, sumo_warnings=False, additional_sumo_cmd=extra,
        observation_class=observation_class or DefaultObservationFunction, add_per_agent_info=False,
    )


def mean_waiting_time(tripinfo: Path) -> tuple[float, int]:
    """(mean waitingTime per vehicle, vehicles) over every vehicle that entered, finished or not (SUMO's
    tripinfo: time at speed <= 0.1 m/s)."""
    import xml.etree.ElementTree as ET

    waits = [float(t.get("waitingTime", 0.0)) for t in ET.parse(tripinfo).getroot().iter("tripinfo")]
    return (float(np.mean(waits)) if waits else 0.0), len(waits)


Actor = Callable[[Any, Any], int]
"""(observation, sumo-rl env) -> sumo-rl action."""


def run_episode(route: str, seed: int, protocol: SumoProtocol, make_actor: Callable[[], Actor] | None,
                workdir: Path, observation_class: type | None = None, fixed_ts: bool = False) -> dict[str, float]:
    """One SUMO episode: sumo-rl's return (diff-waiting-time), mean waiting time per vehicle, vehicles.

    `make_actor()` gives a fresh actor for the episode; with `fixed_ts` the net's own program runs instead."""
    tripinfo = workdir / f"tripinfo_{route}_{seed}.xml"
    env = make_sumo_env(route, protocol, observation_class, fixed_ts, tripinfo)
    act = make_actor() if make_actor is not None else None
    try:
        obs, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            action = None if act is None else act(obs, env)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
    finally:
        env.close()
    wait, vehicles = mean_waiting_time(tripinfo)
    tripinfo.unlink(missing_ok=True)
    return {"return": total, "waiting_time": wait, "vehicles": float(vehicles)}


class AlternatingDemand(gym.Env):
    """sumo-rl's env for training, alternating its two demand files episode by episode (one simulation
    at a time: libsumo holds one per process)."""

    def __init__(self, protocol: SumoProtocol, seed: int) -> None:
        self.protocol, self._episode, self._seed = protocol, 0, seed
        self._env = make_sumo_env(ROUTES[0], protocol)
        self.observation_space, self.action_space = self._env.observation_space, self._env.action_space
        self._env.close()

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        self._env.close()
        self._env = make_sumo_env(ROUTES[self._episode % len(ROUTES)], self.protocol)
        obs, info = self._env.reset(seed=self._seed * 100_003 + self._episode)
        self._episode += 1
        return obs, info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        return self._env.step(int(action))

    def close(self) -> None:
        self._env.close()
