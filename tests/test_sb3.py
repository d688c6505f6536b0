"""Stable-Baselines3 agents: the backbone adapter, the VecEnv adapter, safe checkpoints, import, learning."""

from __future__ import annotations

import base64
import json
import math
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.vec_env import DummyVecEnv
from test_cli import assert_user_error, rlsuite

from rlsuite import envs as _registers_our_envs  # noqa: F401  (registers the rlsuite/ ids)
from rlsuite.agents import ppo as our_ppo
from rlsuite.agents import sb3
from rlsuite.agents.checkpoint import load_checkpoint, read_checkpoint_meta
from rlsuite.agents.interface import AgentError, TrainContext
from rlsuite.agents.logger import MetricLogger, read_metrics
from rlsuite.agents.registry import agent_module, load_policy
from rlsuite.agents.run import RunFolder
from rlsuite.agents.sb3_vecenv import make_sb3_vec_env
from rlsuite.agents.settings import ConfigError, resolve_settings, settings_to_dict
from rlsuite.evaluation.harness import evaluate_policy
from rlsuite.policies import DictEncoder, MLPEncoder, NatureCNN, SequenceEncoder

torch.set_num_threads(1)

# ------------------------------------------------------------------------------------------- backbone

SPACES = {
    "vector": spaces.Box(-1.0, 1.0, (4,), np.float32),
    "discrete": spaces.Discrete(5),
    "image": spaces.Box(0, 255, (40, 40, 3), np.uint8),  # channel-last: SB3 transposes it, we read either
    "sequence": spaces.Box(-5.0, 5.0, (16, 8), np.float32),  # (T, F), e.g. a log-mel spectrogram
    "dict": spaces.Dict({"cue": spaces.MultiDiscrete([3, 2]), "frame": spaces.Box(0, 255, (36, 36, 1), np.uint8),
                         "state": spaces.Box(-1.0, 1.0, (3,), np.float32)}),
}
EXPECTED_CLASS = {"vector": MLPEncoder, "discrete": MLPEncoder, "image": NatureCNN, "sequence": SequenceEncoder,
                  "dict": DictEncoder}


def _sb3_policy(agent: str, obs_space: gym.Space, action_space: gym.Space, **overrides):
    algo = sb3.get_algorithm(agent)
    settings = algo.settings(**overrides)
    settings.validate()
    spec = {"algorithm": agent, "policy_class": None,
            "policy_kwargs": sb3.state._encode(sb3.policy_kwargs(algo, settings))}
    cls = algo.sb3_class().policy_aliases[sb3.policy_alias(algo, obs_space)]
    spec["policy_class"] = cls.__name__
    return sb3.build_policy(spec, obs_space, action_space)


def _sb3_input(space: gym.Space, obs):
    """What SB3's VecTransposeImage hands the policy: channel-last images transposed to channel-first."""
    sb3_space = sb3.sb3_observation_space(space)
    if isinstance(space, spaces.Dict):
        return {k: _sb3_input(space[k], v) for k, v in obs.items()}
    if sb3_space.shape != space.shape:
        return np.transpose(obs, (0, 3, 1, 2))
    return obs


@pytest.mark.parametrize("kind", list(SPACES))
def test_extractor_is_our_encoder_and_computes_the_same_features(kind):
    space = SPACES[kind]
    ours = our_ppo.ActorCritic(space, spaces.Discrete(2), our_ppo.PPOSettings()).actor_encoder
    policy = _sb3_policy("sb3-ppo", space, spaces.Discrete(2))
    theirs = policy.features_extractor.encoder
    assert type(ours) is EXPECTED_CLASS[kind]
    assert [(n, type(m)) for n, m in ours.named_modules()] == [(n, type(m)) for n, m in theirs.named_modules()]
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [(n, p.shape) for n, p in theirs.named_parameters()]

    # Same weights -> same features, ours on raw env observations, SB3's after its own preprocessing
    # (one-hot of discrete parts, no /255 since our encoders scale images, transposed images).
    theirs.load_state_dict(ours.state_dict())
    space.seed(0)
    batch = [space.sample() for _ in range(6)]
    if isinstance(space, spaces.Dict):
        obs = {k: np.stack([b[k] for b in batch]) for k in space.spaces}
        ours_in = {k: torch.as_tensor(v) for k, v in obs.items()}
    else:
        obs = np.stack(batch)
        ours_in = torch.as_tensor(obs)
    sb3_obs, _ = policy.obs_to_tensor(_sb3_input(space, obs))
    with torch.no_grad():
        torch.testing.assert_close(policy.extract_features(sb3_obs, policy.features_extractor), ours(ours_in))


