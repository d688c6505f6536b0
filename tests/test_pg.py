"""The policy-gradient family: REINFORCE and A2C returns against slow loops, checkpoints, resume, spaces,
and learning (slow): A2C and REINFORCE beat random on CartPole; recurrent PPO solves MemoryCue where
feed-forward PPO cannot."""

from __future__ import annotations

import math
from collections import deque
from functools import partial
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlsuite.agents import a2c, reinforce
from rlsuite.agents.actor_critic import ActorCritic
from rlsuite.agents.checkpoint import load_checkpoint, read_checkpoint_meta
from rlsuite.agents.interface import AgentError, TrainContext
from rlsuite.agents.logger import MetricLogger, read_metrics
from rlsuite.agents.registry import AGENTS, load_policy
from rlsuite.agents.rollout import (
    Rollout,
    RolloutCollector,
    discounted_returns,
    masked_mean,
    normalize_advantages,
)
from rlsuite.agents.run import RunFolder
from rlsuite.agents.settings import resolve_settings, settings_to_dict
from rlsuite.evaluation.harness import evaluate_policy

# ------------------------------------------------------------------------------------------ slow references


def episode_end(t, env, terminated, truncated):
    """The last step (inclusive) of the episode holding step t, or None if it runs past the window."""
    for k in range(t, terminated.shape[0]):
        if terminated[k, env] or truncated[k, env]:
            return k
    return None


def slow_reward_to_go(rewards, values, next_value, terminated, truncated, gamma):
    """G_t as an explicit forward sum of discounted rewards to the episode's end, plus the bootstrap where
    the data stops: V(final observation) = values[end + 1] after a truncation, next_value past the window."""
    steps, n_envs = rewards.shape
    out = np.zeros((steps, n_envs))
    for env in range(n_envs):
        for t in range(steps):
            end = episode_end(t, env, terminated, truncated)
            last = steps - 1 if end is None else end
            total = sum(gamma ** (k - t) * rewards[k, env] for k in range(t, last + 1))
            if end is None:
                total += gamma ** (steps - t) * next_value[env]
            elif truncated[end, env]:
                after = next_value[env] if end == steps - 1 else values[end + 1, env]
                total += gamma ** (end + 1 - t) * after
            out[t, env] = total
    return out


def slow_gae_forward(rewards, values, next_value, terminated, truncated, gamma, lam):
    """A_t = sum_k (gamma lam)^k delta_{t+k} over the rest of the episode inside the window."""
    steps, n_envs = rewards.shape
    out = np.zeros((steps, n_envs))
    for env in range(n_envs):
        for t in range(steps):
            end = episode_end(t, env, terminated, truncated)
            last = steps - 1 if end is None else end
            total = 0.0
            for k in range(t, last + 1):
                after = next_value[env] if k == steps - 1 else values[k + 1, env]
                delta = rewards[k, env] + gamma * after * (0.0 if terminated[k, env] else 1.0) - values[k, env]
                total += (gamma * lam) ** (k - t) * delta
            out[t, env] = total
    return out


def random_rollout(seed, steps=29, n_envs=6, p_end=0.12):
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=(steps, n_envs))
    values = rng.normal(size=(steps, n_envs))
    next_value = rng.normal(size=n_envs)
    terminated = rng.random((steps, n_envs)) < p_end
    truncated = (rng.random((steps, n_envs)) < p_end) & ~terminated
    truncated[-1, 0], terminated[-1, 0] = True, False  # a truncation on the window's last step
    terminated[-1, 1], truncated[-1, 1] = True, False  # and a termination there
    return rewards, values, next_value, terminated, truncated


def _t(x):
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reward_to_go_matches_slow_reference(seed):
    rewards, values, next_value, terminated, truncated = random_rollout(seed)
    assert terminated[:-1].any() and truncated[:-1].any()  # episode ends inside the window, both kinds
    expected = slow_reward_to_go(rewards, values, next_value, terminated, truncated, 0.97)
    got = discounted_returns(_t(rewards), _t(values), _t(next_value), _t(terminated),
                                      _t(terminated | truncated), 0.97)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-10)


