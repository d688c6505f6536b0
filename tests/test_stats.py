"""Statistics against hand-computed cases and slow reference loops."""

from __future__ import annotations

import numpy as np
import pytest

from rlsuite.evaluation.stats import (
    AGGREGATES,
    StatsError,
    difference_ci,
    iqm,
    mean,
    median,
    normalize,
    optimality_gap,
    probability_of_improvement,
    probability_of_improvement_ci,
    stratified_bootstrap_ci,
    summarize_returns,
    trim_mean,
)

# ---------------------------------------------------------------------------------------------------
# Point aggregates


def test_iqm_hand_cases() -> None:
    # 8 values: trim 2 from each end -> mean(3, 4, 5, 6) = 4.5
    assert iqm(np.arange(1, 9)) == pytest.approx(4.5)
    # 10 values, rliable/scipy trim int(0.25 * 10) = 2 from each end -> mean(3..8) = 5.5
    assert iqm([10, 1, 9, 2, 8, 3, 7, 4, 6, 5]) == pytest.approx(5.5)
    # an outlier seed does not move the IQM, it does move the mean
    x = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 1000.0]])  # (runs, tasks), 8 entries
    assert iqm(x) == pytest.approx((3 + 4 + 5 + 6) / 4)
    assert mean(x) == pytest.approx((1 + 2 + 3 + 4 + 5 + 6 + 7 + 1000) / 8)
    assert median(x) == pytest.approx(4.5)


@pytest.mark.parametrize("shape", [(1,), (7,), (10,), (50, 9), (3, 4)])
def test_trim_mean_matches_scipy(shape: tuple[int, ...]) -> None:
    scipy_stats = pytest.importorskip("scipy.stats")  # the oracle
    x = np.random.default_rng(len(shape) * 100 + shape[-1]).normal(size=shape)
    assert np.array_equal(trim_mean(x, 0.25, axis=-1), scipy_stats.trim_mean(x, 0.25, axis=-1))
    with pytest.raises(ValueError):
        trim_mean(np.arange(4.0), 0.5)  # nothing left in the middle, as scipy refuses


def test_optimality_gap_hand_case() -> None:
    x = np.array([[0.5, 1.2], [1.0, 0.0]])
    # shortfalls from 1: 0.5, 0 (above), 0, 1 -> mean 1.5 / 4
    assert optimality_gap(x) == pytest.approx(0.375)
    # threshold 2: 1.5, 0.8, 1, 2 -> 5.3 / 4
    assert optimality_gap(x, threshold=2.0) == pytest.approx(1.325)


def test_aggregates_registry() -> None:
    assert set(AGGREGATES) == {"mean", "median", "iqm", "optimality_gap"}
    x = np.arange(12.0).reshape(4, 3) / 10
    for name, fn in AGGREGATES.items():
        assert isinstance(fn(x), float), name
    assert AGGREGATES["iqm"](x) == pytest.approx(iqm(x))


def test_empty_input_is_an_error() -> None:
    with pytest.raises(StatsError, match="empty"):
        iqm([])


# ---------------------------------------------------------------------------------------------------
# Probability of improvement


def _poi_slow(x: np.ndarray, y: np.ndarray) -> float:
    per_task = []
    for j in range(x.shape[1]):
        total = 0.0
        for a in x[:, j]:
            for b in y[:, j]:
                total += 1.0 if a > b else 0.5 if a == b else 0.0
        per_task.append(total / (x.shape[0] * y.shape[0]))
    return sum(per_task) / len(per_task)


def test_probability_of_improvement_hand_cases() -> None:
    assert probability_of_improvement(np.array([[5.0], [6.0]]), np.array([[1.0], [2.0]])) == 1.0
    assert probability_of_improvement(np.array([[1.0], [2.0]]), np.array([[5.0], [6.0]])) == 0.0
    assert probability_of_improvement(np.full((3, 2), 7.0), np.full((2, 2), 7.0)) == 0.5
    # 2x2 by hand, one task: x = {1, 3}, y = {2, 3}
    # pairs: (1,2) lose, (1,3) lose, (3,2) win, (3,3) tie -> (1 + 0.5) / 4 = 0.375
    assert probability_of_improvement(np.array([[1.0], [3.0]]), np.array([[2.0], [3.0]])) == 0.375
    # two tasks averaged: task 0 as above (0.375), task 1 all wins (1.0)
    x = np.array([[1.0, 10.0], [3.0, 11.0]])
    y = np.array([[2.0, 0.0], [3.0, 1.0]])
    assert probability_of_improvement(x, y) == pytest.approx((0.375 + 1.0) / 2)


def test_probability_of_improvement_matches_double_loop() -> None:
    rng = np.random.default_rng(3)
    # integer scores so that ties occur
    x = rng.integers(0, 5, size=(7, 4)).astype(float)
    y = rng.integers(0, 5, size=(5, 4)).astype(float)
    assert probability_of_improvement(x, y) == pytest.approx(_poi_slow(x, y))
    assert probability_of_improvement(x, y) + probability_of_improvement(y, x) == pytest.approx(1.0)