def _grads(module: torch.nn.Module) -> bool:
    return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def test_sharing_rule_on_policy_shared():
    space = SPACES["vector"]
    policy = _sb3_policy("sb3-ppo", space, spaces.Discrete(2))
    assert policy.share_features_extractor and policy.pi_features_extractor is policy.vf_features_extractor
    obs = torch.randn(8, 4)
    values, _, _ = policy.evaluate_actions(obs, torch.zeros(8, dtype=torch.long))
    values.sum().backward()  # the value loss alone trains the shared encoder
    assert _grads(policy.features_extractor)

    separate = _sb3_policy("sb3-ppo", space, spaces.Discrete(2), share_features_extractor=False)
    assert separate.pi_features_extractor is not separate.vf_features_extractor
    values, _, _ = separate.evaluate_actions(obs, torch.zeros(8, dtype=torch.long))
    values.sum().backward()
    assert _grads(separate.vf_features_extractor) and not _grads(separate.pi_features_extractor)


def test_sharing_rule_off_policy_follows_sb3():
    space, actions = SPACES["vector"], spaces.Box(-2.0, 2.0, (1,), np.float32)
    obs, act = torch.randn(8, 4), torch.rand(8, 1)
    for agent in ("sb3-sac", "sb3-td3"):
        small = {"encoder_hidden": (16,), "net_arch": (16,)}
        policy = _sb3_policy(agent, space, actions, **small)
        assert policy.actor.features_extractor is not policy.critic.features_extractor  # SB3: separate by default
        torch.cat(policy.critic(obs, act)).sum().backward()  # the TD loss trains only the critic's encoder
        assert _grads(policy.critic.features_extractor) and not _grads(policy.actor.features_extractor)

        shared = _sb3_policy(agent, space, actions, share_features_extractor=True, **small)
        assert shared.actor.features_extractor is shared.critic.features_extractor
        torch.cat(shared.critic(obs, act)).sum().backward()  # SB3 stops the critic's gradient at a shared encoder
        assert not _grads(shared.actor.features_extractor)
        shared.actor(obs).sum().backward()
        assert _grads(shared.actor.features_extractor)
    dqn = _sb3_policy("sb3-dqn", space, spaces.Discrete(3))
    assert dqn.q_net.features_extractor is not dqn.q_net_target.features_extractor
    with pytest.raises(ConfigError, match="share_features_extractor"):
        sb3.SB3DQNSettings(share_features_extractor=True).validate()


def test_policy_spec_refuses_classes_outside_the_allow_list():
    spec = {"algorithm": "sb3-ppo", "policy_class": "ActorCriticPolicy",
            "policy_kwargs": {"activation_fn": {"class": "os.system"}}}
    with pytest.raises(AgentError, match="not allowed"):
        sb3.build_policy(spec, SPACES["vector"], spaces.Discrete(2))
    with pytest.raises(AgentError, match="unknown to sb3-ppo"):
        sb3.build_policy({**spec, "policy_class": "Popen", "policy_kwargs": {}}, SPACES["vector"], spaces.Discrete(2))


def test_metric_names_follow_our_namespace():
    assert sb3.metric_name("train/policy_gradient_loss") == "losses/policy_loss"
    assert sb3.metric_name("train/value_loss") == "losses/value_loss"
    assert sb3.metric_name("train/actor_loss") == "losses/actor_loss"
    assert sb3.metric_name("time/fps") == "charts/sps"
    assert sb3.metric_name("rollout/ep_rew_mean") is None  # we log every episode ourselves


def test_settings_are_typed_and_validated():
    s = resolve_settings(sb3.SB3SACSettings, "sb3-sac", "Pendulum-v1", set_args=["ent_coef=auto_0.1", "net_arch=64,64"])
    assert s.total_steps == 20_000 and s.ent_coef == "auto_0.1" and s.net_arch == (64, 64)
    assert resolve_settings(sb3.SB3SACSettings, "sb3-sac", "Pendulum-v1", set_args=["ent_coef=0.2"]).ent_coef == 0.2
    with pytest.raises(ConfigError, match="auto_<start>"):
        resolve_settings(sb3.SB3SACSettings, "sb3-sac", "Pendulum-v1", set_args=["ent_coef=automatic"])
    with pytest.raises(ConfigError, match="Unknown setting 'clip_range'"):
        resolve_settings(sb3.SB3DQNSettings, "sb3-dqn", "CartPole-v1", set_args=["clip_range=0.1"])
    with pytest.raises(ConfigError, match="batch_size"):
        resolve_settings(sb3.SB3PPOSettings, "sb3-ppo", "CartPole-v1", set_args=["batch_size=100000"])
    for name in sb3.ALGORITHMS:  # every preset only sets fields that exist, for every env it names
        assert agent_module(name).Settings is sb3.ALGORITHMS[name].settings
        for env_id in ("CartPole-v1", "Pendulum-v1"):
            resolve_settings(sb3.ALGORITHMS[name].settings, name, env_id)


