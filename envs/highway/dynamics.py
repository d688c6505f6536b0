"""Highway's core: one decision's dynamics of N highways of V vehicles (IDM car following, MOBIL lane
changes, the lateral controllers, the kinematic bicycle model) on their HighwayState (envs/highway/state.py),
with no Python loop over vehicles or envs."""

from __future__ import annotations

from typing import Any

import numpy as np

from rlsuite.envs.highway.collisions import collide
from rlsuite.envs.highway.observations import observe, pixels, step_info
from rlsuite.envs.highway.params import (
    ACC_MAX,
    ACCELERATION_RANGE,
    COMFORT_ACC_MAX,
    COMFORT_ACC_MIN,
    DISTANCE_WANTED,
    FASTER,
    LANE_CHANGE_MAX_BRAKING_IMPOSED,
    LANE_CHANGE_MIN_ACC_GAIN,
    LANE_LEFT,
    LANE_MARGIN,
    LANE_RIGHT,
    LENGTH,
    MAX_SPEED,
    MAX_STEERING,
    PERCEPTION_DISTANCE,
    SLOWER,
    STEERING_RANGE,
    TAU_ACC,
    TAU_HEADING,
    TAU_LATERAL,
    TIME_WANTED,
    HighwayParams,
)
from rlsuite.envs.highway.state import HighwayState, init_state


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



# The lateral controller's output is only ever used through the bicycle model's slip angle beta =
# arctan(tan(steering) / 2), and steering = arctan(2 tan(slip)) inverts it, so beta is the controller's
# slip clipped at the slip of full steering, and sin(beta) the clipped sine: no tan/arctan round trip.
BETA_MAX = float(np.arctan(0.5 * np.tan(MAX_STEERING)))  # [rad] slip angle at full steering
SIN_BETA_MAX = float(np.sin(BETA_MAX))
SIN_HEADING_MAX = float(np.sin(np.pi / 4))  # the heading reference is clipped at +-pi/4 rad
NO_VEHICLE_X = 1e30  # [m] x of the IDM table's "no vehicle" slot: farther than any gap, and finite in float32
_SIDE2 = np.array([[-1], [1]])  # MOBIL's left and right lane offsets
_SIDES = np.array([[0], [-1], [1]])  # lane offsets of MOBIL's current, left and right lane
# MOBIL's eight IDM terms as (follower, leader) rows of the (7, D) candidate table of HighwayCore.substep:
# rows 0..2 the leaders on the current, left and right lane, 3..5 their followers, 6 the deciding vehicle.
# Terms: old follower behind me, old follower behind my leader, then per side: me behind the new leader,
# the new follower behind the new leader, the new follower behind me.
_MOBIL_PAIRS = np.array([[3, 3, 6, 4, 4, 6, 5, 5], [6, 0, 1, 1, 6, 2, 2, 6]])


