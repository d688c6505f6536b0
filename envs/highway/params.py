"""Highway's parameters: highway-env's vehicle, controller and IDM/MOBIL constants, and `HighwayParams`,
every knob of an env (all of them can be passed to gym.make)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ACCELERATION_RANGE", "ACC_MAX", "ACTIONS", "ACTION_KINDS", "COMFORT_ACC_MAX", "COMFORT_ACC_MIN", "DISTANCE_WANTED", "FASTER", "GRID_CELLS", "GRID_FEATURES", "GRID_HALF", "GRID_STEP", "HighwayParams", "IDLE", "KIN_FEATURES", "LANE_CHANGE_MAX_BRAKING_IMPOSED", "LANE_CHANGE_MIN_ACC_GAIN", "LANE_LEFT", "LANE_MARGIN", "LANE_RIGHT", "LENGTH", "MAX_SPEED", "MAX_STEERING", "OBSERVATIONS", "PERCEPTION_DISTANCE", "PIX_EGO", "PIX_LINE", "PIX_ROAD", "PIX_TRAFFIC", "SLOWER", "STEERING_RANGE", "TAU_ACC", "TAU_HEADING", "TAU_LATERAL", "TIME_WANTED", "WIDTH", "fields_of"]

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
    end_position: float | None = None
    """x [m] past which a controlled vehicle's episode terminates, as merge-v0's does once its ego has passed the
    ramp (x > 370 m, 60 m beyond the ramp's end); None: episodes end on a crash or after `duration` only."""
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
    ramp_merge_length: float | None = None
    """With merge_ramp: ramp vehicles merge only beside the ramp's last `ramp_merge_length` metres and only when
    MOBIL's incentive pays, as merge-v0's (80 m); None: anywhere on the ramp, whenever it is safe (mandatory)."""
    collision_scope: str = "all"
    """'all': every pair of vehicles can collide; 'controlled': only pairs with a controlled vehicle (both crash),
    traffic-traffic pairs are never checked, as in highway-fast-v0 (rlsuite/Highway-Fast-v0); O(V) per env."""
    collision_reward: float = -1.0
    right_lane_reward: float = 0.1
    high_speed_reward: float = 0.4
    lane_change_reward: float = 0.0
    merging_speed_reward: float = 0.0
    """Weight of merge-v0's altruistic term (merge-v0: -0.5; needs merge_ramp): the sum, over the traffic vehicles on
    the ramp beside its merge section (its last `ramp_merge_length` metres; all of it when None), of (desired speed -
    speed) / desired speed. With normalize_reward it lowers the low end of the map, as merge-v0's does."""
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
        if self.end_position is not None and not 0 < self.end_position <= self.road_length:
            fail(f"end_position must be None or an x in (0, road_length={self.road_length}] metres, got {self.end_position}.")
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
        if self.ramp_merge_length is not None and not 0 < self.ramp_merge_length <= self.ramp_end:
            fail(f"ramp_merge_length must be None or in (0, ramp_end={self.ramp_end}] metres, got {self.ramp_merge_length}.")
        if self.merging_speed_reward and not self.merge_ramp:
            fail("merging_speed_reward needs merge_ramp=True (it weighs the speed of the ramp's vehicles).")
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
    def merge_section_start(self) -> float:
        """x [m] from which ramp vehicles may merge: the ramp's last `ramp_merge_length` metres, or all of it."""
        return -np.inf if self.ramp_merge_length is None else self.ramp_end - self.ramp_merge_length

    @property
    def substeps(self) -> int:
        return self.simulation_frequency // self.policy_frequency

    @property
    def dt(self) -> float:
        return 1.0 / self.simulation_frequency

    @property
    def max_steps(self) -> int:
        return int(round(self.duration * self.policy_frequency))


def fields_of(kwargs: dict[str, Any]) -> HighwayParams:
    names = {f.name for f in dataclasses.fields(HighwayParams)}
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise ValueError(f"Highway: unknown argument(s) {', '.join(unknown)}; accepted: {', '.join(sorted(names))}.")
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}  # YAML lists
    return HighwayParams(**values)

