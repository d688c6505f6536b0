"""Highway: an ego vehicle among IDM/MOBIL traffic on a straight multi-lane road, natively vectorised.

## Description
The decision-making task of highway-env (Leurent 2018), rebuilt around one NumPy core whose state arrays
are shaped `(num_envs, num_vehicles)`: car following (IDM), lane changes (MOBIL), the neighbour search
(one sort per substep), the lateral controllers, the kinematic bicycle model and the collision checks
are array operations, with no Python loop over vehicles or envs in `step`. The single env is the
same core with one row.

Traffic vehicles follow the Intelligent Driver Model (Treiber et al. 2000) towards their own desired
speed and exponent, and change lane with MOBIL (Kesting et al. 2007) with their own politeness, at most
once per `lane_change_delay`. The ego (vehicle 0) is driven by the agent. Units are SI: metres, seconds,
m/s, m/s^2, radians. Lane 0 is the leftmost lane, lane `lanes_count - 1` the rightmost; `y` grows to the
right, lane `l` is centred on `y = l * lane_width`.

Settings match highway-env's `highway-fast-v0` by default: 3 lanes, 20 traffic vehicles, simulation at
5 Hz, decisions at 1 Hz, 30 s episodes, the same spawn rule, the same IDM/MOBIL constants, the same
target-speed semantics and the same reward. Unlike `highway-fast-v0`, collisions are checked between all
vehicles (`collision_scope="all"`), so no vehicle can pass through another; `collision_scope="controlled"`
(registered as `rlsuite/Highway-Fast-v0`) is highway-fast-v0's rule, where only pairs with a controlled
vehicle collide (it sets `check_collisions = False` on every traffic vehicle) and traffic may overlap.

## Action space
- `action="discrete"` (default): `Discrete(5)` meta-actions as in highway-env: 0 LANE_LEFT, 1 IDLE,
  2 LANE_RIGHT, 3 FASTER, 4 SLOWER. FASTER/SLOWER pick the target speed one step above/below the one
  closest to the current speed in `target_speeds` (default 20, 25, 30 m/s); a speed controller
  (time constant 0.6 s) and a lateral position/heading controller track the target speed and lane.
  `info["action_mask"]` marks impossible actions (no lane beyond the road edge, no speed beyond the ends).
- `action="continuous"`: `Box(-1, 1, (2,))`: acceleration (times 5 m/s^2) and front-wheel steering angle
  (times pi/4 rad) of the kinematic bicycle model.

## Observation space
Chosen with `observation=`:

| kind | space | content |
| --- | --- | --- |
| `kinematics` (default) | `Box(-1, 1, (obs_vehicles * 6,), float32)` | rows of (presence, x, y, vx, vy, heading), flattened: the ego, then the `obs_vehicles - 1` nearest vehicles by distance (ahead only unless `see_behind`); empty rows are 0 |
| `occupancy` | `Box(-1, 1, (4 * 11 * 11,), float32)` | grid around the ego (cells of 5 m over +-27.5 m), features (presence, vx, vy, on_road), flattened feature-major |
| `pixels` | `Box(0, 255, (frame_stack, image_size, image_size), uint8)` | top-down grayscale image around the ego (road 80, lane lines 140, traffic 190, ego 255), `frame_stack` latest frames |
| `dict` | `Dict(kinematics=..., pixels=...)` | both of the above |

Kinematics normalisation (then clipped to [-1, 1]): x over +-200 m (5 x 40 m/s), y over
+-lanes_count x lane_width, vx and vy over +-80 m/s, heading over +-pi. With `absolute=False` (default)
the ego row holds x = 0, its lateral position y, its velocity and heading, and the other rows hold
positions and velocities relative to the ego; with `absolute=True` every row holds absolute values, x
measured from the start of the road over +-road_length.

## Rewards
As in highway-env: `collision_reward * crashed + right_lane_reward * lane / (lanes_count - 1) +
high_speed_reward * clip((forward_speed - 20) / (30 - 20), 0, 1) + lane_change_reward * [lane change
action]`, mapped linearly from [collision_reward, high_speed_reward + right_lane_reward] to [0, 1] when
`normalize_reward`, then multiplied by `on_road`. Each term is in `info` (`collision_reward`,
`right_lane_reward`, `high_speed_reward`, `on_road_reward`), with metrics: `crashed`, `speed` (m/s),
`distance` (m travelled since reset), `lane_changes` (since reset), `min_ttc` (smallest time-to-collision
with the vehicle ahead in the ego's lane over the step's substeps, s; inf when not closing in).

## Starting state
Vehicles are placed as highway-env places them: the ego first, on a random lane (or `initial_lane`) at
25 m/s, then each traffic vehicle on a random lane ahead of the last one, `spacing * (12 + speed) *
exp(-5/40 * lanes_count) * U(0.9, 1.1)` metres further, at a speed drawn in [0.7, 0.8] x speed_limit that
is also its desired speed; IDM exponent in [3.5, 4.5], politeness in `politeness_range`, lane-change
timer phase in [0, 1) s. Every draw comes from the env's seeded generator.

## Episode end
Terminates when the ego crashes (or leaves the road with `offroad_terminal`); truncates after `duration`
seconds (30 decisions by default).

## Arguments
`gym.make("rlsuite/Highway-v0", **fields of HighwayParams)`, e.g. `lanes_count=4, vehicles_count=50,
observation="pixels"`. `gym.make_vec("rlsuite/Highway-v0", num_envs=256, vectorization_mode=
"vector_entry_point")` gives the batched core, row i equal to a single env reset with seed + i, with
next-step autoreset (default; the step after an episode ends returns the reset observation, reward 0,
and ignores its action) or same-step autoreset (`autoreset_mode="same_step"`: the reset observation
comes at once and the last one is in `info["final_obs"]`). `render_mode="rgb_array"` draws a frame with
OpenCV (no display, no pygame). Variants: `rlsuite/Highway-Continuous-v0` (continuous actions),
`rlsuite/Highway-Pixels-v0` (pixel observations), `rlsuite/Highway-PixelsSmall-v0` (4 stacked 64x64
frames at 1 px/m, cheap enough to train a CNN on a CPU), `rlsuite/Highway-Dense-v0` (4 lanes, 50
vehicles, as highway-v0), `rlsuite/Highway-Fast-v0` (highway-fast-v0's collision rule: ego-only checks).

## Speed
The core is written for NumPy call overhead (the single env) and memory traffic (thousands of rows)
alike: one batched IDM evaluation per substep (own lane, target lane, MOBIL's eight terms) from a
column-major per-vehicle table that holds every follower-side term once per vehicle (the free-road power
law, and the desired gap with the closing speed folded in: d* = d0 + s T + s^2 / 2sqrt(ab) - s (vx_l cos
+ vy_l sin) / 2sqrt(ab)), with a far-away "no vehicle" slot instead of NaN tests; a lane-major neighbour
search looked up by sorted rank; one x sort per substep, shared by the collision check and the next
neighbour search; cos/sin of the headings computed once per substep and shared by the IDM table, the
collision boxes and the observation; the bicycle model's slip angle straight from the controller
(beta = arctan(tan(steering) / 2) undoes the controller's steering = arctan(2 tan(slip)), so only the
clip at full steering remains) and its course by angle addition; the full pair collision check for
small batches and a window along the x order for big ones; with `collision_scope="controlled"`, an O(V)
check per env: the pairs (controlled vehicle, other) closer than LENGTH + WIDTH along x or whose x order
flipped in the substep are the only ones the footprint test could pass, so it runs on those alone (none,
in most substeps of an env). Lane-change bookkeeping uses flat indices (np.take / np.put, several times
cheaper than 2-D fancy indexing), and the rivals of a lane change come from one (E, V) "heading for"
array. Big batches look each needed neighbour up through the scans (position -> sorted slot -> table
slot) instead of gathering the whole (2, E, L, V) neighbour array. The IDM table, cos/sin and the free-road
power law are float32 (positions, speeds and headings integrate in float64): results equal the float64
formulation to about 1e-5 m/s per substep, and rows of every batch size equal the single env bit for bit.
Measured against highway-fast-v0 (benchmarks/RESULTS.md, 2026-11-30, 2 shared cores, per CPU second):
`rlsuite/Highway-Fast-v0` 16.6-19.5x single env, 1011-1346x at 256 envs, 1254-1835x at 1024; the
all-pairs `rlsuite/Highway-v0` 14-17x, 810-1062x, 818-1127x. The single env stays bound by NumPy's
per-call overhead (about 130 array operations per substep).

## Version history
- v0: first version. Session 4 (speed) made the IDM terms float32 and reformulated the controller and the
  bicycle model without changing their mathematics: trajectories differ from earlier builds by rounding
  (about 1e-5 m/s per substep), so decisions at an exact threshold can go the other way. Session 5 (speed)
  made `collision_scope="controlled"` O(V) per env and added `rlsuite/Highway-Fast-v0`; every trajectory of
  both scopes is unchanged bit for bit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from pettingzoo import ParallelEnv

from rlsuite.envs.vector import CoreEnv, NumpyVectorEnv

# Vehicle and controller constants of highway-env (vehicle/kinematics.py, controller.py, behavior.py).
LENGTH = 5.0  # [m]
WIDTH = 2.0  # [m]
MAX_SPEED = 40.0  # [m/s]
TAU_ACC = 0.6  # [s] speed controller time constant
TAU_HEADING = 0.2  # [s]
TAU_LATERAL = 0.6  # [s]
MAX_STEERING = np.pi / 3  # [rad]
LANE_MARGIN = 1.0  # [m] a vehicle within lane_width / 2 + margin of a lane centre counts as on that lane
# IDM (behavior.py). The gap is measured centre to centre, hence the car length inside DISTANCE_WANTED.
ACC_MAX = 6.0  # [m/s^2]
COMFORT_ACC_MAX = 3.0  # [m/s^2]
COMFORT_ACC_MIN = -5.0  # [m/s^2]
DISTANCE_WANTED = 5.0 + LENGTH  # [m]
TIME_WANTED = 1.5  # [s]
# MOBIL
LANE_CHANGE_MIN_ACC_GAIN = 0.2  # [m/s^2]
LANE_CHANGE_MAX_BRAKING_IMPOSED = 2.0  # [m/s^2]
# Continuous actions (highway-env ContinuousAction defaults)
ACCELERATION_RANGE = 5.0  # [m/s^2]
STEERING_RANGE = np.pi / 4  # [rad]

ACTIONS = ("LANE_LEFT", "IDLE", "LANE_RIGHT", "FASTER", "SLOWER")
LANE_LEFT, IDLE, LANE_RIGHT, FASTER, SLOWER = range(5)
OBSERVATIONS = ("kinematics", "occupancy", "pixels", "dict")
ACTION_KINDS = ("discrete", "continuous")
KIN_FEATURES = ("presence", "x", "y", "vx", "vy", "heading")
GRID_FEATURES = ("presence", "vx", "vy", "on_road")
GRID_HALF, GRID_STEP = 27.5, 5.0  # [m]
GRID_CELLS = int(round(2 * GRID_HALF / GRID_STEP))
PERCEPTION_DISTANCE = 5.0 * MAX_SPEED  # [m]
# Grayscale levels of the pixel observation.
PIX_ROAD, PIX_LINE, PIX_TRAFFIC, PIX_EGO = 80, 140, 190, 255


@dataclass(frozen=True)
class HighwayParams:
    """Everything that defines a Highway env; every field can be passed to gym.make."""

    lanes_count: int = 3
    """Number of lanes."""
    vehicles_count: int = 20
    """Number of traffic vehicles (besides the controlled ones)."""
    controlled_vehicles: int = 1
    """Vehicles driven by actions (more than 1 only in the PettingZoo env)."""
    duration: float = 30.0
    """Episode length [s]."""
    simulation_frequency: int = 5
    """Physics substeps per second [Hz]."""
    policy_frequency: int = 1
    """Decisions per second [Hz]; must divide simulation_frequency."""
    lane_width: float = 4.0
    """[m]"""
    road_length: float = 10_000.0
    """Length of the road [m]; beyond it a vehicle is off the road."""
    speed_limit: float = 30.0
    """Caps every IDM desired speed [m/s]."""
    vehicles_density: float = 1.0
    """Traffic density: spacing between spawned traffic vehicles scales with 1 / density."""
    ego_spacing: float = 1.5
    """Spacing factor in front of each controlled vehicle at spawn."""
    ego_speed: float = 25.0
    """Initial speed of the controlled vehicles [m/s]."""
    initial_lane: int | None = None
    """Lane of the controlled vehicles at spawn; None draws one at random."""
    target_speeds: tuple[float, ...] = (20.0, 25.0, 30.0)
    """Speeds that FASTER/SLOWER step through [m/s], evenly spaced."""
    politeness_range: tuple[float, float] = (0.0, 0.3)
    """MOBIL politeness of each traffic vehicle, drawn uniformly."""
    delta_range: tuple[float, float] = (3.5, 4.5)
    """IDM acceleration exponent of each traffic vehicle, drawn uniformly."""
    lane_change_delay: float = 1.0
    """Traffic vehicles consider a lane change at most this often [s]."""
    merge_ramp: bool = False
    """Add an on-ramp right of the rightmost lane that ends at `ramp_end`; its vehicles must merge."""
    ramp_end: float = 400.0
    """Where the ramp ends [m]: its end acts as a wall."""
    ramp_vehicles: int = 3
    """How many of the traffic vehicles start on the ramp (with merge_ramp)."""
    collision_scope: str = "all"
    """'all': every pair of vehicles can collide; 'controlled': only pairs with a controlled vehicle (both crash),
    traffic-traffic pairs are never checked, as in highway-fast-v0 (rlsuite/Highway-Fast-v0); O(V) per env."""
    collision_reward: float = -1.0
    right_lane_reward: float = 0.1
    high_speed_reward: float = 0.4
    lane_change_reward: float = 0.0
    reward_speed_range: tuple[float, float] = (20.0, 30.0)
    """Forward speeds mapped to 0..1 for high_speed_reward [m/s]."""
    normalize_reward: bool = True
    offroad_terminal: bool = False
    action: str = "discrete"
    """'discrete' meta-actions or 'continuous' (acceleration, steering)."""
    observation: str = "kinematics"
    """'kinematics', 'occupancy', 'pixels' or 'dict' (kinematics and pixels)."""
    obs_vehicles: int = 5
    """Rows of the kinematics observation, the ego included."""
    absolute: bool = False
    """Kinematics in absolute coordinates instead of relative to the ego."""
    see_behind: bool = False
    """Kinematics may list vehicles behind the ego."""
    image_size: int = 84
    """Side of the square pixel observation [px]."""
    image_scale: float = 1.5
    """Pixels per metre of the pixel observation."""
    frame_stack: int = 4
    """Latest frames stacked in the pixel observation (1, 3 or 4 so CNNs read them as channels)."""

    def __post_init__(self) -> None:
        def fail(msg: str) -> None:
            raise ValueError(f"Highway: {msg}")

        if self.lanes_count < 1:
            fail(f"lanes_count must be 1 or more, got {self.lanes_count}.")
        if self.vehicles_count < 0 or self.controlled_vehicles < 1:
            fail("vehicles_count must be 0 or more and controlled_vehicles 1 or more.")
        if self.simulation_frequency < 1 or self.policy_frequency < 1 or self.simulation_frequency % self.policy_frequency:
            fail(f"policy_frequency ({self.policy_frequency}) must divide simulation_frequency ({self.simulation_frequency}).")
        if self.duration <= 0 or self.lane_width <= 0 or self.vehicles_density <= 0:
            fail("duration, lane_width and vehicles_density must be positive.")
        if self.initial_lane is not None and not 0 <= self.initial_lane < self.lanes_count:
            fail(f"initial_lane must be None or in 0..{self.lanes_count - 1}, got {self.initial_lane}.")
        if len(self.target_speeds) < 2 or any(b <= a for a, b in zip(self.target_speeds, self.target_speeds[1:], strict=False)):
            fail(f"target_speeds must hold 2 or more increasing speeds, got {self.target_speeds}.")
        if self.collision_scope not in ("all", "controlled"):
            fail(f"collision_scope must be 'all' or 'controlled', got {self.collision_scope!r}.")
        if self.action not in ACTION_KINDS:
            fail(f"action must be one of {', '.join(ACTION_KINDS)}, got {self.action!r}.")
        if self.observation not in OBSERVATIONS:
            fail(f"observation must be one of {', '.join(OBSERVATIONS)}, got {self.observation!r}.")
        if self.obs_vehicles < 1:
            fail(f"obs_vehicles must be 1 or more, got {self.obs_vehicles}.")
        if self.frame_stack not in (1, 3, 4):
            fail(f"frame_stack must be 1, 3 or 4 (read as image channels), got {self.frame_stack}.")
        if self.merge_ramp and not 0 <= self.ramp_vehicles <= self.vehicles_count:
            fail(f"ramp_vehicles must be in 0..vehicles_count ({self.vehicles_count}), got {self.ramp_vehicles}.")
        if self.image_size < 36:
            fail(f"image_size must be 36 or more (the smallest image NatureCNN reads), got {self.image_size}.")

    @property
    def num_vehicles(self) -> int:
        return self.controlled_vehicles + self.vehicles_count

    @property
    def all_lanes(self) -> int:
        """Lanes including the ramp (the ramp is lane `lanes_count`)."""
        return self.lanes_count + int(self.merge_ramp)

    @property
    def substeps(self) -> int:
        return self.simulation_frequency // self.policy_frequency

    @property
    def dt(self) -> float:
        return 1.0 / self.simulation_frequency

    @property
    def max_steps(self) -> int:
        return int(round(self.duration * self.policy_frequency))


def _fields_of(kwargs: dict[str, Any]) -> HighwayParams:
    names = {f.name for f in dataclasses.fields(HighwayParams)}
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise ValueError(f"Highway: unknown argument(s) {', '.join(unknown)}; accepted: {', '.join(sorted(names))}.")
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}  # YAML lists
    return HighwayParams(**values)


def _not_zero(x: np.ndarray, eps: float = 1e-2) -> np.ndarray:
    return np.where(np.abs(x) > eps, x, np.where(x >= 0, eps, -eps))


_IDM_SQRT_AB2 = 2.0 * np.sqrt(-COMFORT_ACC_MAX * COMFORT_ACC_MIN)  # [m/s^2] 2 sqrt(a b) of IDM's d*


def idm_acceleration(
    speed: np.ndarray, desired_speed: np.ndarray, delta: np.ndarray, gap: np.ndarray | None, closing_speed: np.ndarray | None
) -> np.ndarray:
    """IDM acceleration [m/s^2] of a follower at `speed` with a leader `gap` metres ahead (centre to centre)
    approaching it at `closing_speed` (follower minus leader, along the follower's heading); gap None or
    NaN entries mean no leader."""
    acc = COMFORT_ACC_MAX * (1.0 - np.power(np.maximum(speed, 0.0) / np.abs(_not_zero(desired_speed)), delta))
    if gap is None or closing_speed is None:
        return acc
    d_star = DISTANCE_WANTED + speed * TIME_WANTED + speed * closing_speed / _IDM_SQRT_AB2  # [m]
    interaction = COMFORT_ACC_MAX * np.square(d_star / _not_zero(gap))
    interaction[np.isnan(gap)] = 0.0  # no leader, no interaction
    return acc - interaction


def mobil_incentive(
    self_pred_a: np.ndarray, self_a: np.ndarray, new_f_pred_a: np.ndarray, new_f_a: np.ndarray,
    old_f_pred_a: np.ndarray, old_f_a: np.ndarray, politeness: np.ndarray,
) -> np.ndarray:
    """MOBIL's incentive [m/s^2]: my gain plus politeness times my new and old followers' gains."""
    return self_pred_a - self_a + politeness * (new_f_pred_a - new_f_a + old_f_pred_a - old_f_a)


COLLISION_WINDOW = 3  # (2 or more) vehicles ahead in x order that each vehicle is checked against (see HighwayCore._collide)
FULL_CHECK_PAIRS = 4096  # batches with at most this many (env, vehicle, vehicle) triples check all pairs at once
# The lateral controller's output is only ever used through the bicycle model's slip angle beta =
# arctan(tan(steering) / 2), and steering = arctan(2 tan(slip)) inverts it, so beta is the controller's
# slip clipped at the slip of full steering, and sin(beta) the clipped sine: no tan/arctan round trip.
BETA_MAX = float(np.arctan(0.5 * np.tan(MAX_STEERING)))  # [rad] slip angle at full steering
SIN_BETA_MAX = float(np.sin(BETA_MAX))
SIN_HEADING_MAX = float(np.sin(np.pi / 4))  # the heading reference is clipped at +-pi/4 rad
_EXTENT = np.array([[LENGTH / 2, WIDTH / 2], [WIDTH / 2, LENGTH / 2]])  # half extents = _EXTENT @ (|cos|, |sin|) [m]
NO_VEHICLE_X = 1e30  # [m] x of the IDM table's "no vehicle" slot: farther than any gap, and finite in float32
_SIDE2 = np.array([[-1], [1]])  # MOBIL's left and right lane offsets
_SIDES = np.array([[0], [-1], [1]])  # lane offsets of MOBIL's current, left and right lane
# MOBIL's eight IDM terms as (follower, leader) rows of the (7, D) candidate table of HighwayCore.substep:
# rows 0..2 the leaders on the current, left and right lane, 3..5 their followers, 6 the deciding vehicle.
# Terms: old follower behind me, old follower behind my leader, then per side: me behind the new leader,
# the new follower behind the new leader, the new follower behind me.
_MOBIL_PAIRS = np.array([[3, 3, 6, 4, 4, 6, 5, 5], [6, 0, 1, 1, 6, 2, 2, 6]])


def _hits(d: np.ndarray, half_sum: np.ndarray) -> np.ndarray:
    """Whether pairs collide, from the pair differences `d` (4, ...) of (x, y, x before, y before) [m] and
    the sums of their half extents `half_sum` (2, ...) [m]: the footprints overlap, or the pair swapped
    its x order while side by side (now or before)."""
    a = np.abs(d)
    close = a[:2] < half_sum  # (2, ...) along x, along y
    overlap = close[0] & close[1]
    side = close[1] | (a[3] < WIDTH)
    flipped = d[0] * d[2] < 0
    flipped &= side
    return overlap | flipped


class HighwayCore:
    """The state of `num_envs` highways of `num_vehicles` vehicles each, and their dynamics.

    Arrays are (E, V) with E envs and V vehicles; vehicles 0..K-1 are the controlled ones. Index V stands
    for "no vehicle" in neighbour arrays.
    """

    def __init__(self, params: HighwayParams, num_envs: int) -> None:
        self.p = params
        E, V, K = num_envs, params.num_vehicles, params.controlled_vehicles
        self.num_envs = E
        self.x = np.zeros((E, V))  # [m] longitudinal
        self.y = np.zeros((E, V))  # [m] lateral, lane l centred on l * lane_width
        self.heading = np.zeros((E, V))  # [rad]
        self.speed = np.zeros((E, V))  # [m/s]
        self.target_lane = np.zeros((E, V), dtype=np.int64)
        self.desired_speed = np.zeros((E, V))  # [m/s] IDM desired speed, or the controlled vehicles' target speed
        self.delta = np.full((E, V), 4.0)
        self.politeness = np.zeros((E, V))
        self.timer = np.zeros((E, V))  # [s] since the last lane-change decision
        self.crashed = np.zeros((E, V), dtype=bool)
        self.controlled = np.zeros(V, dtype=bool)
        self.controlled[:K] = True
        self.speed_index = np.zeros((E, K), dtype=np.int64)
        self.steps = np.zeros(E, dtype=np.int64)
        self.x_start = np.zeros((E, K))
        self.lane_changes = np.zeros((E, K), dtype=np.int64)
        self.continuous = np.zeros((E, K, 2))  # (acceleration [m/s^2], steering [rad])
        self.min_ttc = np.full((E, K), np.inf)  # [s] over the last step's substeps
        self._ttc_rate = np.zeros((E, K))  # [1/s] largest closing rate of the step so far (see _record_ttc)
        self.frames: np.ndarray | None = None
        if params.observation in ("pixels", "dict"):
            self.frames = np.zeros((E, params.frame_stack, params.image_size, params.image_size), dtype=np.uint8)
        self._target_speeds = np.asarray(params.target_speeds, dtype=np.float64)
        self._rows = np.arange(E)[:, None]  # (E, 1) for fancy indexing row by row
        # Flat-index offsets, so gathers are np.take on raveled arrays (cheaper than 2-D fancy indexing).
        self._off_v = np.arange(E)[:, None] * V  # (E, 1) start of each row in an (E * V) array
        self._off_v1 = np.arange(E)[:, None] * (V + 1)  # (E, 1) start of each row in an (E * (V + 1)) array
        self._me = np.arange(V)[None, :]  # (1, V)
        self._me_flat = self._off_v1 + self._me  # (E, V) each vehicle's row in the IDM table
        self._pos_tiled = np.tile(np.arange(V), E)  # (E * V,) sorted positions 0..V-1 of every row
        L = params.all_lanes
        # Big batches are bound by memory traffic rather than by the number of NumPy calls: there the own-lane
        # IDM reads the table without a follower gather, and neighbour lookups go through the scans instead
        # of a gathered (2, E, L, V) neighbour array (the same arithmetic and integers, so the same results as
        # small batches: row i of any batch equals the single env).
        self._split_idm = E * V > 1024
        # Neighbour lookups index (front/rear f, env e, lane l, sorted position k) as ((f E + e) L + l) S + k + c:
        # in the gathered neighbour array (small batches: S = V, c = 0) or in the scans (big ones: S = V + 2, c = 1).
        self._nb_stride = V + 2 if self._split_idm else V
        self._nb_l0 = np.arange(E)[:, None] * (L * self._nb_stride) + int(self._split_idm)  # (E, 1) (e, lane 0, position 0)
        self._nb_rear = E * L * self._nb_stride  # offset of the rear half
        self._nb_lv = np.repeat(self._nb_l0.ravel(), V)  # (E V,) _nb_l0 of each vehicle's env, by flat index e V + i
        self._off_v1v = np.repeat(self._off_v1.ravel(), V)  # (E V,) e (V + 1) by flat index
        self._nb: np.ndarray | None = None  # the gathered neighbour array (small batches), see _neighbours_sorted
        self._lane_centres = (np.arange(L) * params.lane_width)[None, :, None]  # (1, L, 1) [m]
        self._lane_ok = np.zeros(L + 2, dtype=bool)  # MOBIL's candidate lanes -1..L: main lanes only
        self._lane_ok[: params.lanes_count] = True
        self._traffic = ~self.controlled  # (V,)
        self._not_self = ~np.eye(params.controlled_vehicles, V, dtype=bool)  # (K, V)
        self._kin_off = np.arange(E * K).reshape(E, K, 1) * V  # (E, K, 1) rows of the (E, K, V) distance key
        x_scale = params.road_length if params.absolute else PERCEPTION_DISTANCE  # [m]
        self._kin_scale = np.array([x_scale, params.lanes_count * params.lane_width, 2 * MAX_SPEED, 2 * MAX_SPEED,
                                    np.pi])[:, None, None, None]  # (5, 1, 1, 1) normalisation of x, y, vx, vy, heading
        # Scratch of _neighbours_sorted: [0] first on-lane sorted position >= k (at k), [1] last one <= k - 1 (at
        # k + 1); their "none" slots (V, and -1 at 1) stay set.
        self._scan_buf = np.empty((2, E, L, V + 2), dtype=np.int64)
        self._scan_buf[0] = V
        self._scan_buf[1] = -1
        # Table slot (see _table) of the vehicle at each sorted position; position V is the env's "no vehicle" slot.
        self._slot_buf = self._off_v1 + np.full((E, V + 1), V, dtype=np.int64)
        self._pos_minus_v = np.arange(V) - V  # (V,) sorted positions - V
        self._pos_plus_1 = np.arange(V) + 1
        # The IDM table and cos/sin are float32 (half the bytes to gather, transcendental functions several
        # times faster); positions, speeds and headings integrate in float64.
        self._float = np.float32
        # Column-major IDM table (see _table); slot V of each env is "no vehicle": x = NO_VEHICLE_X, all else
        # 0, so a missing leader exerts no interaction and a missing follower gets 0, without any NaN test.
        self._table_buf = np.zeros((8, E, V + 1), dtype=self._float)
        self._table_buf[2, :, V] = NO_VEHICLE_X
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None  # (x it was sorted from, argsort), see _order
        self._trig: tuple[np.ndarray, np.ndarray] | None = None  # (heading, its (cos, sin)), see _cos_sin
        # The physical state (envs/vector.py); everything else above is parameters, index caches and scratch.
        self.STATE = ("x", "y", "heading", "speed", "target_lane", "desired_speed", "delta", "politeness", "timer",
                      "crashed", "speed_index", "steps", "x_start", "lane_changes", "continuous", "min_ttc",
                      *(("frames",) if self.frames is not None else ()))

    def state_restored(self) -> None:
        """Forget the caches keyed by array identity: the state was written in place."""
        self._sorted = self._trig = None

    # ---- reset -------------------------------------------------------------------------------------
    def reset_rows(self, rows: np.ndarray, rngs: list[np.random.Generator]) -> None:
        """Spawn fresh traffic in `rows`, drawing from `rngs[i]` for row `rows[i]` (highway-env's rule)."""
        p, K, V, L = self.p, self.p.controlled_vehicles, self.p.num_vehicles, self.p.lanes_count
        others = [len(a) for a in np.array_split(np.arange(p.vehicles_count), K)]  # near_split
        chain_controlled = np.cumsum([0] + [1 + n for n in others[:-1]])  # chain positions of controlled vehicles
        is_ctrl = np.zeros(V, dtype=bool)
        is_ctrl[chain_controlled] = True
        to_index = np.concatenate([np.flatnonzero(is_ctrl), np.flatnonzero(~is_ctrl)])  # array slot -> chain position
        density_spacing = np.where(is_ctrl, p.ego_spacing, 1.0 / p.vehicles_density)
        R, n = len(rows), p.ramp_vehicles if p.merge_ramp else 0
        lane = np.empty((R, V), dtype=np.int64)
        speed, jitter, delta, politeness, timer = np.empty((5, R, V))
        ramp_gap = np.empty((R, n))
        uniform = np.empty((R, 5 * V + n))  # [0, 1) draws, in the order of the uniform(low, high) calls they stand for
        for r, rng in enumerate(rngs):  # only the draws loop over resetting rows (each has its own stream)
            lane[r] = rng.integers(L, size=V)
            rng.random(out=uniform[r])  # == uniform() calls of sizes V, V, V, V, V, n in turn
        # Generator.uniform(low, high) is low + (high - low) * random(), so these are those calls' values exactly.
        for out, (low, high), block in ((speed, (0.7, 0.8), 0), (jitter, (0.9, 1.1), 1), (delta, p.delta_range, 2),
                                        (politeness, p.politeness_range, 3), (timer, (0.0, p.lane_change_delay), 4)):
            np.multiply(uniform[:, block * V : (block + 1) * V], high - low, out=out)
            out += low
        if n:
            ramp_gap[:] = 40.0 * uniform[:, 5 * V :]
        speed *= p.speed_limit  # [m/s]
        if p.initial_lane is not None:
            lane[:, is_ctrl] = p.initial_lane
        speed[:, is_ctrl] = p.ego_speed
        offset = density_spacing * (12.0 + speed) * np.exp(-5.0 / 40.0 * L)  # [m]
        x = 3.0 * offset[:, :1] + np.cumsum(offset * jitter, axis=1)  # [m] each one ahead of the previous
        if n:  # the last traffic vehicles wait on the ramp, 30 m apart or more
            x[:, -n:] = p.ramp_end - 60.0 - np.cumsum(30.0 + ramp_gap, axis=1)  # [m]
            lane[:, -n:] = L
        self.x[rows] = x[:, to_index]
        self.y[rows] = lane[:, to_index] * p.lane_width
        self.target_lane[rows] = lane[:, to_index]
        self.speed[rows] = speed[:, to_index]
        self.desired_speed[rows] = speed[:, to_index]
        self.delta[rows] = np.where(self.controlled, 4.0, delta[:, to_index])
        self.politeness[rows] = politeness[:, to_index]
        self.timer[rows] = timer[:, to_index]
        self.heading[rows] = 0.0
        self.crashed[rows] = False
        self._sorted = self._trig = None  # x and heading changed in place
        self.speed_index[rows] = self._speed_to_index(self.speed[rows, :K])
        self.desired_speed[rows, :K] = self._target_speeds[self.speed_index[rows]]
        self.steps[rows] = 0
        self.x_start[rows] = self.x[rows, :K]
        self.lane_changes[rows] = 0
        self.continuous[rows] = 0.0
        self.min_ttc[rows] = np.inf
        if self.frames is not None:
            frame = self.pixels()[rows]  # (R, H, W)
            self.frames[rows] = frame[:, None]

    # ---- geometry helpers ---------------------------------------------------------------------------
    def lane_of(self, y: np.ndarray) -> np.ndarray:
        return np.minimum(np.maximum(np.rint(y / self.p.lane_width), 0), self.p.all_lanes - 1).astype(np.int64)

    def _speed_to_index(self, speed: np.ndarray) -> np.ndarray:
        ts = self._target_speeds
        frac = (speed - ts[0]) / (ts[-1] - ts[0])
        return np.minimum(np.maximum(np.rint(frac * (ts.size - 1)), 0), ts.size - 1).astype(np.int64)

    def neighbours(self) -> tuple[np.ndarray, np.ndarray]:
        """(front, rear), each (E, V, L): the nearest vehicle ahead of / behind each vehicle on each lane.

        One sort per row, then suffix-min / prefix-max scans over the sorted order: O(E V L), no (V, V) table.
        A vehicle ahead at exactly the same x counts as in front (highway-env's `s <= s_v`)."""
        rank = self._neighbours_sorted()
        E, V = rank.shape
        lanes = np.arange(self.p.all_lanes) * self._nb_stride
        at = self._nb_l0[:, :, None] + lanes + rank[:, :, None]  # (E, V, L)
        slots = np.stack([self._neighbour_slots(at + half, self._off_v1[:, :, None]) for half in (0, self._nb_rear)])
        front, rear = slots % (V + 1)  # table slot -> vehicle (V: none)
        return front, rear

    def _cos_sin(self) -> np.ndarray:
        """(2, E, V) cos and sin of the headings, shared by the collision check of one substep, the IDM
        table of the next and the observation (every substep makes a new heading array; reset_rows forgets it)."""
        if self._trig is not None and self._trig[0] is self.heading:
            return self._trig[1]
        cs = np.empty((2, *self.heading.shape), dtype=self._float)
        heading = self.heading.astype(self._float, copy=False)
        np.cos(heading, out=cs[0])
        np.sin(heading, out=cs[1])
        self._trig = (self.heading, cs)
        return cs

    def _order(self) -> np.ndarray:
        """(E, V) argsort of x (stable), shared by the collision check of one substep and the neighbour
        search of the next: both see the same x array (every substep makes a new one; reset_rows forgets it)."""
        if self._sorted is not None and self._sorted[0] is self.x:
            return self._sorted[1]
        order = self.x.argsort(axis=1, kind="stable")
        self._sorted = (self.x, order)
        return order

    def _neighbours_sorted(self) -> np.ndarray:
        """The neighbour search of this substep: returns (E, V) the sorted position of each vehicle, and
        prepares _neighbour_slots, which looks up the table slot of the front (f = 0) or rear (f = 1)
        vehicle on lane l of the vehicle at sorted position k of env e."""
        E, V = self.x.shape
        order = self._order()
        flat_order = order + self._off_v  # (E, V)
        y_sorted = self.y.take(flat_order)  # (E, V)
        on_sorted = np.abs(y_sorted[:, None, :] - self._lane_centres) <= self.p.lane_width / 2 + LANE_MARGIN  # (E, L, V)
        # scan[0][k + 1]: first on-lane position > k; scan[1][k + 1]: last on-lane position < k. "None" is V
        # and -1: both land on a "no vehicle" slot of slots below (index off - 1 is the previous row's
        # slot V, and -1 wraps to the last row's; every "no vehicle" slot of the table holds the same). The
        # scans' inputs are np.where(on, position, none) as masked arithmetic, which is several times faster
        # than np.where on big batches.
        scan, slots = self._scan_buf, self._slot_buf
        ahead = np.multiply(on_sorted, self._pos_minus_v)  # (E, L, V) position - V on the lane, else 0
        ahead += V
        np.minimum.accumulate(ahead[:, :, ::-1], axis=2, out=scan[0, :, :, V - 1 :: -1])
        behind = np.multiply(on_sorted, self._pos_plus_1)
        behind -= 1  # position on the lane, else -1
        np.maximum.accumulate(behind, axis=2, out=scan[1, :, :, 2:])
        np.add(order, self._off_v1, out=slots[:, :V])  # position V stays "no vehicle"
        # Small batches gather every neighbour at once (fewer calls); big ones look up only what they need.
        self._nb = None if self._split_idm else slots.take(scan[:, :, :, 1 : V + 1] + self._off_v1[:, :, None]).ravel()
        rank = np.empty(E * V, dtype=np.int64)
        rank[flat_order.ravel()] = self._pos_tiled  # sorted position of each vehicle
        return rank.reshape(E, V)

    def _neighbour_slots(self, at: np.ndarray, row_off: np.ndarray) -> np.ndarray:
        """Table slots of the neighbours at flat indices `at` (see _nb_stride) of this substep's search;
        `row_off` is e (V + 1) of each index's env (broadcastable to `at`)."""
        if self._nb is not None:
            return self._nb.take(at)
        return self._slot_buf.take(self._scan_buf.take(at) + row_off)

    def _table(self) -> np.ndarray:
        """(8, E * (V + 1)) per-vehicle columns for IDM, column-major, with slot V of each env standing
        for "no vehicle" (x = NO_VEHICLE_X, the rest 0).

        Rows: vx, vy, x (a leader's three, first), then a follower's: free-road IDM acceleration, the
        desired gap without the leader's part, DISTANCE_WANTED + s TIME_WANTED + s^2 / (2 sqrt(a b)), and
        (cos, sin) s / (2 sqrt(a b)); last the speed. IDM's closing speed along the follower is s - (vx_l cos
        + vy_l sin), so d* = row 4 - (vx_l row 5 + vy_l row 6): every per-follower term, the power law above
        all, is computed once per vehicle here, not once per (follower, leader) pair."""
        E, V = self.x.shape
        t = self._table_buf[:, :, :V]  # (8, E, V) view, filled in place
        speed = self.speed
        np.multiply(self._cos_sin(), speed, out=t[0:2])  # [m/s]
        t[2] = self.x
        v0 = np.minimum(self.desired_speed, self.p.speed_limit)  # [m/s]
        np.abs(v0, out=v0)
        np.maximum(v0, 1e-2, out=v0)  # == |_not_zero(v0)|
        ratio = np.empty(v0.shape, dtype=self._float)  # (v / v0)^delta as exp(delta log(v / v0)) in float32, 4x faster than np.power in float64
        np.divide(np.maximum(speed, 1e-30), v0, out=ratio)  # 1e-30 for 0: exp(delta log 1e-30) underflows to exactly 0
        np.log(ratio, out=ratio)
        ratio *= self.delta
        np.exp(ratio, out=ratio)
        np.subtract(1.0, ratio, out=ratio)
        np.multiply(ratio, COMFORT_ACC_MAX, out=t[3])  # [m/s^2] as in idm_acceleration
        np.divide(speed, _IDM_SQRT_AB2, out=t[4])  # [s]
        t[4] += TIME_WANTED
        t[4] *= speed
        t[4] += DISTANCE_WANTED  # [m]
        np.divide(t[0:2], _IDM_SQRT_AB2, out=t[5:7])  # [s]
        t[7] = speed
        return self._table_buf.reshape(8, E * (V + 1))

    @staticmethod
    def _idm(f: np.ndarray, ld: np.ndarray) -> np.ndarray:
        """IDM acceleration [m/s^2] from follower columns `f` (rows 2..6 of the table) and leader columns
        `ld` (rows 0..2): 0 where there is no follower, free-road where there is no leader (slot V's x is
        NO_VEHICLE_X: the gap to it is about 1e30, so (d* / gap)^2 underflows to exactly 0 in float32; with
        neither, the gap is 0 and d* is 0)."""
        d = ld[:2] * f[3:5]  # (2, ...) [m]
        d_star = f[2] - d[0]
        d_star -= d[1]  # [m] desired gap
        gap = ld[2] - f[0]  # [m] centre to centre, about +-1e30 without a leader or follower
        np.abs(gap, out=gap)
        np.maximum(gap, 1e-2, out=gap)  # == |_not_zero(gap)| (the sign goes in the square)
        q = np.divide(d_star, gap, out=d_star)
        q *= q
        q *= COMFORT_ACC_MAX
        return np.subtract(f[1], q, out=q)

    # ---- step --------------------------------------------------------------------------------------
    def apply_meta_actions(self, actions: np.ndarray) -> None:
        """Discrete meta-actions (E, K) set the controlled vehicles' target lane and target speed."""
        K, L = self.p.controlled_vehicles, self.p.lanes_count
        faster, slower = actions == FASTER, actions == SLOWER
        current = self._speed_to_index(self.speed[:, :K])
        self.speed_index = np.where(faster, current + 1, np.where(slower, current - 1, self.speed_index))
        self.speed_index = np.minimum(np.maximum(self.speed_index, 0), self._target_speeds.size - 1)
        self.desired_speed[:, :K] = self._target_speeds[self.speed_index]
        shift = np.where(actions == LANE_LEFT, -1, np.where(actions == LANE_RIGHT, 1, 0))
        target = self.target_lane[:, :K]
        highest = np.where(target >= L, L, L - 1)  # the ramp can be left, never entered
        self.target_lane[:, :K] = np.minimum(np.maximum(target + shift, 0), highest)

    def set_continuous(self, actions: np.ndarray) -> None:
        a = np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0)  # (E, K, 2)
        self.continuous = a * np.array([ACCELERATION_RANGE, STEERING_RANGE])

    def action_mask(self) -> np.ndarray:
        """(E, K, 5): which meta-actions change something (IDLE always)."""
        K, L = self.p.controlled_vehicles, self.p.lanes_count
        lane = self.lane_of(self.y[:, :K])
        return np.stack([lane > 0, np.ones_like(lane, dtype=bool), lane < L - 1,
                         self.speed_index < self._target_speeds.size - 1, self.speed_index > 0], axis=-1)

    def _slip_sine(self) -> np.ndarray:
        """sin of the slip angle [-] that the lateral position then heading controller commands, towards each
        vehicle's target lane centre: highway-env's steering_control composed with the bicycle model's
        beta = arctan(tan(steering) / 2), which undoes its arctan(2 tan(slip)) (see BETA_MAX). The heading
        error needs no wrapping: controller-driven headings stay within +-pi/2 on a straight road."""
        speed = np.copysign(np.maximum(np.abs(self.speed), 1e-2), self.speed)  # [m/s] _not_zero
        q = self.target_lane * self.p.lane_width - self.y  # [m] towards the target lane centre
        q /= TAU_LATERAL
        q /= speed
        np.maximum(q, -SIN_HEADING_MAX, out=q)
        np.minimum(q, SIN_HEADING_MAX, out=q)
        d = np.arcsin(q, out=q)  # [rad] heading reference, within +-pi/4
        d -= self.heading  # [rad] heading error
        d *= LENGTH / 2 / TAU_HEADING
        d /= speed
        np.maximum(d, -SIN_BETA_MAX, out=d)
        return np.minimum(d, SIN_BETA_MAX, out=d)

    def _abort_lane_changes(self, lane: np.ndarray, changing: np.ndarray) -> None:
        """Traffic abandons a lane change when another vehicle not yet there heads for the same lane just
        ahead, closer than the IDM desired gap (highway-env's change_lane_policy). Only the C vehicles
        that are changing lane are compared with the others: (C, V) arrays from this substep's IDM table.
        Clears `changing` (E, V) where a change is abandoned."""
        f = np.flatnonzero(changing & self._traffic)  # (C,) flat e V + i
        if f.size == 0:
            return
        V = self.x.shape[1]
        e = f // V
        t = self._table_buf  # (8, E, V + 1), filled by _table this substep
        g, gi = t[:3].take(e, axis=1), t[2:7].reshape(5, -1).take(self._me_flat.take(f), axis=1)  # (3, C, V + 1) the changer's env, (5, C) the changer
        d = g[:2, :, :V] * gi[3:5, :, None]  # (2, C, V) [m]
        d_star = gi[2][:, None] - d[0]
        d_star -= d[1]  # [m] IDM's desired gap of the changer behind each vehicle
        dx = g[2, :, :V] - gi[0][:, None]  # [m] x_j - x_i (0 for the changer itself)
        target = self.target_lane.take(f)[:, None]
        # A rival heads for the changer's target lane and is not there yet: it is changing lane itself.
        heading_for = np.where(changing, self.target_lane, -1)  # (E, V) target lane of those changing lane
        rival = heading_for.take(e, axis=0) == target
        rival &= dx > 0
        rival &= dx < d_star
        abort = np.logical_or.reduce(rival, axis=1)
        if abort.any():
            fa = f[abort]
            np.put(self.target_lane, fa, lane.take(fa))
            np.put(changing, fa, False)

    def _mobil(self, lane: np.ndarray, f: np.ndarray, m: np.ndarray, acc: np.ndarray) -> None:
        """MOBIL lane-change decisions of the D traffic vehicles at flat indices `f` (e V + i) that are due,
        from their IDM terms `m` (8, D) (rows of _MOBIL_PAIRS) and every vehicle's own-lane acceleration
        `acc` (E, V, C-contiguous).

        Sets their target lane, and lowers acc for those that change to the IDM acceleration behind the
        new lane's leader when that is lower."""
        p, D = self.p, f.size
        cur = lane.take(f)  # (D,)
        self_a = acc.take(f)
        terms = m[2:].reshape(2, 3, D)  # left, right x (me behind new leader, new follower before, after)
        self_pred_a, new_f_a, new_f_pred_a = terms[:, 0], terms[:, 1], terms[:, 2]  # (2, D)
        # mobil_incentive, term for term: self_pred_a - self_a + politeness * (new_f_pred_a - new_f_a + old_f_pred_a - old_f_a)
        gain = new_f_pred_a - new_f_a
        gain += m[1]
        gain -= m[0]
        gain *= self.politeness.take(f)
        gain += self_pred_a - self_a
        cand = cur + _SIDE2  # (2, D)
        # Off the ramp a change must pay (MOBIL's incentive); leaving the ramp is mandatory, so only safety
        # counts there: no hard braking for me or for my new follower (highway-env's route rule).
        if p.merge_ramp:
            worth = np.where(cur >= p.lanes_count, self_pred_a >= -LANE_CHANGE_MAX_BRAKING_IMPOSED,
                             gain >= LANE_CHANGE_MIN_ACC_GAIN)
        else:
            worth = gain >= LANE_CHANGE_MIN_ACC_GAIN
        ok = self._lane_ok.take(cand)  # main lanes only (-1 wraps to a False slot)
        ok &= new_f_pred_a >= -LANE_CHANGE_MAX_BRAKING_IMPOSED
        ok &= worth
        # Right wins when both qualify, as in highway-env (it tries left, then right).
        np.put(self.target_lane, f, np.where(ok[1], cand[1], np.where(ok[0], cand[0], cur)))
        new_lane_acc = np.where(ok[1], self_pred_a[1], np.where(ok[0], self_pred_a[0], np.nan))
        np.put(acc, f, np.fmin(self_a, new_lane_acc))

    def substep(self) -> None:
        """One physics step: decisions (MOBIL, IDM, controllers), bicycle model, collisions.

        All IDM terms of the substep (own lane, target lane while changing, MOBIL's) are evaluated in one
        batch of table gathers (_idm), so the op count does not grow with the number of kinds of term."""
        p, K, dt = self.p, self.p.controlled_vehicles, self.p.dt
        E, V = self.x.shape
        L = p.all_lanes
        lane = self.lane_of(self.y)
        rank = self._neighbours_sorted()  # (E, V) sorted position of each vehicle
        table = self._table()
        S = self._nb_stride
        own_leader = self._neighbour_slots(self._nb_l0 + lane * S + rank, self._off_v1)  # (E, V) table slot of the leader on the own lane
        changing = lane != self.target_lane  # (E, V) while changing lane, IDM on both lanes
        self._abort_lane_changes(lane, changing)
        cf = np.flatnonzero(changing)  # (C,) flat e V + i
        c_slot = self._me_flat.take(cf)  # (C,) table slots of the changing vehicles
        ahead = self._neighbour_slots(self._nb_lv.take(cf) + self.target_lane.take(cf) * S + rank.take(cf),
                                      self._off_v1v.take(cf))  # (C,) leader on the target lane
        due = self._traffic & (self.timer > p.lane_change_delay)
        due &= ~(self.crashed | changing)
        np.copyto(self.timer, 0.0, where=due)
        due &= np.abs(self.speed) >= 1.0
        df = np.flatnonzero(due)  # (D,) MOBIL decisions now, flat e V + i
        at = self._nb_lv.take(df) + np.minimum(np.maximum(lane.take(df) + _SIDES, 0), L - 1) * S + rank.take(df)  # (3, D) current, left, right lane
        at = np.concatenate([at, at + self._nb_rear])  # (6, D) fronts, then rears
        rows = np.concatenate([self._neighbour_slots(at, self._off_v1v.take(df)), self._me_flat.take(df)[None]])  # (7, D) table slots
        pairs = rows[_MOBIL_PAIRS]  # (2, 8, D) follower and leader slots
        if self._split_idm:  # own lane: the followers are the table itself, in order
            acc = self._idm(self._table_buf[2:7, :, :V], table[:3].take(own_leader, axis=1))  # (E, V)
            follower = np.concatenate([c_slot, pairs[0].ravel()])
            leader = np.concatenate([ahead, pairs[1].ravel()])
            n_own = 0
        else:
            follower = np.concatenate([self._me_flat.ravel(), c_slot, pairs[0].ravel()])  # table slots
            leader = np.concatenate([own_leader.ravel(), ahead, pairs[1].ravel()])
            n_own = E * V
        acc_all = self._idm(table[2:7].take(follower, axis=1), table[:3].take(leader, axis=1))  # (n_own + C + 8 D,)
        if not self._split_idm:
            acc = acc_all[:n_own].reshape(E, V)
        acc = acc.astype(np.float64)  # the table may be float32; the dynamics integrate in float64
        n_change = cf.size
        if n_change:
            np.put(acc, cf, np.minimum(acc.take(cf), acc_all[n_own:n_own + n_change]))
        if df.size:
            self._mobil(lane, df, acc_all[n_own + n_change:].reshape(8, df.size), acc)
        if p.merge_ramp:  # the ramp's end is a stopped obstacle whose rear is at ramp_end
            on_ramp = (lane == p.lanes_count) & (self.x < p.ramp_end)
            wall = idm_acceleration(self.speed, np.minimum(self.desired_speed, p.speed_limit), self.delta,
                                    p.ramp_end + LENGTH / 2 - self.x, self.speed)
            acc = np.where(on_ramp, np.minimum(acc, wall), acc)
        np.maximum(acc, -ACC_MAX, out=acc)
        np.minimum(acc, ACC_MAX, out=acc)
        sin_beta = self._slip_sine()  # (E, V)
        if p.action == "continuous":
            acc[:, :K] = self.continuous[:, :, 0]
            steering = np.minimum(np.maximum(self.continuous[:, :, 1], -MAX_STEERING), MAX_STEERING)  # [rad]
            sin_beta[:, :K] = np.sin(np.arctan(0.5 * np.tan(steering)))
        else:
            acc[:, :K] = (self.desired_speed[:, :K] - self.speed[:, :K]) / TAU_ACC  # speed controller
        # Crashed vehicles brake to a stop; speeds stay within +-MAX_SPEED (highway-env's clip_actions).
        if self.crashed.any():
            np.copyto(acc, -self.speed, where=self.crashed)
            np.copyto(sin_beta, 0.0, where=self.crashed)
        too_fast = np.abs(self.speed) > MAX_SPEED  # (E, V): only these vehicles' acceleration is limited
        if too_fast.any():
            np.copyto(acc, np.minimum(np.maximum(acc, -MAX_SPEED - self.speed), MAX_SPEED - self.speed), where=too_fast)
        self._record_ttc(table, own_leader[:, :K])
        # Kinematic bicycle model, centre of gravity in the middle.
        x_before, y_before = self.x, self.y
        step = self.speed * dt  # [m]
        # cos and sin of heading + beta by angle addition, from the heading's cos/sin: no trigonometry
        cs = self._cos_sin()  # (2, E, V) of the heading
        course = np.multiply(sin_beta, sin_beta)
        np.subtract(1.0, course, out=course)
        course = cs * np.sqrt(course, out=course)  # (2, E, V) cos(heading) cos(beta), sin(heading) cos(beta)
        course[0] -= cs[1] * sin_beta
        course[1] += cs[0] * sin_beta
        course *= step
        self.x = x_before + course[0]
        self.y = y_before + course[1]
        sin_beta *= step
        sin_beta *= 2.0 / LENGTH
        self.heading = self.heading + sin_beta  # [rad] speed sin(beta) / (LENGTH / 2) dt
        acc *= dt
        self.speed = self.speed + acc
        self.timer += dt
        self._collide(x_before, y_before)

    def _record_ttc(self, table: np.ndarray, ahead: np.ndarray) -> None:
        """Keep the largest closing rate [1/s] (closing speed over bumper-to-bumper gap, the inverse of the
        time-to-collision) of the controlled vehicles on the vehicle ahead (table slots `ahead` (E, K)) this
        substep; step() turns it into min_ttc. A missing leader sits at NO_VEHICLE_X, so its rate is about 1e-29."""
        K = self.p.controlled_vehicles
        lead = table[2:8:5].take(ahead, axis=1)  # (2, E, K) x [m] and speed [m/s] of the leader
        gap = lead[0] - self.x[:, :K]
        gap -= LENGTH
        np.maximum(gap, 1e-300, out=gap)  # [m] bumper to bumper; touching gives a rate of about 1e300
        rate = self.speed[:, :K] - lead[1]  # [m/s] closing speed
        rate /= gap
        np.maximum(self._ttc_rate, rate, out=self._ttc_rate)

    def _collide(self, x_before: np.ndarray, y_before: np.ndarray) -> None:
        """Mark as crashed every pair whose footprints overlap, or whose order flipped while side by side.

        Footprints are the axis-aligned boxes around the rotated rectangles (exact at heading 0, a few cm
        larger at lane-change headings). The second test catches a pass-through within one substep.
        With `collision_scope="controlled"` only pairs with a controlled vehicle count (_collide_controlled).
        With "all", pairs are taken along the x order, each vehicle with the next
        COLLISION_WINDOW ones: (E, V, W) arrays instead of (E, V, V). That is exact whenever any W + 1
        consecutive vehicles span more than one substep's reach (rows where they do not get the full check).
        Small batches (E V^2 <= FULL_CHECK_PAIRS, e.g. the single env) take the full (E, V, V) check at once:
        fewer array operations, and the same result since the windowed check is exact."""
        p, E, V = self.p, self.x.shape[0], self.x.shape[1]
        if p.collision_scope == "controlled":
            self._collide_controlled(x_before, y_before)
            if p.merge_ramp:
                cs = np.abs(self._cos_sin(), dtype=np.float64)  # (2, E, V)
                self._collide_ramp(x_before, LENGTH / 2 * cs[0] + WIDTH / 2 * cs[1], WIDTH / 2 * cs[0] + LENGTH / 2 * cs[1])
            return
        state = np.empty((6, E, V))  # x, y, x before, y before [m], half extents along x and y [m]
        state[0], state[1], state[2], state[3] = self.x, self.y, x_before, y_before
        half = state[4:]
        np.abs(self._cos_sin(), out=half)
        np.matmul(_EXTENT, half.reshape(2, E * V), out=half.reshape(2, E * V))  # (L |cos| + W |sin|, W |cos| + L |sin|) / 2
        if p.merge_ramp:
            self._collide_ramp(x_before, half[0], half[1])
        if E * V * V <= FULL_CHECK_PAIRS or COLLISION_WINDOW >= V - 1:
            crowded = None
        else:
            w = COLLISION_WINDOW
            order = self._order()  # of the new x: the next substep's neighbour search reuses it
            flat_order = (order + self._off_v).T  # (V, E): sorted-position-major, so shifted slices are contiguous
            s = state.reshape(6, E * V).take(flat_order.ravel(), axis=1)  # (6, V E) sorted along x
            xs = s[0].reshape(V, E)
            reach = 2 * (MAX_SPEED + ACC_MAX) * p.dt + LENGTH + WIDTH  # [m] farther pairs can neither touch nor cross
            # Neighbours in x order (about 60% within reach): all pairs, on contiguous shifted slices.
            sv = s.reshape(6, V, E)
            hit = _hits(sv[:4, :-1] - sv[:4, 1:], sv[4:, :-1] + sv[4:, 1:]).ravel()  # ((V - 1) E,)
            hit_sorted = np.zeros(V * E, dtype=bool)
            hit_sorted[:-E] = hit
            hit_sorted[E:] |= hit
            for o in range(2, w + 1):  # farther apart (about 5% within reach at o = 2): only the pairs within reach
                close = xs[o:] - xs[:-o] < reach  # (V - o, E)
                near = np.flatnonzero(close)  # flat (k, e) of the first of each pair; the second is at + o E
                if near.size:
                    first, second = s.take(near, axis=1), s.take(near + o * E, axis=1)  # (6, n)
                    hit = near[_hits(first[:4] - second[:4], first[4:] + second[4:])]
                    hit_sorted[hit] = True
                    hit_sorted[hit + o * E] = True
            crashed = self.crashed.reshape(-1)
            crashed[flat_order.ravel()] |= hit_sorted
            crowded = np.flatnonzero(np.logical_or.reduce(close, axis=0))  # rows with w + 1 vehicles within reach
        if crowded is None or crowded.size:
            sub = state if crowded is None else state[:, crowded]  # (6, R, V)
            hit = _hits(sub[:4, :, :, None] - sub[:4, :, None, :], sub[4:, :, :, None] + sub[4:, :, None, :])  # (R, V, V)
            hit.reshape(-1, V * V)[:, :: V + 1] = False  # nobody collides with itself
            rows_hit = np.logical_or.reduce(hit, axis=2)
            if crowded is None:
                self.crashed |= rows_hit
            else:
                self.crashed[crowded] |= rows_hit

    def _collide_controlled(self, x_before: np.ndarray, y_before: np.ndarray) -> None:
        """highway-fast-v0's rule: only pairs with a controlled vehicle collide (both of a pair crash), O(V)
        per env. Candidates are the pairs (e, k, j) for which the test of _hits could say yes from x alone:
        closer than LENGTH + WIDTH along x (two half extents are at most (LENGTH + WIDTH) / 2 each), or
        their x order flipped in this substep (the same products as _hits, so no rounding can drop a pair).
        Most substeps of an env have none; _hits runs on the candidates only."""
        E, V, K = self.x.shape[0], self.x.shape[1], self.p.controlled_vehicles
        if K == 1:  # (E, V) arrays: 2-D broadcasting is several times faster than 3-D
            dx = self.x - self.x[:, :1]  # [m]
            flipped = x_before - x_before[:, :1]
        else:
            dx = self.x[:, None, :] - self.x[:, :K, None]  # (E, K, V) [m]
            flipped = x_before[:, None, :] - x_before[:, :K, None]
        flipped *= dx
        near = flipped < 0.0
        near |= np.abs(dx, out=dx) < LENGTH + WIDTH
        near &= self._not_self if K > 1 else self._not_self[0]  # nobody collides with itself
        f = np.flatnonzero(near)  # (n,) flat (e K + k) V + j
        n = f.size
        if n == 0:
            return
        j = f % V
        if K == 1:
            pair = np.concatenate([f - j, f])  # (2 n,) flat e V + k of the controlled one, then e V + j of the other
        else:
            ek = f // V  # e K + k
            ev = ek // K * V
            pair = np.concatenate([ev + ek % K, ev + j])
        s = np.empty((6, 2 * n))  # x, y, x before, y before [m], half extents along x and y [m]
        for r, a in enumerate((self.x, self.y, x_before, y_before)):
            a.take(pair, out=s[r])
        cs = np.abs(self._cos_sin().reshape(-1).take(np.concatenate([pair, pair + E * V])), dtype=np.float64).reshape(2, 2 * n)  # |cos|, |sin|
        np.multiply(cs[0], LENGTH / 2, out=s[4])
        s[4] += WIDTH / 2 * cs[1]
        np.multiply(cs[0], WIDTH / 2, out=s[5])
        s[5] += LENGTH / 2 * cs[1]
        hit = _hits(s[:4, :n] - s[:4, n:], s[4:, :n] + s[4:, n:])  # (n,)
        self.crashed.reshape(-1)[pair.reshape(2, n)[:, hit]] = True

    def _collide_ramp(self, x_before: np.ndarray, half_x: np.ndarray, half_y: np.ndarray) -> None:
        """Driving into the ramp's end (a wall across the ramp at ramp_end), from the half extents (E, V) [m]."""
        p = self.p
        ramp_side = self.y + half_y > (p.lanes_count - 0.5) * p.lane_width
        self.crashed |= ramp_side & (self.x + half_x > p.ramp_end) & (x_before + half_x <= p.ramp_end)

    def advance(self, actions: np.ndarray) -> None:
        """One decision: actions (E, K) meta-actions or (E, K, 2) continuous, then `substeps` physics steps."""
        K = self.p.controlled_vehicles
        lane_before = self.lane_of(self.y[:, :K])
        if self.p.action == "discrete":
            self.apply_meta_actions(np.asarray(actions).reshape(-1, K).astype(np.int64))
        else:
            self.set_continuous(np.asarray(actions).reshape(-1, K, 2))
        self._ttc_rate[:] = 0.0
        for _ in range(self.p.substeps):
            self.substep()
        # The smallest time-to-collision [s] of the step: 1 / the largest closing rate; inf when never closing
        # in on a leader, 0 when touching it.
        self.min_ttc = np.divide(1.0, self._ttc_rate, out=np.full_like(self._ttc_rate, np.inf), where=self._ttc_rate > 1e-20)
        self.min_ttc[self.min_ttc < 1e-250] = 0.0
        self.steps += 1
        self.lane_changes += self.lane_of(self.y[:, :K]) != lane_before
        if self.frames is not None:
            self.frames[:, :-1] = self.frames[:, 1:]
            self.frames[:, -1] = self.pixels()

    # ---- the gym-facing step of controlled vehicle 0 (envs/vector.py's VectorCore) ----------------------
    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """advance(), then the reward, terminated, truncated and info of controlled vehicle 0 of every row."""
        actions = np.asarray(actions)
        self.advance(actions)
        rewards, terms = self.rewards(actions)
        return rewards[:, 0], self.terminated()[:, 0], self.truncated(), _info(self, terms)

    def reset_info(self) -> dict[str, np.ndarray]:
        return _info(self, self.rewards(None)[1])

    def observe(self) -> Any:
        return _observe(self)

    # ---- outputs -----------------------------------------------------------------------------------
    def on_road(self) -> np.ndarray:
        K = self.p.controlled_vehicles
        return self.road_at(self.x[:, :K], self.y[:, :K])

    def road_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Whether world points (x, y) [m] are on the road (main lanes, or the ramp before its end)."""
        p = self.p
        edge = np.where(p.merge_ramp & (x <= p.ramp_end), p.all_lanes - 0.5, p.lanes_count - 0.5) * p.lane_width
        return (y >= -p.lane_width / 2) & (y <= edge) & (x >= 0) & (x <= p.road_length)

    def rewards(self, actions: np.ndarray | None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(E, K) rewards and their terms."""
        p, K = self.p, self.p.controlled_vehicles
        lane = self.target_lane[:, :K] if p.action == "discrete" else self.lane_of(self.y[:, :K])
        forward = self.speed[:, :K] * np.cos(self.heading[:, :K])  # [m/s]
        lo, hi = p.reward_speed_range
        terms = {
            "collision_reward": self.crashed[:, :K].astype(np.float64),
            "right_lane_reward": np.minimum(lane, p.lanes_count - 1) / max(p.lanes_count - 1, 1),
            "high_speed_reward": np.clip((forward - lo) / (hi - lo), 0.0, 1.0),
            "on_road_reward": self.on_road().astype(np.float64),
        }
        changed = np.zeros_like(forward)
        if actions is not None and p.action == "discrete":
            a = np.asarray(actions).reshape(-1, K)
            changed = ((a == LANE_LEFT) | (a == LANE_RIGHT)).astype(np.float64)
        reward = (p.collision_reward * terms["collision_reward"] + p.right_lane_reward * terms["right_lane_reward"]
                  + p.high_speed_reward * terms["high_speed_reward"] + p.lane_change_reward * changed)
        if p.normalize_reward:
            low, high = p.collision_reward, p.high_speed_reward + p.right_lane_reward
            reward = (reward - low) / (high - low)
        return reward * terms["on_road_reward"], terms

    def terminated(self) -> np.ndarray:
        K = self.p.controlled_vehicles
        done = self.crashed[:, :K].copy()
        if self.p.offroad_terminal:
            done |= ~self.on_road()
        return done  # (E, K)

    def truncated(self) -> np.ndarray:
        return self.steps >= self.p.max_steps  # (E,)

    def metrics(self) -> dict[str, np.ndarray]:
        K = self.p.controlled_vehicles
        return {
            "crashed": self.crashed[:, :K].copy(),
            "speed": self.speed[:, :K].copy(),
            "distance": self.x[:, :K] - self.x_start,
            "lane_changes": self.lane_changes.copy(),
            "min_ttc": self.min_ttc.copy(),
        }

    def kinematics(self) -> np.ndarray:
        """(E, K, obs_vehicles, 6) normalised kinematics rows for each controlled vehicle."""
        p, K, N = self.p, self.p.controlled_vehicles, self.p.obs_vehicles
        E, V = self.x.shape
        feats = np.empty((5, E, V))  # x, y, vx, vy, heading
        feats[0], feats[1], feats[4] = self.x, self.y, self.heading
        np.multiply(self._cos_sin(), self.speed, out=feats[2:4])
        ego = feats[:, :, :K]  # (5, E, K)
        d = feats[:2, :, None, :] - ego[:2, :, :, None]  # (2, E, K, V) [m]
        dist = np.hypot(d[0], d[1])
        visible = dist <= PERCEPTION_DISTANCE
        if not p.see_behind:
            visible &= d[0] > -2 * LENGTH
        visible &= self._not_self  # (K, V)
        key = np.where(visible, dist, np.inf)
        nearest = np.argsort(key, axis=2, kind="stable")[:, :, : N - 1]  # (E, K, N-1)
        present = key.take(nearest + self._kin_off) < np.inf  # (E, K, N-1)
        rows = np.empty((5, E, K, N))  # features first
        rows[:, :, :, 0] = ego
        rows[:, :, :, 1:] = feats.reshape(5, E * V).take(nearest + self._off_v[:, :, None], axis=1)
        if not p.absolute:
            rows[:4, :, :, 1:] -= ego[:4, :, :, None]
            rows[0, :, :, 0] = 0.0
        rows[:, :, :, 1:] *= present  # empty rows are 0
        rows[4] += np.pi
        rows[4] %= 2 * np.pi
        rows[4] -= np.pi
        rows /= self._kin_scale  # (5, 1, 1, 1)
        out = np.empty((E, K, N, 6))
        out[:, :, 0, 0] = 1.0
        out[:, :, 1:, 0] = present
        out[..., 1:] = rows.transpose(1, 2, 3, 0)
        np.maximum(out, -1.0, out=out)
        return np.minimum(out, 1.0, out=out)

    def occupancy(self) -> np.ndarray:
        """(E, K, 4, 11, 11) occupancy grid around each controlled vehicle, road-aligned."""
        K = self.p.controlled_vehicles
        E, V = self.x.shape
        grid = np.zeros((E, K, len(GRID_FEATURES), GRID_CELLS, GRID_CELLS))
        centres = (np.arange(GRID_CELLS) + 0.5) * GRID_STEP - GRID_HALF  # [m] cell centres relative to the ego
        y_cells = self.y[:, :K, None] + centres  # (E, K, C) absolute lateral position of each cell row
        x_cells = self.x[:, :K, None] + centres  # (E, K, C)
        grid[:, :, 3] = self.road_at(x_cells[:, :, None, :], y_cells[:, :, :, None])  # (E, K, rows, cols)
        dx = self.x[:, None, :] - self.x[:, :K, None]  # (E, K, V)
        dy = self.y[:, None, :] - self.y[:, :K, None]
        col = np.floor((dx + GRID_HALF) / GRID_STEP).astype(np.int64)
        row = np.floor((dy + GRID_HALF) / GRID_STEP).astype(np.int64)
        inside = (col >= 0) & (col < GRID_CELLS) & (row >= 0) & (row < GRID_CELLS)
        e, k, v = np.nonzero(inside)
        vx, vy = self.speed * np.cos(self.heading), self.speed * np.sin(self.heading)
        r, c = row[e, k, v], col[e, k, v]
        grid[e, k, 0, r, c] = 1.0
        grid[e, k, 1, r, c] = np.clip((vx[e, v] - vx[e, k]) / (2 * MAX_SPEED), -1, 1)
        grid[e, k, 2, r, c] = np.clip((vy[e, v] - vy[e, k]) / (2 * MAX_SPEED), -1, 1)
        return grid

    def pixels(self) -> np.ndarray:
        """(E, S, S) grayscale top-down image around controlled vehicle 0, rasterised with two matmuls.

        Pixel centres map to world coordinates; a vehicle lights the pixels whose centre lies in its
        (axis-aligned) footprint: image = rows (E, S, V) @ cols (E, V, S), one product per row."""
        p, S = self.p, self.p.image_size
        scale = p.image_scale  # [px/m]
        centre = (np.arange(S) + 0.5 - S / 2) / scale  # [m] pixel centres relative to the ego
        wx = self.x[:, :1] + centre + S * 0.2 / scale  # (E, S) ego drawn at 30% from the left
        wy = self.y[:, :1] + centre  # (E, S)
        in_rows = np.abs(wy[:, :, None] - self.y[:, None, :]) <= WIDTH / 2  # (E, S, V)
        in_cols = np.abs(wx[:, None, :] - self.x[:, :, None]) <= LENGTH / 2  # (E, V, S)
        level = np.where(np.arange(self.x.shape[1]) == 0, PIX_EGO, PIX_TRAFFIC)  # (V,)
        cars = np.matmul(in_rows.astype(np.float32) * level.astype(np.float32), in_cols.astype(np.float32))  # (E, S, S)
        road = self.road_at(wx[:, None, :], wy[:, :, None])  # (E, S, S)
        lines = np.zeros(wy.shape, dtype=bool)  # (E, S)
        half_px = 0.5 / scale
        for boundary in (np.arange(p.lanes_count + 1) - 0.5) * p.lane_width:
            lines |= np.abs(wy - boundary) <= half_px
        background = np.where(lines[:, :, None] & road, PIX_LINE, np.where(road, PIX_ROAD, 0)).astype(np.float32)
        img = np.where(cars > 0, np.minimum(cars, 255), background)
        return img.astype(np.uint8)


# ---- spaces and observations shared by the single and vector envs -------------------------------------
def _observation_space(p: HighwayParams) -> gym.Space:
    kin = gym.spaces.Box(-1.0, 1.0, (p.obs_vehicles * len(KIN_FEATURES),), np.float32)
    pix = gym.spaces.Box(0, 255, (p.frame_stack, p.image_size, p.image_size), np.uint8)
    if p.observation == "kinematics":
        return kin
    if p.observation == "occupancy":
        return gym.spaces.Box(-1.0, 1.0, (len(GRID_FEATURES) * GRID_CELLS * GRID_CELLS,), np.float32)
    if p.observation == "pixels":
        return pix
    return gym.spaces.Dict({"kinematics": kin, "pixels": pix})


def _action_space(p: HighwayParams) -> gym.Space:
    if p.action == "discrete":
        return gym.spaces.Discrete(len(ACTIONS))
    return gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


def _observe(core: HighwayCore) -> Any:
    """Batched observations of controlled vehicle 0: (E, ...) arrays or a dict of them."""
    p, E = core.p, core.num_envs
    if p.observation == "kinematics":
        return core.kinematics()[:, 0].reshape(E, -1).astype(np.float32)
    if p.observation == "occupancy":
        return core.occupancy()[:, 0].reshape(E, -1).astype(np.float32)
    assert core.frames is not None
    if p.observation == "pixels":
        return core.frames.copy()
    return {"kinematics": core.kinematics()[:, 0].reshape(E, -1).astype(np.float32), "pixels": core.frames.copy()}


def _info(core: HighwayCore, terms: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-env info arrays of controlled vehicle 0."""
    info = {name: value[:, 0] for name, value in core.metrics().items()}
    info.update({name: value[:, 0] for name, value in terms.items()})
    if core.p.action == "discrete":
        info["action_mask"] = core.action_mask()[:, 0]
    return info


class HighwayEnv(CoreEnv):
    """The single env: the core with one row."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 5}

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        self.params = _fields_of(kwargs)
        if self.params.controlled_vehicles != 1:
            raise ValueError("Highway: the gym env drives one vehicle; for several learning vehicles use highway_parallel_env().")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"Highway: render_mode must be None or 'rgb_array', got {render_mode!r}.")
        self.render_mode = render_mode
        self.observation_space = _observation_space(self.params)
        self.action_space = _action_space(self.params)
        self.core = HighwayCore(self.params, 1)
        self.last_reward = 0.0

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return render_frame(self.core, 0, self.last_reward)


class HighwayVectorEnv(NumpyVectorEnv):
    """`num_envs` highways stepped together in array operations; next-step (default) or same-step autoreset."""

    metadata = {**NumpyVectorEnv.metadata, "render_modes": ["rgb_array"], "render_fps": 5}

    def __init__(self, num_envs: int, render_mode: str | None = None,
                 autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP, episode_statistics: bool = False,
                 **kwargs: Any) -> None:
        self.params = _fields_of(kwargs)
        if self.params.controlled_vehicles != 1:
            raise ValueError("Highway: the vector env drives one vehicle per row; use highway_parallel_env() for several.")
        super().__init__(HighwayCore(self.params, num_envs), _observation_space(self.params), _action_space(self.params),
                         render_mode=render_mode, autoreset_mode=autoreset_mode, episode_statistics=episode_statistics)

    def render(self) -> tuple[np.ndarray, ...] | None:  # type: ignore[override]
        if self.render_mode != "rgb_array":
            return None
        return tuple(render_frame(self.core, i, float(self.last_rewards[i])) for i in range(self.num_envs))


# ---- rendering ----------------------------------------------------------------------------------------
RENDER_SIZE = (720, 160)  # [px] width, height
RENDER_SCALE = 6.0  # [px/m]
COLOURS = {"road": (60, 60, 60), "grass": (70, 110, 60), "line": (230, 230, 230), "traffic": (60, 120, 220),
           "ego": (60, 200, 90), "agent": (230, 200, 40), "crashed": (220, 50, 50), "text": (255, 255, 255)}


def render_frame(core: HighwayCore, row: int, reward: float) -> np.ndarray:
    """An RGB frame (H, W, 3) of env `row` centred on its first controlled vehicle, drawn with OpenCV."""
    import cv2

    p = core.p
    W, H = RENDER_SIZE
    img = np.empty((H, W, 3), dtype=np.uint8)
    img[:] = COLOURS["grass"]
    x0 = core.x[row, 0] - 0.3 * W / RENDER_SCALE  # [m] world x at the left edge
    y0 = (p.lanes_count - 1) * p.lane_width / 2 - H / 2 / RENDER_SCALE  # [m] world y at the top edge

    def px(x: float, y: float) -> tuple[int, int]:
        return int(round((x - x0) * RENDER_SCALE)), int(round((y - y0) * RENDER_SCALE))

    top, bottom = px(0, -p.lane_width / 2)[1], px(0, (p.lanes_count - 0.5) * p.lane_width)[1]
    cv2.rectangle(img, (0, top), (W - 1, bottom), COLOURS["road"], -1)
    if p.merge_ramp:
        ramp_bottom = px(0, (p.all_lanes - 0.5) * p.lane_width)[1]
        cv2.rectangle(img, (0, bottom), (px(p.ramp_end, 0)[0], ramp_bottom), COLOURS["road"], -1)
    dash = 3.0  # [m]
    for i in range(p.lanes_count + 1):
        y = (i - 0.5) * p.lane_width
        row_px = px(0, y)[1]
        if i in (0, p.lanes_count):
            cv2.line(img, (0, row_px), (W - 1, row_px), COLOURS["line"], 2)
            continue
        start = np.floor(x0 / (2 * dash)) * 2 * dash
        for xs in np.arange(start, x0 + W / RENDER_SCALE, 2 * dash):
            cv2.line(img, px(xs, y), px(xs + dash, y), COLOURS["line"], 1)
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * np.array([LENGTH / 2, WIDTH / 2])
    for v in np.argsort(-np.arange(core.x.shape[1])):  # controlled vehicles drawn last, on top
        c, s = np.cos(core.heading[row, v]), np.sin(core.heading[row, v])
        world = corners @ np.array([[c, s], [-s, c]]) + np.array([core.x[row, v], core.y[row, v]])
        poly = np.array([px(*pt) for pt in world], dtype=np.int32)
        role = "crashed" if core.crashed[row, v] else "ego" if v == 0 else "agent" if core.controlled[v] else "traffic"
        cv2.fillPoly(img, [poly], COLOURS[role], lineType=cv2.LINE_AA)
        cv2.polylines(img, [poly], True, (20, 20, 20), 1, lineType=cv2.LINE_AA)
    text = f"t {core.steps[row] / p.policy_frequency:4.0f} s   speed {core.speed[row, 0]:5.1f} m/s   reward {reward:5.2f}"
    cv2.putText(img, text, (W - 390, H - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, COLOURS["text"], 1, cv2.LINE_AA)  # bottom right
    return img


# ---- baseline controllers (wrapped as agents by agents/registry.py) --------------------------------------
class IDMController:
    """An ego that never changes lane and sets its target speed by IDM towards the fastest target speed.

    Reads the kinematics observation (or the `kinematics` entry of a Dict observation) like any agent:
    the vehicle ahead is the nearest visible one ahead whose lateral offset is under half a lane. IDM's
    acceleration picks the meta-action: FASTER above +`threshold`, SLOWER below -`threshold`, else IDLE.
    """

    threshold = 1.0  # [m/s^2]

    def __init__(self, env: gym.Env) -> None:
        params = getattr(env.unwrapped, "params", None)
        if not isinstance(params, HighwayParams) or params.observation not in ("kinematics", "dict") or params.action != "discrete":
            raise ValueError("The Highway baselines need a Highway env with discrete actions and observation "
                             "'kinematics' or 'dict' (they read the vehicles' kinematics).")
        self.params = params
        self.observation_space = env.observation_space
        self.action_space = env.action_space

    def reset(self, num_envs: int) -> None:
        pass

    def _vehicles(self, obs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Present mask, dx, dy relative to the ego [m], longitudinal speeds [m/s]: others (B, N-1); ego speed (B,)."""
        p = self.params
        kin = np.asarray(obs["kinematics"] if isinstance(obs, dict) else obs, dtype=np.float64)
        rows = kin.reshape(kin.shape[0], p.obs_vehicles, len(KIN_FEATURES))  # (B, N, 6)
        x = rows[..., 1] * (p.road_length if p.absolute else PERCEPTION_DISTANCE)
        y = rows[..., 2] * p.lanes_count * p.lane_width
        vx = rows[..., 3] * 2 * MAX_SPEED
        if p.absolute:
            dx, dy, v = x[:, 1:] - x[:, :1], y[:, 1:] - y[:, :1], vx[:, 1:]
        else:
            dx, dy, v = x[:, 1:], y[:, 1:], vx[:, 1:] + vx[:, :1]
        return rows[:, 1:, 0] > 0.5, dx, dy, v, vx[:, 0]

    def _lane_acc(self, present: np.ndarray, dx: np.ndarray, dy: np.ndarray, v: np.ndarray, speed: np.ndarray, offset: float) -> np.ndarray:
        """IDM acceleration [m/s^2] of the ego if it drove `offset` metres to the side, behind that lane's leader."""
        ahead = present & (np.abs(dy - offset) < self.params.lane_width / 2) & (dx > 0)
        gap = np.where(ahead, dx, np.inf)
        lead = np.argmin(gap, axis=1)
        has = np.isfinite(gap.min(axis=1))
        lead_gap = np.where(has, gap.min(axis=1), np.nan)
        lead_v = np.take_along_axis(v, lead[:, None], axis=1)[:, 0]
        desired = np.full_like(speed, self.params.target_speeds[-1])
        acc = idm_acceleration(speed, desired, np.full_like(speed, 4.0), lead_gap, speed - lead_v)
        return np.nan_to_num(acc, nan=0.0)

    def act(self, obs: Any, episode_start: np.ndarray, deterministic: bool = True) -> np.ndarray:
        present, dx, dy, v, speed = self._vehicles(obs)
        acc = self._lane_acc(present, dx, dy, v, speed, 0.0)
        return np.where(acc > self.threshold, FASTER, np.where(acc < -self.threshold, SLOWER, IDLE)).astype(np.int64)


class MOBILController(IDMController):
    """IDM speed choice plus MOBIL lane changes: move to a side lane when the ego's IDM acceleration there
    beats the current lane's by `gain` (a keep-right bias of `right_bias` added to the right lane), and no
    visible vehicle alongside or just behind in that lane would be cut off."""

    gain = 0.2  # [m/s^2] MOBIL's threshold
    right_bias = 0.2  # [m/s^2]
    clearance = 2 * LENGTH  # [m] no vehicle within this much behind (or alongside) in the target lane

    def act(self, obs: Any, episode_start: np.ndarray, deterministic: bool = True) -> np.ndarray:
        p = self.params
        present, dx, dy, v, speed = self._vehicles(obs)
        kin = np.asarray(obs["kinematics"] if isinstance(obs, dict) else obs).reshape(len(speed), p.obs_vehicles, -1)
        y_ego = kin[:, 0, 2] * p.lanes_count * p.lane_width  # [m] absolute lateral position in both modes
        lane = np.clip(np.rint(y_ego / p.lane_width), 0, p.lanes_count - 1)
        acc = self._lane_acc(present, dx, dy, v, speed, 0.0)
        actions = np.where(acc > self.threshold, FASTER, np.where(acc < -self.threshold, SLOWER, IDLE)).astype(np.int64)
        best = np.full_like(acc, -np.inf)
        for side, action, bias in ((-1, LANE_LEFT, 0.0), (1, LANE_RIGHT, self.right_bias)):
            offset = side * p.lane_width
            exists = (lane + side >= 0) & (lane + side < p.lanes_count)
            blocked = (present & (np.abs(dy - offset) < p.lane_width / 2) & (np.abs(dx) < self.clearance)).any(axis=1)
            side_acc = self._lane_acc(present, dx, dy, v, speed, offset)
            advantage = side_acc - acc + bias
            take = exists & ~blocked & (advantage >= self.gain) & (advantage > best)
            actions = np.where(take, action, actions)
            best = np.where(take, advantage, best)
        return actions


# ---- several learning vehicles: a PettingZoo ParallelEnv -----------------------------------------------
class HighwayParallelEnv(ParallelEnv):
    """Several learning vehicles on one highway, each with its own observation, reward and termination.

    Agents `vehicle_0 .. vehicle_{K-1}` (K = `controlled_vehicles`, default 3) each drive with the single
    env's action space and see the kinematics (or occupancy) observation centred on themselves; each gets
    the reward of the single env computed for its own vehicle. An agent that crashes terminates and leaves
    `agents`; its wreck stays on the road as an obstacle. All remaining agents truncate at the time limit.
    With `collision_scope="controlled"` (highway-fast-v0's rule) only pairs with a learning vehicle collide.
    Built with `highway_parallel_env(**fields of HighwayParams)`.
    """

    metadata = {"name": "rlsuite_highway_v0", "render_modes": ["rgb_array"], "render_fps": 5, "is_parallelizable": True}

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("controlled_vehicles", 3)
        self.params = _fields_of(kwargs)
        if self.params.observation not in ("kinematics", "occupancy"):
            raise ValueError("Highway multi-agent: observation must be 'kinematics' or 'occupancy' (one view per vehicle).")
        self.render_mode = render_mode
        self.possible_agents = [f"vehicle_{k}" for k in range(self.params.controlled_vehicles)]
        self.agents = list(self.possible_agents)
        self._obs_space = _observation_space(self.params)
        self._act_space = _action_space(self.params)
        self.core = HighwayCore(self.params, 1)
        self._rng = np.random.default_rng()
        self._alive = np.ones(self.params.controlled_vehicles, dtype=bool)

    def observation_space(self, agent: str) -> gym.Space:
        return self._obs_space

    def action_space(self, agent: str) -> gym.Space:
        return self._act_space

    def _observations(self) -> dict[str, np.ndarray]:
        per_vehicle = self.core.kinematics() if self.params.observation == "kinematics" else self.core.occupancy()
        flat = per_vehicle[0].reshape(self.params.controlled_vehicles, -1).astype(np.float32)  # (K, D)
        return {a: flat[k] for k, a in enumerate(self.possible_agents) if a in self.agents}

    def _infos(self, terms: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
        metrics = {**self.core.metrics(), **terms}
        if self.params.action == "discrete":
            metrics["action_mask"] = self.core.action_mask()
        out = {}
        for k, a in enumerate(self.possible_agents):
            if a in self.agents:
                out[a] = {name: (v[0, k].copy() if v[0, k].ndim else v[0, k].item()) for name, v in metrics.items()}
        return out

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        if seed is not None:
            self._rng = gym.utils.seeding.np_random(seed)[0]
        self.core.reset_rows(np.array([0]), [self._rng])
        self.agents = list(self.possible_agents)
        self._alive[:] = True
        _, terms = self.core.rewards(None)
        return self._observations(), self._infos(terms)

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        K = self.params.controlled_vehicles
        batch: np.ndarray
        if self.params.action == "discrete":
            batch = np.full((1, K), IDLE, dtype=np.int64)  # finished agents' wrecks ignore actions anyway
        else:
            batch = np.zeros((1, K, 2))
        for k, a in enumerate(self.possible_agents):
            if a in actions and self._alive[k]:
                batch[0, k] = actions[a]
        self.core.advance(batch)
        reward, terms = self.core.rewards(batch)
        terminated, truncated = self.core.terminated()[0], bool(self.core.truncated()[0])
        live = [a for k, a in enumerate(self.possible_agents) if self._alive[k]]
        rewards = {a: float(reward[0, int(a.split("_")[1])]) for a in live}
        terminations = {a: bool(terminated[int(a.split("_")[1])]) for a in live}
        truncations = {a: truncated for a in live}
        observations, infos = self._observations(), self._infos(terms)
        self._alive &= ~terminated
        self.agents = [a for a in live if not (terminations[a] or truncations[a])]
        return observations, rewards, terminations, truncations, infos

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return render_frame(self.core, 0, 0.0)

    def close(self) -> None:
        pass


def highway_parallel_env(**kwargs: Any) -> HighwayParallelEnv:
    """The multi-agent Highway (PettingZoo Parallel API); see HighwayParallelEnv."""
    return HighwayParallelEnv(**kwargs)