@pytest.mark.parametrize("advantage, lam", [("nstep", 1.0), ("gae", 0.9), ("gae", 0.0)])
def test_a2c_advantages_match_slow_reference(advantage, lam):
    rewards, values, next_value, terminated, truncated = random_rollout(7, steps=5, n_envs=64, p_end=0.2)
    settings = a2c.A2CSettings(advantage=advantage, gamma=0.95, gae_lambda=lam)
    adv, ret = a2c.advantages_and_returns(settings, _t(rewards), _t(values), _t(next_value), _t(terminated),
                                          _t(terminated | truncated))
    if advantage == "nstep":
        expected_ret = slow_reward_to_go(rewards, values, next_value, terminated, truncated, 0.95)
        expected_adv = expected_ret - values
    else:
        expected_adv = slow_gae_forward(rewards, values, next_value, terminated, truncated, 0.95, lam)
        expected_ret = expected_adv + values
    np.testing.assert_allclose(adv.numpy(), expected_adv, atol=1e-10)
    np.testing.assert_allclose(ret.numpy(), expected_ret, atol=1e-10)


def test_nstep_return_hand_computed():
    # one env, 3 steps, gamma 0.5: truncated at step 0 (V(final obs) = values[1] = 8), then rewards 1, 2 and a cut
    rewards, values = _t([[1.0], [1.0], [2.0]]), _t([[0.0], [8.0], [0.0]])
    dones, terminated = _t([[1.0], [0.0], [0.0]]), _t([[0.0], [0.0], [0.0]])
    ret = discounted_returns(rewards, values, _t([4.0]), terminated, dones, 0.5)
    assert ret[:, 0].tolist() == pytest.approx([1.0 + 0.5 * 8.0, 1.0 + 0.5 * (2.0 + 0.5 * 4.0), 2.0 + 0.5 * 4.0])
    ret_term = discounted_returns(rewards, values, _t([4.0]), dones, dones, 0.5)
    assert ret_term[0, 0].item() == pytest.approx(1.0)  # a terminated step never bootstraps


def test_complete_episode_mask_drops_unfinished_tails():
    # env 0: episode ends at step 1, reset step 2, unfinished tail 3..4; env 1: ends at 4; env 2 never ends (cut)
    dones = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 0, 0], [0, 0, 0], [0, 1, 0]], dtype=torch.float32)
    valid = torch.tensor([[1, 1, 1], [1, 1, 1], [0, 1, 1], [1, 1, 1], [1, 1, 1]], dtype=torch.float32)
    mask = reinforce.complete_episode_mask(dones, valid)
    expected = [[1, 1, 1], [1, 1, 1], [0, 1, 1], [0, 1, 1], [0, 1, 1]]
    assert mask.tolist() == expected


# ------------------------------------------------------------------------------------------ runs