def test_probability_of_improvement_needs_same_tasks() -> None:
    with pytest.raises(StatsError, match="same tasks"):
        probability_of_improvement(np.zeros((3, 2)), np.zeros((3, 4)))


def test_probability_of_improvement_ci_matches_reference_loop() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(0.3, 1.0, size=(5, 3))
    y = rng.normal(0.0, 1.0, size=(4, 3))
    reps, conf = 300, 0.9
    point, low, high = probability_of_improvement_ci(x, y, reps=reps, confidence=conf, seed=11)
    # Reference: the documented draws, then one replicate at a time with the slow double loop.
    ref_rng = np.random.default_rng(11)
    ix = ref_rng.integers(0, 5, size=(reps, 5, 3))
    iy = ref_rng.integers(0, 4, size=(reps, 4, 3))
    values = []
    for r in range(reps):
        bx = np.stack([x[ix[r, :, j], j] for j in range(3)], axis=1)
        by = np.stack([y[iy[r, :, j], j] for j in range(3)], axis=1)
        values.append(_poi_slow(bx, by))
    assert point == pytest.approx(_poi_slow(x, y))
    assert low == pytest.approx(np.percentile(values, 5))
    assert high == pytest.approx(np.percentile(values, 95))
    assert low <= point <= high


# ---------------------------------------------------------------------------------------------------
# Stratified bootstrap


def _bootstrap_slow(scores: np.ndarray, statistic, reps: int, confidence: float, seed: int):
    """Obvious loop over replicates and tasks, consuming the RNG as documented."""
    runs, tasks = scores.shape
    idx = np.random.default_rng(seed).integers(0, runs, size=(reps, runs, tasks))
    values = []
    for r in range(reps):
        replicate = np.empty_like(scores)
        for j in range(tasks):
            for i in range(runs):
                replicate[i, j] = scores[idx[r, i, j], j]
        values.append(statistic(replicate))
    tail = 100 * (1 - confidence) / 2
    return statistic(scores), np.percentile(values, tail), np.percentile(values, 100 - tail)


@pytest.mark.parametrize("name", ["mean", "median", "iqm", "optimality_gap"])
def test_stratified_bootstrap_matches_reference_loop(name: str) -> None:
    scores = np.random.default_rng(5).uniform(0, 1.5, size=(6, 4))
    fn = AGGREGATES[name]
    got = stratified_bootstrap_ci(scores, fn, reps=200, confidence=0.9, seed=2)
    want = _bootstrap_slow(scores, fn, reps=200, confidence=0.9, seed=2)
    assert got == pytest.approx(want)


def test_stratified_bootstrap_with_custom_statistic_matches_reference_loop() -> None:
    scores = np.random.default_rng(6).normal(size=(5, 3))

    def max_task_mean(m: np.ndarray) -> float:  # not one of the vectorised aggregates: loop fallback
        return float(m.mean(axis=0).max())

    got = stratified_bootstrap_ci(scores, max_task_mean, reps=150, seed=9)
    assert got == pytest.approx(_bootstrap_slow(scores, max_task_mean, 150, 0.95, 9))


def test_stratified_bootstrap_resamples_within_tasks() -> None:
    # Task j holds values in [10 j, 10 j + 1): a replicate that mixed tasks would leave those ranges.
    runs, tasks = 5, 3
    scores = np.arange(tasks)[None, :] * 10.0 + np.linspace(0, 0.9, runs)[:, None]  # (5, 3)
    seen: list[np.ndarray] = []

    def record(m: np.ndarray) -> float:
        seen.append(m.copy())
        return float(m.mean())

    stratified_bootstrap_ci(scores, record, reps=100, seed=1)
    assert len(seen) == 101  # the point estimate plus every replicate
    for m in seen:
        assert m.shape == (runs, tasks)
        for j in range(tasks):
            assert set(m[:, j]) <= set(scores[:, j])
    # and the replicates do vary (runs drawn with replacement)
    assert any(not np.array_equal(m, scores) for m in seen[1:])


def test_stratified_bootstrap_interval_contains_point_and_shrinks() -> None:
    rng = np.random.default_rng(7)
    widths = []
    for runs in (5, 20, 80):
        scores = rng.normal(1.0, 1.0, size=(runs, 4))
        point, low, high = stratified_bootstrap_ci(scores, iqm, reps=2000, seed=0)
        assert low < point < high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]
    # sqrt(n) scaling: 16x the runs, roughly a quarter of the width
    assert widths[2] < 0.5 * widths[0]


