"""Training an SB3 algorithm inside rlsuite (our envs, metrics, evaluation, checkpoints), and the
registry's view of each algorithm."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlsuite.agents.checkpoint import load_checkpoint, read_checkpoint_meta
from rlsuite.agents.interface import AgentError, TrainContext, TrainResult
from rlsuite.agents.run_loop import RunLoop
from rlsuite.agents.sb3.algorithms import (
    ALGORITHMS,
    Algorithm,
    algorithm_kwargs,
    check_algorithm_spaces,
    policy_alias,
    policy_kwargs,
)
from rlsuite.agents.sb3.settings import SB3Settings
from rlsuite.agents.sb3.state import SB3Policy, load_model_state, load_policy, model_state, policy_spec
from rlsuite.agents.settings import ConfigError
from rlsuite.agents.tensors import resolve_device

# SB3 logger key -> our flat namespace; other `train/*` keys go to `losses/*`, anything else is dropped
# (episode returns and lengths we log per episode ourselves).
_METRIC_KEYS = {
    "train/learning_rate": "charts/learning_rate",
    "train/clip_range": "charts/clip_range",
    "train/policy_gradient_loss": "losses/policy_loss",
    "train/entropy_loss": "losses/entropy",  # SB3 logs -entropy; we log the entropy, as our PPO does
    "train/clip_fraction": "losses/clipfrac",
    "train/std": "charts/action_std",
    "train/ent_coef": "charts/ent_coef",
    "train/n_updates": "charts/n_updates",
    "rollout/exploration_rate": "charts/exploration_rate",
    "time/fps": "charts/sps",
}


SB3_NOT_EXACT = ("SB3's learn() resets the env and its rollout state on every call, so a resumed SB3 run starts "
                 "fresh episodes (and an empty replay buffer for off-policy algorithms)")


def metric_name(sb3_key: str) -> str | None:
    """Our metric key for an SB3 logger key, or None for keys we do not keep."""
    if sb3_key in _METRIC_KEYS:
        return _METRIC_KEYS[sb3_key]
    if sb3_key.startswith("train/"):
        return "losses/" + sb3_key.removeprefix("train/")
    return None


def _metric_writer(ctx: TrainContext, latest: dict[str, float]) -> Any:
    from stable_baselines3.common.logger import KVWriter

    class MetricWriter(KVWriter):
        """Receives SB3's logger dumps and writes them to our metric logger under our keys."""

        def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
            metrics: dict[str, float] = {}
            for key, value in key_values.items():
                name = metric_name(key)
                if name is None or isinstance(value, bool) or not isinstance(value, int | float | np.number):
                    continue
                value = float(value)
                metrics[name] = -value if key == "train/entropy_loss" else value
            latest.update(metrics)
            ctx.logger.log(step, metrics)

        def close(self) -> None:
            pass

    return MetricWriter()