def _context(tmp_path: Path, agent: str, settings, stop_after: int | None = None, resume_from=None, name="run"):
    if resume_from is None:
        run = RunFolder.create(tmp_path, agent=agent, env_id=settings.env_id, seed=settings.seed,
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


MODULES = {"a2c": a2c, "reinforce": reinforce}
SMALL = {"a2c": dict(n_envs=4, n_steps=8, log_interval=1), "reinforce": dict(n_envs=4, max_rollout_steps=64)}


def _small_settings(agent: str, env_id: str = "CartPole-v1", **overrides):
    values = dict(total_steps=512, eval_every=0, tensorboard=False, **SMALL[agent])
    values.update(overrides)
    return resolve_settings(MODULES[agent].Settings, agent, env_id, cli_values=values)


def test_registered_with_presets():
    for agent, module in MODULES.items():
        assert AGENTS[agent].module == module.__name__
        settings = resolve_settings(module.Settings, agent, "CartPole-v1")
        assert settings.n_envs == 8
    rl_zoo = resolve_settings(a2c.A2CSettings, "a2c", "CartPole-v1")
    assert (rl_zoo.n_steps, rl_zoo.learning_rate, rl_zoo.optimizer, rl_zoo.total_steps) == (5, 7e-4, "rmsprop", 500_000)


@pytest.mark.parametrize("agent", ["a2c", "reinforce"])
def test_checkpoint_round_trip_gives_identical_actions(tmp_path, agent):
    settings = _small_settings(agent, normalize_obs=True)
    run, ctx = _context(tmp_path, agent, settings)
    result = MODULES[agent].train(settings, ctx)
    ctx.logger.close()
    assert result.status == "finished" and result.final_step >= 512
    loaded = load_policy(run.path, "last")
    assert loaded.step == result.final_step and loaded.manifest["agent"] == agent
    # the loaded network holds exactly the saved weights, and acts the same when loaded twice
    tensors, _ = load_checkpoint(run.find_checkpoint("last"))
    for name, value in loaded.policy.network.state_dict().items():
        torch.testing.assert_close(value, tensors[f"model.{name}"], rtol=0, atol=0)
    obs = np.random.default_rng(1).normal(size=(64, 4)).astype(np.float32)
    starts = np.zeros(64, dtype=bool)
    again = load_policy(run.path, "last")
    np.testing.assert_array_equal(loaded.policy.act(obs, starts), again.policy.act(obs, starts))
    assert loaded.policy.obs_normalizer is not None  # normaliser statistics travel with the weights


@pytest.mark.parametrize("agent", ["a2c", "reinforce"])
def test_resume_continues_steps_and_schedules(tmp_path, agent):
    settings = _small_settings(agent, total_steps=1024, anneal_lr=True)
    full_run, full_ctx = _context(tmp_path, agent, settings, name="full")
    MODULES[agent].train(settings, full_ctx)
    full_ctx.logger.close()
    part_run, part_ctx = _context(tmp_path, agent, settings, stop_after=3, name="part")
    first = MODULES[agent].train(settings, part_ctx)
    part_ctx.logger.close()
    assert first.status == "interrupted" and first.final_step < 1024
    checkpoint = part_run.find_checkpoint("last")
    assert read_checkpoint_meta(checkpoint)["update"] == 3
    _, resume_ctx = _context(tmp_path, agent, settings, resume_from=checkpoint, name="part")
    second = MODULES[agent].train(settings, resume_ctx)
    resume_ctx.logger.close()
    assert second.status == "finished" and second.final_step >= 1024
    steps, lrs = read_metrics(part_run.path)["charts/learning_rate"]
    assert len(set(steps.tolist())) == len(steps)  # every update logged once, no step counted twice
    assert np.all(np.diff(lrs) < 0)  # the annealing continues from where it stopped, never restarts
    full, part = (load_checkpoint(run.find_checkpoint("last"))[0] for run in (full_run, part_run))
    for key in [k for k in full if k.startswith("model.")]:
        assert torch.equal(full[key], part[key]), key  # exact resume: bit for bit the run that never stopped


class _MultiDiscreteEnv(gym.Env):
    """Reward for picking (1, 2) in a MultiDiscrete([2, 3]) action; 12-step episodes."""

    def __init__(self, render_mode=None):
        self.observation_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
        self.action_space = spaces.MultiDiscrete([2, 3])
        self._t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        self._t += 1
        reward = float(action[0] == 1) + float(action[1] == 2)
        return self.observation_space.sample(), reward, False, self._t >= 12, {}


gym.register("rlsuite-test/PgMultiDiscrete-v0", entry_point=_MultiDiscreteEnv)


@pytest.mark.parametrize("agent", ["a2c", "reinforce"])
@pytest.mark.parametrize("env_id, overrides", [
    ("Pendulum-v1", {"normalize_obs": True, "normalize_reward": True}),
    ("rlsuite-test/PgMultiDiscrete-v0", {}),
    ("CartPole-v1", {"recurrent": True, "lstm_hidden": 16}),
])
def test_spaces_train_and_reload(tmp_path, agent, env_id, overrides):
    if agent == "a2c" and env_id == "CartPole-v1":
        overrides = {**overrides, "advantage": "gae", "optimizer": "adam", "log_interval": 3}
    settings = _small_settings(agent, env_id, total_steps=256, **overrides)
    run, ctx = _context(tmp_path, agent, settings)
    MODULES[agent].train(settings, ctx)
    ctx.logger.close()
    metrics = read_metrics(run.path)
    assert all(math.isfinite(v) for v in metrics["losses/policy_loss"][1])
    policy = load_policy(run.path, "last").policy
    env = gym.make(env_id)
    obs, _ = env.reset(seed=0)
    action = policy.act(obs[None], np.ones(1, dtype=bool))[0]
    assert env.action_space.contains(action.astype(env.action_space.dtype))


def test_rejects_unsupported_spaces_and_settings():
    tuple_actions = spaces.Tuple((spaces.Discrete(2), spaces.Discrete(2)))
    for module in (a2c, reinforce):
        with pytest.raises(AgentError, match="Discrete, MultiDiscrete and Box"):
            module.check_spaces(spaces.Box(-1, 1, (3,)), tuple_actions)
    with pytest.raises(ValueError, match="advantage"):
        resolve_settings(a2c.A2CSettings, "a2c", "CartPole-v1", set_args=["advantage=td"])
    with pytest.raises(ValueError, match="share_encoder"):
        resolve_settings(reinforce.ReinforceSettings, "reinforce", "CartPole-v1",
                         set_args=["recurrent=true", "share_encoder=false"])


# ------------------------------------------------------------------------------------------ learning (slow)


def _train_and_evaluate(tmp_path, agent, env_id, episodes=10, **values):
    from rlsuite.train import prepare_settings, run_training

    settings = prepare_settings(agent, env_id, cli_values={"tensorboard": False, **values})
    run = RunFolder.create(tmp_path, agent=agent, env_id=env_id, seed=settings.seed,
                           settings=settings_to_dict(settings), command="test", device="cpu")
    run_training(agent, settings, run, show_progress=False)
    loaded = load_policy(run.path, "best")
    returns = [e.episode_return for e in evaluate_policy(loaded.policy, env_id, episodes=episodes)]
    return float(np.mean(returns)), loaded.step


@pytest.mark.slow
def test_a2c_beats_random_on_cartpole_within_30k_steps(tmp_path):
    # RL Zoo's settings (preset), cut from 500k to 30k steps; random scores 22
    mean, step = _train_and_evaluate(tmp_path, "a2c", "CartPole-v1", total_steps=30_000, eval_every=10_000, seed=0)
    assert mean >= 150.0, f"best checkpoint (step {step}) scored {mean}"


@pytest.mark.slow
def test_reinforce_beats_random_on_cartpole_within_50k_steps(tmp_path):
    mean, step = _train_and_evaluate(tmp_path, "reinforce", "CartPole-v1", total_steps=50_000, eval_every=10_000, seed=0)
    assert mean >= 100.0, f"best checkpoint (step {step}) scored {mean}"


MEMORY_PPO = dict(total_steps=20_000, n_envs=8, n_steps=32, n_minibatches=2, n_epochs=4, learning_rate=3e-3,
                  ent_coef=0.01, hidden_sizes=(32,), lstm_hidden=32, eval_every=5_000, eval_episodes=40, seed=1)


@pytest.mark.slow
def test_recurrent_ppo_solves_memory_cue_where_feed_forward_ppo_cannot(tmp_path):
    # MemoryCue-v0: 4 cues, delay 5. Without memory the query step looks the same whatever the cue, so a
    # feed-forward policy answers one fixed cue: at best the most frequent cue of the 40 evaluation seeds (14/40).
    recurrent, step = _train_and_evaluate(tmp_path / "lstm", "ppo", "rlsuite/MemoryCue-v0", episodes=40,
                                          recurrent=True, **MEMORY_PPO)
    feed_forward, ff_step = _train_and_evaluate(tmp_path / "ff", "ppo", "rlsuite/MemoryCue-v0", episodes=40,
                                                recurrent=False, **MEMORY_PPO)
    assert recurrent >= 0.9, f"recurrent PPO (best checkpoint, step {step}) scored {recurrent}"
    assert feed_forward <= 0.4, f"feed-forward PPO (best checkpoint, step {ff_step}) scored {feed_forward}"


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
def test_a2c_flat_optimisers_step_like_torch(optimizer):
    # Oracle: the same network with its own per-tensor parameters, clip_grad_norm_ and torch.optim's optimiser.
    env = gym.make("CartPole-v1")
    settings = a2c.A2CSettings(optimizer=optimizer)
    torch.manual_seed(3)
    reference = ActorCritic(env.observation_space, env.action_space, settings)
    flat_net = ActorCritic(env.observation_space, env.action_space, settings)
    flat_net.load_state_dict(reference.state_dict())
    flat_opt = a2c.make_optimizer(settings, flat_net)
    if optimizer == "rmsprop":
        ref_opt: torch.optim.Optimizer = torch.optim.RMSprop(reference.parameters(), lr=settings.learning_rate,
                                                             alpha=settings.rmsprop_alpha, eps=settings.optimizer_eps)
    else:
        ref_opt = torch.optim.Adam(reference.parameters(), lr=settings.learning_rate, eps=settings.optimizer_eps)
    obs = torch.randn(16, 4)
    for _ in range(3):
        for net in (reference, flat_net):
            actor_f, critic_f, _ = net.features(obs)
            loss = 100.0 * (net.actor(actor_f).entropy().mean() + net.critic(critic_f).pow(2).mean())  # large: clipping acts
            loss.backward()
        torch.nn.utils.clip_grad_norm_(reference.parameters(), 0.5)
        flat_opt.clip_grad_norm_(0.5)
        ref_opt.step()
        flat_opt.step()
        ref_opt.zero_grad()
        flat_opt.zero_grad()
    for (name, ref), (_, got) in zip(reference.state_dict().items(), flat_net.state_dict().items(), strict=True):
        torch.testing.assert_close(got, ref, msg=name)


class _EpisodeSpy(gym.vector.VectorWrapper):
    """Keeps what RecordEpisodeStatistics reports, as the oracle for the collector's own episode counting."""

    def __init__(self, env):
        super().__init__(env)
        self.returns: list[float] = []

    def step(self, actions):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        if "episode" in info:
            self.returns += [float(info["episode"]["r"][i]) for i in np.flatnonzero(info["_episode"])]
        return obs, reward, terminated, truncated, info


def test_collector_counts_episodes_like_record_episode_statistics(tmp_path):
    from rlsuite.envs import make_vec_env

    settings = _small_settings("a2c")
    envs = _EpisodeSpy(make_vec_env("CartPole-v1", 4, record_stats=True))
    network = ActorCritic(envs.single_observation_space, envs.single_action_space, settings)
    run, ctx = _context(tmp_path, "a2c", settings)
    collector = RolloutCollector(envs, network, torch.device("cpu"), None, None, ctx)
    collector.recent_returns = deque(maxlen=None)  # keep every return, not the last 20
    collector.reset(seed=0)
    rollout = Rollout(envs.single_observation_space, envs.single_action_space, 100, 4, torch.device("cpu"))
    for _ in range(3):
        collector.collect(rollout, 0)
    ctx.logger.close()
    assert len(envs.returns) > 10
    assert sorted(collector.recent_returns) == sorted(envs.returns)


def test_a2c_normalized_advantages_match_a_slow_reference():
    rng = np.random.default_rng(4)
    adv, valid = rng.normal(size=40) * 3 + 1, (rng.random(40) > 0.2).astype(np.float64)
    kept = adv[valid == 1]
    expected = (adv - kept.mean()) / (kept.std() + 1e-8)  # population std over the valid rows
    got = normalize_advantages(torch.tensor(adv), partial(masked_mean, mask=torch.tensor(valid)))
    np.testing.assert_allclose(got.numpy()[valid == 1], expected[valid == 1], rtol=1e-10)


def _float_policy_terms(network, obs, actions):
    """Per row, with Python floats from the network's raw outputs: log pi(a|s), the entropy, V(s)."""
    with torch.no_grad():
        actor_f, critic_f, _ = network.features(obs)
        logits, values = network.actor.linear(actor_f).tolist(), network.critic(critic_f).tolist()
    rows = []
    for row, action, value in zip(logits, actions.tolist(), values, strict=True):
        log_z = math.log(sum(math.exp(z) for z in row))
        logp = [z - log_z for z in row]
        rows.append((logp[action], -sum(math.exp(lp) * lp for lp in logp), value))
    return rows


@pytest.mark.parametrize("agent", ["a2c", "reinforce"])
def test_loss_matches_a_slow_float_reference(agent):
    """a2c_loss and reinforce_loss, the losses train runs, against masked means written row by row."""
    obs_space, action_space = spaces.Box(-np.inf, np.inf, (5,), np.float32), spaces.Discrete(3)
    torch.manual_seed(0)
    settings = a2c.A2CSettings() if agent == "a2c" else reinforce.ReinforceSettings(normalize_advantage=False)
    network = ActorCritic(obs_space, action_space, settings)
    for param in network.parameters():  # off the init (heads start near zero), so every weight matters
        param.data.add_(0.3 * torch.randn_like(param))
    batch, vf_coef, ent_coef = 40, 0.7, 0.05
    settings.vf_coef, settings.ent_coef = vf_coef, ent_coef
    obs, actions = torch.randn(batch, 5) * 2.0, torch.randint(0, 3, (batch,))
    advantages, returns = torch.randn(batch), torch.randn(batch) * 3.0
    mask = (torch.rand(batch) > 0.15).float()  # reset steps and unfinished tails carry no loss
    if agent == "a2c":
        loss, terms = a2c.a2c_loss(network, obs, actions, advantages, returns, mask, vf_coef, ent_coef)
    else:
        loss, terms = reinforce.reinforce_loss(network, obs, actions, returns, mask, settings)
    pg, v, ent = terms["policy_loss"], terms["value_loss"], terms["entropy"]
    kept = [i for i in range(batch) if mask[i] == 1]
    rows = _float_policy_terms(network, obs, actions)
    # A2C: A given, value loss mean (G - V)^2; REINFORCE: A = G - V (the baseline), value loss 0.5 mean (G - V)^2
    adv = [float(advantages[i]) if agent == "a2c" else float(returns[i]) - rows[i][2] for i in range(batch)]
    half = 1.0 if agent == "a2c" else 0.5
    expected_pg = -sum(adv[i] * rows[i][0] for i in kept) / len(kept)
    expected_v = half * sum((float(returns[i]) - rows[i][2]) ** 2 for i in kept) / len(kept)
    expected_ent = sum(rows[i][1] for i in kept) / len(kept)
    assert float(pg) == pytest.approx(expected_pg, rel=1e-5)
    assert float(v) == pytest.approx(expected_v, rel=1e-5)
    assert float(ent) == pytest.approx(expected_ent, rel=1e-5)
    assert float(loss) == pytest.approx(expected_pg + vf_coef * expected_v - ent_coef * expected_ent, rel=1e-5)
