"""The traffic core: N networks stepped in 1 s ticks over (num_envs, links, movements) arrays, with
counter-based randomness (the same draws whatever the batch size)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rlsuite.envs.traffic.network import (
    PHASE_GREEN,
    Network,
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

@dataclass
class TrafficState:
    """N networks: every array has the rows (envs) first, but the in-transit ring buffer `pipe`, whose
    first axis is the arrival slot. K intersections, L links (4 per intersection), 3 movements a link,
    E source links."""

    key: np.ndarray
    """(N, 1) uint64 key of the episode's counter-based randomness."""
    profile: np.ndarray
    """(N,) demand profile of the episode."""
    t: np.ndarray
    """(N,) simulated seconds."""
    pipe: np.ndarray
    """(H, N, L, 3) vehicles in transit, by arrival slot (clock % H)."""
    queue: np.ndarray
    """(N, L, 3) stopped at the stop line."""
    mov_occ: np.ndarray
    """(N, L, 3) on the link (moving + queued), by movement."""
    credit: np.ndarray
    """(N, L, 3) discharge credit, vehicles."""
    backlog: np.ndarray
    """(N, E) generated, waiting outside a full source link."""
    phase: np.ndarray
    """(N, K) committed green phase."""
    prev_phase: np.ndarray
    """(N, K) the phase being cleared (shown yellow)."""
    clear_left: np.ndarray
    """(N, K) s of yellow + all-red still to run."""
    green_s: np.ndarray
    """(N, K) s of green so far."""
    generated: np.ndarray
    """(N,) vehicles generated."""
    entered: np.ndarray
    """(N,) vehicles that entered the grid."""
    exited: np.ndarray
    """(N,) vehicles that left it."""
    veh_s: np.ndarray
    """(N,) vehicle-seconds in the system (incl. backlog)."""
    stopped_s: np.ndarray
    """(N,) vehicle-seconds stopped at stop lines."""
    backlog_s: np.ndarray
    """(N,) vehicle-seconds waiting to enter."""
    node_stopped_s: np.ndarray
    """(N, K) vehicle-seconds stopped, per intersection (for rewards)."""
    link_occ_ext: np.ndarray
    """(N, L + 1) vehicles on each link; the last, always-empty column stands for "outside the grid"."""
    clock: int
    """Ticks since the first reset, the same for every row (the ring buffer's slot)."""

    @property
    def link_occ(self) -> np.ndarray:
        """(N, L) vehicles on each link (a view)."""
        return self.link_occ_ext[:, :-1]


