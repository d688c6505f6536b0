"""rlsuite driving policies in highway-env: our kinematics observation computed from highway-env's vehicles.

highway-env's Kinematics observation and ours share features, ranges and the relative frame, but three
details differ, so the adapter computes our layout from the simulator's vehicles instead of configuring
highway-env's observation: (1) its ego row holds the absolute x (normalised and clipped, so near 1
after 200 m), ours 0; (2) it ranks the other vehicles by longitudinal distance |dx|, ours by Euclidean
distance; (3) it has no heading by default and would not normalise it. Ours, per vehicle row:
(presence, x / 200, y / (lanes x 4 m), vx / 80, vy / 80, heading / pi), relative to the ego except the
ego's y, vx, vy and every heading, clipped to [-1, 1]; the ego, then the `obs_vehicles - 1` nearest
vehicles within 200 m and no further than 10 m behind (`see_behind=False`); empty rows 0.
Meta-actions are the same five in the same order (0 LANE_LEFT, 1 IDLE, 2 LANE_RIGHT, 3 FASTER,
4 SLOWER) with the same target speeds (20, 25, 30 m/s), so actions pass through unchanged.
Only vehicles are read, not road objects (merge-v0's obstacle at the ramp's end): our env's
observation does not list its ramp's end either.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

PERCEPTION_DISTANCE = 200.0  # [m] 5 x highway-env's Vehicle.MAX_SPEED (40 m/s), both simulators
MAX_SPEED = 40.0  # [m/s]
LENGTH = 5.0  # [m]
ORDERS = ("euclidean", "longitudinal")  # ours; highway-env's


def vehicle_states(env: gym.Env) -> np.ndarray:
    """(V, 5) x, y, vx, vy, heading of every vehicle on highway-env's road, the ego first."""
    base = env.unwrapped
    ego = base.vehicle
    others = [v for v in base.road.vehicles if v is not ego]
    return np.array([[*v.position, *v.velocity, v.heading] for v in [ego, *others]], dtype=np.float64)


def kinematics(states: np.ndarray, obs_vehicles: int = 5, lanes_count: int = 3, lane_width: float = 4.0,
               see_behind: bool = False, order: str = "euclidean") -> np.ndarray:
    """(obs_vehicles * 6,) our kinematics observation from (V, 5) vehicle states, ego in row 0.

    A plain loop-free NumPy rewrite of the rule in the env's docstring (a second implementation: the
    tests compare it with our env's own). `order="longitudinal"` ranks by |dx| as highway-env does.
    """
    if order not in ORDERS:
        raise ValueError(f"Unknown order {order!r}; accepted: {', '.join(ORDERS)}.")
    ego, others = states[0], states[1:]
    d = others[:, :2] - ego[:2]  # (V-1, 2) [m]
    dist = np.hypot(d[:, 0], d[:, 1])
    visible = dist <= PERCEPTION_DISTANCE
    if not see_behind:
        visible &= d[:, 0] > -2 * LENGTH
    key = np.where(visible, dist if order == "euclidean" else np.abs(d[:, 0]), np.inf)
    nearest = np.argsort(key, kind="stable")[: obs_vehicles - 1]
    nearest = nearest[np.isfinite(key[nearest])]
    rows = np.zeros((obs_vehicles, 6))
    rows[0, 0] = 1.0
    rows[0, 1:] = [0.0, *ego[1:]]  # the ego's x is 0 in its own frame
    rows[1:1 + len(nearest), 0] = 1.0
    rows[1:1 + len(nearest), 1:5] = others[nearest, :4] - ego[:4]
    rows[1:1 + len(nearest), 5] = others[nearest, 4]
    rows[:, 5] = (rows[:, 5] + np.pi) % (2 * np.pi) - np.pi
    rows[1 + len(nearest):, 5] = 0.0
    scale = np.array([1.0, PERCEPTION_DISTANCE, lanes_count * lane_width, 2 * MAX_SPEED, 2 * MAX_SPEED, np.pi])
    return np.clip(rows / scale, -1.0, 1.0).ravel().astype(np.float32)


class OursInHighwayEnv(gym.ObservationWrapper):
    """highway-env with rlsuite's kinematics observation (actions unchanged)."""

    def __init__(self, env: gym.Env, obs_vehicles: int = 5, order: str = "euclidean",
                 lanes_count: int | None = None) -> None:
        """`lanes_count` scales y as the policy's env does (its main lanes); by default the peer's
        `lanes_count` setting, which merge-v0 lacks (2 main lanes and a ramp: pass 2)."""
        super().__init__(env)
        config = env.unwrapped.config
        if lanes_count is None and "lanes_count" not in config:
            raise ValueError(f"{env.unwrapped.spec.id if env.unwrapped.spec else env} has no lanes_count setting: "
                             f"pass lanes_count (the main lanes of the env the policy was trained in).")
        self.obs_vehicles, self.order = obs_vehicles, order
        self.lanes_count = int(config["lanes_count"] if lanes_count is None else lanes_count)
        self.lane_width = 4.0
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (obs_vehicles * 6,), np.float32)

    def observation(self, observation: Any) -> np.ndarray:
        return kinematics(vehicle_states(self.env), self.obs_vehicles, self.lanes_count, self.lane_width,
                          order=self.order)