# ------------------------------------------------------------------------------------------- VecEnv


gym.register("rlsuite-test/ShortCartPole-v0", entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv",
             max_episode_steps=12)


@pytest.mark.parametrize("env_id, native", [("rlsuite/MemoryCue-v0", True), ("rlsuite-test/ShortCartPole-v0", False)])
def test_vecenv_adapter_matches_dummy_vec_env(env_id, native):
    n, seed = 3, 17
    ours = make_sb3_vec_env(env_id, n)
    assert (type(ours.envs.unwrapped).__name__ != "SyncVectorEnv") == native
    dummy = DummyVecEnv([lambda: gym.make(env_id) for _ in range(n)])
    ours.seed(seed)
    dummy.seed(seed)
    np.testing.assert_array_equal(ours.reset(), dummy.reset())
    rng = np.random.default_rng(0)
    finished = 0
    for _ in range(60):
        actions = rng.integers(0, ours.action_space.n, size=n)
        o1, r1, d1, i1 = ours.step(actions)
        o2, r2, d2, i2 = dummy.step(actions)
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_array_equal(r1, r2)
        assert r1.dtype == r2.dtype and d1.dtype == d2.dtype
        np.testing.assert_array_equal(d1, d2)
        for a, b in zip(i1, i2, strict=True):
            assert a["TimeLimit.truncated"] == b["TimeLimit.truncated"]
            assert ("terminal_observation" in a) == ("terminal_observation" in b)
            if "terminal_observation" in b:
                np.testing.assert_array_equal(a["terminal_observation"], b["terminal_observation"])
                finished += 1
    assert finished >= 6  # several episodes ended (and for the short CartPole, some were truncated)
    ours.close()


@pytest.mark.parametrize("env_id", sorted(i for i in gym.registry if i.startswith("rlsuite/")))
def test_sb3_check_env_passes_for_every_rlsuite_env(env_id):
    env = gym.make(env_id)
    check_env(env.unwrapped, warn=True)
    env.close()


# ------------------------------------------------------------------------------------ train and reload


def _context(tmp_path: Path, agent: str, settings, stop_after_calls: int | None = None, resume_from=None, name="run"):
    if resume_from is None:
        run = RunFolder.create(tmp_path, agent=agent, env_id=settings.env_id, seed=settings.seed,
                               settings=settings_to_dict(settings), command="test", device="cpu", name=name)
    else:
        run = RunFolder.open(tmp_path / name)
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return stop_after_calls is not None and calls["n"] >= stop_after_calls

    logger = MetricLogger(run.path, tensorboard=False,
                          resume_step=None if resume_from is None else read_checkpoint_meta(resume_from)["step"])
    return run, TrainContext(run=run, logger=logger, stop_requested=stop, resume_from=resume_from)


SMALL = {
    "sb3-ppo": ("CartPole-v1", {"n_envs": 2, "n_steps": 64, "batch_size": 64, "n_epochs": 2}),
    "sb3-a2c": ("CartPole-v1", {"n_envs": 2, "n_steps": 8}),
    "sb3-recurrent-ppo": ("rlsuite/MemoryCue-v0", {"n_envs": 2, "n_steps": 32, "batch_size": 32, "n_epochs": 2,
                                                   "lstm_hidden_size": 16}),
    "sb3-dqn": ("CartPole-v1", {"learning_starts": 64, "train_freq": 16, "gradient_steps": 4, "buffer_size": 1000,
                                "batch_size": 16}),
    "sb3-qrdqn": ("CartPole-v1", {"learning_starts": 64, "train_freq": 16, "gradient_steps": 4, "buffer_size": 1000,
                                  "batch_size": 16, "n_quantiles": 5}),
    "sb3-sac": ("Pendulum-v1", {"learning_starts": 64, "batch_size": 16, "net_arch": (32, 32), "buffer_size": 1000}),
    "sb3-td3": ("Pendulum-v1", {"learning_starts": 64, "batch_size": 16, "net_arch": (32, 32), "buffer_size": 1000}),
}


