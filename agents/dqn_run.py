"""The run-folder side of DQN's training loop: resume, checkpoints (last, best, step_N), periodic logging and
evaluation, progress and Ctrl-C, on DQN's env-step schedule."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
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
from rlsuite.agents.optim import FlatAdam
from rlsuite.agents.run import step_checkpoint_name
from rlsuite.agents.settings import settings_to_dict


class DQNRun:
    """Resume, checkpoints, logging every max(train_freq, 1000) steps, evaluation, snapshots and Ctrl-C.

    A checkpoint holds the online and target networks, the optimiser and the RNG states, with the settings,
    step and best evaluation return in its JSON header (the replay buffer is not saved)."""

    def __init__(self, agent: str, s: Any, ctx: TrainContext, network: nn.Module, target: nn.Module,
                 optimizer: FlatAdam, device: torch.device) -> None:
        self.agent, self.s, self.ctx = agent, s, ctx
        self.network, self.target, self.optimizer, self.device = network, target, optimizer, device
        self.global_step: int = 0
        self.best_return: float | None = None
        self.status = "finished"
        self.next_eval: int | None = None
        self.next_snapshot: int | None = None
        self.next_log = 0
        self.log_every = max(s.train_freq, 1_000)
        self._start_time, self._start_step = time.perf_counter(), 0

    def start(self) -> None:
        """Resume from ctx.resume_from (weights, optimiser, RNG, step, best return), then set the schedules."""
        s, ctx = self.s, self.ctx
        if ctx.resume_from is not None:
            tensors, meta = load_checkpoint(ctx.resume_from, self.device)
            load_module_tensors("model", self.network, tensors)
            load_module_tensors("target", self.target, tensors)
            self.optimizer.load_state_tensors("optim", tensors)
            restore_rng_state(tensors, meta["rng"])
            self.global_step, self.best_return = meta["step"], meta["best_eval_return"]
        step = self.global_step
        self.next_eval = (step // s.eval_every + 1) * s.eval_every if s.eval_every else None
        self.next_snapshot = (step // s.checkpoint_every + 1) * s.checkpoint_every if s.checkpoint_every else None
        self.next_log = (step // self.log_every + 1) * self.log_every
        self._start_time, self._start_step = time.perf_counter(), step

    def save(self, name: str) -> None:
        tensors = module_tensors("model", self.network)
        tensors.update(module_tensors("target", self.target))
        rng_tensors, rng_meta = rng_state()
        tensors.update(self.optimizer.state_tensors("optim"))
        tensors.update(rng_tensors)
        meta = {"agent": self.agent, "settings": settings_to_dict(self.s), "step": self.global_step,
                "best_eval_return": self.best_return, "rng": rng_meta, "replay_saved": False}
        save_checkpoint(self.ctx.run.checkpoint_path(name), tensors, meta)

    def end_step(self, metrics_now: Callable[[], dict[str, float]], policy: Any, recent_returns: deque[float]) -> bool:
        """After an env step: log `metrics_now()` every log_every steps, evaluate (keeping `best`), snapshot;
        True means stop now (Ctrl-C)."""
        s, ctx, step = self.s, self.ctx, self.global_step
        finished = step >= s.total_steps
        if step >= self.next_log or finished:
            self.next_log = (step // self.log_every + 1) * self.log_every
            sps = (step - self._start_step) / max(time.perf_counter() - self._start_time, 1e-9)
            metrics = {"charts/sps": sps, **metrics_now()}
            ctx.logger.log(step, metrics)
            if recent_returns:
                metrics["charts/recent_return"] = float(np.mean(recent_returns))
            if ctx.progress is not None:
                ctx.progress(step, metrics)
        if ctx.evaluate is not None and self.next_eval is not None and (step >= self.next_eval or finished):
            eval_metrics = ctx.evaluate(policy, step)
            ctx.logger.log(step, eval_metrics)
            self.next_eval = (step // s.eval_every + 1) * s.eval_every
            if self.best_return is None or eval_metrics["eval/mean_return"] > self.best_return:
                self.best_return = eval_metrics["eval/mean_return"]
                self.save("best")
            if ctx.progress is not None:
                ctx.progress(step, eval_metrics)
        if self.next_snapshot is not None and step >= self.next_snapshot:
            self.save(step_checkpoint_name(step))
            self.next_snapshot = (step // s.checkpoint_every + 1) * s.checkpoint_every
        if ctx.stop_requested() and not finished:
            self.status = "interrupted"
            return True
        return False