class HighwayCore:
    """The dynamics of `num_envs` highways of `num_vehicles` vehicles each: `step(state, actions)` advances a
    HighwayState in place (gymnax's step(state, action, params), the params bound to the core). The core
    holds the params and the index arrays, scratch buffers and caches of the step, which depend on the
    batch size (big batches take other, equal, lookup paths) but never carry anything from one step to the
    next: the sort and trigonometry caches are keyed by the identity of the State's arrays.

    Arrays are (E, V) with E envs and V vehicles; vehicles 0..K-1 are the controlled ones. Index V stands
    for "no vehicle" in neighbour arrays.
    """

    def __init__(self, params: HighwayParams, num_envs: int) -> None:
        self.p = params
        self.num_envs = num_envs
        self._build_caches(num_envs, params.num_vehicles, params.controlled_vehicles)

    def init_state(self) -> HighwayState:
        return init_state(self.p, self.num_envs)

    def _build_caches(self, E: int, V: int, K: int) -> None:
        """Index arrays, scratch buffers and caches of the step (none of it state: each step or reset refills it)."""
        params = self.p
        self.controlled = np.zeros(V, dtype=bool)  # vehicles 0..K-1 are driven by actions
        self.controlled[:K] = True
        self._ttc_rate = np.zeros((E, K))  # [1/s] largest closing rate of the step so far (see _record_ttc)
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

    # ---- reset -------------------------------------------------------------------------------------
    def reset_rows(self, st: HighwayState, rows: np.ndarray, rngs: list[np.random.Generator]) -> None:
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
        st.x[rows] = x[:, to_index]
        st.y[rows] = lane[:, to_index] * p.lane_width
        st.target_lane[rows] = lane[:, to_index]
        st.speed[rows] = speed[:, to_index]
        st.desired_speed[rows] = speed[:, to_index]
        st.delta[rows] = np.where(self.controlled, 4.0, delta[:, to_index])
        st.politeness[rows] = politeness[:, to_index]
        st.timer[rows] = timer[:, to_index]
        st.heading[rows] = 0.0
        st.crashed[rows] = False
        self._sorted = self._trig = None  # x and heading changed in place
        st.speed_index[rows] = self._speed_to_index(st.speed[rows, :K])
        st.desired_speed[rows, :K] = self._target_speeds[st.speed_index[rows]]
        st.steps[rows] = 0
        st.x_start[rows] = st.x[rows, :K]
        st.lane_changes[rows] = 0
        st.continuous[rows] = 0.0
        st.min_ttc[rows] = np.inf
        if st.frames is not None:
            frame = pixels(self, st)[rows]  # (R, H, W)
            st.frames[rows] = frame[:, None]

    # ---- geometry helpers ---------------------------------------------------------------------------
    def lane_of(self, y: np.ndarray) -> np.ndarray:
        return np.minimum(np.maximum(np.rint(y / self.p.lane_width), 0), self.p.all_lanes - 1).astype(np.int64)

    def _speed_to_index(self, speed: np.ndarray) -> np.ndarray:
        ts = self._target_speeds
        frac = (speed - ts[0]) / (ts[-1] - ts[0])
        return np.minimum(np.maximum(np.rint(frac * (ts.size - 1)), 0), ts.size - 1).astype(np.int64)

    def neighbours(self, st: HighwayState) -> tuple[np.ndarray, np.ndarray]:
        """(front, rear), each (E, V, L): the nearest vehicle ahead of / behind each vehicle on each lane.

        One sort per row, then suffix-min / prefix-max scans over the sorted order: O(E V L), no (V, V) table.
        A vehicle ahead at exactly the same x counts as in front (highway-env's `s <= s_v`)."""
        rank = self._neighbours_sorted(st)
        E, V = rank.shape
        lanes = np.arange(self.p.all_lanes) * self._nb_stride
        at = self._nb_l0[:, :, None] + lanes + rank[:, :, None]  # (E, V, L)
        slots = np.stack([self._neighbour_slots(at + half, self._off_v1[:, :, None]) for half in (0, self._nb_rear)])
        front, rear = slots % (V + 1)  # table slot -> vehicle (V: none)
        return front, rear

    def _cos_sin(self, st: HighwayState) -> np.ndarray:
        """(2, E, V) cos and sin of the headings, shared by the collision check of one substep, the IDM
        table of the next and the observation (every substep makes a new heading array; reset_rows forgets it)."""
        if self._trig is not None and self._trig[0] is st.heading:
            return self._trig[1]
        cs = np.empty((2, *st.heading.shape), dtype=self._float)
        heading = st.heading.astype(self._float, copy=False)
        np.cos(heading, out=cs[0])
        np.sin(heading, out=cs[1])
        self._trig = (st.heading, cs)
        return cs

    def _order(self, st: HighwayState) -> np.ndarray:
        """(E, V) argsort of x (stable), shared by the collision check of one substep and the neighbour
        search of the next: both see the same x array (every substep makes a new one; reset_rows forgets it)."""
        if self._sorted is not None and self._sorted[0] is st.x:
            return self._sorted[1]
        order = st.x.argsort(axis=1, kind="stable")
        self._sorted = (st.x, order)
        return order

    def _neighbours_sorted(self, st: HighwayState) -> np.ndarray:
        """The neighbour search of this substep: returns (E, V) the sorted position of each vehicle, and
        prepares _neighbour_slots, which looks up the table slot of the front (f = 0) or rear (f = 1)
        vehicle on lane l of the vehicle at sorted position k of env e."""
        E, V = st.x.shape
        order = self._order(st)
        flat_order = order + self._off_v  # (E, V)
        y_sorted = st.y.take(flat_order)  # (E, V)
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

    def _table(self, st: HighwayState) -> np.ndarray:
        """(8, E * (V + 1)) per-vehicle columns for IDM, column-major, with slot V of each env standing
        for "no vehicle" (x = NO_VEHICLE_X, the rest 0).

        Rows: vx, vy, x (a leader's three, first), then a follower's: free-road IDM acceleration, the
        desired gap without the leader's part, DISTANCE_WANTED + s TIME_WANTED + s^2 / (2 sqrt(a b)), and
        (cos, sin) s / (2 sqrt(a b)); last the speed. IDM's closing speed along the follower is s - (vx_l cos
        + vy_l sin), so d* = row 4 - (vx_l row 5 + vy_l row 6): every per-follower term, the power law above
        all, is computed once per vehicle here, not once per (follower, leader) pair."""
        E, V = st.x.shape
        t = self._table_buf[:, :, :V]  # (8, E, V) view, filled in place
        speed = st.speed
        np.multiply(self._cos_sin(st), speed, out=t[0:2])  # [m/s]
        t[2] = st.x
        v0 = np.minimum(st.desired_speed, self.p.speed_limit)  # [m/s]
        np.abs(v0, out=v0)
        np.maximum(v0, 1e-2, out=v0)  # == |_not_zero(v0)|
        ratio = np.empty(v0.shape, dtype=self._float)  # (v / v0)^delta as exp(delta log(v / v0)) in float32, 4x faster than np.power in float64
        np.divide(np.maximum(speed, 1e-30), v0, out=ratio)  # 1e-30 for 0: exp(delta log 1e-30) underflows to exactly 0
        np.log(ratio, out=ratio)
        ratio *= st.delta
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
    def apply_meta_actions(self, st: HighwayState, actions: np.ndarray) -> None:
        """Discrete meta-actions (E, K) set the controlled vehicles' target lane and target speed."""
        K, L = self.p.controlled_vehicles, self.p.lanes_count
        faster, slower = actions == FASTER, actions == SLOWER
        current = self._speed_to_index(st.speed[:, :K])
        st.speed_index = np.where(faster, current + 1, np.where(slower, current - 1, st.speed_index))
        st.speed_index = np.minimum(np.maximum(st.speed_index, 0), self._target_speeds.size - 1)
        st.desired_speed[:, :K] = self._target_speeds[st.speed_index]
        shift = np.where(actions == LANE_LEFT, -1, np.where(actions == LANE_RIGHT, 1, 0))
        target = st.target_lane[:, :K]
        highest = np.where(target >= L, L, L - 1)  # the ramp can be left, never entered
        st.target_lane[:, :K] = np.minimum(np.maximum(target + shift, 0), highest)

    def set_continuous(self, st: HighwayState, actions: np.ndarray) -> None:
        a = np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0)  # (E, K, 2)
        st.continuous = a * np.array([ACCELERATION_RANGE, STEERING_RANGE])

    def action_mask(self, st: HighwayState) -> np.ndarray:
        """(E, K, 5): which meta-actions change something (IDLE always)."""
        K, L = self.p.controlled_vehicles, self.p.lanes_count
        lane = self.lane_of(st.y[:, :K])
        return np.stack([lane > 0, np.ones_like(lane, dtype=bool), lane < L - 1,
                         st.speed_index < self._target_speeds.size - 1, st.speed_index > 0], axis=-1)

    def _slip_sine(self, st: HighwayState) -> np.ndarray:
        """sin of the slip angle [-] that the lateral position then heading controller commands, towards each
        vehicle's target lane centre: highway-env's steering_control composed with the bicycle model's
        beta = arctan(tan(steering) / 2), which undoes its arctan(2 tan(slip)) (see BETA_MAX). The heading
        error needs no wrapping: controller-driven headings stay within +-pi/2 on a straight road."""
        speed = np.copysign(np.maximum(np.abs(st.speed), 1e-2), st.speed)  # [m/s] _not_zero
        q = st.target_lane * self.p.lane_width - st.y  # [m] towards the target lane centre
        q /= TAU_LATERAL
        q /= speed
        np.maximum(q, -SIN_HEADING_MAX, out=q)
        np.minimum(q, SIN_HEADING_MAX, out=q)
        d = np.arcsin(q, out=q)  # [rad] heading reference, within +-pi/4
        d -= st.heading  # [rad] heading error
        d *= LENGTH / 2 / TAU_HEADING
        d /= speed
        np.maximum(d, -SIN_BETA_MAX, out=d)
        return np.minimum(d, SIN_BETA_MAX, out=d)

    def _abort_lane_changes(self, st: HighwayState, lane: np.ndarray, changing: np.ndarray) -> None:
        """Traffic abandons a lane change when another vehicle not yet there heads for the same lane just
        ahead, closer than the IDM desired gap (highway-env's change_lane_policy). Only the C vehicles
        that are changing lane are compared with the others: (C, V) arrays from this substep's IDM table.
        Clears `changing` (E, V) where a change is abandoned."""
        f = np.flatnonzero(changing & self._traffic)  # (C,) flat e V + i
        if f.size == 0:
            return
        V = st.x.shape[1]
        e = f // V
        t = self._table_buf  # (8, E, V + 1), filled by _table this substep
        g, gi = t[:3].take(e, axis=1), t[2:7].reshape(5, -1).take(self._me_flat.take(f), axis=1)  # (3, C, V + 1) the changer's env, (5, C) the changer
        d = g[:2, :, :V] * gi[3:5, :, None]  # (2, C, V) [m]
        d_star = gi[2][:, None] - d[0]
        d_star -= d[1]  # [m] IDM's desired gap of the changer behind each vehicle
        dx = g[2, :, :V] - gi[0][:, None]  # [m] x_j - x_i (0 for the changer itself)
        target = st.target_lane.take(f)[:, None]
        # A rival heads for the changer's target lane and is not there yet: it is changing lane itself.
        heading_for = np.where(changing, st.target_lane, -1)  # (E, V) target lane of those changing lane
        rival = heading_for.take(e, axis=0) == target
        rival &= dx > 0
        rival &= dx < d_star
        abort = np.logical_or.reduce(rival, axis=1)
        if abort.any():
            fa = f[abort]
            np.put(st.target_lane, fa, lane.take(fa))
            np.put(changing, fa, False)

    def _mobil(self, st: HighwayState, lane: np.ndarray, f: np.ndarray, m: np.ndarray, acc: np.ndarray) -> None:
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
        gain *= st.politeness.take(f)
        gain += self_pred_a - self_a
        cand = cur + _SIDE2  # (2, D)
        # Off the ramp a change must pay (MOBIL's incentive). Leaving the ramp is mandatory by default, so only
        # safety counts there: no hard braking for me or for my new follower (highway-env's route rule); with
        # ramp_merge_length (merge-v0's rule) it must pay too, and only beside the ramp's last metres.
        worth = gain >= LANE_CHANGE_MIN_ACC_GAIN
        if p.merge_ramp:
            on_ramp = cur >= p.lanes_count
            if p.ramp_merge_length is None:
                worth = np.where(on_ramp, self_pred_a >= -LANE_CHANGE_MAX_BRAKING_IMPOSED, worth)
            else:
                worth &= ~on_ramp | (st.x.take(f) >= p.merge_section_start)
        ok = self._lane_ok.take(cand)  # main lanes only (-1 wraps to a False slot)
        ok &= new_f_pred_a >= -LANE_CHANGE_MAX_BRAKING_IMPOSED
        ok &= worth
        # Right wins when both qualify, as in highway-env (it tries left, then right).
        np.put(st.target_lane, f, np.where(ok[1], cand[1], np.where(ok[0], cand[0], cur)))
        new_lane_acc = np.where(ok[1], self_pred_a[1], np.where(ok[0], self_pred_a[0], np.nan))
        np.put(acc, f, np.fmin(self_a, new_lane_acc))

    def substep(self, st: HighwayState) -> None:
        """One physics step: decisions (MOBIL, IDM, controllers), bicycle model, collisions.

        All IDM terms of the substep (own lane, target lane while changing, MOBIL's) are evaluated in one
        batch of table gathers (_idm), so the op count does not grow with the number of kinds of term."""
        p, K, dt = self.p, self.p.controlled_vehicles, self.p.dt
        E, V = st.x.shape
        L = p.all_lanes
        lane = self.lane_of(st.y)
        rank = self._neighbours_sorted(st)  # (E, V) sorted position of each vehicle
        table = self._table(st)
        S = self._nb_stride
        own_leader = self._neighbour_slots(self._nb_l0 + lane * S + rank, self._off_v1)  # (E, V) table slot of the leader on the own lane
        changing = lane != st.target_lane  # (E, V) while changing lane, IDM on both lanes
        self._abort_lane_changes(st, lane, changing)
        cf = np.flatnonzero(changing)  # (C,) flat e V + i
        c_slot = self._me_flat.take(cf)  # (C,) table slots of the changing vehicles
        ahead = self._neighbour_slots(self._nb_lv.take(cf) + st.target_lane.take(cf) * S + rank.take(cf),
                                      self._off_v1v.take(cf))  # (C,) leader on the target lane
        due = self._traffic & (st.timer > p.lane_change_delay)
        due &= ~(st.crashed | changing)
        np.copyto(st.timer, 0.0, where=due)
        due &= np.abs(st.speed) >= 1.0
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
        if p.merge_ramp:  # the ramp's end is a stopped obstacle whose rear is at ramp_end (MOBIL's own-lane term)
            on_ramp = (lane == p.lanes_count) & (st.x < p.ramp_end)
            wall = idm_acceleration(st.speed, np.minimum(st.desired_speed, p.speed_limit), st.delta,
                                    p.ramp_end + LENGTH / 2 - st.x, st.speed)
            acc = np.where(on_ramp, np.minimum(acc, wall), acc)
        if df.size:
            self._mobil(st, lane, df, acc_all[n_own + n_change:].reshape(8, df.size), acc)
        np.maximum(acc, -ACC_MAX, out=acc)
        np.minimum(acc, ACC_MAX, out=acc)
        sin_beta = self._slip_sine(st)  # (E, V)
        if p.action == "continuous":
            acc[:, :K] = st.continuous[:, :, 0]
            steering = np.minimum(np.maximum(st.continuous[:, :, 1], -MAX_STEERING), MAX_STEERING)  # [rad]
            sin_beta[:, :K] = np.sin(np.arctan(0.5 * np.tan(steering)))
        else:
            acc[:, :K] = (st.desired_speed[:, :K] - st.speed[:, :K]) / TAU_ACC  # speed controller
        # Crashed vehicles brake to a stop; speeds stay within +-MAX_SPEED (highway-env's clip_actions).
        if st.crashed.any():
            np.copyto(acc, -st.speed, where=st.crashed)
            np.copyto(sin_beta, 0.0, where=st.crashed)
        too_fast = np.abs(st.speed) > MAX_SPEED  # (E, V): only these vehicles' acceleration is limited
        if too_fast.any():
            np.copyto(acc, np.minimum(np.maximum(acc, -MAX_SPEED - st.speed), MAX_SPEED - st.speed), where=too_fast)
        self._record_ttc(st, table, own_leader[:, :K])
        # Kinematic bicycle model, centre of gravity in the middle.
        x_before, y_before = st.x, st.y
        step = st.speed * dt  # [m]
        # cos and sin of heading + beta by angle addition, from the heading's cos/sin: no trigonometry
        cs = self._cos_sin(st)  # (2, E, V) of the heading
        course = np.multiply(sin_beta, sin_beta)
        np.subtract(1.0, course, out=course)
        course = cs * np.sqrt(course, out=course)  # (2, E, V) cos(heading) cos(beta), sin(heading) cos(beta)
        course[0] -= cs[1] * sin_beta
        course[1] += cs[0] * sin_beta
        course *= step
        st.x = x_before + course[0]
        st.y = y_before + course[1]
        sin_beta *= step
        sin_beta *= 2.0 / LENGTH
        st.heading = st.heading + sin_beta  # [rad] speed sin(beta) / (LENGTH / 2) dt
        acc *= dt
        st.speed = st.speed + acc
        st.timer += dt
        collide(self, st, x_before, y_before)

    def _record_ttc(self, st: HighwayState, table: np.ndarray, ahead: np.ndarray) -> None:
        """Keep the largest closing rate [1/s] (closing speed over bumper-to-bumper gap, the inverse of the
        time-to-collision) of the controlled vehicles on the vehicle ahead (table slots `ahead` (E, K)) this
        substep; step() turns it into min_ttc. A missing leader sits at NO_VEHICLE_X, so its rate is about 1e-29."""
        K = self.p.controlled_vehicles
        lead = table[2:8:5].take(ahead, axis=1)  # (2, E, K) x [m] and speed [m/s] of the leader
        gap = lead[0] - st.x[:, :K]
        gap -= LENGTH
        np.maximum(gap, 1e-300, out=gap)  # [m] bumper to bumper; touching gives a rate of about 1e300
        rate = st.speed[:, :K] - lead[1]  # [m/s] closing speed
        rate /= gap
        np.maximum(self._ttc_rate, rate, out=self._ttc_rate)

    def advance(self, st: HighwayState, actions: np.ndarray) -> None:
        """One decision: actions (E, K) meta-actions or (E, K, 2) continuous, then `substeps` physics steps."""
        K = self.p.controlled_vehicles
        lane_before = self.lane_of(st.y[:, :K])
        if self.p.action == "discrete":
            self.apply_meta_actions(st, np.asarray(actions).reshape(-1, K).astype(np.int64))
        else:
            self.set_continuous(st, np.asarray(actions).reshape(-1, K, 2))
        self._ttc_rate[:] = 0.0
        for _ in range(self.p.substeps):
            self.substep(st)
        # The smallest time-to-collision [s] of the step: 1 / the largest closing rate; inf when never closing
        # in on a leader, 0 when touching it.
        st.min_ttc = np.divide(1.0, self._ttc_rate, out=np.full_like(self._ttc_rate, np.inf), where=self._ttc_rate > 1e-20)
        st.min_ttc[st.min_ttc < 1e-250] = 0.0
        st.steps += 1
        st.lane_changes += self.lane_of(st.y[:, :K]) != lane_before
        if st.frames is not None:
            st.frames[:, :-1] = st.frames[:, 1:]
            st.frames[:, -1] = pixels(self, st)

    # ---- the gym-facing step of controlled vehicle 0 (envs/vector.py's VectorCore) ----------------------
    def step(self, st: HighwayState, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """advance(), then the reward, terminated, truncated and info of controlled vehicle 0 of every row."""
        actions = np.asarray(actions)
        self.advance(st, actions)
        rewards, terms = self.rewards(st, actions)
        return rewards[:, 0], self.terminated(st)[:, 0], self.truncated(st), step_info(self, st, terms)

    def reset_info(self, st: HighwayState) -> dict[str, np.ndarray]:
        return step_info(self, st, self.rewards(st, None)[1])

    def observe(self, st: HighwayState) -> Any:
        return observe(self, st)

    # ---- outputs -----------------------------------------------------------------------------------
    def on_road(self, st: HighwayState) -> np.ndarray:
        K = self.p.controlled_vehicles
        return self.road_at(st.x[:, :K], st.y[:, :K])

    def road_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Whether world points (x, y) [m] are on the road (main lanes, or the ramp before its end)."""
        p = self.p
        edge = np.where(p.merge_ramp & (x <= p.ramp_end), p.all_lanes - 0.5, p.lanes_count - 0.5) * p.lane_width
        return (y >= -p.lane_width / 2) & (y <= edge) & (x >= 0) & (x <= p.road_length)

    def rewards(self, st: HighwayState, actions: np.ndarray | None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(E, K) rewards and their terms."""
        p, K = self.p, self.p.controlled_vehicles
        lane = st.target_lane[:, :K] if p.action == "discrete" else self.lane_of(st.y[:, :K])
        forward = st.speed[:, :K] * np.cos(st.heading[:, :K])  # [m/s]
        lo, hi = p.reward_speed_range
        terms = {
            "collision_reward": st.crashed[:, :K].astype(np.float64),
            "right_lane_reward": np.minimum(lane, p.lanes_count - 1) / max(p.lanes_count - 1, 1),
            "high_speed_reward": np.clip((forward - lo) / (hi - lo), 0.0, 1.0),
            "on_road_reward": self.on_road(st).astype(np.float64),
        }
        if p.merging_speed_reward:  # merge-v0's altruistic term: how far the merging vehicles fall short of their speed
            x, lane = st.x[:, K:], self.lane_of(st.y[:, K:])  # (E, V - K) the traffic
            merging = (lane == p.lanes_count) & (x >= p.merge_section_start) & (x <= p.ramp_end)
            shortfall = (st.desired_speed[:, K:] - st.speed[:, K:]) / st.desired_speed[:, K:]
            terms["merging_speed_reward"] = np.repeat(np.where(merging, shortfall, 0.0).sum(axis=1, keepdims=True), K, axis=1)
        changed = np.zeros_like(forward)
        if actions is not None and p.action == "discrete":
            a = np.asarray(actions).reshape(-1, K)
            changed = ((a == LANE_LEFT) | (a == LANE_RIGHT)).astype(np.float64)
        reward = (p.collision_reward * terms["collision_reward"] + p.right_lane_reward * terms["right_lane_reward"]
                  + p.high_speed_reward * terms["high_speed_reward"] + p.lane_change_reward * changed)
        if p.merging_speed_reward:
            reward = reward + p.merging_speed_reward * terms["merging_speed_reward"]
        if p.normalize_reward:
            low, high = p.collision_reward + p.merging_speed_reward, p.high_speed_reward + p.right_lane_reward
            reward = (reward - low) / (high - low)
        return reward * terms["on_road_reward"], terms

    def terminated(self, st: HighwayState) -> np.ndarray:
        K = self.p.controlled_vehicles
        done = st.crashed[:, :K].copy()
        if self.p.offroad_terminal:
            done |= ~self.on_road(st)
        if self.p.end_position is not None:  # past the end of the road section (merge-v0's rule): no bootstrap
            done |= st.x[:, :K] > self.p.end_position
        return done  # (E, K)

    def truncated(self, st: HighwayState) -> np.ndarray:
        return st.steps >= self.p.max_steps  # (E,)

    def metrics(self, st: HighwayState) -> dict[str, np.ndarray]:
        K = self.p.controlled_vehicles
        return {
            "crashed": st.crashed[:, :K].copy(),
            "speed": st.speed[:, :K].copy(),
            "distance": st.x[:, :K] - st.x_start,
            "lane_changes": st.lane_changes.copy(),
            "min_ttc": st.min_ttc.copy(),
        }

