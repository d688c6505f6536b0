"""Replay buffer: n-step returns, the sum-tree, importance weights, sequences and memory, against slow references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
from gymnasium import spaces

from rlsuite.agents.replay import ReplayBuffer, SumTree

VECTOR = spaces.Box(-10.0, 10.0, (3,), np.float32)


def fill(buffer: ReplayBuffer, steps: int, seed: int = 0, p_term: float = 0.1, p_trunc: float = 0.05):
    """Random steps with episode ends; returns the per-row arrays as written (absolute row order)."""
    rng = np.random.default_rng(seed)
    n = buffer.n_envs
    history = {k: [] for k in ("obs", "actions", "rewards", "terminated", "truncated", "valid", "starts")}
    prev_done, start = np.zeros(n, bool), np.ones(n, bool)
    for _ in range(steps):
        obs = rng.normal(size=(n, 3)).astype(np.float32)
        actions = rng.integers(0, 4, size=n)
        rewards = rng.normal(size=n).astype(np.float32)
        terminated = rng.random(n) < p_term
        truncated = (rng.random(n) < p_trunc) & ~terminated
        valid = ~prev_done
        terminated &= valid  # a reset step never ends an episode
        truncated &= valid
        buffer.add(obs, actions, rewards, terminated, truncated, valid, start)
        for key, value in zip(history, (obs, actions, rewards, terminated, truncated, valid, start), strict=True):
            history[key].append(value)
        start, prev_done = prev_done, terminated | truncated
    return {k: np.array(v) for k, v in history.items()}


def slow_n_step(h, row, env, n, gamma):
    """Walk forward from (row, env) with plain floats: the return, the bootstrap discount and row."""
    g, discount = 0.0, 1.0
    for k in range(n):
        g += discount * float(h["rewards"][row + k, env])
        discount *= gamma
        if h["terminated"][row + k, env]:
            return g, 0.0, row + k + 1
        if h["truncated"][row + k, env]:
            return g, discount, row + k + 1  # bootstrap from the final observation, stored in the next row
    return g, discount, row + n


@pytest.mark.parametrize("n_step, capacity, steps", [(1, 3000, 200), (3, 3000, 200), (5, 90, 200)])
def test_n_step_returns_match_slow_loop(n_step, capacity, steps):
    gamma = 0.9
    buffer = ReplayBuffer(VECTOR, capacity, n_envs=3, n_step=n_step, gamma=gamma)
    h = fill(buffer, steps, p_term=0.15, p_trunc=0.1)
    first = max(0, steps - buffer.rows)  # older rows were overwritten (capacity 90: wrapped around)
    rows = np.repeat(np.arange(first, steps - n_step), 3)
    envs = np.tile(np.arange(3), len(rows) // 3)
    returns, discounts, next_rows = buffer.n_step_returns(rows, envs)
    expected = np.array([slow_n_step(h, r, e, n_step, gamma) for r, e in zip(rows, envs, strict=True)])
    assert (h["terminated"] | h["truncated"]).sum() > 20  # episode ends do fall inside windows
    np.testing.assert_allclose(returns, expected[:, 0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(discounts, expected[:, 1], rtol=1e-6)
    np.testing.assert_array_equal(next_rows, expected[:, 2].astype(int))


def test_sampled_transitions_are_valid_and_next_obs_is_the_bootstrap_row():
    buffer = ReplayBuffer(VECTOR, 150, n_envs=2, n_step=3, gamma=0.5, seed=3)
    h = fill(buffer, 400, p_term=0.3)
    batch = buffer.sample(2000)
    # find each sampled observation in the stored history (observations are continuous: unique)
    flat_obs = h["obs"].reshape(-1, 3)
    where = {tuple(o): i for i, o in enumerate(flat_obs)}
    idx = np.array([where[tuple(o)] for o in batch.obs])
    rows, envs = idx // 2, idx % 2
    assert rows.min() >= 400 - buffer.rows and rows.max() <= 400 - 1 - 3  # held and with a complete window
    assert h["valid"][rows, envs].all()  # reset steps are never sampled
    for i in range(0, 2000, 97):
        g, discount, next_row = slow_n_step(h, rows[i], envs[i], 3, 0.5)
        assert batch.returns[i] == pytest.approx(g, abs=1e-5)
        assert batch.discounts[i] == pytest.approx(discount)
        np.testing.assert_array_equal(batch.next_obs[i], h["obs"][next_row, envs[i]])
        assert batch.actions[i] == h["actions"][rows[i], envs[i]]
    np.testing.assert_array_equal(batch.weights, np.ones(2000, np.float32))


def test_sum_tree_find_matches_cumulative_sum_search():
    rng = np.random.default_rng(0)
    tree = SumTree(37)  # not a power of two: padded leaves stay 0
    priorities = rng.random(37) * (rng.random(37) < 0.8)
    tree.update(np.arange(37), priorities)
    assert tree.total == pytest.approx(priorities.sum())
    mass = rng.random(5000) * priorities.sum()
    expected = np.searchsorted(np.cumsum(priorities), mass, side="right")
    np.testing.assert_array_equal(tree.find(mass), expected)
    assert (priorities[tree.find(mass)] > 0).all()


def test_sum_tree_sampling_proportions_and_updates():
    rng = np.random.default_rng(1)
    tree = SumTree(16)
    priorities = np.array([1, 2, 3, 4, 0, 10, 0.5, 7.5, 1, 1, 1, 1, 2, 2, 2, 2], dtype=float)
    tree.update(np.arange(16), priorities)

    def chi_square_p(p):
        leaves = tree.find(rng.random(200_000) * tree.total)
        counts = np.bincount(leaves, minlength=16)
        keep = p > 0
        assert counts[~keep].sum() == 0
        return scipy.stats.chisquare(counts[keep], p[keep] / p.sum() * counts.sum()).pvalue

    assert chi_square_p(priorities) > 1e-3
    priorities[[0, 5, 4]] = [20.0, 0.0, 3.0]  # updates, including a leaf dropped to 0 and one raised from 0
    tree.update(np.array([0, 5, 4]), priorities[[0, 5, 4]])
    for node in range(1, tree.size):  # every inner node is still the sum of its children
        assert tree.nodes[node] == pytest.approx(tree.nodes[2 * node] + tree.nodes[2 * node + 1])
    assert chi_square_p(priorities) > 1e-3


def test_prioritized_sampling_weights_follow_the_formula():
    buffer = ReplayBuffer(VECTOR, 64, n_envs=1, prioritized=True, alpha=0.7, seed=5)
    fill(buffer, 100, p_term=0.0, p_trunc=0.0)
    assert buffer.can_sample()
    first = buffer.sample(8)
    assert (buffer.tree.leaves[first.indices] == pytest.approx(1.0))  # new transitions enter at max priority
    errors = np.random.default_rng(2).random(buffer.capacity) * 3
    buffer.update_priorities(np.arange(buffer.capacity), errors)
    # the slot written last has no complete window yet, so it must not be sampled
    newest = (buffer.written - 1) % buffer.rows
    buffer.tree.update(np.array([newest]), np.array([0.0]))
    beta = 0.5
    batch = buffer.sample(256, beta=beta)
    priority = (np.abs(errors) + buffer.eps) ** 0.7
    priority[newest] = 0.0
    probs = priority[batch.indices] / priority.sum()
    expected = (np.count_nonzero(priority) * probs) ** -beta
    np.testing.assert_allclose(batch.weights, expected / expected.max(), rtol=1e-5)
    assert buffer.max_priority == pytest.approx(errors.max() + buffer.eps)


def test_prioritized_buffer_keeps_unready_and_reset_slots_out_of_the_tree():
    buffer = ReplayBuffer(VECTOR, 40, n_envs=2, n_step=2, prioritized=True)
    h = fill(buffer, 60, p_term=0.3)
    leaves = buffer.tree.leaves[: buffer.capacity].reshape(buffer.rows, 2)
    for row in range(60 - buffer.rows, 60):
        ready = row <= 60 - 1 - 2
        expected = h["valid"][row] & ready
        np.testing.assert_array_equal(leaves[row % buffer.rows] > 0, expected)


def test_uint8_images_are_stored_once_in_uint8():
    images = spaces.Box(0, 255, (84, 84, 4), np.uint8)
    buffer = ReplayBuffer(images, 1000, n_envs=4)
    assert buffer.obs.dtype == np.uint8
    obs_bytes = 1000 * 84 * 84 * 4  # one copy per transition: next observations are the following row
    assert buffer.obs.nbytes == obs_bytes
    assert obs_bytes <= buffer.nbytes < obs_bytes * 1.01
    assert str(buffer.nbytes) in buffer.describe()
    frame = np.full((4, 84, 84, 4), 200, np.uint8)
    ones = np.ones(4, bool)
    for _ in range(3):
        buffer.add(frame, np.zeros(4, int), np.zeros(4), ~ones, ~ones, ones, ones)
    assert buffer.sample(2).obs.dtype == np.uint8


def test_channel_first_images_are_handed_out_channels_last_with_the_written_values():
    images = spaces.Box(0, 255, (4, 12, 10), np.uint8)  # (C, H, W)
    buffer = ReplayBuffer(images, 200, n_envs=2, seed=3)
    rng = np.random.default_rng(0)
    written = rng.integers(0, 256, size=(30, 2, 4, 12, 10), dtype=np.uint8)  # (rows, envs, C, H, W)
    ones = np.ones(2, bool)
    for row in written:
        buffer.add(row, np.zeros(2, int), np.zeros(2), ~ones, ~ones, ones, ones)
    batch = buffer.sample(16)
    rows, envs = batch.indices // 2, batch.indices % 2  # absolute rows: the buffer has not wrapped
    np.testing.assert_array_equal(batch.obs, written[rows, envs])
    np.testing.assert_array_equal(batch.next_obs, written[rows + 1, envs])
    assert batch.obs.shape == (16, 4, 12, 10) and batch.obs.strides == (480, 1, 40, 4)  # channels innermost
    as_tensor = torch.from_numpy(batch.obs)
    assert as_tensor.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_array_equal(buffer.state()["obs"], written)  # checkpoints hold the space's layout
    restored = ReplayBuffer(images, 200, n_envs=2, seed=3)
    restored.load_state(buffer.state())
    np.testing.assert_array_equal(restored.obs[:30], written)


def test_sequences_are_contiguous_rows_of_one_env():
    buffer = ReplayBuffer(VECTOR, 120, n_envs=3, seed=4)
    h = fill(buffer, 100, p_term=0.2)
    seq = buffer.sample_sequences(64, 6)
    assert seq.obs.shape == (7, 64, 3) and seq.actions.shape == (6, 64)
    flat_obs = h["obs"].reshape(-1, 3)
    where = {tuple(o): i for i, o in enumerate(flat_obs)}
    for b in range(64):
        idx = np.array([where[tuple(o)] for o in seq.obs[:, b]])
        rows, envs = idx // 3, idx % 3
        assert (envs == envs[0]).all() and (np.diff(rows) == 1).all()
        assert rows[0] >= 100 - buffer.rows and rows[-1] <= 99
        np.testing.assert_array_equal(seq.episode_starts[:, b], h["starts"][rows, envs[0]])
        np.testing.assert_array_equal(seq.rewards[:, b], h["rewards"][rows[:-1], envs[0]])
        np.testing.assert_array_equal(seq.valid[:, b], h["valid"][rows[:-1], envs[0]])
        np.testing.assert_array_equal(seq.terminated[:, b], h["terminated"][rows[:-1], envs[0]])


def test_too_small_buffer_and_empty_sampling_are_clear_errors():
    with pytest.raises(ValueError, match="buffer_size"):
        ReplayBuffer(VECTOR, 4, n_envs=2, n_step=3)
    buffer = ReplayBuffer(VECTOR, 100, n_envs=1, n_step=3)
    fill(buffer, 2)
    assert not buffer.can_sample()
    with pytest.raises(ValueError, match="collect more steps"):
        buffer.sample(4)
