"""Aggregate statistics for RL results, after Agarwal et al. 2021 ("Deep RL at the Edge of the
Statistical Precipice", the rliable library).

A handful of seeds per env is all RL usually affords, so point estimates alone mislead: reports show
the interquartile mean (robust to a single outlier seed, yet uses half the data) with stratified
bootstrap confidence intervals, and compare agents by the probability of improvement.

Score matrices are shaped (runs, tasks): one row per run (training seed), one column per env.
Everything is seeded with `numpy.random.default_rng(seed)` so a report rebuilt from the same database
shows the same intervals.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "AGGREGATES",
    "StatsError",
    "difference_ci",
    "iqm",
    "mean",
    "median",
    "normalize",
    "optimality_gap",
    "probability_of_improvement",
    "probability_of_improvement_ci",
    "stratified_bootstrap_ci",
    "summarize_returns",
]

_MAX_BATCH_ELEMENTS = 4_000_000
"""Bootstrap replicates are evaluated in chunks of at most this many resampled scores (~32 MB of
float64), so large score matrices do not exhaust memory while small ones run in one vectorised shot."""


class StatsError(ValueError):
    """Inputs that the statistics cannot be computed from (wrong shape, empty, degenerate scale)."""


# ----------------------------------------------------------------------------------------------------
# Point aggregates. Each reduces all entries of its input, as rliable does for (runs, tasks) matrices.


def iqm(x: ArrayLike) -> float:
    """Interquartile mean: the mean of the middle 50% of all entries (25% trimmed from each end).

    Same semantics as rliable: `scipy.stats.trim_mean(x.ravel(), 0.25)`, which trims
    `int(0.25 * n)` entries from each end.
    """
    return float(trim_mean(_nonempty(x).ravel(), 0.25))


def trim_mean(x: np.ndarray, proportion: float, axis: int = -1) -> np.ndarray:
    """Mean along `axis` after cutting `int(proportion * n)` entries from each end: scipy.stats.trim_mean's
    algorithm (partition, then mean of the middle), here so that importing the harness costs no scipy.stats
    (about a second of every `rlsuite train`)."""
    n = x.shape[axis]
    low = int(proportion * n)
    high = n - low
    if low >= high:
        raise ValueError(f"trim_mean: proportion {proportion} leaves no entries of {n}.")
    middle = np.take(np.partition(x, (low, high - 1), axis=axis), np.arange(low, high), axis=axis)
    return np.mean(middle, axis=axis)


def mean(x: ArrayLike) -> float:
    """Mean of all entries; sensitive to outlier runs, reported for comparison with older papers."""
    return float(np.mean(_nonempty(x)))


def median(x: ArrayLike) -> float:
    """Median of all entries; robust but uses little of the data, hence wide intervals."""
    return float(np.median(_nonempty(x)))


def optimality_gap(x: ArrayLike, threshold: float = 1.0) -> float:
    """How far scores fall short of `threshold` on average, counting scores above it as 0.

    With normalised scores and threshold 1 this is the mean shortfall from the reference score;
    lower is better, and beating the reference on one env cannot hide a failure on another.
    """
    return float(np.mean(np.maximum(threshold - _nonempty(x), 0.0)))


AGGREGATES: dict[str, Callable[[np.ndarray], float]] = {
    "mean": mean,
    "median": median,
    "iqm": iqm,
    "optimality_gap": optimality_gap,
}
"""The aggregates reports show, by name; each maps a (runs, tasks) matrix to one number."""


# Batched twins of the aggregates: (reps, n) -> (reps,), one value per bootstrap replicate. They let
# the bootstrap evaluate thousands of replicates in one call; any other statistic falls back to a loop.
_BATCHED: dict[Callable[..., float], Callable[[np.ndarray], np.ndarray]] = {
    mean: lambda b: b.mean(axis=1),
    median: lambda b: np.median(b, axis=1),
    iqm: lambda b: np.asarray(trim_mean(b, 0.25, axis=1)),
    optimality_gap: lambda b: np.maximum(1.0 - b, 0.0).mean(axis=1),
}


# ----------------------------------------------------------------------------------------------------
# Bootstrap confidence intervals.


def stratified_bootstrap_ci(
    scores: np.ndarray,
    statistic: Callable[[np.ndarray], float],
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(point estimate, low, high) of `statistic` over a (runs, tasks) score matrix.

    Stratified bootstrap: each replicate resamples the runs with replacement independently within each
    task (column), so every replicate still covers every task once per run, which is the uncertainty
    that comes from having few seeds. The interval is the percentile interval of the replicates.

    Random draws, for reproducibility: one `rng.integers(0, runs, size=(reps, runs, tasks))` call on
    `numpy.random.default_rng(seed)`; replicate r, task j uses rows `idx[r, :, j]` of column j.
    """
    x = _matrix(scores, "scores")
    _check_bootstrap_args(reps, confidence)
    point = float(statistic(x))
    runs, tasks = x.shape
    if runs == 1:
        return point, point, point  # a single run has nothing to resample: the interval is degenerate
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, runs, size=(reps, runs, tasks))  # (R, N, T)
    batched = _BATCHED.get(statistic)
    values = np.empty(reps)
    chunk = max(1, _MAX_BATCH_ELEMENTS // x.size)
    for start in range(0, reps, chunk):
        sample = np.take_along_axis(x[None], idx[start : start + chunk], axis=1)  # (r, N, T)
        if batched is not None:
            values[start : start + chunk] = batched(sample.reshape(len(sample), -1))  # (r,)
        else:
            values[start : start + chunk] = [float(statistic(m)) for m in sample]
    low, high = _percentile_interval(values, confidence)
    return point, low, high


def difference_ci(
    x: np.ndarray,
    y: np.ndarray,
    statistic: Callable[[np.ndarray], float] = iqm,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(point, low, high) of `statistic(x) - statistic(y)`: how much agent X beats agent Y, with its CI.

    Stratified bootstrap of the difference: each replicate resamples the runs of x and, independently,
    the runs of y, each within each task (column). An interval that holds 0 means the data cannot tell
    the two apart. Draws, for reproducibility: `rng = numpy.random.default_rng(seed)`, then
    `rng.integers(0, runs_x, size=(reps, runs_x, tasks))` and then the same for y; replicate r uses
    x[ix[r, :, j], j] and y[iy[r, :, j], j] for task j.
    """
    xm, ym = _pair(x, y)
    _check_bootstrap_args(reps, confidence)
    point = float(statistic(xm)) - float(statistic(ym))
    (nx, tasks), ny = xm.shape, ym.shape[0]
    if nx == 1 and ny == 1:
        return point, point, point  # nothing to resample on either side
    rng = np.random.default_rng(seed)
    ix = rng.integers(0, nx, size=(reps, nx, tasks))  # (R, Nx, T)
    iy = rng.integers(0, ny, size=(reps, ny, tasks))  # (R, Ny, T)
    batched = _BATCHED.get(statistic)
    values = np.empty(reps)
    chunk = max(1, _MAX_BATCH_ELEMENTS // max(xm.size, ym.size))
    for start in range(0, reps, chunk):
        bx = np.take_along_axis(xm[None], ix[start : start + chunk], axis=1)  # (r, Nx, T)
        by = np.take_along_axis(ym[None], iy[start : start + chunk], axis=1)  # (r, Ny, T)
        if batched is not None:
            values[start : start + chunk] = batched(bx.reshape(len(bx), -1)) - batched(by.reshape(len(by), -1))
        else:
            values[start : start + chunk] = [float(statistic(a)) - float(statistic(b)) for a, b in zip(bx, by, strict=True)]
    low, high = _percentile_interval(values, confidence)
    return point, low, high


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y): the chance that a run of agent X beats a run of agent Y on a task, averaged over tasks.

    Per task this is the Mann-Whitney U statistic over all (x, y) run pairs divided by n*m, with ties
    counted as half; 0.5 means no evidence either way. `x` is (runs_x, tasks), `y` is (runs_y, tasks).
    """
    xm, ym = _pair(x, y)
    return float(np.mean(_poi_per_task(xm[None], ym[None])))


def probability_of_improvement_ci(
    x: np.ndarray,
    y: np.ndarray,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(point, low, high) of `probability_of_improvement(x, y)` by stratified bootstrap.

    The runs of x and of y are resampled independently (each within each task), x first: draws are
    `rng.integers(0, runs_x, size=(reps, runs_x, tasks))` then the same for y.
    """
    xm, ym = _pair(x, y)
    _check_bootstrap_args(reps, confidence)
    point = probability_of_improvement(xm, ym)
    (nx, tasks), ny = xm.shape, ym.shape[0]
    if nx == 1 and ny == 1:
        return point, point, point
    rng = np.random.default_rng(seed)
    ix = rng.integers(0, nx, size=(reps, nx, tasks))  # (R, Nx, T)
    iy = rng.integers(0, ny, size=(reps, ny, tasks))  # (R, Ny, T)
    values = np.empty(reps)
    chunk = max(1, _MAX_BATCH_ELEMENTS // (nx * ny * tasks))
    for start in range(0, reps, chunk):
        bx = np.take_along_axis(xm[None], ix[start : start + chunk], axis=1)  # (r, Nx, T)
        by = np.take_along_axis(ym[None], iy[start : start + chunk], axis=1)  # (r, Ny, T)
        values[start : start + chunk] = _poi_per_task(bx, by).mean(axis=1)  # (r,)
    low, high = _percentile_interval(values, confidence)
    return point, low, high


# ----------------------------------------------------------------------------------------------------
# Normalisation and per-evaluation summaries.


def normalize(scores: np.ndarray, random_score: float, reference_score: float) -> np.ndarray:
    """Map raw returns so the random agent scores 0 and the reference scores 1, making envs comparable."""
    if reference_score == random_score:
        raise StatsError(
            f"cannot normalise: the reference score equals the random score ({reference_score}), so the "
            "scale (reference - random) is zero; use a reference score that differs from the random "
            "agent's, or report raw returns for this env"
        )
    return (np.asarray(scores, dtype=float) - random_score) / (reference_score - random_score)


def summarize_returns(
    returns: ArrayLike, reps: int = 2000, confidence: float = 0.95, seed: int = 0
) -> dict[str, float]:
    """Summary of one evaluation's episode returns, as `rlsuite evaluate --json` prints it.

    Keys: n, mean, median, std (ddof=0), iqm, min, max, mean_ci_low, mean_ci_high. The interval is a
    percentile bootstrap of the mean over episodes (draws: `rng.integers(0, n, size=(reps, n))`).
    """
    r = np.asarray(returns, dtype=float).ravel()
    if r.size == 0:
        raise StatsError("cannot summarise an empty list of returns; evaluate at least one episode")
    if not np.all(np.isfinite(r)):
        raise StatsError("returns contain NaN or infinity; check the env's rewards")
    _check_bootstrap_args(reps, confidence)
    point = float(r.mean())
    if r.size == 1:
        low = high = point
    else:
        rng = np.random.default_rng(seed)
        values = np.empty(reps)
        chunk = max(1, _MAX_BATCH_ELEMENTS // r.size)
        for start in range(0, reps, chunk):
            idx = rng.integers(0, r.size, size=(min(chunk, reps - start), r.size))  # (r, n)
            values[start : start + len(idx)] = r[idx].mean(axis=1)
        low, high = _percentile_interval(values, confidence)
    return {
        "n": int(r.size),
        "mean": point,
        "median": float(np.median(r)),
        "std": float(r.std(ddof=0)),
        "iqm": iqm(r),
        "min": float(r.min()),
        "max": float(r.max()),
        "mean_ci_low": low,
        "mean_ci_high": high,
    }


# ----------------------------------------------------------------------------------------------------
# Helpers.


def _poi_per_task(bx: np.ndarray, by: np.ndarray) -> np.ndarray:
    """(r, Nx, T), (r, Ny, T) -> (r, T): mean over run pairs of [x > y] + 0.5 [x == y]."""
    gt = (bx[:, :, None, :] > by[:, None, :, :]).mean(axis=(1, 2))  # (r, T)
    eq = (bx[:, :, None, :] == by[:, None, :, :]).mean(axis=(1, 2))  # (r, T)
    return gt + 0.5 * eq


def _percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central `confidence` percentile interval of bootstrap replicates."""
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def _check_bootstrap_args(reps: int, confidence: float) -> None:
    if int(reps) != reps or reps < 1:
        raise StatsError(f"reps must be a positive integer (got {reps!r}); 2000 is the usual choice")
    if not 0.0 < confidence < 1.0:
        raise StatsError(f"confidence must lie strictly between 0 and 1 (got {confidence!r}), e.g. 0.95")


def _nonempty(x: ArrayLike) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.size == 0:
        raise StatsError("cannot aggregate an empty score array; evaluate at least one run")
    return a


def _matrix(scores: ArrayLike, name: str) -> np.ndarray:
    """Validate a (runs, tasks) score matrix."""
    a = np.asarray(scores, dtype=float)
    if a.ndim != 2:
        raise StatsError(
            f"{name} must be a 2-D (runs, tasks) matrix, got shape {a.shape}; for a single env pass "
            "scores[:, None]"
        )
    if a.size == 0:
        raise StatsError(f"{name} is empty (shape {a.shape}); need at least one run and one task")
    if not np.all(np.isfinite(a)):
        raise StatsError(f"{name} contains NaN or infinity; drop failed runs before aggregating")
    return a


def _pair(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    xm, ym = _matrix(x, "x"), _matrix(y, "y")
    if xm.shape[1] != ym.shape[1]:
        raise StatsError(
            f"x and y must cover the same tasks (columns): x has {xm.shape[1]}, y has {ym.shape[1]}; "
            "compare agents only on the envs both were evaluated on"
        )
    return xm, ym
