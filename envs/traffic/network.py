"""The traffic scenarios: phases and movements, and `Network`, a scenario file's parameters with every
constant derived from them (computed once)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

SCENARIO_DIR = Path(__file__).parent.parent / "scenarios"
DIRECTIONS = ("N", "E", "S", "W")  # approach d: vehicles arriving FROM direction d
MOVEMENTS = ("left", "through", "right")
REWARDS = ("wait", "queue", "pressure")
OBS_MODES = ("vector", "pixels")
PHASE_NAMES = ("NS through", "NS left", "EW through", "EW left")
# PHASE_GREEN[p, d, m]: movement m of approach d is green in phase p.
PHASE_GREEN = np.zeros((4, 4, 3), dtype=bool)
PHASE_GREEN[0, [0, 2], 1:] = True  # N and S approaches: through and right
PHASE_GREEN[1, [0, 2], 0] = True  # N and S approaches: left
PHASE_GREEN[2, [1, 3], 1:] = True  # E and W approaches: through and right
PHASE_GREEN[3, [1, 3], 0] = True  # E and W approaches: left
_STEP = ((-1, 0), (0, 1), (1, 0), (0, -1))  # (row, col) offset towards N, E, S, W


class ScenarioError(ValueError):
    """A scenario file or env argument that cannot be used; the message says what to change."""


# --- scenario and derived network constants ----------------------------------------------------------------------

@dataclass(frozen=True)
class Network:
    """Scenario parameters and every constant derived from them (computed here once, never twice)."""

    name: str
    rows: int
    cols: int
    duration_s: int
    yellow_s: int
    all_red_s: int
    min_green_s: int
    max_green_s: int
    delta_time_s: int
    profile_names: tuple[str, ...]
    train_profiles: tuple[int, ...]
    held_out_profiles: tuple[int, ...]
    lanes: np.ndarray  # (3,) lanes per movement
    link_length_m: float
    travel_time_s: np.ndarray  # (L,) free-flow travel time of each link, s
    capacity: np.ndarray  # (L,) storage, vehicles
    mov_capacity: np.ndarray  # (L, 3) storage share of each movement, vehicles
    rate: np.ndarray  # (L, 3) saturation flow of each movement, veh/s
    target: np.ndarray  # (L, 3) the link a movement feeds, -1 for leaving the grid
    sources: np.ndarray  # (E,) links fed from outside the grid
    source_dir: np.ndarray  # (E,) their approach direction
    entry_rate: np.ndarray  # (E,) max vehicles per second entering a source link
    lam: np.ndarray  # (profiles, duration_s, E) Poisson mean arrivals per 1 s tick
    turning: np.ndarray  # (profiles, 3) cumulative turning ratios (left, left+through, 1)
    neighbours: np.ndarray  # (K, 4) neighbour intersection towards N, E, S, W, -1 at the edge
    design_flow: np.ndarray  # (L, 3) mean movement flow over the training profiles, veh/s (for Webster)

    @property
    def num_nodes(self) -> int:
        return self.rows * self.cols

    @property
    def num_links(self) -> int:
        return 4 * self.num_nodes

    @property
    def clearance_s(self) -> int:
        return self.yellow_s + self.all_red_s

    @property
    def horizon(self) -> int:
        """Ring-buffer length for vehicles in transit: the longest travel time plus one."""
        return int(self.travel_time_s.max()) + 1


def scenario_names() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def _piecewise(knots: Any, duration: int, where: str) -> np.ndarray:
    """A piecewise-linear shape [[t, f], ...] sampled at the middle of each 1 s tick."""
    pts = np.asarray(knots, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 1 or (np.diff(pts[:, 0]) <= 0).any() or (pts[:, 1] < 0).any():
        raise ScenarioError(f"{where}: a shape is a list of [time_s, factor] pairs with increasing times and factors >= 0.")
    return np.interp(np.arange(duration) + 0.5, pts[:, 0], pts[:, 1])


def load_network(scenario: str | Path | dict) -> Network:
    """Read a scenario (shipped name, YAML path, or an already parsed dict) and derive the network."""
    if isinstance(scenario, dict):
        raw, where = scenario, "scenario dict"
    else:
        path = Path(scenario)
        if not path.suffix:
            path = SCENARIO_DIR / f"{scenario}.yaml"
        if not path.exists():
            raise ScenarioError(f"Unknown scenario {scenario!r}: shipped scenarios are {', '.join(scenario_names())}, "
                                f"or pass the path of a YAML file shaped like envs/scenarios/single.yaml.")
        raw, where = yaml.safe_load(path.read_text()), str(path)
    try:
        rows, cols = int(raw["grid"]["rows"]), int(raw["grid"]["cols"])
        link, sig = raw["link"], raw["signal"]
        lanes = np.array([int(link["lanes"][m]) for m in MOVEMENTS])
        length, speed, spacing = float(link["length_m"]), float(link["speed_mps"]), float(link["jam_spacing_m"])
        sat = float(raw["saturation_flow_vph_per_lane"]) / 3600.0  # veh/s per lane
        duration = int(raw["duration_s"])
        yellow, all_red = int(sig["yellow_s"]), int(sig["all_red_s"])
        min_green, max_green, delta = int(sig["min_green_s"]), int(sig["max_green_s"]), int(sig["delta_time_s"])
        profiles = raw["profiles"]
        train_names, held_names = list(raw["train_profiles"]), list(raw.get("held_out_profiles", []))
    except (KeyError, TypeError) as err:
        raise ScenarioError(f"{where}: missing or malformed key {err}; copy envs/scenarios/single.yaml and edit it.") from None
    if rows < 1 or cols < 1 or (lanes < 1).any() or length <= 0 or speed <= 0 or spacing <= 0 or sat <= 0:
        raise ScenarioError(f"{where}: rows, cols, lanes, length, speed, jam spacing and saturation flow must be positive.")
    if not 1 <= min_green <= max_green or delta < 1 or yellow < 0 or all_red < 0 or duration < delta:
        raise ScenarioError(f"{where}: need 1 <= min_green_s <= max_green_s, delta_time_s >= 1, clearance >= 0, "
                            f"duration_s >= delta_time_s.")
    names = tuple(profiles)
    for n in train_names + held_names:
        if n not in profiles:
            raise ScenarioError(f"{where}: profile {n!r} is not defined; defined profiles: {', '.join(names)}.")
    if not train_names:
        raise ScenarioError(f"{where}: train_profiles must name at least one profile.")

    K, L = rows * cols, 4 * rows * cols
    node_rc = [(k // cols, k % cols) for k in range(K)]
    neighbours = np.full((K, 4), -1, dtype=np.int64)
    for k, (r, c) in enumerate(node_rc):
        for d, (dr, dc) in enumerate(_STEP):
            if 0 <= r + dr < rows and 0 <= c + dc < cols:
                neighbours[k, d] = (r + dr) * cols + (c + dc)
    # Link k*4+d arrives at node k from direction d. Its vehicles head (d+2)%4; left is heading-1, right heading+1.
    target = np.full((L, 3), -1, dtype=np.int64)
    for k in range(K):
        for d in range(4):
            heading = (d + 2) % 4
            for m, exit_dir in enumerate(((heading + 3) % 4, heading, (heading + 1) % 4)):
                nb = neighbours[k, exit_dir]
                if nb >= 0:  # enters the neighbour from the side facing us
                    target[k * 4 + d, m] = nb * 4 + (exit_dir + 2) % 4
    sources = np.array([k * 4 + d for k in range(K) for d in range(4) if neighbours[k, d] < 0], dtype=np.int64)
    source_dir = sources % 4

    travel = np.full(L, max(1, round(length / speed)), dtype=np.int64)  # s
    capacity = np.full(L, int(length * lanes.sum() / spacing), dtype=np.int64)  # vehicles
    mov_capacity = np.tile(capacity[:, None] * lanes[None, :] / lanes.sum(), 1)  # (L, 3)
    rate = np.tile(sat * lanes[None, :], (L, 1)).astype(np.float64)  # (L, 3) veh/s
    entry_rate = np.full(len(sources), int(np.ceil(sat * lanes.sum())), dtype=np.int32)

    lam = np.zeros((len(names), duration, len(sources)))
    turning = np.zeros((len(names), 3))
    for p, n in enumerate(names):
        prof = profiles[n]
        try:
            rates = {d: float(prof["rates_vph"][d]) / 3600.0 for d in DIRECTIONS}  # veh/s
            turns = np.array([float(prof["turning"][m]) for m in MOVEMENTS])
            shape = prof.get("shape", [[0, 1.0]])
        except (KeyError, TypeError) as err:
            raise ScenarioError(f"{where}: profile {n!r} needs rates_vph for N, E, S, W and turning for left, through, "
                                f"right (missing {err}).") from None
        if (turns < 0).any() or abs(turns.sum() - 1.0) > 1e-6:
            raise ScenarioError(f"{where}: turning ratios of profile {n!r} must be >= 0 and sum to 1, got {turns.tolist()}.")
        turning[p] = np.cumsum(turns)
        turning[p, 2] = 1.0
        for d_idx, d_name in enumerate(DIRECTIONS):
            knots = shape[d_name] if isinstance(shape, dict) else shape
            lam[p][:, source_dir == d_idx] = (rates[d_name] * _piecewise(knots, duration, f"{where} profile {n}"))[:, None]

    # Webster's design flows: mean arrival rates over the training profiles, propagated through the grid
    # by the turning ratios (solve f = s + T^T f on links; vehicles leave at the edges, so it converges).
    train_idx = tuple(names.index(n) for n in train_names)
    source_flow = np.zeros(L)
    source_flow[sources] = lam[list(train_idx)].mean(axis=(0, 1))
    ratios = np.diff(np.concatenate([[[0.0]] * len(names), turning], axis=1), axis=1)[list(train_idx)].mean(0)  # (3,)
    transfer = np.zeros((L, L))
    for m in range(3):
        internal = target[:, m] >= 0
        transfer[np.flatnonzero(internal), target[internal, m]] += ratios[m]
    link_flow = np.linalg.solve(np.eye(L) - transfer.T, source_flow)
    design_flow = link_flow[:, None] * ratios[None, :]

    return Network(
        name=str(raw.get("name", where)), rows=rows, cols=cols, duration_s=duration, yellow_s=yellow, all_red_s=all_red,
        min_green_s=min_green, max_green_s=max_green, delta_time_s=delta, profile_names=names,
        train_profiles=train_idx, held_out_profiles=tuple(names.index(n) for n in held_names),
        lanes=lanes, link_length_m=length, travel_time_s=travel, capacity=capacity, mov_capacity=mov_capacity,
        rate=rate, target=target, sources=sources, source_dir=source_dir, entry_rate=entry_rate, lam=lam,
        turning=turning, neighbours=neighbours, design_flow=design_flow,
    )
