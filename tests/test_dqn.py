"""DQN: TD targets against slow references, switches, checkpoints, refusals, and learning (slow)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlsuite.agents import dqn
from rlsuite.agents.checkpoint import load_checkpoint, read_checkpoint_meta
from rlsuite.agents.interface import AgentError, TrainContext
from rlsuite.agents.logger import MetricLogger, read_metrics
from rlsuite.agents.registry import load_policy
from rlsuite.agents.run import RunFolder
from rlsuite.agents.settings import ConfigError, resolve_settings, settings_to_dict
from rlsuite.evaluation.harness import evaluate_policy, make_eval_callback


def slow_td_targets(returns, discounts, next_q_target, next_q_online=None, epsilon=0.0):
    """Row by row with Python floats and lists."""
    out = []
    for i in range(len(returns)):
        target_row = [float(v) for v in next_q_target[i]]
        if next_q_online is None:
            value = max(target_row)
        else:
            online_row = [float(v) for v in next_q_online[i]]
            value = target_row[online_row.index(max(online_row))]
        value = (1 - epsilon) * value + epsilon * sum(target_row) / len(target_row)
        out.append(float(returns[i]) + float(discounts[i]) * value)
    return np.array(out)


def test_td_targets_plain_and_double_match_slow_reference():
    rng = np.random.default_rng(0)
    returns = rng.normal(size=50)
    discounts = rng.choice([0.0, 0.99, 0.99**3], size=50)
    next_q_target, next_q_online = rng.normal(size=(50, 6)), rng.normal(size=(50, 6))
    t = lambda x: torch.as_tensor(x, dtype=torch.float64)  # noqa: E731
    plain = dqn.td_targets(t(returns), t(discounts), t(next_q_target))
    double = dqn.td_targets(t(returns), t(discounts), t(next_q_target), t(next_q_online))
    np.testing.assert_allclose(plain.numpy(), slow_td_targets(returns, discounts, next_q_target), atol=1e-12)
    np.testing.assert_allclose(double.numpy(), slow_td_targets(returns, discounts, next_q_target, next_q_online),
                               atol=1e-12)
    assert not np.allclose(plain.numpy(), double.numpy())  # the two rules do differ on these inputs
    for online in (None, next_q_online):
        soft = dqn.td_targets(t(returns), t(discounts), t(next_q_target), None if online is None else t(online), 0.05)
        np.testing.assert_allclose(soft.numpy(), slow_td_targets(returns, discounts, next_q_target, online, 0.05),
                                   atol=1e-12)


def test_td_targets_hand_computed():
    # plain: 1 + 0.5 * max(2, 4) = 3; double: the online net prefers action 0, the target scores it 2 -> 2
    returns, discounts = torch.tensor([1.0]), torch.tensor([0.5])
    next_q_target, next_q_online = torch.tensor([[2.0, 4.0]]), torch.tensor([[9.0, 1.0]])
    assert dqn.td_targets(returns, discounts, next_q_target).item() == pytest.approx(3.0)
    assert dqn.td_targets(returns, discounts, next_q_target, next_q_online).item() == pytest.approx(2.0)
    assert dqn.td_targets(returns, torch.tensor([0.0]), next_q_target).item() == pytest.approx(1.0)  # terminated
    # epsilon 0.5: V(s') = 0.5 * max(2, 4) + 0.5 * mean(2, 4) = 3.5 -> 1 + 0.5 * 3.5 = 2.75
    assert dqn.td_targets(returns, discounts, next_q_target, epsilon=0.5).item() == pytest.approx(2.75)


def test_linear_schedule():
    assert dqn.linear_schedule(1.0, 0.1, 100, 0) == pytest.approx(1.0)
    assert dqn.linear_schedule(1.0, 0.1, 100, 50) == pytest.approx(0.55)
    assert dqn.linear_schedule(1.0, 0.1, 100, 100) == pytest.approx(0.1)
    assert dqn.linear_schedule(1.0, 0.1, 100, 1000) == pytest.approx(0.1)



def test_td_loss_hand_computed():
    """huber (smooth L1, delta 1) and mse of Q(s, a) - y, each a plain or weighted mean over the batch."""
    q, y = torch.tensor([0.0, 1.0, 5.0]), torch.tensor([0.5, -1.0, 5.0])  # errors -0.5, 2, 0
    assert dqn.td_loss(q, y, "huber").item() == pytest.approx((0.5 * 0.25 + (2.0 - 0.5) + 0.0) / 3)
    assert dqn.td_loss(q, y, "mse").item() == pytest.approx((0.25 + 4.0 + 0.0) / 3)
    weights = torch.tensor([2.0, 0.5, 1.0])
    assert dqn.td_loss(q, y, "mse", weights).item() == pytest.approx((2.0 * 0.25 + 0.5 * 4.0) / 3)


def test_torch_init_is_pytorch_default_like_sb3_and_orthogonal_is_not():
    """init=torch gives every Linear PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)) weights and biases (SB3's
    QNetwork); the orthogonal init (gain sqrt 2, zero biases) exceeds that bound on a 256 -> 256 layer."""
    box = spaces.Box(-1.0, 1.0, (4,), np.float32)
    base = settings_to_dict(dqn.DQNSettings(env_id="CartPole-v1", hidden_sizes=(256, 256)))
    torch.manual_seed(0)
    torch_net = dqn.QNetwork(box, 2, dqn.DQNSettings(**{**base, "init": "torch"}))
    torch.manual_seed(0)
    ortho_net = dqn.QNetwork(box, 2, dqn.DQNSettings(**base))
    torch_layers = [m for m in torch_net.modules() if isinstance(m, torch.nn.Linear)]
    ortho_layers = [m for m in ortho_net.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.in_features for m in torch_layers] == [4, 256, 256]
    for layer in torch_layers:
        bound = 1.0 / math.sqrt(layer.in_features)
        assert layer.weight.abs().max() <= bound and layer.bias.abs().max() <= bound
        assert layer.bias.abs().max() > 0.5 * bound  # uniform biases, not zeros
        # uniform on [-bound, bound]: standard deviation bound / sqrt(3)
        assert abs(layer.weight.std().item() - bound / math.sqrt(3)) < 0.05 * bound
    assert ortho_layers[1].weight.abs().max() > 2.0 / math.sqrt(256)
    assert all(float(m.bias.abs().max()) == 0.0 for m in ortho_layers)
    with pytest.raises(ConfigError, match="init"):
        dqn.DQNSettings(env_id="CartPole-v1", init="xavier").validate()  # type: ignore[arg-type]


def test_cartpole_preset_uses_sb3_init():
    assert resolve_settings(dqn.DQNSettings, "dqn", "CartPole-v1").init == "torch"


def _context(tmp_path: Path, settings: dqn.DQNSettings, stop_after: int | None = None, resume_from=None,
             name="run", evaluate=None):
    if resume_from is None:
        run = RunFolder.create(tmp_path, agent="dqn", env_id=settings.env_id, seed=settings.seed,
                               settings=settings_to_dict(settings), command="test", device="cpu", name=name)
    else:
        run = RunFolder.open(tmp_path / name)
    calls = {"n": 0}

    def progress(step, metrics):
        calls["n"] += 1

    logger = MetricLogger(run.path, tensorboard=False,
                          resume_step=None if resume_from is None else read_checkpoint_meta(resume_from)["step"])
    ctx = TrainContext(run=run, logger=logger, progress=progress, evaluate=evaluate,
                       stop_requested=lambda: stop_after is not None and calls["n"] >= stop_after,
                       resume_from=resume_from)
    return run, ctx


def _small_settings(env_id="CartPole-v1", **overrides) -> dqn.DQNSettings:
    base = dict(total_steps=2000, n_envs=2, learning_starts=200, batch_size=16, train_freq=4, gradient_steps=1, buffer_size=1000,
                target_update_interval=100, hidden_sizes=(32,), eval_every=0, tensorboard=False)
    base.update(overrides)
    return resolve_settings(dqn.DQNSettings, "dqn", env_id, cli_values=base)


def test_checkpoint_round_trip_gives_identical_actions(tmp_path):
    settings = _small_settings(exploration_fraction=0.75)
    run, ctx = _context(tmp_path, settings)
    result = dqn.train(settings, ctx)
    ctx.logger.close()
    assert result.status == "finished" and result.final_step == 2000
    loaded, again = load_policy(run.path, "last"), load_policy(run.path, "last")
    obs = np.random.default_rng(1).normal(size=(256, 4)).astype(np.float32)
    starts = np.zeros(256, dtype=bool)
    actions = loaded.policy.act(obs, starts)
    np.testing.assert_array_equal(actions, again.policy.act(obs, starts))
    assert set(np.unique(actions)) <= {0, 1}
    assert loaded.step == 2000
    metrics = read_metrics(run.path)
    assert metrics["charts/replay_buffer_bytes"][1][0] > 0
    for key in ("losses/td_loss", "losses/q_values", "charts/epsilon", "charts/sps"):
        assert np.isfinite(metrics[key][1]).all()
    epsilon = metrics["charts/epsilon"][1]
    assert epsilon[0] > epsilon[-1] == pytest.approx(settings.exploration_final_eps)


def test_resume_continues_exactly(tmp_path):
    settings = _small_settings(total_steps=4000, exploration_fraction=1.0)
    full_run, full_ctx = _context(tmp_path, settings, name="full")
    dqn.train(settings, full_ctx)
    full_ctx.logger.close()
    part_run, part_ctx = _context(tmp_path, settings, stop_after=2)
    first = dqn.train(settings, part_ctx)
    part_ctx.logger.close()
    assert first.status == "interrupted" and first.final_step == 2000
    checkpoint = part_run.find_checkpoint("last")
    assert "loop" in read_checkpoint_meta(checkpoint)  # env, episodes, exploration RNG and the replay buffer
    _, resume_ctx = _context(tmp_path, settings, resume_from=checkpoint)
    second = dqn.train(settings, resume_ctx)
    resume_ctx.logger.close()
    assert second.status == "finished" and second.final_step == 4000
    steps, epsilon = read_metrics(part_run.path)["charts/epsilon"]
    assert len(np.unique(steps)) == len(steps)  # every step logged once across the resume
    expected = [dqn.linear_schedule(1.0, settings.exploration_final_eps, 4000, s - settings.n_envs) for s in steps]
    np.testing.assert_allclose(epsilon, expected)  # the schedule continues where it stopped
    full, part = (load_checkpoint(run.find_checkpoint("last"))[0] for run in (full_run, part_run))
    for key in [k for k in full if k.startswith(("model.", "target."))]:
        assert torch.equal(full[key], part[key]), key  # bit for bit the run that never stopped


@pytest.mark.parametrize("overrides", [
    {"double": True, "dueling": True, "per": True, "n_step": 3},
    {"loss": "mse", "tau": 0.05, "target_update_interval": 4, "gradient_steps": 2},
    {"recurrent": True, "lstm_hidden": 16, "sequence_length": 4, "burn_in": 2, "double": True},
])
def test_switches_train_and_reload(tmp_path, overrides):
    settings = _small_settings(total_steps=1000, **overrides)
    run, ctx = _context(tmp_path, settings)
    dqn.train(settings, ctx)
    ctx.logger.close()
    assert all(math.isfinite(v) for v in read_metrics(run.path)["losses/td_loss"][1])
    policy = load_policy(run.path, "last").policy
    episodes = evaluate_policy(policy, "CartPole-v1", episodes=2)
    assert all(e.length >= 1 for e in episodes)


def test_polyak_and_hard_target_updates(tmp_path):
    online, target = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    before = [p.detach().clone() for p in target.parameters()]
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), 0.25)
    for b, t, o in zip(before, target.parameters(), online.parameters(), strict=True):
        torch.testing.assert_close(t, 0.75 * b + 0.25 * o)
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), 1.0)
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        assert torch.equal(t, o)


def test_rejects_non_discrete_actions_and_bad_combinations():
    with pytest.raises(AgentError, match="Discrete action space"):
        dqn.check_spaces(spaces.Box(-1, 1, (3,)), spaces.Box(-1, 1, (2,)))
    with pytest.raises(ConfigError, match="per=false"):
        _small_settings(recurrent=True, per=True)
    with pytest.raises(ConfigError, match="tau"):
        _small_settings(tau=0.0)


def test_cli_refuses_box_actions_with_exit_2_and_no_run_folder(tmp_path):
    result = subprocess.run([sys.executable, "-m", "rlsuite.cli", "train", "--agent", "dqn", "--env", "Pendulum-v1",
                             "--steps", "256"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "Discrete action space" in " ".join(result.stderr.split())
    assert not (tmp_path / "runs").exists()


# --- learning --------------------------------------------------------------------------------------------


def _train_preset(tmp_path: Path, env_id: str, seed: int, stop_at: float | None = None,
                  **overrides) -> tuple[RunFolder, float]:
    """Train with the preset; return the run and its best periodic evaluation mean.

    With `stop_at`, training stops after the first evaluation at or above it: the claim "reaches X within
    N steps" is then proven, and the rest of the budget would only cost CI time."""
    settings = resolve_settings(dqn.DQNSettings, "dqn", env_id, cli_values={"seed": seed, "tensorboard": False, **overrides})
    evaluate = make_eval_callback(env_id, episodes=settings.eval_episodes)
    best = {"mean": -math.inf}

    def evaluate_and_track(policy, step):
        metrics = evaluate(policy, step)
        best["mean"] = max(best["mean"], metrics["eval/mean_return"])
        return metrics

    run = RunFolder.create(tmp_path, agent="dqn", env_id=env_id, seed=seed, settings=settings_to_dict(settings),
                           command="test", device="cpu", name=f"{env_id.replace('/', '_')}_{seed}_{len(overrides)}")
    with MetricLogger(run.path, tensorboard=False) as logger:
        ctx = TrainContext(run=run, logger=logger, evaluate=evaluate_and_track,
                           stop_requested=lambda: stop_at is not None and best["mean"] >= stop_at)
        result = dqn.train(settings, ctx)
    assert result.final_step <= settings.total_steps
    return run, best["mean"]


