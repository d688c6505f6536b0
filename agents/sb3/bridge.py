"""Training an SB3 algorithm inside rlsuite (our envs, metrics, evaluation, checkpoints), and the
registry's view of each algorithm."""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlsuite.agents.checkpoint import (
    load_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)
from rlsuite.agents.interface import AgentError, TrainContext, TrainResult
from rlsuite.agents.run import step_checkpoint_name
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
from rlsuite.agents.settings import ConfigError, settings_to_dict
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

    resume_tensors, resume_meta = (None, None)
    if ctx.resume_from is not None:
        resume_tensors, resume_meta = load_checkpoint(ctx.resume_from, device)
        if resume_meta.get("sb3", {}).get("algorithm") != algo.agent:
            raise AgentError(f"{ctx.resume_from} was not saved by {algo.agent}; resume it with its own agent.")
    start_step = int(resume_meta["step"]) if resume_meta is not None else 0
    # A resumed run restarts its episodes from fresh env seeds (env states cannot be checkpointed).
    seed = s.seed if resume_meta is None else s.seed + 1_000 + start_step
    model = algo.sb3_class()(policy_alias(algo, env_obs_space), venv, seed=seed, device=device, verbose=0,
                             policy_kwargs=policy_kwargs(algo, s),
                             **algorithm_kwargs(algo, s, env_act_space))
    latest: dict[str, float] = {}
    model.set_logger(Logger(folder=None, output_formats=[_metric_writer(ctx, latest)]))
    best_return: float | None = None
    if resume_meta is not None:
        assert resume_tensors is not None
        load_model_state(model, resume_tensors, resume_meta)
        restore_rng_state(resume_tensors, resume_meta["rng"])
        model.num_timesteps = start_step
        model._episode_num = int(resume_meta.get("episode_num", 0))
        # Update counters drive TD3's policy delay and DQN's target syncs: they continue, never restart.
        model._n_updates = int(resume_meta.get("n_updates", 0))
        if hasattr(model, "_n_calls"):
            model._n_calls = int(resume_meta.get("n_calls", 0))
        best_return = resume_meta.get("best_eval_return")
        if not algo.on_policy:  # the replay buffer starts empty again: refill it before training
            model.learning_starts = start_step + int(getattr(s, "learning_starts", 0))

    policy = SB3Policy(model.policy, env_obs_space, env_act_space, algo.recurrent)

    def save(name: str, best: float | None) -> None:
        tensors, state_meta = model_state(model)
        rng_tensors, rng_meta = rng_state()
        tensors.update(rng_tensors)
        meta = {"agent": algo.agent, "env_id": s.env_id, "settings": settings_to_dict(s),
                "step": int(model.num_timesteps), "episode_num": int(model._episode_num), "best_eval_return": best,
                "n_updates": int(model._n_updates), "n_calls": int(getattr(model, "_n_calls", 0)),
                "sb3": policy_spec(algo, model), **state_meta, **rng_meta}
        save_checkpoint(ctx.run.checkpoint_path(name), tensors, meta)

    class Bridge(BaseCallback):
        """Our plumbing inside SB3's loop: episodes, evaluation, checkpoints, progress, Ctrl-C."""

        def __init__(self) -> None:
            super().__init__()
            self.best = best_return
            self.recent: deque[float] = deque(maxlen=20)
            self.interrupted = False
            self.last_eval_step: int | None = None
            self.next_eval = (start_step // s.eval_every + 1) * s.eval_every if s.eval_every else None
            self.next_snapshot = (start_step // s.checkpoint_every + 1) * s.checkpoint_every if s.checkpoint_every else None
            self.start_time, self.last_progress = time.perf_counter(), 0.0

        def _evaluate(self, step: int) -> None:
            assert ctx.evaluate is not None
            metrics = ctx.evaluate(policy, step)
            ctx.logger.log(step, metrics)
            latest.update(metrics)
            self.last_eval_step = step
            if self.best is None or metrics["eval/mean_return"] > self.best:
                self.best = metrics["eval/mean_return"]
                save("best", self.best)

        def _on_step(self) -> bool:
            step = int(self.num_timesteps)
            for episode_return, length in venv.pop_finished_episodes():
                self.recent.append(episode_return)
                ctx.logger.log(step, {"charts/episodic_return": episode_return, "charts/episodic_length": float(length)})
            if ctx.evaluate is not None and self.next_eval is not None and step >= self.next_eval:
                self._evaluate(step)
                self.next_eval = (step // s.eval_every + 1) * s.eval_every
            if self.next_snapshot is not None and step >= self.next_snapshot:
                save(step_checkpoint_name(step), self.best)
                self.next_snapshot = (step // s.checkpoint_every + 1) * s.checkpoint_every
            now = time.perf_counter()
            if ctx.progress is not None and now - self.last_progress >= 0.5:
                self.last_progress = now
                latest["charts/sps"] = (step - start_step) / max(now - self.start_time, 1e-9)
                if self.recent:
                    latest["charts/recent_return"] = float(np.mean(self.recent))
                ctx.progress(step, latest)
            if ctx.stop_requested():
                self.interrupted = True
                return False
            return True

    bridge = Bridge()
    remaining = max(1, s.total_steps - start_step)
    model.learn(total_timesteps=remaining, callback=bridge, log_interval=1 if algo.on_policy else 4,
                reset_num_timesteps=resume_meta is None, progress_bar=False)
    final_step = int(model.num_timesteps)
    model.logger.dump(step=final_step)  # the last update's losses (SB3 dumps before each update, not after)
    if not bridge.interrupted and ctx.evaluate is not None and s.eval_every and bridge.last_eval_step != final_step:
        bridge._evaluate(final_step)  # the finished policy is always evaluated, like our PPO's last update
    save("last", bridge.best)
    if ctx.progress is not None:
        latest["charts/sps"] = (final_step - start_step) / max(time.perf_counter() - bridge.start_time, 1e-9)
        ctx.progress(final_step, latest)
    venv.close()
    return TrainResult(status="interrupted" if bridge.interrupted else "finished", final_step=final_step)


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
