"""PPO: returns and losses against obvious references, checkpoints, resume, and learning CartPole."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlsuite.agents import ppo
from rlsuite.agents.checkpoint import load_checkpoint, read_checkpoint_meta
from rlsuite.agents.interface import TrainContext
from rlsuite.agents.logger import MetricLogger, read_metrics
from rlsuite.agents.registry import load_policy
from rlsuite.agents.run import RunFolder
from rlsuite.agents.settings import resolve_settings, settings_to_dict
from rlsuite.evaluation.harness import evaluate_policy


def slow_gae(rewards, values, next_value, terminated, truncated, gamma, lam):
    """Per env, walk backwards through episodes with plain floats."""
    steps, n_envs = rewards.shape
    adv = np.zeros((steps, n_envs))
    for env in range(n_envs):
        running = 0.0
        for t in reversed(range(steps)):
            following = next_value[env] if t == steps - 1 else values[t + 1, env]
            if terminated[t, env]:
                following = 0.0
            delta = rewards[t, env] + gamma * following - values[t, env]
            if terminated[t, env] or truncated[t, env]:
                running = delta  # the episode ends here: nothing after it belongs to it
            else:
                running = delta + gamma * lam * running
            adv[t, env] = running
    return adv


def test_gae_matches_slow_reference():
    rng = np.random.default_rng(0)
    steps, n_envs = 37, 5
    rewards = rng.normal(size=(steps, n_envs))
    values = rng.normal(size=(steps, n_envs))
    next_value = rng.normal(size=n_envs)
    terminated = rng.random((steps, n_envs)) < 0.1
    truncated = (rng.random((steps, n_envs)) < 0.1) & ~terminated
    expected = slow_gae(rewards, values, next_value, terminated, truncated, 0.97, 0.9)
    t = lambda x: torch.as_tensor(x, dtype=torch.float64)  # noqa: E731
    adv, ret = ppo.compute_gae(t(rewards), t(values), t(next_value), t(terminated), t(terminated | truncated), 0.97, 0.9)
    np.testing.assert_allclose(adv.numpy(), expected, atol=1e-10)
    np.testing.assert_allclose(ret.numpy(), expected + values, atol=1e-10)


def test_gae_bootstraps_truncation_from_final_observation_value():
    # Next-step autoreset layout for one env: step 1 truncates, step 2 is the reset step whose stored value is
    # V(final observation) = 10. A truncated step bootstraps from it; a terminated one does not.
    rewards = torch.tensor([[1.0], [1.0], [0.0], [1.0]])
    values = torch.tensor([[0.0], [0.0], [10.0], [0.0]])
    dones = torch.tensor([[0.0], [1.0], [0.0], [0.0]])
    adv_trunc, _ = ppo.compute_gae(rewards, values, torch.zeros(1), torch.zeros(4, 1), dones, 0.5, 1.0)
    adv_term, _ = ppo.compute_gae(rewards, values, torch.zeros(1), dones, dones, 0.5, 1.0)
    assert adv_trunc[1, 0].item() == pytest.approx(1.0 + 0.5 * 10.0)
    assert adv_term[1, 0].item() == pytest.approx(1.0)
    assert adv_trunc[0, 0].item() == pytest.approx(1.0 + 0.5 * (1.0 + 0.5 * 10.0))


def test_clipped_surrogate_hand_computed():
    old = torch.zeros(4)
    new = torch.log(torch.tensor([1.5, 1.5, 0.5, 1.1]))
    adv = torch.tensor([2.0, -1.0, -1.0, 3.0])
    loss = ppo.clipped_surrogate_loss((new - old).exp(), adv, clip_coef=0.2)
    # min(r A, clip(r) A): 1.5*2 vs 1.2*2 -> 2.4; 1.5*-1 vs 1.2*-1 -> -1.5; 0.5*-1 vs 0.8*-1 -> -0.8; 1.1*3 unclipped
    expected = -torch.tensor([2.4, -1.5, -0.8, 3.3])
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("ent_coef", [0.0, 0.01])
def test_ppo_loss_matches_a_slow_float_reference(ent_coef):
    """ppo_loss, the loss train runs, against the clipped objective written row by row with Python floats."""
    env = gym.make("CartPole-v1")
    settings = ppo.PPOSettings(env_id="CartPole-v1", ent_coef=ent_coef, vf_coef=0.7, n_minibatches=1)
    torch.manual_seed(0)
    network = ppo.make_network(env.observation_space, env.action_space, settings)
    for param in network.parameters():  # off the init (heads start near zero), so every weight matters
        param.data.add_(0.3 * torch.randn_like(param))
    batch, clip = 16, 0.2
    obs = torch.randn(batch, 4) * 2.0
    with torch.no_grad():
        actor_f, critic_f, _ = network.features(obs)
        logits, values = network.actor.linear(actor_f).tolist(), network.critic(critic_f).tolist()
    mb = {"obs": obs, "actions": torch.randint(0, 2, (batch,)), "advantages": torch.randn(batch),
          "returns": 3.0 * torch.randn(batch)}
    mb["logprobs"] = torch.tensor([row[a] - math.log(sum(map(math.exp, row)))
                                   for row, a in zip(logits, mb["actions"].tolist(), strict=True)])
    mb["logprobs"] += 0.3 * torch.randn(batch)  # ratios inside and outside the clip range
    adv = mb["advantages"].tolist()
    # what ppo.epochs hands the loss: advantages normalised per minibatch
    mb["advantages"] = next(ppo.epochs(settings, None, mb | {"valid": torch.ones(batch)}, False))[0][0]["advantages"]
    loss, terms = ppo.ppo_loss(network, mb, clip, settings)

    mean_adv = sum(adv) / batch
    std_adv = math.sqrt(sum((x - mean_adv) ** 2 for x in adv) / batch)
    adv = [(x - mean_adv) / (std_adv + 1e-8) for x in adv]
    pg, vl, ent = 0.0, 0.0, 0.0
    for i in range(batch):
        log_z = math.log(sum(math.exp(z) for z in logits[i]))
        logp = [z - log_z for z in logits[i]]
        ratio = math.exp(logp[int(mb["actions"][i])] - float(mb["logprobs"][i]))
        pg += -min(ratio * adv[i], min(max(ratio, 1 - clip), 1 + clip) * adv[i]) / batch
        vl += 0.5 * (values[i] - float(mb["returns"][i])) ** 2 / batch
        ent += -sum(math.exp(lp) * lp for lp in logp) / batch
    assert terms["policy_loss"].item() == pytest.approx(pg, rel=1e-5)
    assert terms["value_loss"].item() == pytest.approx(vl, rel=1e-5)
    assert terms["entropy"].item() == pytest.approx(ent, rel=1e-5)
    assert loss.item() == pytest.approx(pg + 0.7 * vl - ent_coef * ent, rel=1e-5)


def _context(tmp_path: Path, settings: ppo.PPOSettings, stop_after: int | None = None, resume_from=None, name="run"):
    if resume_from is None:
        run = RunFolder.create(tmp_path, agent="ppo", env_id=settings.env_id, seed=settings.seed,
                               settings=settings_to_dict(settings), command="test", device="cpu", name=name)
    else:
        run = RunFolder.open(tmp_path / name)
    updates = {"n": 0}

    def progress(step, metrics):
        updates["n"] += 1

    logger = MetricLogger(run.path, tensorboard=False,
                          resume_step=None if resume_from is None else read_checkpoint_meta(resume_from)["step"])
    ctx = TrainContext(run=run, logger=logger, progress=progress,
                       stop_requested=lambda: stop_after is not None and updates["n"] >= stop_after,
                       resume_from=resume_from)
    return run, ctx


def _small_settings(env_id="CartPole-v1", **overrides) -> ppo.PPOSettings:
    base = dict(total_steps=1024, n_envs=4, n_steps=32, n_minibatches=2, n_epochs=2, eval_every=0,
                tensorboard=False)
    base.update(overrides)
    return resolve_settings(ppo.PPOSettings, "ppo", env_id, cli_values=base)


def test_checkpoint_round_trip_gives_identical_actions(tmp_path):
    settings = _small_settings(normalize_obs=True)
    run, ctx = _context(tmp_path, settings)
    result = ppo.train(settings, ctx)
    ctx.logger.close()
    assert result.status == "finished" and result.final_step == 1024
    loaded = load_policy(run.path, "last")
    again = load_policy(run.path, "last")
    obs = np.random.default_rng(1).normal(size=(64, 4)).astype(np.float32)
    starts = np.zeros(64, dtype=bool)
    np.testing.assert_array_equal(loaded.policy.act(obs, starts), again.policy.act(obs, starts))
    assert loaded.step == 1024


def test_resume_continues_steps_and_schedules(tmp_path):
    settings = _small_settings(total_steps=2048)
    full_run, full_ctx = _context(tmp_path, settings, name="full")
    ppo.train(settings, full_ctx)
    full_ctx.logger.close()

    part_run, part_ctx = _context(tmp_path, settings, stop_after=5, name="part")
    first = ppo.train(settings, part_ctx)
    part_ctx.logger.close()
    assert first.status == "interrupted" and first.final_step == 5 * 128
    checkpoint = part_run.find_checkpoint("last")
    _, resume_ctx = _context(tmp_path, settings, resume_from=checkpoint, name="part")
    second = ppo.train(settings, resume_ctx)
    resume_ctx.logger.close()
    assert second.status == "finished" and second.final_step == 2048

    full_lr = read_metrics(full_run.path)["charts/learning_rate"]
    part_lr = read_metrics(part_run.path)["charts/learning_rate"]
    np.testing.assert_array_equal(full_lr[0], part_lr[0])  # every update logged once, no step counted twice
    np.testing.assert_allclose(full_lr[1], part_lr[1])  # the annealing schedule continues where it stopped
    full, part = (load_checkpoint(run.find_checkpoint("last"))[0] for run in (full_run, part_run))
    for key in [k for k in full if k.startswith("model.")]:
        assert torch.equal(full[key], part[key]), key  # exact resume: bit for bit the run that never stopped


class _DictObsEnv(gym.Env):
    """A tiny env with Dict observations (vector + image) and MultiDiscrete actions: reward for matching bits."""

    def __init__(self, render_mode=None):
        self.observation_space = spaces.Dict({
            "state": spaces.Box(-1.0, 1.0, (3,), np.float32),
            "image": spaces.Box(0, 255, (36, 36, 1), np.uint8),
        })
        self.action_space = spaces.MultiDiscrete([2, 3])
        self._t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        self._t += 1
        reward = float(action[0] == 1) + float(action[1] == 2)
        return self.observation_space.sample(), reward, False, self._t >= 20, {}


gym.register("rlsuite-test/DictObs-v0", entry_point=_DictObsEnv)


@pytest.mark.parametrize("env_id, overrides", [
    ("Pendulum-v1", {"normalize_obs": True, "normalize_reward": True}),
    ("Pendulum-v1", {"squash": "tanh"}),
    ("CartPole-v1", {"recurrent": True, "lstm_hidden": 16, "n_minibatches": 2}),
    ("rlsuite-test/DictObs-v0", {}),
])
def test_spaces_train_and_reload(tmp_path, env_id, overrides):
    settings = _small_settings(env_id, total_steps=256, **overrides)
    run, ctx = _context(tmp_path, settings)
    result = ppo.train(settings, ctx)
    ctx.logger.close()
    metrics = read_metrics(run.path)
    assert result.final_step == 256
    assert all(math.isfinite(v) for v in metrics["losses/policy_loss"][1])
    policy = load_policy(run.path, "last").policy
    env = gym.make(env_id)
    obs, _ = env.reset(seed=0)
    batched = {k: v[None] for k, v in obs.items()} if isinstance(obs, dict) else obs[None]
    action = policy.act(batched, np.ones(1, dtype=bool))[0]
    assert env.action_space.contains(action.astype(env.action_space.dtype))


def test_rejects_unsupported_action_space():
    with pytest.raises(ppo.AgentError, match="Discrete, MultiDiscrete and Box"):
        ppo.check_spaces(spaces.Box(-1, 1, (3,)), spaces.Tuple((spaces.Discrete(2), spaces.Discrete(2))))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ppo_solves_cartpole_within_100k_steps(tmp_path, seed):
    from rlsuite.train import prepare_settings, run_training

    settings = prepare_settings("ppo", "CartPole-v1", cli_values={"seed": seed, "tensorboard": False})
    assert settings.total_steps == 100_000
    run = RunFolder.create(tmp_path, agent="ppo", env_id="CartPole-v1", seed=seed,
                           settings=settings_to_dict(settings), command="test", device="cpu")
    run_training("ppo", settings, run, show_progress=False)
    loaded = load_policy(run.path, "best")
    episodes = evaluate_policy(loaded.policy, "CartPole-v1", episodes=10)
    mean_return = float(np.mean([e.episode_return for e in episodes]))
    assert mean_return >= 475.0, f"seed {seed}: best checkpoint (step {loaded.step}) scored {mean_return}"


def test_ppo_settings_stay_within_forty_fields():
    """PPO's settings stay readable: the TrainSettings and ActorCriticSettings fields plus PPO's own, 40 at most
    (a named network's options live in network_kwargs, not in fields of every PPO)."""
    assert len(dataclasses.fields(ppo.PPOSettings)) <= 40
