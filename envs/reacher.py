"""Reacher: a planar arm of 2 (or 3) rigid links, driven by joint torques, reaches for a target.

## Description
A torque-driven planar arm with real rigid-body dynamics, as in Gymnasium's MuJoCo `Reacher-v5` but
written in NumPy and batched over many arms: each link is a uniform rod (mass `m`, length `l`, inertia
`m l^2 / 12` about its centre), joints have viscous damping, every joint but the shoulder has a hard
limit, and gravity can act in the arm's plane (0 by default: the arm lies on a table, as in Reacher).

The equations of motion are those of the Lagrangian `L = T - V` in the joint angles `q`:

    M(q) q'' + c(q, q') + g(q) = tau - d q'

The mass matrix comes from the absolute link angles `phi = T q` (`T` lower-triangular ones): the kinetic
energy is `1/2 phi'^T G(phi) phi'` with `G_ab = A_ab cos(phi_a - phi_b) + I_a delta_ab`, where
`A_ab = sum_{k >= max(a, b)} m_k r_ka r_kb` and `r_ka` is the lever of link `a` in the position of link
`k`'s centre (`l_a` for `a < k`, `l_k / 2` for `a = k`); then `M = T^T G T`, `c = T^T h` with
`h_a = sum_b A_ab sin(phi_a - phi_b) phi_b'^2`, and `g = T^T (grav * B * cos(phi))` with
`B_a = sum_{k >= a} m_k r_ka`. tests/test_reacher.py checks this against the Lagrangian evaluated by
finite differences from forward kinematics.

Integrator: classic fourth-order Runge-Kutta on (q, q'), `substeps` sub-steps per control step of
`dt` = 0.02 s (Reacher-v5 also integrates with RK4), torques held over the step. 1 sub-step for the
2-link arm, 2 for the 3-link arm, twice that with gravity (semi-implicit Euler is not symplectic here,
the kinetic energy depending on q, and drifts by 10-60% in 10 s of free motion). With no torque and no
damping RK4 keeps the energy within 1% (2 links) and 3% (3 links) over 10 s of free motion from speeds
up to 5 rad/s (tests/test_reacher.py). At a joint limit the angle is clamped and the velocity into the
limit is removed (an inelastic stop).

In code, as in gymnax: `ArmParams` and `TaskParams` (frozen) are the parameters, `ReacherState` the state
of N arms (arrays, rows first), and `ReacherCore.step(state, action)` the step, gymnax's
`step(state, action, params)` with the params bound to the core. It updates the State in place rather than
returning a new one (a fresh State a step would cost more than the step itself for a few arms).

## Action space
`Box(-1, 1, (num_links,), float32)`: joint torques as fractions of `max_torque` (N m).

## Observation space
`obs_mode="state"` (default), the layout of Gymnasium's Reacher-v5 (float32, `3 n + 4` entries for `n` links):

| index            | observation                                  | unit  |
|------------------|----------------------------------------------|-------|
| 0 .. n-1         | cos of each joint angle                      |       |
| n .. 2n-1        | sin of each joint angle                      |       |
| 2n, 2n+1         | target x, y                                  | m     |
| 2n+2 .. 3n+1     | joint angular velocities                     | rad/s |
| 3n+2, 3n+3       | fingertip minus target, x and y              | m     |

`obs_mode="pixels"`: a top-down `(64, 64, 3)` uint8 render of arm and target.
`obs_mode="goal"`: a Dict for hindsight experience replay: `observation` (cos, sin, joint velocities),
`achieved_goal` (fingertip x, y), `desired_goal` (target x, y); `compute_reward` recomputes rewards for
relabelled goals.

## Rewards
As Reacher: `-|fingertip - target| (m) - ctrl_cost_weight * sum(action^2)`.
`info`: `is_success` (fingertip within `success_tolerance` of the target), `distance` (m),
`control_effort` (`sum(action^2)`).

## Starting state
Joint angles uniform in [-0.1, 0.1] rad, velocities uniform in [-0.005, 0.005] rad/s (as Reacher); the
target is uniform over the reachable annulus `[inner_radius, 0.95 * reach]` (by area).

## Episode end
No termination; truncation after `max_episode_steps` (50) steps, 1 s of simulated time.

## Arguments
`gym.make("rlsuite/Reacher-v0", num_links=2, gravity=0.0, obs_mode="state", max_episode_steps=50,
success_tolerance=0.02, ctrl_cost_weight=0.1)`; `rlsuite/Reacher3Link-v0`, `rlsuite/ReacherPixels-v0`
and `rlsuite/ReacherGoal-v0` preset `num_links=3`, `obs_mode="pixels"` and `obs_mode="goal"`.
`gym.make_vec(..., vectorization_mode="vector_entry_point")` gives the NumPy-batched core on envs/vector.py's
base (next-step autoreset), row i equal to a single env reset with seed + i.

## Version history
- v0: first version.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import gymnasium as gym
import numpy as np

from rlsuite.envs.vector import CoreEnv, NumpyVectorEnv

ObsMode = Literal["state", "pixels", "goal"]
OBS_MODES: tuple[str, ...] = ("state", "pixels", "goal")
PIXELS = 64
"""Side of the pixel observation (px)."""


@dataclass(frozen=True)
class ArmParams:
    """Physical parameters of the arm; everything derived from them is computed in `__post_init__`."""

    link_lengths: tuple[float, ...] = (0.1, 0.11)
    """m; Reacher's 0.1 and 0.11 for two links."""
    link_masses: tuple[float, ...] = (0.1, 0.1)
    """kg, uniform rods."""
    damping: float = 0.005
    """Viscous joint damping, N m s / rad."""
    max_torque: float = 0.1
    """Torque of a unit action, N m."""
    gravity: float = 0.0
    """m/s^2 along -y in the arm's plane; 0 is an arm lying on a table."""
    joint_limit: float | None = 3.0
    """rad, |q_i| <= joint_limit for every joint but the shoulder (Reacher's elbow range); None: no limits."""
    dt: float = 0.02
    """Control period, s (Reacher: 0.01 s timestep x frame skip 2)."""
    substeps: int = 1
    """RK4 sub-steps per control period."""
    A: np.ndarray = field(init=False, repr=False)
    B: np.ndarray = field(init=False, repr=False)
    inertia: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = len(self.link_lengths)
        if n not in (2, 3) or len(self.link_masses) != n:
            raise ValueError(
                f"the arm needs 2 or 3 links with one mass each, got lengths {self.link_lengths} and masses "
                f"{self.link_masses}."
            )
        if min(self.link_lengths) <= 0 or min(self.link_masses) <= 0 or self.substeps < 1 or self.dt <= 0:
            raise ValueError("link lengths, masses, dt and substeps must be positive.")
        length, mass = np.array(self.link_lengths), np.array(self.link_masses)
        lever = np.zeros((n, n))  # lever[k, a]: arm of link a in the position of link k's centre, m
        for k in range(n):
            lever[k, :k] = length[:k]
            lever[k, k] = length[k] / 2
        # A_ab = sum_k m_k r_ka r_kb (zero rows of lever make the k >= max(a, b) bound automatic), kg m^2
        object.__setattr__(self, "A", np.einsum("k,ka,kb->ab", mass, lever, lever))
        object.__setattr__(self, "B", mass @ lever)  # B_a = sum_k m_k r_ka, kg m
        object.__setattr__(self, "inertia", mass * length**2 / 12)  # about each centre, kg m^2

    @property
    def num_links(self) -> int:
        return len(self.link_lengths)

    @property
    def reach(self) -> float:
        return float(sum(self.link_lengths))