class TrafficCore:
    """The dynamics of `num_envs` networks in 1 s ticks: `prepare(state, ticks)` then `tick(state)` advance a
    TrafficState in place. The core holds the network, its constant index arrays and matrices, and the
    draws of the current decision (scratch refilled by `prepare`).

    Sums over short axes are float32 matrix products (exact for these small counts); the in-transit ring
    buffer is indexed by one clock shared by all rows (a view, not a gather; a row's delays are the same
    whatever slot it starts in); the green mask of each phase is gathered once per decision.
    """

    def __init__(self, net: Network, num_envs: int) -> None:
        self.net, self.n = net, num_envs
        N, K, L, H, E = num_envs, net.num_nodes, net.num_links, net.horizon, len(net.sources)
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
        self._phase_green = np.zeros((N, L, 3), dtype=bool)  # the movements of each row's phase, see prepare


    def init_state(self) -> TrafficState:
        N, K, L, H, E = self.n, self.net.num_nodes, self.net.num_links, self.net.horizon, len(self.net.sources)
        i32, i64 = np.int32, np.int64
        return TrafficState(
            key=np.zeros((N, 1), dtype=np.uint64), profile=np.zeros(N, dtype=i64), t=np.zeros(N, dtype=i64),
            pipe=np.zeros((H, N, L, 3), dtype=i32), queue=np.zeros((N, L, 3), dtype=i32),
            mov_occ=np.zeros((N, L, 3), dtype=i32), credit=np.zeros((N, L, 3)), backlog=np.zeros((N, E), dtype=i32),
            phase=np.zeros((N, K), dtype=i64), prev_phase=np.zeros((N, K), dtype=i64),
            clear_left=np.zeros((N, K), dtype=i64), green_s=np.zeros((N, K), dtype=i64),
            generated=np.zeros(N, dtype=i64), entered=np.zeros(N, dtype=i64), exited=np.zeros(N, dtype=i64),
            veh_s=np.zeros(N), stopped_s=np.zeros(N), backlog_s=np.zeros(N), node_stopped_s=np.zeros((N, K)),
            link_occ_ext=np.zeros((N, L + 1), dtype=i32), clock=0)

    # -- reset -------------------------------------------------------------------------------------------------------
    def reset_rows(self, st: TrafficState, rows: np.ndarray, keys: np.ndarray, profiles: np.ndarray) -> None:
        st.key[rows, 0] = keys
        st.profile[rows] = profiles
        arrays: tuple[np.ndarray, ...] = (
            st.t, st.queue, st.mov_occ, st.link_occ, st.credit, st.backlog, st.phase,
            st.prev_phase, st.clear_left, st.green_s, st.veh_s, st.stopped_s, st.backlog_s,
            st.node_stopped_s, st.generated, st.entered, st.exited)
        for arr in arrays:
            arr[rows] = 0
        st.pipe[:, rows] = 0

    # -- signals -----------------------------------------------------------------------------------------------------
    def _update_phase_green(self, st: TrafficState) -> None:
        """Cache the (N, L, 3) movements of each row's committed phase (changes only with `phase`)."""
        self._phase_green = PHASE_GREEN[st.phase].reshape(self.n, -1, 3)  # (N, K*4, 3): node-major, then approach

    def can_change(self, st: TrafficState) -> np.ndarray:
        """(N, K): a phase request would be accepted now (green for at least min green, not clearing)."""
        return (st.clear_left == 0) & (st.green_s >= self.net.min_green_s)

    def apply_actions(self, st: TrafficState, actions: np.ndarray) -> None:
        """Phase requests (N, K): a different phase starts clearance; max green forces the next phase."""
        actions = np.asarray(actions, dtype=np.int64)
        settled = st.clear_left == 0
        forced = settled & (st.green_s >= self.net.max_green_s) & (actions == st.phase)
        actions = np.where(forced, (st.phase + 1) % 4, actions)
        switch = (self.can_change(st) | forced) & (actions != st.phase)
        st.prev_phase = np.where(switch, st.phase, st.prev_phase)
        st.phase = np.where(switch, actions, st.phase)
        st.clear_left = np.where(switch, self.net.clearance_s, st.clear_left)
        st.green_s = np.where(switch, 0, st.green_s)
        self._update_phase_green(st)

    def green(self, st: TrafficState) -> np.ndarray:
        """(N, L, 3) movements that may discharge this tick (green, not yellow, not all-red)."""
        N, K = st.clear_left.shape
        return (self._phase_green.reshape(N, K, 12) & (st.clear_left == 0)[:, :, None]).reshape(N, -1, 3)

    # -- randomness for the next ticks, drawn in one batch -------------------------------------------------------------
    def prepare(self, st: TrafficState, ticks: int) -> None:
        """Draw the demand and turning choices of the next `ticks` seconds (counter-based, so identical
        whichever batch a row is in and however the draws are grouped)."""
        net = self.net
        self._update_phase_green(st)  # the phase may have been set directly (tests, resets)
        t = st.t[:, None] + np.arange(ticks)[None, :]  # (N, ticks)
        E = len(net.sources)
        demand = np.take(self._demand, st.profile[:, None] * net.duration_s + np.minimum(t, net.duration_s - 1), axis=0)
        u = _uniform(st.key[:, :, None], self._stream, t[:, :, None])  # (N, ticks, E + L)
        self._born = _poisson(u[:, :, :E], demand[:, :, :E], demand[:, :, E:])  # (N, ticks, E)
        self._born_total = (self._born.astype(np.float32) @ self._ones_E).astype(np.int64)  # (N, ticks)
        # One uniform per link and tick splits that tick's entering vehicles into movements (a multinomial draw).
        self._u_turn = u[:, :, E:] + 2.0 * (st.profile * (self._turn_max + 1))[:, None, None]  # (N, ticks, L)
        self._tick_in_batch = 0

    # -- one 1 s tick ---------------------------------------------------------------------------------------------------
    def tick(self, st: TrafficState) -> dict[str, np.ndarray]:
        """Advance every row by one second (after `prepare`); returns this tick's flows for tests."""
        net, N, L = self.net, self.n, self.net.num_links
        slot = st.clock % self._horizon
        arrivals = st.pipe[slot].copy()  # (N, L, 3) reach the stop line now
        st.pipe[slot] = 0
        st.queue += arrivals

        # Discharge: saturation flow while green, never more than the downstream link can store.
        green = self.green(st)
        credit = st.credit
        credit += net.rate
        credit *= green  # red, yellow and all-red reset the credit to 0
        want = np.minimum(credit.astype(np.int32), st.queue)  # credit >= 0: truncation is floor
        space = self._cap_tgt - st.link_occ_ext[:, self._tgt_flat].reshape(N, L, 3)  # (N, L, 3)
        out = np.minimum(want, space, out=want)  # space >= 0 always (a link never holds more than its storage)
        st.queue -= out
        st.mov_occ -= out
        credit -= out
        np.minimum(credit, 1.0, out=credit)
        flows = (out.reshape(N, -1).astype(np.float32) @ self._flow_matrix).astype(np.int32)  # (N, 2L+1), exact
        exits = flows[:, 2 * L]  # (N,)
        inflow = flows[:, L:2 * L]  # (N, L) vehicles entering links

        # Demand: Poisson arrivals at each boundary approach, waiting outside while the source link is full.
        born = self._born[:, self._tick_in_batch]  # (N, E)
        born_total = self._born_total[:, self._tick_in_batch]  # (N,)
        st.backlog += born
        enter = np.minimum(st.backlog, self._cap_src - st.link_occ[:, net.sources])
        np.minimum(enter, net.entry_rate, out=enter)
        st.backlog -= enter
        inflow[:, net.sources] += enter
        st.link_occ_ext[:, :L] += flows[:, :L]  # moved between links and out of the grid (space freed now counts next tick)
        st.link_occ[:, net.sources] += enter

        # Vehicles entering a link split into movements by one multinomial draw per link (inverse CDF in a
        # table whose block 2 * (profile, count) + [0, 2) holds that count's outcomes), reaching the stop
        # line after the travel time.
        block = self._u_turn[:, self._tick_in_batch] + 2.0 * inflow  # (N, L)
        split = np.take(self._turn_split, np.searchsorted(self._turn_table, block, side="right"), axis=0)  # (N, L, 3)
        self._tick_in_batch += 1
        st.pipe[(st.clock + self._travel) % self._horizon] += split
        st.mov_occ += split

        # Bookkeeping and clock (row sums as float32 products: exact for these counts).
        enter_total = (enter.astype(np.float32) @ self._ones_E).astype(np.int64)
        st.generated += born_total
        st.entered += enter_total
        st.exited += exits
        stopped = st.queue.reshape(N, -1).astype(np.float32) @ self._node_matrix  # (N, K + 1): per node, all
        backlog = st.backlog.astype(np.float32) @ self._ones_E  # (N,)
        st.veh_s += st.link_occ.astype(np.float32) @ self._ones_L  # present during this tick
        st.veh_s += backlog
        st.veh_s += exits
        st.node_stopped_s += stopped[:, :-1]
        st.stopped_s += stopped[:, -1]
        st.backlog_s += backlog
        clearing = st.clear_left > 0
        st.green_s += ~clearing
        st.clear_left -= clearing
        st.t += 1
        st.clock += 1
        return {"arrivals": arrivals, "discharged": out, "inflow": inflow, "born": born, "entered": enter, "green": green}

    # -- observations, rewards, metrics -------------------------------------------------------------------------------
    def in_network(self, st: TrafficState) -> np.ndarray:
        return st.link_occ.sum(axis=1)

    def exit_occupancy(self, st: TrafficState) -> np.ndarray:
        """(N, K) vehicles on the links leaving each intersection (inside the grid)."""
        link_occ = st.link_occ
        nb = self.net.neighbours  # (K, 4): exit towards d enters nb from (d+2)%4
        exit_links = np.where(nb >= 0, nb * 4 + (np.arange(4)[None, :] + 2) % 4, 0)  # (K, 4)
        return (link_occ[:, exit_links] * (nb >= 0)).sum(axis=2)

    def pressure(self, st: TrafficState) -> np.ndarray:
        """(N, K) queued on the approaches minus vehicles on the exit links."""
        return st.queue.reshape(self.n, -1, 12).sum(axis=2) - self.exit_occupancy(st)

    def observe(self, st: TrafficState, pressure: bool, neighbour_phases: bool) -> np.ndarray:
        """(N, K, D) sumo-rl layout: phase one-hot, min-green flag, density, queue (+ pressure, neighbours)."""
        net, N, K = self.net, self.n, self.net.num_nodes
        cap = net.mov_capacity.reshape(1, K, 12)
        parts = [np.eye(4, dtype=np.float32)[st.phase], self.can_change(st)[..., None].astype(np.float32),
                 np.minimum(st.mov_occ.reshape(N, K, 12) / cap, 1.0), np.minimum(st.queue.reshape(N, K, 12) / cap, 1.0)]
        if pressure:
            parts.append(np.clip(self.pressure(st) / net.capacity[0], -1.0, 1.0)[..., None])
        if neighbour_phases:
            nb = net.neighbours  # (K, 4)
            one_hot = np.eye(4, dtype=np.float32)[st.phase[:, np.maximum(nb, 0)]] * (nb >= 0)[None, :, :, None]
            parts.append(one_hot.reshape(N, K, 16))
        return np.concatenate(parts, axis=2).astype(np.float32)

    def metrics(self, st: TrafficState) -> dict[str, np.ndarray]:
        gen = np.maximum(st.generated, 1)
        seconds = np.maximum(st.t, 1)
        return {
            "travel_time": st.veh_s / gen,
            "delay": (st.stopped_s + st.backlog_s) / gen,
            "waiting_time": st.stopped_s / gen,
            "queue_length": st.stopped_s / seconds / self.net.num_nodes,
            "throughput": st.exited.astype(np.float64),
            "in_network": (self.in_network(st) + st.backlog.sum(axis=1)).astype(np.float64),
            "generated": st.generated.astype(np.float64),
            "entered": st.entered.astype(np.float64),
            "exited": st.exited.astype(np.float64),
        }
