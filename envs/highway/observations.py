"""Highway's observations (kinematics rows, occupancy grid, top-down pixels), spaces and step info, as
functions of the core's state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from rlsuite.envs.highway.params import (
    ACTIONS,
    GRID_CELLS,
    GRID_FEATURES,
    GRID_HALF,
    GRID_STEP,
    KIN_FEATURES,
    LENGTH,
    MAX_SPEED,
    PERCEPTION_DISTANCE,
    PIX_EGO,
    PIX_LINE,
    PIX_ROAD,
    PIX_TRAFFIC,
    WIDTH,
    HighwayParams,
)

if TYPE_CHECKING:
    from rlsuite.envs.highway.dynamics import HighwayCore
    from rlsuite.envs.highway.state import HighwayState


def kinematics(core: HighwayCore, st: HighwayState) -> np.ndarray:
    """(E, K, obs_vehicles, 6) normalised kinematics rows for each controlled vehicle."""
    p, K, N = core.p, core.p.controlled_vehicles, core.p.obs_vehicles
    E, V = st.x.shape
    feats = np.empty((5, E, V))  # x, y, vx, vy, heading
    feats[0], feats[1], feats[4] = st.x, st.y, st.heading
    np.multiply(core._cos_sin(st), st.speed, out=feats[2:4])
    ego = feats[:, :, :K]  # (5, E, K)
    d = feats[:2, :, None, :] - ego[:2, :, :, None]  # (2, E, K, V) [m]
    dist = np.hypot(d[0], d[1])
    visible = dist <= PERCEPTION_DISTANCE
    if not p.see_behind:
        visible &= d[0] > -2 * LENGTH
    visible &= core._not_self  # (K, V)
    key = np.where(visible, dist, np.inf)
    nearest = np.argsort(key, axis=2, kind="stable")[:, :, : N - 1]  # (E, K, N-1)
    present = key.take(nearest + core._kin_off) < np.inf  # (E, K, N-1)
    rows = np.empty((5, E, K, N))  # features first
    rows[:, :, :, 0] = ego
    rows[:, :, :, 1:] = feats.reshape(5, E * V).take(nearest + core._off_v[:, :, None], axis=1)
    if not p.absolute:
        rows[:4, :, :, 1:] -= ego[:4, :, :, None]
        rows[0, :, :, 0] = 0.0
    rows[:, :, :, 1:] *= present  # empty rows are 0
    rows[4] += np.pi
    rows[4] %= 2 * np.pi
    rows[4] -= np.pi
    rows /= core._kin_scale  # (5, 1, 1, 1)
    out = np.empty((E, K, N, 6))
    out[:, :, 0, 0] = 1.0
    out[:, :, 1:, 0] = present
    out[..., 1:] = rows.transpose(1, 2, 3, 0)
    np.maximum(out, -1.0, out=out)
    return np.minimum(out, 1.0, out=out)

def occupancy(core: HighwayCore, st: HighwayState) -> np.ndarray:
    """(E, K, 4, 11, 11) occupancy grid around each controlled vehicle, road-aligned."""
    K = core.p.controlled_vehicles
    E, V = st.x.shape
    grid = np.zeros((E, K, len(GRID_FEATURES), GRID_CELLS, GRID_CELLS))
    centres = (np.arange(GRID_CELLS) + 0.5) * GRID_STEP - GRID_HALF  # [m] cell centres relative to the ego
    y_cells = st.y[:, :K, None] + centres  # (E, K, C) absolute lateral position of each cell row
    x_cells = st.x[:, :K, None] + centres  # (E, K, C)
    grid[:, :, 3] = core.road_at(x_cells[:, :, None, :], y_cells[:, :, :, None])  # (E, K, rows, cols)
    dx = st.x[:, None, :] - st.x[:, :K, None]  # (E, K, V)
    dy = st.y[:, None, :] - st.y[:, :K, None]
    col = np.floor((dx + GRID_HALF) / GRID_STEP).astype(np.int64)
    row = np.floor((dy + GRID_HALF) / GRID_STEP).astype(np.int64)
    inside = (col >= 0) & (col < GRID_CELLS) & (row >= 0) & (row < GRID_CELLS)
    e, k, v = np.nonzero(inside)
    vx, vy = st.speed * np.cos(st.heading), st.speed * np.sin(st.heading)
    r, c = row[e, k, v], col[e, k, v]
    grid[e, k, 0, r, c] = 1.0
    grid[e, k, 1, r, c] = np.clip((vx[e, v] - vx[e, k]) / (2 * MAX_SPEED), -1, 1)
    grid[e, k, 2, r, c] = np.clip((vy[e, v] - vy[e, k]) / (2 * MAX_SPEED), -1, 1)
    return grid

def pixels(core: HighwayCore, st: HighwayState) -> np.ndarray:
    """(E, S, S) grayscale top-down image around controlled vehicle 0, rasterised with two matmuls.

    Pixel centres map to world coordinates; a vehicle lights the pixels whose centre lies in its
    (axis-aligned) footprint: image = rows (E, S, V) @ cols (E, V, S), one product per row."""
    p, S = core.p, core.p.image_size
    scale = p.image_scale  # [px/m]
    centre = (np.arange(S) + 0.5 - S / 2) / scale  # [m] pixel centres relative to the ego
    wx = st.x[:, :1] + centre + S * 0.2 / scale  # (E, S) ego drawn at 30% from the left
    wy = st.y[:, :1] + centre  # (E, S)
    in_rows = np.abs(wy[:, :, None] - st.y[:, None, :]) <= WIDTH / 2  # (E, S, V)
    in_cols = np.abs(wx[:, None, :] - st.x[:, :, None]) <= LENGTH / 2  # (E, V, S)
    level = np.where(np.arange(st.x.shape[1]) == 0, PIX_EGO, PIX_TRAFFIC)  # (V,)
    cars = np.matmul(in_rows.astype(np.float32) * level.astype(np.float32), in_cols.astype(np.float32))  # (E, S, S)
    road = core.road_at(wx[:, None, :], wy[:, :, None])  # (E, S, S)
    lines = np.zeros(wy.shape, dtype=bool)  # (E, S)
    half_px = 0.5 / scale
    for boundary in (np.arange(p.lanes_count + 1) - 0.5) * p.lane_width:
        lines |= np.abs(wy - boundary) <= half_px
    background = np.where(lines[:, :, None] & road, PIX_LINE, np.where(road, PIX_ROAD, 0)).astype(np.float32)
    img = np.where(cars > 0, np.minimum(cars, 255), background)
    return img.astype(np.uint8)


def observation_space(p: HighwayParams) -> gym.Space:
    kin = gym.spaces.Box(-1.0, 1.0, (p.obs_vehicles * len(KIN_FEATURES),), np.float32)
    pix = gym.spaces.Box(0, 255, (p.frame_stack, p.image_size, p.image_size), np.uint8)
    if p.observation == "kinematics":
        return kin
    if p.observation == "occupancy":
        return gym.spaces.Box(-1.0, 1.0, (len(GRID_FEATURES) * GRID_CELLS * GRID_CELLS,), np.float32)
    if p.observation == "pixels":
        return pix
    return gym.spaces.Dict({"kinematics": kin, "pixels": pix})


def action_space(p: HighwayParams) -> gym.Space:
    if p.action == "discrete":
        return gym.spaces.Discrete(len(ACTIONS))
    return gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


def observe(core: HighwayCore, st: HighwayState) -> Any:
    """Batched observations of controlled vehicle 0: (E, ...) arrays or a dict of them."""
    p, E = core.p, core.num_envs
    if p.observation == "kinematics":
        return kinematics(core, st)[:, 0].reshape(E, -1).astype(np.float32)
    if p.observation == "occupancy":
        return occupancy(core, st)[:, 0].reshape(E, -1).astype(np.float32)
    assert st.frames is not None
    if p.observation == "pixels":
        return st.frames.copy()
    return {"kinematics": kinematics(core, st)[:, 0].reshape(E, -1).astype(np.float32), "pixels": st.frames.copy()}


def step_info(core: HighwayCore, st: HighwayState, terms: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-env info arrays of controlled vehicle 0."""
    info = {name: value[:, 0] for name, value in core.metrics(st).items()}
    info.update({name: value[:, 0] for name, value in terms.items()})
    if core.p.action == "discrete":
        info["action_mask"] = core.action_mask(st)[:, 0]
    return info