def default_params(num_links: int = 2, gravity: float = 0.0) -> ArmParams:
    """The arms behind the registered ids. Gravity swings these light links at ~10 rad/s, so an arm with
    gravity takes twice the RK4 sub-steps (RK4's error falls 16-fold)."""
    extra = 2 if gravity else 1
    if num_links == 2:
        return ArmParams(gravity=gravity, substeps=extra)
    if num_links == 3:
        # Short light links have fast damping modes (damping / inertia, 1/s); RK4 needs h * that well below
        # 2.8, hence less damping and two sub-steps.
        return ArmParams(link_lengths=(0.08, 0.07, 0.06), link_masses=(0.1, 0.1, 0.1), damping=0.002, gravity=gravity,
                         substeps=2 * extra)
    raise ValueError(f"num_links must be 2 or 3, got {num_links}.")


# ----------------------------------------------------------------------------------------------- dynamics
# One implementation of the equations of motion, on joint "columns": q[i] is joint i's angle, a float for
# one arm or an (N,) array for a batch. Python floats with `math` step a single arm several times faster
# than NumPy on (1, n) arrays (NumPy costs about 1 us a call); (N,) columns keep every batched operation
# contiguous. The array functions further down wrap it for (N, n) arrays.

Column = Any  # float, or an (N,) float64 array


