"""Highway's scripted drivers (IDM, IDM + MOBIL) that read the observation like any agent; agents/registry.py
wraps them as baselines."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from rlsuite.envs.highway.dynamics import idm_acceleration
from rlsuite.envs.highway.params import (
    FASTER,
    IDLE,
    KIN_FEATURES,
    LANE_LEFT,
    LANE_RIGHT,
    LENGTH,
    MAX_SPEED,
    PERCEPTION_DISTANCE,
    SLOWER,
    HighwayParams,
)


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