def test_stratified_bootstrap_is_reproducible_and_seeded() -> None:
    scores = np.random.default_rng(8).normal(size=(6, 3))
    a = stratified_bootstrap_ci(scores, iqm, reps=500, seed=4)
    b = stratified_bootstrap_ci(scores, iqm, reps=500, seed=4)
    c = stratified_bootstrap_ci(scores, iqm, reps=500, seed=5)
    assert a == b
    assert a[0] == c[0] and (a[1], a[2]) != (c[1], c[2])


def test_stratified_bootstrap_single_run_is_degenerate() -> None:
    scores = np.array([[0.2, 0.8, 0.5]])
    assert stratified_bootstrap_ci(scores, mean) == (0.5, 0.5, 0.5)


def test_stratified_bootstrap_rejects_bad_inputs() -> None:
    with pytest.raises(StatsError, match=r"\(runs, tasks\)"):
        stratified_bootstrap_ci(np.zeros(5), mean)
    with pytest.raises(StatsError, match="NaN"):
        stratified_bootstrap_ci(np.array([[1.0], [np.nan]]), mean)
    with pytest.raises(StatsError, match="confidence"):
        stratified_bootstrap_ci(np.zeros((3, 2)), mean, confidence=95)
    with pytest.raises(StatsError, match="reps"):
        stratified_bootstrap_ci(np.zeros((3, 2)), mean, reps=0)


# ---------------------------------------------------------------------------------------------------
# Normalisation and summaries


def test_difference_ci_matches_hand_computed_bootstrap() -> None:
    """The IQM difference's interval, recomputed with plain loops from the documented draws."""
    x = np.array([[10.0], [12.0], [11.0], [30.0]])  # (4 runs, 1 env)
    y = np.array([[9.0], [8.0], [10.5]])  # (3 runs, 1 env)
    reps, seed = 400, 3
    rng = np.random.default_rng(seed)
    ix = rng.integers(0, 4, size=(reps, 4, 1))
    iy = rng.integers(0, 3, size=(reps, 3, 1))
    values = []
    for r in range(reps):
        bx = sorted(x[ix[r, k, 0], 0] for k in range(4))
        by = sorted(y[iy[r, k, 0], 0] for k in range(3))
        # IQM by hand: trim int(0.25 n) from each end (1 of 4, 0 of 3)
        values.append(np.mean(bx[1:3]) - np.mean(by))
    low, high = np.percentile(values, [2.5, 97.5])
    point, lo, hi = difference_ci(x, y, iqm, reps=reps, seed=seed)
    assert point == pytest.approx((11.0 + 12.0) / 2 - (9.0 + 8.0 + 10.5) / 3)
    assert (lo, hi) == pytest.approx((low, high))
    # a statistic without a batched twin takes the loop path and agrees
    assert difference_ci(x, y, lambda m: float(np.mean(m)), reps=reps, seed=seed)[1:] == pytest.approx(
        difference_ci(x, y, mean, reps=reps, seed=seed)[1:]
    )
    assert difference_ci(x[:1], y[:1]) == (1.0, 1.0, 1.0)  # nothing to resample: degenerate


def test_normalize() -> None:
    out = normalize(np.array([[10.0, 20.0], [30.0, 110.0]]), random_score=10.0, reference_score=110.0)
    np.testing.assert_allclose(out, [[0.0, 0.1], [0.2, 1.0]])
    # a reference below random (costs) still maps random -> 0, reference -> 1
    np.testing.assert_allclose(normalize([-50.0, -100.0], -100.0, -50.0), [1.0, 0.0])


def test_normalize_degenerate_scale_is_an_error() -> None:
    with pytest.raises(StatsError, match="reference score equals the random score"):
        normalize(np.ones(3), random_score=5.0, reference_score=5.0)


def test_summarize_returns() -> None:
    returns = [4.0, 1.0, 3.0, 2.0, 100.0]
    s = summarize_returns(returns, reps=1000, seed=3)
    assert s["n"] == 5
    assert s["mean"] == pytest.approx(22.0)
    assert s["median"] == 3.0
    assert s["std"] == pytest.approx(np.sqrt(np.mean((np.array(returns) - 22.0) ** 2)))
    assert s["iqm"] == pytest.approx(3.0)  # trims 1 from each end: mean(2, 3, 4)
    assert (s["min"], s["max"]) == (1.0, 100.0)
    # reference: percentile bootstrap of the mean with the documented draws
    idx = np.random.default_rng(3).integers(0, 5, size=(1000, 5))
    means = np.array(returns)[idx].mean(axis=1)
    assert s["mean_ci_low"] == pytest.approx(np.percentile(means, 2.5))
    assert s["mean_ci_high"] == pytest.approx(np.percentile(means, 97.5))
    assert s == summarize_returns(returns, reps=1000, seed=3)


def test_summarize_returns_edge_cases() -> None:
    one = summarize_returns([7.0])
    assert one["mean_ci_low"] == one["mean_ci_high"] == one["mean"] == 7.0
    assert one["std"] == 0.0
    with pytest.raises(StatsError, match="empty"):
        summarize_returns([])