def _train(algo: Algorithm, s: SB3Settings, ctx: TrainContext) -> TrainResult:
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.logger import Logger

    from rlsuite.agents.sb3_vecenv import make_sb3_vec_env

    torch.set_num_threads(s.torch_threads)
    device = resolve_device(s.device)
    venv = make_sb3_vec_env(s.env_id, s.n_envs, s.vectorization, preset=s.env_preset, env_kwargs=s.env_kwargs)
    check_algorithm_spaces(algo, venv.observation_space, venv.action_space)
    env_obs_space, env_act_space = venv.observation_space, venv.action_space

    resume_meta = read_checkpoint_meta(ctx.resume_from) if ctx.resume_from is not None else None
    if resume_meta is not None and resume_meta.get("sb3", {}).get("algorithm") != algo.agent:
        raise AgentError(f"{ctx.resume_from} was not saved by {algo.agent}; resume it with its own agent.")
    start_step = int(resume_meta["step"]) if resume_meta is not None else 0
    # A resumed run restarts its episodes from fresh env seeds: SB3's learn() resets the env it is given.
    seed = s.seed if resume_meta is None else s.seed + 1_000 + start_step
    model = algo.sb3_class()(policy_alias(algo, env_obs_space), venv, seed=seed, device=device, verbose=0,
                             policy_kwargs=policy_kwargs(algo, s),
                             **algorithm_kwargs(algo, s, env_act_space))
    latest: dict[str, float] = {}
    model.set_logger(Logger(folder=None, output_formats=[_metric_writer(ctx, latest)]))

    def content() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:  # the SB3 model's part of a checkpoint
        tensors, state_meta = model_state(model)
        return tensors, {"env_id": s.env_id, "episode_num": int(model._episode_num), "n_updates": int(model._n_updates),
                         "n_calls": int(getattr(model, "_n_calls", 0)), "sb3": policy_spec(algo, model), **state_meta}

    run = RunLoop(algo.agent, s, ctx, None, device=device, content=content, inexact_reason=SB3_NOT_EXACT)
    if ctx.resume_from is not None:
        resume_tensors, resume_meta = load_checkpoint(ctx.resume_from, device)
        load_model_state(model, resume_tensors, resume_meta)
        model.num_timesteps = start_step
        model._episode_num = int(resume_meta.get("episode_num", 0))
        # Update counters drive TD3's policy delay and DQN's target syncs: they continue, never restart.
        model._n_updates = int(resume_meta.get("n_updates", 0))
        if hasattr(model, "_n_calls"):
            model._n_calls = int(resume_meta.get("n_calls", 0))
        if not algo.on_policy:  # the replay buffer starts empty again: refill it before training
            model.learning_starts = start_step + int(getattr(s, "learning_starts", 0))
    run.start()  # resumed: RNG states, step and best return

    policy = SB3Policy(model.policy, env_obs_space, env_act_space, algo.recurrent)

    class Bridge(BaseCallback):
        """Our run loop inside SB3's: episodes to our metrics, then `run.tick` after every env step."""

        def __init__(self) -> None:
            super().__init__()
            self.recent: deque[float] = deque(maxlen=20)
            self.interrupted = False

        def _on_step(self) -> bool:
            run.global_step = step = int(self.num_timesteps)
            for episode_return, length in venv.pop_finished_episodes():
                self.recent.append(episode_return)
                ctx.logger.log(step, {"charts/episodic_return": episode_return, "charts/episodic_length": float(length)})
            self.interrupted = run.tick(None, policy, self.recent, last=False)
            return not self.interrupted

    bridge = Bridge()
    remaining = max(1, s.total_steps - start_step)
    model.learn(total_timesteps=remaining, callback=bridge, log_interval=1 if algo.on_policy else 4,
                reset_num_timesteps=resume_meta is None, progress_bar=False)
    run.global_step = int(model.num_timesteps)
    model.logger.dump(step=run.global_step)  # the last update's losses (SB3 dumps before each update, not after)
    if not bridge.interrupted:
        run.tick(None, policy, bridge.recent, last=True)  # the finished policy is always evaluated
    result = run.finish()
    venv.close()
    return result


# ------------------------------------------------------------------------------- the registry's view


class SB3Agent:
    """One SB3 algorithm with the agent contract's four names (Settings, check_spaces, train, load_policy);
    the registry names it as `rlsuite.agents.sb3:<attribute>`."""

    def __init__(self, algo: Algorithm) -> None:
        self.algorithm = algo
        self.Settings = algo.settings

    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        check_algorithm_spaces(self.algorithm, observation_space, action_space)

    def train(self, s: SB3Settings, ctx: TrainContext) -> TrainResult:
        if not isinstance(s, self.algorithm.settings):
            raise ConfigError(f"{self.algorithm.agent} needs {self.algorithm.settings.__name__}, got {type(s).__name__}.")
        return _train(self.algorithm, s, ctx)

    def load_policy(self, checkpoint: Path, device: str = "cpu") -> SB3Policy:
        return load_policy(checkpoint, device)


ppo = SB3Agent(ALGORITHMS["sb3-ppo"])
a2c = SB3Agent(ALGORITHMS["sb3-a2c"])
dqn = SB3Agent(ALGORITHMS["sb3-dqn"])
sac = SB3Agent(ALGORITHMS["sb3-sac"])
td3 = SB3Agent(ALGORITHMS["sb3-td3"])
recurrent_ppo = SB3Agent(ALGORITHMS["sb3-recurrent-ppo"])
qrdqn = SB3Agent(ALGORITHMS["sb3-qrdqn"])
