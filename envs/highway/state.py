"""Highway's state: N highways of V vehicles as (N, V) arrays (vehicles 0..K-1 are the controlled ones).

A plain dataclass that the core's step updates in place (`HighwayCore.step(state, action)`): a fresh
State every substep would allocate all of it five times a decision. Everything else the core keeps
(index arrays, scratch buffers, the sort and trigonometry of the current arrays) is a cache, refilled
from the State each step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlsuite.envs.highway.params import HighwayParams


@dataclass
class HighwayState:
    """Every array has the rows (envs) first; E envs, V vehicles, K controlled ones."""

    x: np.ndarray
    """(E, V) longitudinal position [m]."""
    y: np.ndarray
    """(E, V) lateral position [m]; lane l is centred on l * lane_width."""
    heading: np.ndarray
    """(E, V) [rad]."""
    speed: np.ndarray
    """(E, V) [m/s]."""
    target_lane: np.ndarray
    """(E, V) the lane each vehicle steers to."""
    desired_speed: np.ndarray
    """(E, V) IDM's desired speed, or the controlled vehicles' target speed [m/s]."""
    delta: np.ndarray
    """(E, V) IDM's acceleration exponent."""
    politeness: np.ndarray
    """(E, V) MOBIL's politeness."""
    timer: np.ndarray
    """(E, V) time since the last lane-change decision [s]."""
    crashed: np.ndarray
    """(E, V) bool."""
    speed_index: np.ndarray
    """(E, K) the controlled vehicles' index into target_speeds."""
    steps: np.ndarray
    """(E,) decisions into the episode."""
    x_start: np.ndarray
    """(E, K) x of the controlled vehicles at reset [m]."""
    lane_changes: np.ndarray
    """(E, K) lane changes so far."""
    continuous: np.ndarray
    """(E, K, 2) the continuous action held over the decision: acceleration [m/s^2], steering [rad]."""
    min_ttc: np.ndarray
    """(E, K) smallest time-to-collision of the last decision [s]."""
    frames: np.ndarray | None
    """(E, frame_stack, S, S) uint8 stacked frames of the pixel observations; None without them."""


def init_state(params: HighwayParams, num_envs: int) -> HighwayState:
    """The State of `num_envs` rows before any reset."""
    E, V, K = num_envs, params.num_vehicles, params.controlled_vehicles
    frames = None
    if params.observation in ("pixels", "dict"):
        frames = np.zeros((E, params.frame_stack, params.image_size, params.image_size), dtype=np.uint8)
    return HighwayState(
        x=np.zeros((E, V)), y=np.zeros((E, V)), heading=np.zeros((E, V)), speed=np.zeros((E, V)),
        target_lane=np.zeros((E, V), dtype=np.int64), desired_speed=np.zeros((E, V)), delta=np.full((E, V), 4.0),
        politeness=np.zeros((E, V)), timer=np.zeros((E, V)), crashed=np.zeros((E, V), dtype=bool),
        speed_index=np.zeros((E, K), dtype=np.int64), steps=np.zeros(E, dtype=np.int64), x_start=np.zeros((E, K)),
        lane_changes=np.zeros((E, K), dtype=np.int64), continuous=np.zeros((E, K, 2)), min_ttc=np.full((E, K), np.inf),
        frames=frames)
