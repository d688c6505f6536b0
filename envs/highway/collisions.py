"""Highway's collision checks: which vehicles crashed in a substep, from their footprints before and after."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from rlsuite.envs.highway.params import ACC_MAX, LENGTH, MAX_SPEED, WIDTH

if TYPE_CHECKING:
    from rlsuite.envs.highway.dynamics import HighwayCore
    from rlsuite.envs.highway.state import HighwayState

COLLISION_WINDOW = 3  # (2 or more) vehicles ahead in x order that each vehicle is checked against (see collide)
FULL_CHECK_PAIRS = 4096  # batches with at most this many (env, vehicle, vehicle) triples check all pairs at once
_EXTENT = np.array([[LENGTH / 2, WIDTH / 2], [WIDTH / 2, LENGTH / 2]])  # half extents = _EXTENT @ (|cos|, |sin|) [m]


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


def collide(core: HighwayCore, st: HighwayState, x_before: np.ndarray, y_before: np.ndarray) -> None:
    """Mark as crashed every pair whose footprints overlap, or whose order flipped while side by side.

    Footprints are the axis-aligned boxes around the rotated rectangles (exact at heading 0, a few cm
    larger at lane-change headings). The second test catches a pass-through within one substep.
    With `collision_scope="controlled"` only pairs with a controlled vehicle count (collide_controlled).
    With "all", pairs are taken along the x order, each vehicle with the next
    COLLISION_WINDOW ones: (E, V, W) arrays instead of (E, V, V). That is exact whenever any W + 1
    consecutive vehicles span more than one substep's reach (rows where they do not get the full check).
    Small batches (E V^2 <= FULL_CHECK_PAIRS, e.g. the single env) take the full (E, V, V) check at once:
    fewer array operations, and the same result since the windowed check is exact."""
    p, E, V = core.p, st.x.shape[0], st.x.shape[1]
    if p.collision_scope == "controlled":
        collide_controlled(core, st, x_before, y_before)
        if p.merge_ramp:
            cs = np.abs(core._cos_sin(st), dtype=np.float64)  # (2, E, V)
            collide_ramp(core, st, x_before, LENGTH / 2 * cs[0] + WIDTH / 2 * cs[1], WIDTH / 2 * cs[0] + LENGTH / 2 * cs[1])
        return
    state = np.empty((6, E, V))  # x, y, x before, y before [m], half extents along x and y [m]
    state[0], state[1], state[2], state[3] = st.x, st.y, x_before, y_before
    half = state[4:]
    np.abs(core._cos_sin(st), out=half)
    np.matmul(_EXTENT, half.reshape(2, E * V), out=half.reshape(2, E * V))  # (L |cos| + W |sin|, W |cos| + L |sin|) / 2
    if p.merge_ramp:
        collide_ramp(core, st, x_before, half[0], half[1])
    if E * V * V <= FULL_CHECK_PAIRS or COLLISION_WINDOW >= V - 1:
        crowded = None
    else:
        w = COLLISION_WINDOW
        order = core._order(st)  # of the new x: the next substep's neighbour search reuses it
        flat_order = (order + core._off_v).T  # (V, E): sorted-position-major, so shifted slices are contiguous
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
        crashed = st.crashed.reshape(-1)
        crashed[flat_order.ravel()] |= hit_sorted
        crowded = np.flatnonzero(np.logical_or.reduce(close, axis=0))  # rows with w + 1 vehicles within reach
    if crowded is None or crowded.size:
        sub = state if crowded is None else state[:, crowded]  # (6, R, V)
        hit = _hits(sub[:4, :, :, None] - sub[:4, :, None, :], sub[4:, :, :, None] + sub[4:, :, None, :])  # (R, V, V)
        hit.reshape(-1, V * V)[:, :: V + 1] = False  # nobody collides with itself
        rows_hit = np.logical_or.reduce(hit, axis=2)
        if crowded is None:
            st.crashed |= rows_hit
        else:
            st.crashed[crowded] |= rows_hit

def collide_controlled(core: HighwayCore, st: HighwayState, x_before: np.ndarray, y_before: np.ndarray) -> None:
    """highway-fast-v0's rule: only pairs with a controlled vehicle collide (both of a pair crash), O(V)
    per env. Candidates are the pairs (e, k, j) for which the test of _hits could say yes from x alone:
    closer than LENGTH + WIDTH along x (two half extents are at most (LENGTH + WIDTH) / 2 each), or
    their x order flipped in this substep (the same products as _hits, so no rounding can drop a pair).
    Most substeps of an env have none; _hits runs on the candidates only."""
    E, V, K = st.x.shape[0], st.x.shape[1], core.p.controlled_vehicles
    if K == 1:  # (E, V) arrays: 2-D broadcasting is several times faster than 3-D
        dx = st.x - st.x[:, :1]  # [m]
        flipped = x_before - x_before[:, :1]
    else:
        dx = st.x[:, None, :] - st.x[:, :K, None]  # (E, K, V) [m]
        flipped = x_before[:, None, :] - x_before[:, :K, None]
    flipped *= dx
    near = flipped < 0.0
    near |= np.abs(dx, out=dx) < LENGTH + WIDTH
    near &= core._not_self if K > 1 else core._not_self[0]  # nobody collides with itself
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
    for r, a in enumerate((st.x, st.y, x_before, y_before)):
        a.take(pair, out=s[r])
    cs = np.abs(core._cos_sin(st).reshape(-1).take(np.concatenate([pair, pair + E * V])), dtype=np.float64).reshape(2, 2 * n)  # |cos|, |sin|
    np.multiply(cs[0], LENGTH / 2, out=s[4])
    s[4] += WIDTH / 2 * cs[1]
    np.multiply(cs[0], WIDTH / 2, out=s[5])
    s[5] += LENGTH / 2 * cs[1]
    hit = _hits(s[:4, :n] - s[:4, n:], s[4:, :n] + s[4:, n:])  # (n,)
    st.crashed.reshape(-1)[pair.reshape(2, n)[:, hit]] = True

def collide_ramp(core: HighwayCore, st: HighwayState, x_before: np.ndarray, half_x: np.ndarray, half_y: np.ndarray) -> None:
    """Driving into the ramp's end (a wall across the ramp at ramp_end), from the half extents (E, V) [m]."""
    p = core.p
    ramp_side = st.y + half_y > (p.lanes_count - 0.5) * p.lane_width
    st.crashed |= ramp_side & (st.x + half_x > p.ramp_end) & (x_before + half_x <= p.ramp_end)