@pytest.mark.slow
def test_dqn_solves_cartpole_within_50k_steps_for_2_of_3_seeds(tmp_path):
    """RL Zoo's settings (the preset). Each seed stops at its first evaluation >= 475; seeds stop being
    trained once the 2-of-3 verdict is settled either way (CI time)."""
    bests: dict[int, float] = {}
    for seed in (0, 1, 2):
        run, best = _train_preset(tmp_path, "CartPole-v1", seed, stop_at=475.0)
        bests[seed] = best
        if best >= 475.0:  # the best checkpoint scores it again on the harness's fixed seeds
            policy = load_policy(run.path, "best").policy
            assert np.mean([e.episode_return for e in evaluate_policy(policy, "CartPole-v1", episodes=10)]) >= 475.0
        solved = sum(b >= 475.0 for b in bests.values())
        if solved >= 2 or len(bests) - solved >= 2:
            break
    assert sum(b >= 475.0 for b in bests.values()) >= 2, f"best evaluation means per seed: {bests}"


@pytest.mark.slow
def test_recurrent_dqn_remembers_the_cue_and_feed_forward_dqn_cannot(tmp_path):
    """The same preset (4 cues, delay 5) with and without the LSTM; chance is 1/4."""
    env_id = "rlsuite/MemoryCue-v0"
    run, _ = _train_preset(tmp_path, env_id, seed=0, stop_at=1.0)
    ff_run, _ = _train_preset(tmp_path, env_id, seed=0, recurrent=False)
    recurrent, feed_forward = (
        np.mean([e.episode_return for e in evaluate_policy(load_policy(r.path, "best").policy, env_id, episodes=200)])
        for r in (run, ff_run))
    assert recurrent >= 0.95, f"recurrent DQN success rate {recurrent}"
    assert feed_forward <= 0.4, f"feed-forward DQN success rate {feed_forward} (chance is 0.25)"