class Arm:
    """The arm's dynamics on joint columns: `Arm(p, batched=False)` for floats, `batched=True` for (N,) arrays."""

    def __init__(self, p: ArmParams, batched: bool) -> None:
        self.p, self.n, self.batched = p, p.num_links, batched
        self.A, self.B, self.inertia = p.A.tolist(), p.B.tolist(), p.inertia.tolist()
        self.cos: Any = np.cos if batched else math.cos
        self.sin: Any = np.sin if batched else math.sin

    def terms(self, q: list[Column], qd: list[Column]) -> tuple[list[list[Column]], list[Column]]:
        """M(q) (n x n, kg m^2) and c(q, q') + g(q) (n, N m), via absolute angles (module docstring)."""
        n, A, cos, sin = self.n, self.A, self.cos, self.sin
        phi, phid = list(q), list(qd)
        for i in range(1, n):
            phi[i] = phi[i - 1] + q[i]  # rad, absolute link angles
            phid[i] = phid[i - 1] + qd[i]  # rad/s
        G: list[list[Column]] = [[0.0] * n for _ in range(n)]
        h: list[Column] = [0.0] * n
        speed2 = [v * v for v in phid]  # (rad/s)^2
        for a in range(n):
            G[a][a] = A[a][a] + self.inertia[a]
            for b in range(a + 1, n):
                diff = phi[a] - phi[b]
                G[a][b] = G[b][a] = A[a][b] * cos(diff)
                a_sin = A[a][b] * sin(diff)
                h[a] = h[a] + a_sin * speed2[b]
                h[b] = h[b] - a_sin * speed2[a]
            if self.p.gravity:
                h[a] = h[a] + self.p.gravity * self.B[a] * cos(phi[a])
        # M = T^T G T and c + g = T^T h: suffix sums over a >= i (and b >= j)
        for a in range(n - 2, -1, -1):
            h[a] = h[a] + h[a + 1]
            G[a] = [G[a][b] + G[a + 1][b] for b in range(n)]
        for row in G:
            for b in range(n - 2, -1, -1):
                row[b] = row[b] + row[b + 1]
        return G, h

    def accelerations(self, q: list[Column], qd: list[Column], tau: list[Column]) -> list[Column]:
        """q'' = M^-1 (tau - c - g - d q'), rad/s^2, with tau in N m."""
        n = self.n
        M, bias = self.terms(q, qd)
        rhs = [tau[i] - bias[i] - self.p.damping * qd[i] for i in range(n)]
        if n == 2:
            det = M[0][0] * M[1][1] - M[0][1] * M[1][0]  # > 0: M is positive definite
            return [(M[1][1] * rhs[0] - M[0][1] * rhs[1]) / det, (M[0][0] * rhs[1] - M[1][0] * rhs[0]) / det]
        for col in range(n):  # Gaussian elimination; M is positive definite, so no pivoting is needed
            for r in range(col + 1, n):
                f = M[r][col] / M[col][col]
                M[r] = [M[r][c] - f * M[col][c] for c in range(n)]
                rhs[r] = rhs[r] - f * rhs[col]
        x: list[Column] = [0.0] * n
        for r in range(n - 1, -1, -1):
            acc = rhs[r]
            for c in range(r + 1, n):
                acc = acc - M[r][c] * x[c]
            x[r] = acc / M[r][r]
        return x

    def integrate(self, q: list[Column], qd: list[Column], tau: list[Column]) -> tuple[list[Column], list[Column]]:
        """One control period with torques `tau` (N m) held: classic RK4 sub-steps, then joint limits."""
        h, lim, n = self.p.dt / self.p.substeps, self.p.joint_limit, self.n  # s, rad
        acc = self.accelerations
        for _ in range(self.p.substeps):
            a1 = acc(q, qd, tau)
            v2 = [qd[i] + 0.5 * h * a1[i] for i in range(n)]
            a2 = acc([q[i] + 0.5 * h * qd[i] for i in range(n)], v2, tau)
            v3 = [qd[i] + 0.5 * h * a2[i] for i in range(n)]
            a3 = acc([q[i] + 0.5 * h * v2[i] for i in range(n)], v3, tau)
            v4 = [qd[i] + h * a3[i] for i in range(n)]
            a4 = acc([q[i] + h * v3[i] for i in range(n)], v4, tau)
            q = [q[i] + h / 6 * (qd[i] + 2 * v2[i] + 2 * v3[i] + v4[i]) for i in range(n)]
            qd = [qd[i] + h / 6 * (a1[i] + 2 * a2[i] + 2 * a3[i] + a4[i]) for i in range(n)]
            if lim is None:
                continue
            for i in range(1, n):  # inelastic stop: clamp the angle, drop the velocity pushing further out
                if self.batched:
                    over = np.abs(q[i]) > lim
                    if over.any():
                        qd[i] = np.where(over & (qd[i] * q[i] > 0), 0.0, qd[i])
                        q[i] = np.clip(q[i], -lim, lim)
                elif abs(q[i]) > lim:
                    qd[i] = 0.0 if qd[i] * q[i] > 0 else qd[i]
                    q[i] = min(max(q[i], -lim), lim)
        return q, qd

    def fingertip(self, q: list[Column]) -> tuple[Column, Column]:
        """Fingertip x, y, m."""
        x: Column = 0.0
        y: Column = 0.0
        phi: Column = 0.0
        for angle, length in zip(q, self.p.link_lengths, strict=True):
            phi = phi + angle
            x = x + length * self.cos(phi)
            y = y + length * self.sin(phi)
        return x, y