@pytest.mark.slow
@pytest.mark.parametrize("agent", list(SMALL))
def test_every_agent_trains_checkpoints_and_reloads(tmp_path, agent):
    env_id, overrides = SMALL[agent]
    values = {"total_steps": 256, "eval_every": 0, "tensorboard": False, **overrides}
    settings = resolve_settings(sb3.ALGORITHMS[agent].settings, agent, env_id, cli_values=values)
    run, ctx = _context(tmp_path, agent, settings)
    result = agent_module(agent).train(settings, ctx)
    ctx.logger.close()
    assert result.status == "finished" and result.final_step >= 256
    metrics = read_metrics(run.path)
    assert any(k.startswith("losses/") for k in metrics) and "charts/episodic_return" in metrics

    # The checkpoint holds every torch state SB3 itself saves, and a fresh model takes it back exactly.
    tensors, meta = load_checkpoint(run.find_checkpoint("last"))
    algo = sb3.ALGORITHMS[agent]
    venv = make_sb3_vec_env(env_id, settings.n_envs)
    fresh = algo.sb3_class()(sb3.policy_alias(algo, venv.observation_space), venv, seed=123,
                             policy_kwargs=sb3.policy_kwargs(algo, settings),
                             **sb3.algorithm_kwargs(algo, settings, venv.action_space))
    sb3.load_model_state(fresh, tensors, meta)
    again, _ = sb3.model_state(fresh)
    assert set(again) == {k for k in tensors if not k.startswith("rng.")}
    for key, value in again.items():
        torch.testing.assert_close(value, tensors[key], msg=key)
    venv.close()

    # Evaluation loads the policy from JSON + safetensors and acts like the trained model's policy.
    loaded = load_policy(run.path, "last").policy
    fresh_policy = sb3.SB3Policy(fresh.policy, loaded.observation_space, loaded.action_space, algo.recurrent)
    env = gym.make(env_id)
    obs = np.stack([env.reset(seed=s)[0] for s in range(5)])
    starts = np.ones(5, dtype=bool)
    np.testing.assert_array_equal(loaded.act(obs, starts), fresh_policy.act(obs, starts))
    assert env.action_space.contains(loaded.act(obs[:1], starts[:1])[0].astype(env.action_space.dtype))


@pytest.mark.slow
def test_interrupt_and_resume_keep_the_step_count(tmp_path):
    settings = resolve_settings(sb3.SB3PPOSettings, "sb3-ppo", "CartPole-v1",
                                cli_values={"total_steps": 1024, "n_envs": 2, "n_steps": 64, "batch_size": 64,
                                            "n_epochs": 1, "eval_every": 0, "tensorboard": False})
    run, ctx = _context(tmp_path, "sb3-ppo", settings, stop_after_calls=100)
    first = sb3.ppo.train(settings, ctx)
    ctx.logger.close()
    assert first.status == "interrupted" and first.final_step == 200  # 100 callback steps x 2 envs
    checkpoint = run.find_checkpoint("last")
    _, resume_ctx = _context(tmp_path, "sb3-ppo", settings, resume_from=checkpoint)
    second = sb3.ppo.train(settings, resume_ctx)
    resume_ctx.logger.close()
    # SB3 collects whole rollouts of 2 x 64 steps: from 200, seven of them pass 1024.
    assert second.status == "finished" and second.final_step == 200 + 7 * 128
    updates = read_metrics(run.path)["charts/n_updates"][1]
    assert np.all(np.diff(updates) > 0)  # the optimiser's update count continues, never restarts


class _BrightSideEnv(gym.Env):
    """A 36x36 grayscale frame lit on the left or the right; reward 1 for pointing at the lit side."""

    def __init__(self, render_mode=None):
        self.observation_space = spaces.Box(0, 255, (36, 36, 1), np.uint8)
        self.action_space = spaces.Discrete(2)
        self._side, self._t = 0, 0

    def _frame(self):
        frame = np.zeros((36, 36, 1), dtype=np.uint8)
        frame[:, self._side * 18:(self._side + 1) * 18] = 255
        return frame

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._side, self._t = int(self.np_random.integers(2)), 0
        return self._frame(), {}

    def step(self, action):
        reward = float(int(action) == self._side)
        self._side, self._t = int(self.np_random.integers(2)), self._t + 1
        return self._frame(), reward, False, self._t >= 16, {}


gym.register("rlsuite-test/BrightSide-v0", entry_point=_BrightSideEnv)


