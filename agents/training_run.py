"""The run-folder side of an on-policy training loop (PPO, A2C, REINFORCE): resume, checkpoints (last, best,
step_N), periodic evaluation, progress and Ctrl-C."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from rlsuite.agents.checkpoint import (
    load_checkpoint,
    load_module_tensors,
    module_tensors,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)
from rlsuite.agents.interface import TrainContext
from rlsuite.agents.normalize import ObsNormalizer, RewardScaler
from rlsuite.agents.optim import FlatParameters
from rlsuite.agents.run import step_checkpoint_name
from rlsuite.agents.settings import TrainSettings, settings_to_dict


class TrainingRun:
    """Resume, checkpoints, periodic evaluation, progress and Ctrl-C for an actor-critic training loop.

    A checkpoint holds the network, the optimiser, the RNG states and the normalisers, with the settings,
    step, update and best evaluation return in its JSON header.
    """

    def __init__(self, agent: str, s: TrainSettings, ctx: TrainContext, network: nn.Module,
                 optimizer: FlatParameters, obs_normalizer: ObsNormalizer | None,
                 reward_scaler: RewardScaler | None, device: torch.device) -> None:
        self.agent, self.s, self.ctx, self.network, self.optimizer = agent, s, ctx, network, optimizer
        self.obs_normalizer, self.reward_scaler, self.device = obs_normalizer, reward_scaler, device
        self.global_step, self.update = 0, 0
        self.best_return: float | None = None
        self.status = "finished"
        self.env_seed = s.seed
        self._start_time, self._start_step = time.perf_counter(), 0
        self._cpu_before = 0.0  # CPU seconds of the processes before a resume (all threads)
        self.next_eval: int | None = None
        self.next_snapshot: int | None = None

    def start(self) -> None:
        """Resume from ctx.resume_from, or seed torch and NumPy for a fresh run."""
        s = self.s
        if self.ctx.resume_from is not None:
            tensors, meta = load_checkpoint(self.ctx.resume_from, self.device)
            load_module_tensors("model", self.network, tensors)
            self.optimizer.load_state_tensors("optim", tensors)
            restore_rng_state(tensors, meta["rng"])
            if self.obs_normalizer is not None:
                self.obs_normalizer.load_state_tensors("obs_rms", tensors)
            if self.reward_scaler is not None:
                self.reward_scaler.load_state_tensors("ret_rms", tensors)
            self.global_step, self.update, self.best_return = meta["step"], meta["update"], meta["best_eval_return"]
            self._cpu_before = float(meta.get("process_cpu_s", 0.0))
            # Env states cannot be checkpointed in general: a resumed run restarts its episodes from fresh seeds.
            self.env_seed = s.seed + 1_000 * (self.update + 1)
        else:
            torch.manual_seed(s.seed)
            np.random.seed(s.seed)
        self.next_eval = (self.global_step // s.eval_every + 1) * s.eval_every if s.eval_every else None
        self.next_snapshot = (self.global_step // s.checkpoint_every + 1) * s.checkpoint_every if s.checkpoint_every else None
        self._start_time, self._start_step = time.perf_counter(), self.global_step

    def save(self, name: str) -> None:
        tensors = module_tensors("model", self.network)
        rng_tensors, rng_meta = rng_state()
        tensors.update(self.optimizer.state_tensors("optim"))
        tensors.update(rng_tensors)
        if self.obs_normalizer is not None:
            tensors.update(self.obs_normalizer.state_tensors("obs_rms"))
        if self.reward_scaler is not None:
            tensors.update(self.reward_scaler.state_tensors("ret_rms"))
        meta = {"agent": self.agent, "settings": settings_to_dict(self.s), "step": self.global_step,
                "update": self.update, "best_eval_return": self.best_return, "rng": rng_meta,
                "process_cpu_s": self.process_cpu_s()}
        save_checkpoint(self.ctx.run.checkpoint_path(name), tensors, meta)

    def process_cpu_s(self) -> float:
        """CPU seconds of this run's training processes so far, start-up and every resumed process included."""
        return self._cpu_before + time.process_time()

    def sps(self) -> float:
        return (self.global_step - self._start_step) / max(time.perf_counter() - self._start_time, 1e-9)

    def end_update(self, metrics: dict[str, float] | None, policy: Any, recent_returns: deque[float], last: bool) -> bool:
        """Log `metrics` (None: nothing to log this update), evaluate (keeping `best`), snapshot and report
        progress after an update; True means stop now."""
        s, ctx, step = self.s, self.ctx, self.global_step
        if metrics is not None:
            metrics["charts/sps"] = self.sps()
            metrics["charts/process_cpu_s"] = self.process_cpu_s()
            ctx.logger.log(step, metrics)
        else:
            metrics = {"charts/sps": self.sps()}
        if recent_returns:
            metrics["charts/recent_return"] = float(np.mean(recent_returns))
        if ctx.evaluate is not None and self.next_eval is not None and (step >= self.next_eval or last):
            eval_metrics = ctx.evaluate(policy, step)
            ctx.logger.log(step, eval_metrics)
            metrics.update(eval_metrics)
            self.next_eval = (step // s.eval_every + 1) * s.eval_every
            if self.best_return is None or eval_metrics["eval/mean_return"] > self.best_return:
                self.best_return = eval_metrics["eval/mean_return"]
                self.save("best")
        if self.next_snapshot is not None and step >= self.next_snapshot:
            self.save(step_checkpoint_name(step))
            self.next_snapshot = (step // s.checkpoint_every + 1) * s.checkpoint_every
        if ctx.progress is not None:
            ctx.progress(step, metrics)
        if ctx.stop_requested() and not last:
            self.status = "interrupted"
            return True
        return False