def _columns(x: np.ndarray) -> list[np.ndarray]:
    return list(np.ascontiguousarray(np.asarray(x, dtype=np.float64).T))  # (N, n) -> n x (N,)


def mass_matrix(p: ArmParams, q: np.ndarray) -> np.ndarray:
    """M(q), (N, n, n), kg m^2, for q (N, n) rad."""
    M, _ = Arm(p, batched=True).terms(_columns(q), _columns(np.zeros_like(q)))
    return np.stack([np.stack(np.broadcast_arrays(*row, np.zeros(len(q)))[:-1], 1) for row in M], 1)


def bias_forces(p: ArmParams, q: np.ndarray, qd: np.ndarray) -> np.ndarray:
    """c(q, q') + g(q): Coriolis, centrifugal and gravity torques, (N, n), N m."""
    _, bias = Arm(p, batched=True).terms(_columns(q), _columns(qd))
    return np.stack(np.broadcast_arrays(*bias, np.zeros(len(q)))[:-1], 1)


def joint_accelerations(p: ArmParams, q: np.ndarray, qd: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """q'' (N, n), rad/s^2, for q (rad), q' (rad/s), tau (N m), each (N, n)."""
    return np.stack(Arm(p, batched=True).accelerations(_columns(q), _columns(qd), _columns(tau)), 1)


def integrate(p: ArmParams, q: np.ndarray, qd: np.ndarray, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One control period (RK4) for (N, n) arrays; see `Arm.integrate`."""
    qc, qdc = Arm(p, batched=True).integrate(_columns(q), _columns(qd), _columns(tau))
    return np.stack(qc, 1), np.stack(qdc, 1)


def energy(p: ArmParams, q: np.ndarray, qd: np.ndarray) -> np.ndarray:
    """Kinetic plus potential energy, (N,), J (potential 0 with every link horizontal)."""
    kinetic = 0.5 * np.einsum("ni,nij,nj->n", qd, mass_matrix(p, q), qd)
    phi = np.cumsum(q, axis=1)
    return kinetic + p.gravity * (p.B * np.sin(phi)).sum(1)


def fingertip(p: ArmParams, q: np.ndarray) -> np.ndarray:
    """Fingertip position, (N, 2), m."""
    return np.stack(Arm(p, batched=True).fingertip(_columns(q)), 1)


def joint_positions(p: ArmParams, q: np.ndarray) -> np.ndarray:
    """Base, every joint and the fingertip, (N, n + 1, 2), m."""
    phi = np.cumsum(q, axis=1)
    length = np.asarray(p.link_lengths)
    links = np.stack([length * np.cos(phi), length * np.sin(phi)], axis=2)  # (N, n, 2)
    return np.concatenate([np.zeros((len(q), 1, 2)), np.cumsum(links, axis=1)], axis=1)


# ------------------------------------------------------------------------------------------------ drawing


def arena_scale(p: ArmParams, size: int) -> float:
    """Pixels per metre of a (size, size) top-down render: the reach circle fills about 90% of the frame."""
    return size / (2.2 * p.reach)


def draw_arena(p: ArmParams, q: np.ndarray, target: np.ndarray, size: int,
               trace: np.ndarray | None = None) -> np.ndarray:
    """Top-down image (size, size, 3) uint8 of one arm (q: (n,)) and its target (2,); `trace`: (K, 2) m."""
    scale = arena_scale(p, size)  # px per m

    def px(xy: np.ndarray) -> np.ndarray:  # world (m, y up) -> pixel (x right, y down), subpixel shift 4
        return np.round(np.stack([size / 2 + xy[..., 0] * scale, size / 2 - xy[..., 1] * scale], -1) * 16).astype(np.int32)

    img = np.full((size, size, 3), 245, np.uint8)
    thick = max(1, size // 40)
    centre = (size // 2 * 16, size // 2 * 16)
    cv2.circle(img, centre, int(p.reach * scale * 16), (205, 205, 205), max(1, size // 128), cv2.LINE_AA, 4)
    if trace is not None and len(trace) > 1:
        cv2.polylines(img, [px(trace)], False, (120, 170, 240), max(1, size // 128), cv2.LINE_AA, 4)
    cv2.circle(img, tuple(px(target)), max(2, size // 20) * 16, (220, 40, 40), -1, cv2.LINE_AA, 4)
    points = px(joint_positions(p, q[None])[0])
    for a, b in zip(points[:-1], points[1:], strict=True):
        cv2.line(img, tuple(a), tuple(b), (40, 60, 90), thick, cv2.LINE_AA, 4)
    for point in points[:-1]:
        cv2.circle(img, tuple(point), thick * 16, (90, 90, 90), -1, cv2.LINE_AA, 4)
    cv2.circle(img, tuple(points[-1]), thick * 16, (40, 150, 60), -1, cv2.LINE_AA, 4)
    return img


# ------------------------------------------------------------------------------------------- the env core


@dataclass(frozen=True)
class TaskParams:
    """Task settings around the arm."""

    obs_mode: str = "state"
    max_episode_steps: int = 50
    success_tolerance: float = 0.02
    """m, fingertip-to-target distance that counts as reached."""
    ctrl_cost_weight: float = 0.1
    inner_radius: float = 0.05
    """m, targets lie at least this far from the base (and where the elbow limit allows)."""

    def __post_init__(self) -> None:
        if self.obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode must be one of {', '.join(OBS_MODES)}, got {self.obs_mode!r}.")
        if self.max_episode_steps < 1 or self.success_tolerance <= 0 or self.ctrl_cost_weight < 0:
            raise ValueError("max_episode_steps and success_tolerance must be positive, ctrl_cost_weight >= 0.")


def observation_space(p: ArmParams, task: TaskParams) -> gym.Space:
    n = p.num_links
    if task.obs_mode == "pixels":
        return gym.spaces.Box(0, 255, (PIXELS, PIXELS, 3), np.uint8)
    if task.obs_mode == "goal":
        goal = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        return gym.spaces.Dict({"observation": gym.spaces.Box(-np.inf, np.inf, (3 * n,), np.float32),
                                "achieved_goal": goal, "desired_goal": goal})
    return gym.spaces.Box(-np.inf, np.inf, (3 * n + 4,), np.float32)


@dataclass
class ReacherState:
    """N arms: what the step reads and writes (every array has the rows first)."""

    q: np.ndarray
    """(N, n) joint angles, rad."""
    qd: np.ndarray
    """(N, n) joint velocities, rad/s."""
    target: np.ndarray
    """(N, 2) target, m."""
    tip: np.ndarray
    """(N, 2) fingertip, m (a function of q, kept for the observation and reward)."""
    t: np.ndarray
    """(N,) steps into the episode."""


class ReacherCore:
    """The step of N arms (the single env is the N = 1 case) on a ReacherState: the params, their derived
    constants and nothing else (envs/vector.py's VectorCore)."""

    def __init__(self, num_envs: int, p: ArmParams, task: TaskParams) -> None:
        self.p, self.task, self.num_envs = p, task, num_envs
        # innermost point reachable with every joint within its limit, m
        elbow = np.pi if p.joint_limit is None else min(p.joint_limit, np.pi)
        l0, rest = p.link_lengths[0], sum(p.link_lengths[1:])
        self.min_radius = max(task.inner_radius, float(np.sqrt(l0**2 + rest**2 + 2 * l0 * rest * np.cos(elbow))))
        self.max_radius = 0.95 * p.reach

    def init_state(self) -> ReacherState:
        N, n = self.num_envs, self.p.num_links
        return ReacherState(np.zeros((N, n)), np.zeros((N, n)), np.zeros((N, 2)), np.zeros((N, 2)),
                            np.zeros(N, dtype=np.int64))

    def reset_rows(self, s: ReacherState, rows: np.ndarray, rngs: list[np.random.Generator]) -> None:
        n = self.p.num_links
        draws = np.stack([rng.random(2 * n + 2) for rng in rngs]) if len(rngs) else np.zeros((0, 2 * n + 2))
        # one draw per row from that row's own generator (row i == a single env seeded seed + i)
        s.q[rows] = -0.1 + 0.2 * draws[:, :n]  # rad, uniform in [-0.1, 0.1)
        s.qd[rows] = -0.005 + 0.01 * draws[:, n:2 * n]  # rad/s
        radius = np.sqrt(self.min_radius**2 + (self.max_radius**2 - self.min_radius**2) * draws[:, 2 * n])  # by area
        angle = np.pi * (2 * draws[:, 2 * n + 1] - 1)
        s.target[rows] = np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1)  # m
        s.tip[rows] = fingertip(self.p, s.q[rows])
        s.t[rows] = 0

    def observe(self, s: ReacherState) -> Any:
        n, mode = self.p.num_links, self.task.obs_mode
        if mode == "pixels":
            return np.stack([draw_arena(self.p, s.q[i], s.target[i], PIXELS) for i in range(self.num_envs)])
        if mode == "goal":
            return {"observation": np.concatenate([np.cos(s.q), np.sin(s.q), s.qd], 1).astype(np.float32),
                    "achieved_goal": s.tip.astype(np.float32), "desired_goal": s.target.astype(np.float32)}
        obs = np.empty((self.num_envs, 3 * n + 4), np.float32)  # (N, 3n + 4), Reacher-v5's layout
        obs[:, :n], obs[:, n:2 * n] = np.cos(s.q), np.sin(s.q)
        obs[:, 2 * n:2 * n + 2] = s.target
        obs[:, 2 * n + 2:3 * n + 2] = s.qd
        obs[:, 3 * n + 2:] = s.tip - s.target
        return obs

    def step(self, s: ReacherState, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Advance all rows of `s` in place: rewards, terminated (never), truncated and info for every row."""
        u = np.clip(np.asarray(actions, dtype=np.float64).reshape(self.num_envs, -1), -1.0, 1.0)  # (N, n)
        s.q, s.qd = integrate(self.p, s.q, s.qd, u * self.p.max_torque)
        s.t += 1
        s.tip = fingertip(self.p, s.q)
        distance = np.linalg.norm(s.tip - s.target, axis=1)  # (N,), m
        effort = (u**2).sum(1)  # (N,)
        info = {"is_success": distance < self.task.success_tolerance, "distance": distance, "control_effort": effort}
        if self.task.obs_mode == "goal":  # from the observed (float32) goals, so compute_reward reproduces it exactly
            rewards = compute_reward(s.tip.astype(np.float32), s.target.astype(np.float32), info,
                                     self.task.ctrl_cost_weight)
        else:
            rewards = -distance - self.task.ctrl_cost_weight * effort
        return rewards, np.zeros(self.num_envs, dtype=bool), s.t >= self.task.max_episode_steps, info

    def reset_info(self, s: ReacherState) -> dict[str, np.ndarray]:
        return {}


def compute_reward(achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any,
                   ctrl_cost_weight: float = 0.1) -> np.ndarray:
    """The step reward for (relabelled) goals, batched over leading axes: -distance - control cost.

    `info` is one step's info dict or a sequence of them (as HER buffers store them); its
    `control_effort` enters the control cost, and a missing `info` counts no control cost."""
    distance = np.linalg.norm(np.asarray(achieved_goal) - np.asarray(desired_goal), axis=-1)
    if isinstance(info, dict) and "control_effort" in info:
        effort = np.asarray(info["control_effort"])
    elif isinstance(info, list | tuple | np.ndarray) and len(info) and isinstance(info[0], dict):
        effort = np.array([i.get("control_effort", 0.0) for i in info])
    else:
        effort = np.zeros(())
    return -distance - ctrl_cost_weight * effort


def _params(num_links: int, gravity: float, joint_limit: float | None, obs_mode: str, max_episode_steps: int,
            success_tolerance: float, ctrl_cost_weight: float) -> tuple[ArmParams, TaskParams]:
    arm = default_params(num_links, gravity)
    if joint_limit != arm.joint_limit:
        arm = dataclasses.replace(arm, joint_limit=joint_limit)
    return arm, TaskParams(obs_mode, max_episode_steps, success_tolerance, ctrl_cost_weight)


class ReacherEnv(CoreEnv):
    """The single env: the core with one row, with rendering (arm, target, fingertip trace)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(self, num_links: int = 2, gravity: float = 0.0, joint_limit: float | None = 3.0,
                 obs_mode: ObsMode = "state", max_episode_steps: int = 50, success_tolerance: float = 0.02,
                 ctrl_cost_weight: float = 0.1, render_mode: str | None = None, render_size: int = 256) -> None:
        self.params, self.task = _params(num_links, gravity, joint_limit, obs_mode, max_episode_steps,
                                         success_tolerance, ctrl_cost_weight)
        super().__init__(ReacherCore(1, self.params, self.task))
        self.arm = Arm(self.params, batched=False)
        self.observation_space = observation_space(self.params, self.task)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (num_links,), np.float32)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}.")
        self.render_mode, self.render_size = render_mode, render_size
        self._trace: list[np.ndarray] = []
        self._has_reset = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        obs, info = super().reset(seed=seed, options=options)
        self._trace = [self.state.tip[0].copy()]
        self._has_reset = True
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        if not self._has_reset:  # what gym.make's OrderEnforcing says, for ids registered without it
            raise gym.error.ResetNeeded("Cannot call env.step() before calling env.reset()")
        if self.task.obs_mode != "state":
            out = super().step(action)
            self._trace.append(self.state.tip[0].copy())
            return out
        # The core's step in Python floats (Arm on floats): the same numbers, a few times faster for one arm
        # (tests/test_reacher.py checks it against the core).
        p, task, s = self.params, self.task, self.state
        u = [min(max(float(a), -1.0), 1.0) for a in np.asarray(action, dtype=np.float64).ravel()]
        q, qd = self.arm.integrate(s.q[0].tolist(), s.qd[0].tolist(), [a * p.max_torque for a in u])
        tip_x, tip_y = tip = self.arm.fingertip(q)
        s.q[0], s.qd[0], s.tip[0] = q, qd, tip
        s.t[0] += 1
        self._trace.append(np.array(tip))
        target = s.target[0].tolist()
        dx, dy = tip_x - target[0], tip_y - target[1]
        distance = math.sqrt(dx * dx + dy * dy)  # m
        effort = sum(a * a for a in u)
        reward = -distance - task.ctrl_cost_weight * effort
        obs = np.array([*map(math.cos, q), *map(math.sin, q), *target, *qd, dx, dy], dtype=np.float32)
        info = {"is_success": distance < task.success_tolerance, "distance": distance, "control_effort": effort}
        return obs, reward, False, bool(s.t[0] >= task.max_episode_steps), info

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        if self.render_mode != "rgb_array":
            return None
        return draw_arena(self.params, self.state.q[0], self.state.target[0], self.render_size, np.array(self._trace))


class ReacherVectorEnv(NumpyVectorEnv):
    """`num_envs` arms stepped in array operations."""

    def __init__(self, num_envs: int, num_links: int = 2, gravity: float = 0.0, joint_limit: float | None = 3.0,
                 obs_mode: ObsMode = "state", max_episode_steps: int = 50, success_tolerance: float = 0.02,
                 ctrl_cost_weight: float = 0.1, render_mode: str | None = None, **vector_kwargs: Any) -> None:
        self.params, self.task = _params(num_links, gravity, joint_limit, obs_mode, max_episode_steps,
                                         success_tolerance, ctrl_cost_weight)
        super().__init__(ReacherCore(num_envs, self.params, self.task), observation_space(self.params, self.task),
                         gym.spaces.Box(-1.0, 1.0, (num_links,), np.float32), render_mode=render_mode, **vector_kwargs)


class ReacherGoalEnv(ReacherEnv):
    """The goal-conditioned Dict variant with `compute_reward`, for hindsight experience replay (only this
    variant has the method: SB3 and Gymnasium-Robotics take its presence to mean a goal env). Its id is
    registered without gym.make's wrappers, so `gym.make("rlsuite/ReacherGoal-v0").compute_reward` exists."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{"obs_mode": "goal", **kwargs})

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> np.ndarray:
        return compute_reward(achieved_goal, desired_goal, info, self.task.ctrl_cost_weight)


class ReacherGoalVectorEnv(ReacherVectorEnv):
    """The vectorised goal-conditioned variant."""

    def __init__(self, num_envs: int, **kwargs: Any) -> None:
        super().__init__(num_envs, **{"obs_mode": "goal", **kwargs})

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> np.ndarray:
        return compute_reward(achieved_goal, desired_goal, info, self.task.ctrl_cost_weight)


# ------------------------------------------------------------------------------------------- the baseline


class ReacherPDController:
    """Scripted baseline: inverse kinematics for the target, then computed-torque PD to those angles.

    IK treats the links after the first as one straight link (extra joints held at 0) and picks the elbow
    solution nearest the current elbow angle; the PD law `tau = M(q) (w^2 e - 2 w q') + c(q, q')` (critically
    damped, w = `omega` rad/s) uses the arm's own mass matrix, so it behaves the same for any link masses.
    Works from the state observation (Reacher-v5 layout) or the goal Dict."""

    def __init__(self, env: gym.Env, omega: float = 12.0) -> None:
        core = env.unwrapped
        self.params: ArmParams = core.params  # type: ignore[attr-defined]
        self.observation_space, self.action_space = env.observation_space, env.action_space
        if isinstance(self.observation_space, gym.spaces.Box) and len(self.observation_space.shape) == 3:
            raise ValueError("the PD baseline reads joint angles and needs obs_mode 'state' or 'goal', not pixels.")
        self.omega = omega

    def reset(self, num_envs: int) -> None:
        pass

    def act(self, obs: Any, episode_start: np.ndarray, deterministic: bool = True) -> np.ndarray:
        p, n = self.params, self.params.num_links
        if isinstance(obs, dict):
            state, target = np.asarray(obs["observation"], np.float64), np.asarray(obs["desired_goal"], np.float64)
            qd = state[:, 2 * n:3 * n]
        else:
            state = np.asarray(obs, np.float64)
            target, qd = state[:, 2 * n:2 * n + 2], state[:, 2 * n + 2:3 * n + 2]
        q = np.arctan2(state[:, n:2 * n], state[:, :n])  # (B, n), rad
        return pd_to_target(p, q, qd, target, self.omega)


def pd_to_target(p: ArmParams, q: np.ndarray, qd: np.ndarray, target: np.ndarray, omega: float = 12.0) -> np.ndarray:
    """Normalised torques (B, n) that drive the fingertip to `target` (B, 2), m: IK, then computed-torque PD
    (see ReacherPDController)."""
    l0, l1 = p.link_lengths[0], sum(p.link_lengths[1:])
    d2 = (target**2).sum(1)
    cos_elbow = np.clip((d2 - l0**2 - l1**2) / (2 * l0 * l1), -1.0, 1.0)
    elbow = np.arccos(cos_elbow) * np.where(q[:, 1] >= 0, 1.0, -1.0)  # the branch nearest the current bend
    shoulder = np.arctan2(target[:, 1], target[:, 0]) - np.arctan2(l1 * np.sin(elbow), l0 + l1 * np.cos(elbow))
    goal = np.zeros_like(q)
    goal[:, 0], goal[:, 1] = shoulder, elbow
    error = goal - q
    error[:, 0] = (error[:, 0] + np.pi) % (2 * np.pi) - np.pi  # the shoulder turns freely: shortest way
    tau = (np.einsum("bij,bj->bi", mass_matrix(p, q), omega**2 * error - 2 * omega * qd)
           + bias_forces(p, q, qd) + p.damping * qd)  # N m
    return np.clip(tau / p.max_torque, -1.0, 1.0).astype(np.float32)