@pytest.mark.slow
def test_cnn_agent_trains_end_to_end_on_images(tmp_path):
    agent, env_id = "sb3-ppo", "rlsuite-test/BrightSide-v0"
    settings = resolve_settings(sb3.SB3PPOSettings, agent, env_id,
                                cli_values={"total_steps": 512, "n_envs": 2, "n_steps": 64, "batch_size": 64,
                                            "n_epochs": 2, "eval_every": 0, "tensorboard": False,
                                            "learning_rate": 1e-3})
    run, ctx = _context(tmp_path, agent, settings)
    sb3.ppo.train(settings, ctx)
    ctx.logger.close()
    policy = load_policy(run.path, "last").policy.policy
    assert type(policy.features_extractor.encoder) is NatureCNN
    assert policy.pi_features_extractor is policy.vf_features_extractor
    losses = read_metrics(run.path)["losses/value_loss"][1]
    assert len(losses) >= 2 and len(set(losses.tolist())) > 1 and all(math.isfinite(v) for v in losses)
    initial = sb3.build_policy(read_checkpoint_meta(run.find_checkpoint("last"))["sb3"],
                               _BrightSideEnv().observation_space, spaces.Discrete(2))
    conv = "features_extractor.encoder.cnn.0.weight"
    assert not torch.equal(dict(policy.named_parameters())[conv], dict(initial.named_parameters())[conv])


# ------------------------------------------------------------------------------------------- import


def _malicious_zip(path: Path, marker: Path) -> None:
    """An SB3-shaped archive whose `data` holds a pickle that creates `marker` when unpickled."""

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    data = {"policy_class": {":type:": "<class 'abc.ABCMeta'>",
                             ":serialized:": base64.b64encode(pickle.dumps(Payload())).decode()}}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data", json.dumps(data))
        archive.writestr("_stable_baselines3_version", "2.9.2")


@pytest.mark.slow
def test_malicious_zip_is_refused_without_the_flag(tmp_path):
    evil, marker, out = tmp_path / "evil.zip", tmp_path / "pwned.txt", tmp_path / "runs" / "imported"
    _malicious_zip(evil, marker)
    result = rlsuite("import-sb3", str(evil), "--agent", "sb3-ppo", "--env", "CartPole-v1", "--out", str(out),
                     cwd=tmp_path)
    assert_user_error(result, "--trust-pickle")
    assert "pickle" in result.stderr
    assert not marker.exists() and not out.exists()

    # The archive is really malicious: SB3's own loader creates the file.
    code = ("import sys\nfrom stable_baselines3 import PPO\ntry:\n    PPO.load(sys.argv[1])\n"
            "except Exception:\n    pass\n")
    subprocess.run([sys.executable, "-c", code, str(evil)], capture_output=True, timeout=120)
    assert marker.exists()


@pytest.mark.slow
def test_trusted_zip_converts_to_a_safe_run_folder(tmp_path):
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, n_epochs=1, seed=3, device="cpu")
    model.learn(128)
    model.save(tmp_path / "model.zip")
    out = tmp_path / "runs" / "imported"
    result = rlsuite("import-sb3", str(tmp_path / "model.zip"), "--agent", "sb3-ppo", "--env", "CartPole-v1",
                     "--out", str(out), "--trust-pickle", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "warning" in result.stderr and "pickle" in result.stderr
    loaded = load_policy(out, "best")
    assert loaded.manifest["status"] == "finished" and loaded.step == model.num_timesteps
    obs = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded.policy.act(obs, np.zeros(32, bool)), model.predict(obs, deterministic=True)[0])
    with pytest.raises(AgentError, match="trained on observations"):
        sb3.import_sb3_zip(tmp_path / "model.zip", "sb3-ppo", "Acrobot-v1", tmp_path / "other", trust_pickle=True)


# ------------------------------------------------------------------------------------------- learning


def _train_and_score(tmp_path: Path, agent: str, env_id: str, seed: int) -> tuple[float, int]:
    from rlsuite.train import prepare_settings, run_training

    settings = prepare_settings(agent, env_id, cli_values={"seed": seed, "tensorboard": False})
    run = RunFolder.create(tmp_path, agent=agent, env_id=env_id, seed=seed, settings=settings_to_dict(settings),
                           command="test", device="cpu")
    run_training(agent, settings, run, show_progress=False)
    loaded = load_policy(run.path, "best")
    episodes = evaluate_policy(loaded.policy, env_id, episodes=10)
    return float(np.mean([e.episode_return for e in episodes])), settings.total_steps


@pytest.mark.slow
def test_sb3_ppo_solves_cartpole_within_100k_steps(tmp_path):
    score, steps = _train_and_score(tmp_path, "sb3-ppo", "CartPole-v1", seed=0)
    assert steps == 100_000
    assert score >= 475.0, f"best checkpoint scored {score}"

