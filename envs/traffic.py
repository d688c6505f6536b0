"""TrafficGrid: signalised intersections on a road network, a fast queue model of SUMO-style signal control.

## Description
A grid of four-leg intersections (a single intersection, an arterial 1xN, grids 2x2 and 4x4 ship as
scenario files in `envs/scenarios/`). Every approach of every intersection is a link with a length, a
free-flow travel time, a storage capacity and lanes per movement (left, through, right). Vehicles
enter at the boundary as seeded Poisson processes with time-varying rates, choose a movement on each
link by the scenario's turning ratios, travel the link at free flow, then queue at the stop line. A
green movement discharges at its saturation flow (veh/s per lane x lanes) unless the downstream link is
full (spillback); vehicles leaving the grid are counted as exits. The model steps in 1 s ticks over
`(num_envs, links, movements)` arrays; there is no Python loop over envs or vehicles in `step`.

Signals run four phases: 0 north-south through (with right turns), 1 north-south left, 2 east-west
through (with right turns), 3 east-west left. Every `delta_time_s` (5 s) the agent names the next green
phase of each intersection; naming the current phase extends it. A change starts `yellow_s` of yellow
and `all_red_s` of all-red, then the new green. Requests are ignored before `min_green_s` of green and
during clearance; a phase held `max_green_s` is ended by moving to the next phase in the cycle.

## Action space
`MultiDiscrete([4] * num_intersections)`: the next green phase of each intersection (row-major order).

## Observation space
sumo-rl's layout per intersection, intersections stacked row-major and flattened:
| entries | meaning |
| --- | --- |
| 4 | green phase one-hot (the committed phase, also during its clearance) |
| 1 | min-green flag: 1 when a phase change would be accepted now |
| 12 | density per movement (approach N, E, S, W x left, through, right): vehicles / storage |
| 12 | queue per movement: stopped vehicles / storage |
| 1 | with `pressure=True`: (queued in - vehicles on exit links) / storage, clipped to [-1, 1] |
| 16 | with `neighbour_phases=True`: the phase one-hot of the N, E, S, W neighbours (0 at the edge) |
With `obs_mode="pixels"` the observation is the `rgb_array` frame instead (uint8, H x W x 3).

## Rewards
One per intersection, summed for the single-agent env. `reward="wait"` (default, sumo-rl's
diff-waiting-time): minus the waiting time accrued during the decision interval (vehicle-seconds
stopped at the intersection's stop lines) / 100. `"queue"`: minus the stopped vehicles at the end of
the interval / 10. `"pressure"`: minus (queued on the approaches - vehicles on the exit links) / 10.

## Metrics (`info`, every step, scalar per env)
`travel_time` (average over all generated vehicles of the time in the system so far, CityFlow's
definition: vehicle-seconds / vehicles generated), `delay` (time stopped at stop lines or waiting to
enter, per vehicle), `waiting_time` (time stopped at stop lines, per vehicle), `queue_length` (mean
stopped vehicles per intersection), `throughput` (vehicles that left), `in_network` (vehicles inside or
waiting at the boundary), `generated`, `entered`, `exited`.

## Starting state
An empty network at time 0, phase 0 of every signal just turned green. The demand profile is drawn
from the scenario's training profiles (`profile="train"`), its held-out ones (`"held_out"`) or named.

## Episode end
Truncation after `duration_s` simulated seconds; the env never terminates.

## Arguments
`gym.make("rlsuite/TrafficGrid-v0", scenario="grid2x2", profile="train", reward="wait",
pressure=False, neighbour_phases=False, obs_mode="vector")`; `scenario` is a shipped name or a path to
a YAML file of the same form. `gym.make_vec(..., vectorization_mode="vector_entry_point")` gives the
batched core (next-step autoreset), row i equal to a single env reset with seed + i.

## Version history
- v0: first version.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

import gymnasium as gym
import numpy as np
import yaml
from pettingzoo import ParallelEnv

from rlsuite.envs.vector import CoreEnv, NumpyVectorEnv

if TYPE_CHECKING:
    from rlsuite.envs.multiagent import MultiAgentCore

SCENARIO_DIR = Path(__file__).parent / "scenarios"
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


# --- counter-based randomness: the same draws whatever the batch size ------------------------------------------------

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_GOLD, _ODD = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xD6E8FEB86659FD93)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)


def _uniform(key: np.ndarray, a_term: np.ndarray, b: np.ndarray) -> np.ndarray:
    """U[0, 1) from (key, a, b) by splitmix64's finaliser: each row's stream depends on its own key only.
    `a_term` is the stream id already multiplied by _GOLD (a constant the caller keeps)."""
    with np.errstate(over="ignore"):
        x = (key ^ (b.astype(np.uint64) * _ODD)) ^ a_term  # the small operand first, then one broadcast
        x ^= x >> _S30
        x *= _M1
        x ^= x >> _S27
        x *= _M2
        x ^= x >> _S31
        x >>= _S11
    return x.astype(np.float64) * (1.0 / 9007199254740992.0)


def _poisson(u: np.ndarray, p0: np.ndarray, lam: np.ndarray, max_k: int = 8) -> np.ndarray:
    """Poisson(lam) counts by inverse CDF from p0 = exp(-lam); per-tick means are small, so a few terms
    suffice, and the loop stops once every draw is placed (the CDF only grows, so later terms change nothing)."""
    p = p0.copy()
    cdf = p0.copy()
    k = np.zeros(u.shape, dtype=np.int32)
    more = np.empty(u.shape, dtype=bool)
    for i in range(1, max_k + 1):
        np.greater(u, cdf, out=more)
        if not more.any():
            break
        k += more
        p *= lam
        p /= i
        cdf += p
    return k


def _turning_table(net: Network) -> tuple[np.ndarray, np.ndarray, int]:
    """Inverse-CDF table of the multinomial split of n vehicles into (left, through, right) by each
    profile's turning ratios, for n up to the most vehicles that can enter a link in one tick.

    Block c = profile * (n_max + 1) + n covers [2c, 2c + 2): its entries are 2c + the CDF of the outcomes
    of n vehicles, the last one 2c + 1.5 rather than 2c + 1, so `searchsorted(table, 2c + u, "right")`
    with u in [0, 1) lands inside block c whatever the rounding. Returns (table, split per entry, n_max).
    """
    # per tick a movement discharges at most floor(credit) <= floor(1 + rate); a link is fed by at most three
    # movements, a source link by at most the entry rate
    n_max = int(max(3 * np.floor(1.0 + net.rate.max()), net.entry_rate.max()))
    probs = np.diff(np.concatenate([np.zeros((len(net.turning), 1)), net.turning], axis=1), axis=1)  # (P, 3)
    table: list[float] = []
    split: list[tuple[int, int, int]] = []
    for p in range(len(net.turning)):
        for n in range(n_max + 1):
            c = p * (n_max + 1) + n
            outcomes = [(left, through, n - left - through) for left in range(n + 1) for through in range(n - left + 1)]
            pmf = np.array([math.factorial(n) / (math.factorial(a) * math.factorial(b) * math.factorial(r))
                            * probs[p, 0] ** a * probs[p, 1] ** b * probs[p, 2] ** r for a, b, r in outcomes])
            cdf = np.cumsum(pmf)
            cdf[-1] = 1.5
            table.extend((2.0 * c + cdf).tolist())
            split.extend(outcomes)
    return np.asarray(table), np.asarray(split, dtype=np.int32), n_max


# --- the vectorised core ---------------------------------------------------------------------------------------------

class TrafficCore:
    """`num_envs` networks stepped together: state arrays over (num_envs, links, movements).

    Speed notes (the core runs 5 ticks per decision over ~10^4-10^5 elements): sums over short axes go
    through float32 matrix products (exact for these small counts, and ~50x faster than numpy's reductions
    over a 3- or 12-long axis), the in-transit ring buffer is indexed by one clock shared by all rows (a
    view, not a gather; a row's delays are the same whatever slot it starts in), and the green mask of each
    phase is gathered once per decision.
    """

    def __init__(self, net: Network, num_envs: int) -> None:
        self.net, self.n = net, num_envs
        N, K, L, H, E = num_envs, net.num_nodes, net.num_links, net.horizon, len(net.sources)
        self.key = np.zeros((N, 1), dtype=np.uint64)
        self.profile = np.zeros(N, dtype=np.int64)
        self.t = np.zeros(N, dtype=np.int64)  # simulated seconds
        self.pipe = np.zeros((H, N, L, 3), dtype=np.int32)  # in transit, by arrival slot (clock % H)
        self.queue = np.zeros((N, L, 3), dtype=np.int32)  # stopped at the stop line
        self.mov_occ = np.zeros((N, L, 3), dtype=np.int32)  # on the link (moving + queued), by movement
        self.credit = np.zeros((N, L, 3))  # discharge credit, vehicles
        self.backlog = np.zeros((N, E), dtype=np.int32)  # generated, waiting outside a full source link
        self.phase = np.zeros((N, K), dtype=np.int64)  # committed green phase
        self.prev_phase = np.zeros((N, K), dtype=np.int64)  # the phase being cleared (shown yellow)
        self.clear_left = np.zeros((N, K), dtype=np.int64)  # s of yellow + all-red still to run
        self.green_s = np.zeros((N, K), dtype=np.int64)  # s of green so far
        self.counts = {k: np.zeros(N, dtype=np.int64) for k in ("generated", "entered", "exited")}
        self.veh_s = np.zeros(N)  # vehicle-seconds in the system (incl. backlog)
        self.stopped_s = np.zeros(N)  # vehicle-seconds stopped at stop lines
        self.backlog_s = np.zeros(N)  # vehicle-seconds waiting to enter
        self.node_stopped_s = np.zeros((N, K))  # per intersection, for rewards
        # Vehicles on each link; a last, always-empty column stands for "outside the grid".
        self._link_occ_ext = np.zeros((N, L + 1), dtype=np.int32)
        self.link_occ = self._link_occ_ext[:, :L]  # (N, L) view
        self._clock = 0  # ticks since construction, the same for every row (ring-buffer slot)
        # Constant index arrays and matrices.
        internal = net.target >= 0
        self._tgt_flat = np.where(internal, net.target, L).ravel()  # (L*3,) target link, L = leaves the grid
        self._cap_tgt = np.where(internal, net.capacity[np.maximum(net.target, 0)], 1 << 30).astype(np.int32)
        self._cap_src = net.capacity[net.sources].astype(np.int32)  # (E,)
        # flows = out (N, L*3) @ _flow_matrix: [net change of link occupancy (L) | inflow per link (L) | exits (1)]
        feed = np.zeros((L * 3, L + 1), dtype=np.float32)
        feed[np.arange(L * 3), self._tgt_flat] = 1.0
        leave = np.zeros((L * 3, L), dtype=np.float32)
        leave[np.arange(L * 3), np.arange(L * 3) // 3] = 1.0
        self._flow_matrix = np.concatenate([feed[:, :L] - leave, feed], axis=1)  # (L*3, 2L+1)
        # queue (N, L*3) @ _node_matrix: stopped vehicles per intersection (K) and in all (1)
        self._node_matrix = np.zeros((L * 3, K + 1), dtype=np.float32)
        self._node_matrix[np.arange(L * 3), np.arange(L * 3) // 12] = 1.0
        self._node_matrix[:, K] = 1.0
        self._ones_L = np.ones(L, dtype=np.float32)
        self._ones_E = np.ones(E, dtype=np.float32)
        # (profiles * duration_s, 2E): each tick's Poisson P(0) = exp(-lam) per source, then lam
        self._demand = np.concatenate([np.exp(-net.lam), net.lam], axis=2).reshape(-1, 2 * E)
        # Stream ids of the draws, x _GOLD: arrivals at each source link, turning choices on each link.
        with np.errstate(over="ignore"):
            self._stream = np.concatenate([net.sources, 7919 + np.arange(L)]).astype(np.uint64) * _GOLD  # (E + L,)
        self._turn_table, self._turn_split, self._turn_max = _turning_table(net)
        self._rows = np.arange(N)
        self._horizon = H
        # every link of a scenario has one length and speed, so one travel time: the entry slot is a plain view
        assert (net.travel_time_s == net.travel_time_s[0]).all()
        self._travel = int(net.travel_time_s[0])
        self._phase_green = np.zeros((N, L, 3), dtype=bool)
        self._update_phase_green()

    # -- reset -------------------------------------------------------------------------------------------------------
    def reset_rows(self, rows: np.ndarray, keys: np.ndarray, profiles: np.ndarray) -> None:
        self.key[rows, 0] = keys
        self.profile[rows] = profiles
        arrays: tuple[np.ndarray, ...] = (
            self.t, self.queue, self.mov_occ, self.link_occ, self.credit, self.backlog, self.phase,
            self.prev_phase, self.clear_left, self.green_s, self.veh_s, self.stopped_s, self.backlog_s,
            self.node_stopped_s, *self.counts.values())
        for arr in arrays:
            arr[rows] = 0
        self.pipe[:, rows] = 0
        self._update_phase_green()

    # -- signals -----------------------------------------------------------------------------------------------------
    def _update_phase_green(self) -> None:
        """Cache the (N, L, 3) movements of each row's committed phase (changes only with `phase`)."""
        self._phase_green = PHASE_GREEN[self.phase].reshape(self.n, -1, 3)  # (N, K*4, 3): node-major, then approach

    def can_change(self) -> np.ndarray:
        """(N, K): a phase request would be accepted now (green for at least min green, not clearing)."""
        return (self.clear_left == 0) & (self.green_s >= self.net.min_green_s)

    def apply_actions(self, actions: np.ndarray) -> None:
        """Phase requests (N, K): a different phase starts clearance; max green forces the next phase."""
        actions = np.asarray(actions, dtype=np.int64)
        settled = self.clear_left == 0
        forced = settled & (self.green_s >= self.net.max_green_s) & (actions == self.phase)
        actions = np.where(forced, (self.phase + 1) % 4, actions)
        switch = (self.can_change() | forced) & (actions != self.phase)
        self.prev_phase = np.where(switch, self.phase, self.prev_phase)
        self.phase = np.where(switch, actions, self.phase)
        self.clear_left = np.where(switch, self.net.clearance_s, self.clear_left)
        self.green_s = np.where(switch, 0, self.green_s)
        self._update_phase_green()

    def green(self) -> np.ndarray:
        """(N, L, 3) movements that may discharge this tick (green, not yellow, not all-red)."""
        N, K = self.clear_left.shape
        return (self._phase_green.reshape(N, K, 12) & (self.clear_left == 0)[:, :, None]).reshape(N, -1, 3)

    # -- randomness for the next ticks, drawn in one batch -------------------------------------------------------------
    def prepare(self, ticks: int) -> None:
        """Draw the demand and turning choices of the next `ticks` seconds (counter-based, so identical
        whichever batch a row is in and however the draws are grouped)."""
        net = self.net
        self._update_phase_green()  # the phase may have been set directly (tests, resets)
        t = self.t[:, None] + np.arange(ticks)[None, :]  # (N, ticks)
        E = len(net.sources)
        demand = np.take(self._demand, self.profile[:, None] * net.duration_s + np.minimum(t, net.duration_s - 1), axis=0)
        u = _uniform(self.key[:, :, None], self._stream, t[:, :, None])  # (N, ticks, E + L)
        self._born = _poisson(u[:, :, :E], demand[:, :, :E], demand[:, :, E:])  # (N, ticks, E)
        self._born_total = (self._born.astype(np.float32) @ self._ones_E).astype(np.int64)  # (N, ticks)
        # One uniform per link and tick splits that tick's entering vehicles into movements (a multinomial draw).
        self._u_turn = u[:, :, E:] + 2.0 * (self.profile * (self._turn_max + 1))[:, None, None]  # (N, ticks, L)
        self._tick_in_batch = 0

    # -- one 1 s tick ---------------------------------------------------------------------------------------------------
    def tick(self) -> dict[str, np.ndarray]:
        """Advance every row by one second (after `prepare`); returns this tick's flows for tests."""
        net, N, L = self.net, self.n, self.net.num_links
        slot = self._clock % self._horizon
        arrivals = self.pipe[slot].copy()  # (N, L, 3) reach the stop line now
        self.pipe[slot] = 0
        self.queue += arrivals

        # Discharge: saturation flow while green, never more than the downstream link can store.
        green = self.green()
        credit = self.credit
        credit += net.rate
        credit *= green  # red, yellow and all-red reset the credit to 0
        want = np.minimum(credit.astype(np.int32), self.queue)  # credit >= 0: truncation is floor
        space = self._cap_tgt - self._link_occ_ext[:, self._tgt_flat].reshape(N, L, 3)  # (N, L, 3)
        out = np.minimum(want, space, out=want)  # space >= 0 always (a link never holds more than its storage)
        self.queue -= out
        self.mov_occ -= out
        credit -= out
        np.minimum(credit, 1.0, out=credit)
        flows = (out.reshape(N, -1).astype(np.float32) @ self._flow_matrix).astype(np.int32)  # (N, 2L+1), exact
        exits = flows[:, 2 * L]  # (N,)
        inflow = flows[:, L:2 * L]  # (N, L) vehicles entering links

        # Demand: Poisson arrivals at each boundary approach, waiting outside while the source link is full.
        born = self._born[:, self._tick_in_batch]  # (N, E)
        born_total = self._born_total[:, self._tick_in_batch]  # (N,)
        self.backlog += born
        enter = np.minimum(self.backlog, self._cap_src - self.link_occ[:, net.sources])
        np.minimum(enter, net.entry_rate, out=enter)
        self.backlog -= enter
        inflow[:, net.sources] += enter
        self.link_occ += flows[:, :L]  # moved between links and out of the grid (space freed now counts next tick)
        self.link_occ[:, net.sources] += enter

        # Vehicles entering a link split into movements by one multinomial draw per link (inverse CDF in a
        # table whose block 2 * (profile, count) + [0, 2) holds that count's outcomes), reaching the stop
        # line after the travel time.
        block = self._u_turn[:, self._tick_in_batch] + 2.0 * inflow  # (N, L)
        split = np.take(self._turn_split, np.searchsorted(self._turn_table, block, side="right"), axis=0)  # (N, L, 3)
        self._tick_in_batch += 1
        self.pipe[(self._clock + self._travel) % self._horizon] += split
        self.mov_occ += split

        # Bookkeeping and clock (row sums as float32 products: exact for these counts).
        enter_total = (enter.astype(np.float32) @ self._ones_E).astype(np.int64)
        self.counts["generated"] += born_total
        self.counts["entered"] += enter_total
        self.counts["exited"] += exits
        stopped = self.queue.reshape(N, -1).astype(np.float32) @ self._node_matrix  # (N, K + 1): per node, all
        backlog = self.backlog.astype(np.float32) @ self._ones_E  # (N,)
        self.veh_s += self.link_occ.astype(np.float32) @ self._ones_L  # present during this tick
        self.veh_s += backlog
        self.veh_s += exits
        self.node_stopped_s += stopped[:, :-1]
        self.stopped_s += stopped[:, -1]
        self.backlog_s += backlog
        clearing = self.clear_left > 0
        self.green_s += ~clearing
        self.clear_left -= clearing
        self.t += 1
        self._clock += 1
        return {"arrivals": arrivals, "discharged": out, "inflow": inflow, "born": born, "entered": enter, "green": green}

    # -- observations, rewards, metrics -------------------------------------------------------------------------------
    def in_network(self) -> np.ndarray:
        return self.link_occ.sum(axis=1)

    def exit_occupancy(self) -> np.ndarray:
        """(N, K) vehicles on the links leaving each intersection (inside the grid)."""
        link_occ = self.link_occ
        nb = self.net.neighbours  # (K, 4): exit towards d enters nb from (d+2)%4
        exit_links = np.where(nb >= 0, nb * 4 + (np.arange(4)[None, :] + 2) % 4, 0)  # (K, 4)
        return (link_occ[:, exit_links] * (nb >= 0)).sum(axis=2)

    def pressure(self) -> np.ndarray:
        """(N, K) queued on the approaches minus vehicles on the exit links."""
        return self.queue.reshape(self.n, -1, 12).sum(axis=2) - self.exit_occupancy()

    def observe(self, pressure: bool, neighbour_phases: bool) -> np.ndarray:
        """(N, K, D) sumo-rl layout: phase one-hot, min-green flag, density, queue (+ pressure, neighbours)."""
        net, N, K = self.net, self.n, self.net.num_nodes
        cap = net.mov_capacity.reshape(1, K, 12)
        parts = [np.eye(4, dtype=np.float32)[self.phase], self.can_change()[..., None].astype(np.float32),
                 np.minimum(self.mov_occ.reshape(N, K, 12) / cap, 1.0), np.minimum(self.queue.reshape(N, K, 12) / cap, 1.0)]
        if pressure:
            parts.append(np.clip(self.pressure() / net.capacity[0], -1.0, 1.0)[..., None])
        if neighbour_phases:
            nb = net.neighbours  # (K, 4)
            one_hot = np.eye(4, dtype=np.float32)[self.phase[:, np.maximum(nb, 0)]] * (nb >= 0)[None, :, :, None]
            parts.append(one_hot.reshape(N, K, 16))
        return np.concatenate(parts, axis=2).astype(np.float32)

    def metrics(self) -> dict[str, np.ndarray]:
        gen = np.maximum(self.counts["generated"], 1)
        seconds = np.maximum(self.t, 1)
        return {
            "travel_time": self.veh_s / gen,
            "delay": (self.stopped_s + self.backlog_s) / gen,
            "waiting_time": self.stopped_s / gen,
            "queue_length": self.stopped_s / seconds / self.net.num_nodes,
            "throughput": self.counts["exited"].astype(np.float64),
            "in_network": (self.in_network() + self.backlog.sum(axis=1)).astype(np.float64),
            "generated": self.counts["generated"].astype(np.float64),
            "entered": self.counts["entered"].astype(np.float64),
            "exited": self.counts["exited"].astype(np.float64),
        }


def obs_dim(pressure: bool, neighbour_phases: bool) -> int:
    return 29 + int(pressure) + 16 * int(neighbour_phases)


def _obs_low(pressure: bool, neighbour_phases: bool) -> np.ndarray:
    low = np.zeros(obs_dim(pressure, neighbour_phases), dtype=np.float32)
    if pressure:
        low[29] = -1.0
    return low


@dataclass(frozen=True)
class TrafficParams:
    """Every knob of a traffic env besides the scenario file's own (those load into `Network`)."""

    scenario: str | Path | dict = "grid2x2"
    """A shipped scenario name (envs/scenarios/), a path to a YAML file of the same form, or its dict."""
    profile: str = "train"
    """Demand profiles drawn at reset: "train", "held_out", or one profile's name."""
    reward: str = "wait"
    """"wait", "queue" or "pressure" (module docstring)."""
    pressure: bool = False
    """Add the pressure entry to each intersection's observation."""
    neighbour_phases: bool = False
    """Add the neighbours' phase one-hots to each intersection's observation."""
    obs_mode: str = "vector"
    """"vector" (sumo-rl's layout) or "pixels" (the rgb_array frame)."""

    def __post_init__(self) -> None:
        if self.reward not in REWARDS:
            raise ScenarioError(f"Unknown reward {self.reward!r}; accepted: {', '.join(REWARDS)}.")
        if self.obs_mode not in OBS_MODES:
            raise ScenarioError(f"Unknown obs_mode {self.obs_mode!r}; accepted: {', '.join(OBS_MODES)}.")


def _check_profile(net: Network, profile: str) -> None:
    if profile not in ("train", "held_out") and profile not in net.profile_names:
        raise ScenarioError(f"Unknown profile {profile!r}; accepted: train, held_out, {', '.join(net.profile_names)}.")
    if profile == "held_out" and not net.held_out_profiles:
        raise ScenarioError(f"Scenario {net.name!r} holds out no profile; use profile='train' or a name.")


class TrafficSim:
    """The decision-level process over a TrafficCore (envs/vector.py's VectorCore): phase requests every
    delta_time_s, rewards per intersection, the demand profile and counter-based key of each episode.

    Shared by the Gymnasium single env (one row), its vector env and the PettingZoo env."""

    STATE: ClassVar[tuple[str, ...]] = tuple(f"core.{k}" for k in (
        "key", "profile", "t", "pipe", "queue", "mov_occ", "credit", "backlog", "phase", "prev_phase", "clear_left",
        "green_s", "counts.generated", "counts.entered", "counts.exited", "veh_s", "stopped_s", "backlog_s",
        "node_stopped_s", "link_occ", "_clock"))

    def __init__(self, num_envs: int, params: TrafficParams) -> None:
        self.params = params
        self.net = load_network(params.scenario)
        _check_profile(self.net, params.profile)
        self.profile, self.reward_kind = params.profile, params.reward
        self.pressure_obs, self.neighbour_obs = params.pressure, params.neighbour_phases
        self.num_envs = num_envs
        self.core = TrafficCore(self.net, num_envs)

    def _choices(self) -> tuple[int, ...]:
        if self.profile == "train":
            return self.net.train_profiles
        if self.profile == "held_out":
            return self.net.held_out_profiles
        return (self.net.profile_names.index(self.profile),)

    def reset_rows(self, rows: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        choices = self._choices()
        keys = np.array([rng.integers(0, 2**63, dtype=np.int64) for rng in rngs], dtype=np.uint64)
        profiles = np.array([choices[rng.integers(len(choices))] for rng in rngs], dtype=np.int64)
        self.core.reset_rows(np.asarray(rows), keys, profiles)

    def state_restored(self) -> None:
        self.core._update_phase_green()

    def agent_observations(self) -> np.ndarray:
        """(N, K, D): one observation per intersection."""
        return self.core.observe(self.pressure_obs, self.neighbour_obs)

    def observe(self) -> np.ndarray:
        if self.params.obs_mode == "pixels":
            return render_frames(self.core, np.arange(self.num_envs))
        return self.agent_observations().reshape(self.num_envs, -1)

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Phase requests (N, K): the team rewards (N,), terminated (never), truncated, and info with the
        network metrics and `agent_rewards` (N, K)."""
        core, net = self.core, self.net
        stopped_before = core.node_stopped_s.copy()
        core.apply_actions(np.asarray(actions, dtype=np.int64).reshape(self.num_envs, -1))
        core.prepare(net.delta_time_s)
        for _ in range(net.delta_time_s):
            core.tick()
        if self.reward_kind == "wait":
            rewards = -(core.node_stopped_s - stopped_before) / 100.0
        elif self.reward_kind == "queue":
            rewards = -core.queue.reshape(self.num_envs, -1, 12).sum(axis=2) / 10.0
        else:
            rewards = -core.pressure() / 10.0
        rewards = rewards.astype(np.float64)
        info = {**core.metrics(), "agent_rewards": rewards}
        return rewards.sum(axis=1), np.zeros(self.num_envs, dtype=bool), core.t >= net.duration_s, info

    def reset_info(self) -> dict[str, np.ndarray]:
        return self.core.metrics()


def _spaces(net: Network, p: TrafficParams) -> tuple[gym.spaces.Box, gym.spaces.MultiDiscrete]:
    if p.obs_mode == "pixels":
        obs = gym.spaces.Box(0, 255, frame_shape(net), np.uint8)
    else:
        low = np.tile(_obs_low(p.pressure, p.neighbour_phases), net.num_nodes)
        obs = gym.spaces.Box(low, np.ones_like(low), dtype=np.float32)
    return obs, gym.spaces.MultiDiscrete([4] * net.num_nodes)


class TrafficGridEnv(CoreEnv):
    """The single env: the core with one row, one agent controlling every intersection."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, scenario: str | Path | dict = "grid2x2", profile: str = "train", reward: str = "wait",
                 pressure: bool = False, neighbour_phases: bool = False, obs_mode: str = "vector",
                 render_mode: str | None = None) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ScenarioError(f"render_mode must be None or 'rgb_array', got {render_mode!r}.")
        self.params = TrafficParams(scenario, profile, reward, pressure, neighbour_phases, obs_mode)
        self.sim = self.core = TrafficSim(1, self.params)
        self.net = self.sim.net
        self.obs_mode, self.render_mode = obs_mode, render_mode
        self.observation_space, self.action_space = _spaces(self.net, self.params)

    def _profile(self) -> str:
        return self.net.profile_names[int(self.sim.core.profile[0])]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        obs, info = super().reset(seed=seed, options=options)
        return obs, {**info, "profile": self._profile()}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, reward, terminated, truncated, {**info, "profile": self._profile()}

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        if self.render_mode != "rgb_array":
            return None
        return render_frames(self.sim.core, np.array([0]))[0]


class TrafficGridVectorEnv(NumpyVectorEnv):
    """`num_envs` networks in array operations; row i equals the single env at seed + i."""

    metadata = {**NumpyVectorEnv.metadata, "render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, num_envs: int, scenario: str | Path | dict = "grid2x2", profile: str = "train",
                 reward: str = "wait", pressure: bool = False, neighbour_phases: bool = False,
                 obs_mode: str = "vector", render_mode: str | None = None, **vector_kwargs: Any) -> None:
        self.params = TrafficParams(scenario, profile, reward, pressure, neighbour_phases, obs_mode)
        self.sim = TrafficSim(num_envs, self.params)
        self.net, self.obs_mode = self.sim.net, obs_mode
        super().__init__(self.sim, *_spaces(self.net, self.params), render_mode=render_mode, **vector_kwargs)

    def render(self) -> np.ndarray | None:  # type: ignore[override]  # batched frames
        if self.render_mode != "rgb_array":
            return None
        return render_frames(self.sim.core, np.arange(self.num_envs))

    # -- the multi-agent view (envs/multiagent.py:MultiAgentCore): one agent per intersection ----------------
    @property
    def num_agents(self) -> int:
        return self.net.num_nodes

    @property
    def agent_observation_space(self) -> gym.spaces.Box:
        low = _obs_low(self.sim.pressure_obs, self.sim.neighbour_obs)
        return gym.spaces.Box(low, np.ones_like(low), dtype=np.float32)

    @property
    def agent_action_space(self) -> gym.spaces.Discrete:
        return gym.spaces.Discrete(4)

    @property
    def agent_features(self) -> np.ndarray:
        """(K, K + 2): one-hot intersection id, then its (row, col) position scaled to [0, 1]."""
        K, net = self.net.num_nodes, self.net
        rc = np.stack([np.arange(K) // net.cols / max(net.rows - 1, 1), np.arange(K) % net.cols / max(net.cols - 1, 1)], 1)
        return np.concatenate([np.eye(K), rc], axis=1).astype(np.float32)

    def agent_info(self, rewards: np.ndarray | None = None) -> dict[str, Any]:
        """Network metrics per env (N,) and per-intersection metrics (N, K)."""
        core = self.sim.core
        info: dict[str, Any] = dict(core.metrics())
        info["agent_queue"] = core.queue.reshape(self.num_envs, -1, 12).sum(axis=2).astype(np.float64)
        info["agent_waiting_time"] = core.node_stopped_s / np.maximum(core.counts["generated"][:, None], 1)
        info["agent_pressure"] = core.pressure().astype(np.float64)
        if rewards is not None:
            info["agent_reward"] = rewards
        return info

    def reset_agents(self, seed: int | list[int] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        if self.obs_mode != "vector":
            raise ScenarioError("The multi-agent view reads vector observations; use obs_mode='vector'.")
        obs, _ = self.reset(seed=seed)
        return obs.reshape(self.num_envs, self.num_agents, -1), self.agent_info()

    def step_agents(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        obs, _, terminated, truncated, info = self.step(np.asarray(actions, dtype=np.int64).reshape(self.num_envs, -1))
        rewards = info["agent_rewards"]
        return obs.reshape(self.num_envs, self.num_agents, -1), rewards, terminated, truncated, self.agent_info(rewards)


def make_shared_vector_env(num_envs: int, **kwargs: Any) -> gym.vector.VectorEnv:
    """Parameter-sharing view: one row per intersection; `num_envs` rows = networks x intersections."""
    from rlsuite.envs.multiagent import SharedAgentsVectorEnv

    kwargs.pop("render_mode", None)
    agents = load_network(kwargs.get("scenario", "grid2x2")).num_nodes
    if num_envs % agents:
        raise ScenarioError(f"The shared-policy traffic env has one row per intersection: num_envs (n_envs) must be "
                            f"a multiple of {agents}, the scenario's intersections; got {num_envs}.")
    # TrafficGridVectorEnv provides MultiAgentCore's members as read-only properties
    return SharedAgentsVectorEnv(cast("MultiAgentCore", TrafficGridVectorEnv(num_envs // agents, **kwargs)))


def make_shared_env(**kwargs: Any) -> gym.Env:
    """The shared-policy game as one env (agents act in turn): what gym.make of a shared id builds."""
    from rlsuite.envs.multiagent import TurnTakingEnv

    render_mode = kwargs.pop("render_mode", None)
    core = TrafficGridVectorEnv(1, render_mode=render_mode, **kwargs)
    return TurnTakingEnv(cast("MultiAgentCore", core), render_mode)  # read-only properties


# The shared ids forward **kwargs to TrafficGridVectorEnv: declare the keywords (the single env's), so that the
# factory can check and type command-line env kwargs (`rlsuite train --env-kwarg profile=held_out`).
make_shared_env.__signature__ = inspect.signature(TrafficGridEnv, eval_str=True)  # type: ignore[attr-defined]


class TrafficParallelEnv(ParallelEnv):
    """PettingZoo ParallelEnv: one agent per intersection (`tl_<row>_<col>`), over the same core."""

    metadata = {"render_modes": ["rgb_array"], "name": "traffic_grid_v0", "is_parallelizable": True, "render_fps": 4}

    def __init__(self, scenario: str | Path | dict = "grid2x2", profile: str = "train", reward: str = "wait",
                 pressure: bool = False, neighbour_phases: bool = False, render_mode: str | None = None) -> None:
        self.core = TrafficGridVectorEnv(1, scenario, profile, reward, pressure, neighbour_phases)
        net = self.core.net
        self.render_mode = render_mode
        self.possible_agents = [f"tl_{k // net.cols}_{k % net.cols}" for k in range(net.num_nodes)]
        self.agents: list[str] = []
        self._obs_space = self.core.agent_observation_space
        self._act_space = self.core.agent_action_space
        self._obs_spaces = {a: self._obs_space for a in self.possible_agents}
        self._act_spaces = {a: gym.spaces.Discrete(4) for a in self.possible_agents}
        self._seeded = False

    def observation_space(self, agent: str) -> gym.Space:
        return self._obs_spaces[agent]

    def action_space(self, agent: str) -> gym.Space:
        return self._act_spaces[agent]

    def _infos(self, info: dict[str, Any]) -> dict[str, dict[str, Any]]:
        network = {k: float(np.asarray(v)[0]) for k, v in info.items() if not k.startswith("agent_")}
        per_agent = {k.removeprefix("agent_"): np.asarray(v)[0] for k, v in info.items() if k.startswith("agent_")}
        return {a: {**network, **{k: float(v[i]) for k, v in per_agent.items()}} for i, a in enumerate(self.possible_agents)}

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        if seed is None and not self._seeded:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        self._seeded = True
        obs, info = self.core.reset_agents(seed)
        self.agents = list(self.possible_agents)
        return {a: obs[0, i] for i, a in enumerate(self.agents)}, self._infos(info)

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        act = np.array([[int(actions.get(a, 0)) for a in self.possible_agents]])
        obs, rewards, terminated, truncated, info = self.core.step_agents(act)
        names = self.possible_agents
        out = ({a: obs[0, i] for i, a in enumerate(names)}, {a: float(rewards[0, i]) for i, a in enumerate(names)},
               {a: bool(terminated[0]) for a in names}, {a: bool(truncated[0]) for a in names}, self._infos(info))
        if truncated[0] or terminated[0]:
            self.agents = []
        return out

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return render_frames(self.core.sim.core, np.array([0]))[0]

    def close(self) -> None:
        pass


# --- rendering: NumPy + OpenCV, top-down ---------------------------------------------------------------------------

_CELL = 96  # pixels per intersection
_SIGNAL_COLOURS = {"green": (40, 200, 40), "yellow": (240, 200, 0), "red": (220, 40, 40)}


def frame_shape(net: Network) -> tuple[int, int, int]:
    return (net.rows * _CELL + 16, net.cols * _CELL, 3)


def render_frames(core: TrafficCore, rows: np.ndarray) -> np.ndarray:
    """(len(rows), H, W, 3) uint8 frames: roads, queue bars per approach, signal colours, the clock."""
    import cv2  # imported here: only rendering needs OpenCV

    net = core.net
    H, W, _ = frame_shape(net)
    frames = np.full((len(rows), H, W, 3), 235, dtype=np.uint8)
    half, lane_w = _CELL // 2, 6
    for out_i, row in enumerate(rows):
        img = frames[out_i]
        for k in range(net.num_nodes):
            r, c = divmod(k, net.cols)
            cy, cx = r * _CELL + half, c * _CELL + half
            img[cy - lane_w * 2: cy + lane_w * 2, c * _CELL:(c + 1) * _CELL] = 120  # east-west road
            img[r * _CELL:(r + 1) * _CELL, cx - lane_w * 2: cx + lane_w * 2] = 120  # north-south road
            clearing = core.clear_left[row, k] > 0
            yellow = clearing and core.clear_left[row, k] > net.all_red_s
            for d in range(4):
                link = k * 4 + d
                q = core.queue[row, link]  # (3,)
                if clearing:
                    colour = _SIGNAL_COLOURS["yellow"] if yellow and PHASE_GREEN[core.prev_phase[row, k], d].any() else _SIGNAL_COLOURS["red"]
                else:
                    colour = _SIGNAL_COLOURS["green"] if PHASE_GREEN[core.phase[row, k], d].any() else _SIGNAL_COLOURS["red"]
                dy, dx = _STEP[d]
                for m in range(3):  # a bar per movement, length = queue / storage of the movement
                    frac = min(1.0, q[m] / net.mov_capacity[link, m])
                    length = int(round(frac * (half - 2 * lane_w)))
                    off = (m - 1) * 4
                    if dx == 0:  # N or S approach: vertical bar
                        y0 = cy + dy * (2 * lane_w + 1)
                        y1 = y0 + dy * length
                        x = cx + off - dy * 2
                        img[min(y0, y1):max(y0, y1) + 1, x - 1:x + 2] = (30, 30, 160)
                    else:
                        x0 = cx + dx * (2 * lane_w + 1)
                        x1 = x0 + dx * length
                        y = cy + off + dx * 2
                        img[y - 1:y + 2, min(x0, x1):max(x0, x1) + 1] = (30, 30, 160)
                sy, sx = cy + dy * (2 * lane_w - 2), cx + dx * (2 * lane_w - 2)
                img[sy - 2:sy + 3, sx - 2:sx + 3] = colour
        t = int(core.t[row])
        cv2.putText(img, f"t={t // 60:02d}:{t % 60:02d}", (2, H - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return frames


# --- classic controllers: act on batched observations like any agent ----------------------------------------------

def _unwrapped_net(env: Any) -> tuple[Network, int]:
    """The network and the per-intersection observation width of a (possibly wrapped) traffic env."""
    base = env.unwrapped
    sim: TrafficSim = base.sim
    if getattr(base, "obs_mode", "vector") != "vector":
        raise ScenarioError("The classic controllers read vector observations; build the env with obs_mode='vector'.")
    return sim.net, obs_dim(sim.pressure_obs, sim.neighbour_obs)


def webster_plan(net: Network) -> np.ndarray:
    """(K, 4) decision intervals each phase holds per cycle (green + its clearance), by Webster's formula.

    Cycle C0 = (1.5 L + 5) / (1 - Y), L = lost time per cycle (4 clearances), Y = sum of the phases'
    critical flow ratios y = flow / saturation flow from the training profiles' mean demand; effective
    green is split in proportion to y. Rounded to whole decision intervals, at least min green each.
    """
    K, delta, clear = net.num_nodes, net.delta_time_s, net.clearance_s
    ratio = (net.design_flow / net.rate).reshape(K, 4, 3)  # (K, approach, movement) flow ratio
    y = (ratio[:, None] * PHASE_GREEN[None]).max(axis=(2, 3))  # (K, 4) critical ratio per phase
    Y = np.minimum(y.sum(axis=1, keepdims=True), 0.9)
    lost = 4.0 * clear  # s
    cycle = np.clip((1.5 * lost + 5.0) / (1.0 - Y), 4 * (net.min_green_s + clear), 4 * (net.max_green_s + clear))
    green = (cycle - lost) * y / np.maximum(y.sum(axis=1, keepdims=True), 1e-9)  # (K, 4) s
    lo = int(np.ceil((net.min_green_s + clear) / delta))
    hi = max(lo, int((net.max_green_s + clear) // delta))
    return np.clip(np.round((green + clear) / delta), lo, hi).astype(np.int64)


class FixedTimeController:
    """Fixed-time signals: phases 0-3 in turn, each for its Webster share of the cycle (no offsets)."""

    def __init__(self, env: gym.Env, plan: np.ndarray | None = None) -> None:
        self.net, self.dim = _unwrapped_net(env)
        self.observation_space, self.action_space = env.observation_space, env.action_space
        self.plan = webster_plan(self.net) if plan is None else np.asarray(plan, dtype=np.int64)  # (K, 4)
        ends = np.cumsum(self.plan, axis=1)  # (K, 4) interval at which each phase ends
        self._cycle = ends[:, -1]  # (K,)
        self._table = np.zeros((self.net.num_nodes, int(self._cycle.max())), dtype=np.int64)
        for k in range(self.net.num_nodes):
            self._table[k, : self._cycle[k]] = np.repeat(np.arange(4), self.plan[k])
        self._k = np.zeros(1, dtype=np.int64)

    def reset(self, num_envs: int) -> None:
        self._k = np.zeros(num_envs, dtype=np.int64)

    def act(self, obs: Any, episode_start: np.ndarray, deterministic: bool = True) -> np.ndarray:
        if len(self._k) != len(episode_start):
            self.reset(len(episode_start))
        self._k[np.asarray(episode_start, dtype=bool)] = 0
        pos = self._k[:, None] % self._cycle[None, :]  # (n, K)
        self._k += 1
        return self._table[np.arange(self.net.num_nodes)[None, :], pos]


class MaxPressureController:
    """Max-pressure (Varaiya 2013): give green to the phase with the largest sum of saturation flow x
    (queue upstream - turning-weighted queue downstream) over its movements; hold it on a tie."""

    def __init__(self, env: gym.Env) -> None:
        self.net, self.dim = _unwrapped_net(env)
        self.observation_space, self.action_space = env.observation_space, env.action_space
        net = self.net
        self._ratios = np.diff(np.concatenate([[0.0], net.turning[list(net.train_profiles)].mean(0)]))  # (3,)

    def reset(self, num_envs: int) -> None:
        pass

    def act(self, obs: Any, episode_start: np.ndarray, deterministic: bool = True) -> np.ndarray:
        net, K = self.net, self.net.num_nodes
        o = np.asarray(obs, dtype=np.float64).reshape(len(episode_start), K, self.dim)
        queue = (o[:, :, 17:29] * net.mov_capacity.reshape(1, K, 12)).reshape(-1, net.num_links, 3)  # (n, L, 3) vehicles
        downstream = (queue * self._ratios).sum(axis=2)  # (n, L) turning-weighted queue of each link
        tgt = np.where(net.target >= 0, net.target, 0)
        w = queue - np.where(net.target >= 0, downstream[:, tgt], 0.0)  # (n, L, 3)
        w = (w * net.rate).reshape(-1, K, 4, 3)
        phase_pressure = (w[:, :, None] * PHASE_GREEN[None, None]).sum(axis=(3, 4))  # (n, K, 4)
        current = o[:, :, :4].argmax(axis=2)  # (n, K)
        best = phase_pressure.argmax(axis=2)
        hold = np.take_along_axis(phase_pressure, current[..., None], axis=2)[..., 0] >= phase_pressure.max(axis=2)
        return np.where(hold, current, best)


class ActuatedController:
    """Actuated gap-out: extend the green while its movements still have stopped vehicles (the env ends
    it at max green); once they are served, move to the next phase in the cycle that has demand."""

    def __init__(self, env: gym.Env) -> None:
        self.net, self.dim = _unwrapped_net(env)
        self.observation_space, self.action_space = env.observation_space, env.action_space

    def reset(self, num_envs: int) -> None:
        pass

    def act(self, obs: Any, episode_start: np.ndarray, deterministic: bool = True) -> np.ndarray:
        K = self.net.num_nodes
        o = np.asarray(obs, dtype=np.float64).reshape(len(episode_start), K, self.dim)
        green_sets = PHASE_GREEN.reshape(1, 1, 4, 12)
        queued = (o[:, :, None, 17:29] * green_sets).sum(axis=3)  # (n, K, 4) stopped share per phase
        demand = (o[:, :, None, 5:17] * green_sets).sum(axis=3)  # (n, K, 4) vehicles present per phase
        current = o[:, :, :4].argmax(axis=2)
        extend = np.take_along_axis(queued, current[..., None], axis=2)[..., 0] > 0
        order = (current[..., None] + np.arange(1, 5)) % 4  # (n, K, 4) next phases, current last
        has_demand = np.take_along_axis(demand, order, axis=2) > 0
        first = has_demand.argmax(axis=2)  # the first later phase with demand (or current when none)
        nxt = np.where(has_demand.any(axis=2), np.take_along_axis(order, first[..., None], axis=2)[..., 0], current)
        return np.where(extend, current, nxt)
