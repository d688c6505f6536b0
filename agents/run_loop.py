"""The run loop every agent trains inside (PPO, A2C, REINFORCE, DQN and the SB3 agents): logging, periodic
evaluation and `best`, step_N snapshots, the crash-safe `last` checkpoint, Ctrl-C and resume.

An agent's file keeps its algorithm; after each iteration of its loop it calls `tick`, which decides what
is due. Checkpoints hold the agent's parts (networks, optimiser, normalisers), every global RNG, the step
and the best evaluation return. When the env's state can be captured (agents/env_state.py) they also hold
the loop-carried state (`carry`: the env, its open episodes, the collector or replay buffer), and a run
resumed from any of them continues exactly as if it had never stopped.

    run = RunLoop("ppo", s, ctx, envs, parts={"model": network, "optim": optimizer}, device=device)
    run.start()                                    # fresh (seeded) or resumed
    collector.reset(seed=run.env_seed)
    if (saved := run.carry("collector", collector.state)) is not None:
        collector.load_state(saved)                # exact resume: the env and its episodes continue
    for ...:
        ...
        if run.tick(metrics, policy, collector.recent_returns, last=...):
            break
    return run.finish()
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn

from rlsuite.agents.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_module_tensors,
    module_tensors,
    pack_tree,
    restore_rng_state,
    rng_state,
    save_checkpoint,
    seed_global_rngs,
    unpack_tree,
)
from rlsuite.agents.env_state import capture_problem, env_state, set_env_state
from rlsuite.agents.interface import Policy, TrainContext, TrainResult
from rlsuite.agents.run import step_checkpoint_name
from rlsuite.agents.settings import TrainSettings, settings_to_dict

NO_LOOP_STATE = ("the checkpoint holds no env or loop state (it was written by an older rlsuite, or by an agent "
                 "whose loop cannot be captured)")


class TensorState(Protocol):
    """A part of the training state stored as tensors (optimisers, normalisers)."""

    def state_tensors(self, prefix: str) -> dict[str, torch.Tensor]: ...

    def load_state_tensors(self, prefix: str, tensors: dict[str, torch.Tensor]) -> None: ...


def schedule_next(step: int, every: int) -> int | None:
    """The first multiple of `every` after `step` (None when `every` is 0: never)."""
    return (step // every + 1) * every if every else None


class RunLoop:
    """Logging, evaluation, `best`, snapshots, the periodic `last`, Ctrl-C and resume for one training run.

    `parts` are saved under their names (nn.Modules by their state dict, others by `state_tensors`); None
    entries are skipped. `content` adds tensors and metadata of an agent whose state is not in parts (SB3).
    `log_every` (env steps; 0: every tick) spaces out the logged metrics of agents that tick every env step;
    progress is reported when something was logged or evaluated, and on other ticks at most every
    `progress_every_s` seconds (None: never): a small network ticks thousands of times a second, and the
    progress bar and the manifest's heartbeat need no more.
    `seed_rngs` seeds torch and NumPy at the start of a fresh run; `inexact_reason` says why an agent's loop
    cannot resume exactly whatever its env."""

    def __init__(self, agent: str, s: TrainSettings, ctx: TrainContext, envs: gym.vector.VectorEnv | None, *,
                 parts: Mapping[str, nn.Module | TensorState | None] | None = None, device: torch.device | str = "cpu",
                 log_every: int = 0, progress_every_s: float | None = 0.5, seed_rngs: bool = False,
                 inexact_reason: str | None = None,
                 content: Callable[[], tuple[dict[str, torch.Tensor], dict[str, Any]]] | None = None) -> None:
        self.agent, self.s, self.ctx, self.envs, self.device = agent, s, ctx, envs, torch.device(device)
        self.parts = {name: part for name, part in (parts or {}).items() if part is not None}
        self.content, self.log_every, self.seed_rngs = content, log_every, seed_rngs
        self.progress_every_s = progress_every_s
        self.global_step, self.update = 0, 0
        self.best_return: float | None = None
        self.status = "finished"
        self.env_seed: int | None = s.seed
        """Seed for the agent's first env reset: s.seed, a fresh one on an inexact resume, None on an exact one."""
        self.exact_problem: str | None = inexact_reason
        """Why this run cannot resume exactly (None: it can); set in `start` from the env unless given."""
        self._carry: dict[str, Callable[[], Any]] = {}
        self._saved_loop: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None
        self._env_restored = False
        self.next_eval: int | None = None
        self.next_snapshot: int | None = None
        self.next_log = 0
        self._start_time, self._start_step = time.perf_counter(), 0
        self._cpu_before = 0.0  # CPU seconds of the run's processes before this one (resumes), all threads
        self._last_saved_at, self._ticks_since_last = time.perf_counter(), 0
        self._last_progress = 0.0
        self._last_eval_step: int | None = None

    # ---- start and resume ------------------------------------------------------------------------------
    def start(self) -> None:
        """Resume from ctx.resume_from (the parts, RNGs, step, update, best return), or seed a fresh run."""
        s, ctx = self.s, self.ctx
        if self.exact_problem is None:
            self.exact_problem = capture_problem(self.envs) if self.envs is not None else "no env to capture"
        if ctx.resume_from is not None:
            tensors, meta = load_checkpoint(ctx.resume_from, self.device)
            for name, part in self.parts.items():
                if isinstance(part, nn.Module):
                    load_module_tensors(name, part, tensors)
                else:
                    part.load_state_tensors(name, tensors)
            restore_rng_state(tensors, meta["rng"])
            self.global_step, self.update = int(meta["step"]), int(meta.get("update", 0))
            self.best_return = meta.get("best_eval_return")
            self._cpu_before = float(meta.get("process_cpu_s", 0.0))
            problem = self.exact_problem or (None if "loop" in meta else NO_LOOP_STATE)
            if problem is None:
                self._saved_loop = (tensors, meta["loop"])
                self.env_seed = None
            else:  # the env cannot continue where it stopped: fresh episodes from a seed of their own
                self.env_seed = s.seed + 1_000 + self.global_step
            self._record_resume(problem)
        else:
            if self.seed_rngs:
                seed_global_rngs(s.seed)
            ctx.run.update_manifest(exact_resume={"possible": self.exact_problem is None, "reason": self.exact_problem})
        step = self.global_step
        self.next_eval = schedule_next(step, s.eval_every)
        self.next_snapshot = schedule_next(step, s.checkpoint_every)
        self.next_log = schedule_next(step, self.log_every) or 0
        self._start_time, self._start_step = time.perf_counter(), step
        self._last_saved_at = time.perf_counter()

    def _record_resume(self, problem: str | None) -> None:
        """The manifest says whether this resume was exact, and why not."""
        run = self.ctx.run
        manifest = run.manifest
        resumed = list(manifest.get("resumed") or [])
        if resumed:
            resumed[-1] = {**resumed[-1], "exact": problem is None, "reason": problem}
        exact = all(entry.get("exact", False) for entry in resumed) if resumed else problem is None
        run.update_manifest(resumed=resumed, resume_exact=exact)

    def carry(self, name: str, get: Callable[[], Any]) -> Any:
        """Register loop-carried state: `get()` returns a tree of arrays and JSON values saved in every
        checkpoint. On an exact resume, the env's state is restored (once) and the saved tree returned for
        the agent to load; otherwise None."""
        self._carry[name] = get
        if self._saved_loop is None:
            return None
        tensors, packed = self._saved_loop
        if name not in packed["d"]:
            raise CheckpointError(f"{self.ctx.resume_from} holds no {name!r} loop state; resume it with the agent "
                                  "and settings it was saved with (see the run's manifest).")
        if not self._env_restored and self.envs is not None:
            set_env_state(self.envs, unpack_tree(tensors, packed["d"]["env"]))
            self._env_restored = True
        return unpack_tree(tensors, packed["d"][name])

    # ---- checkpoints ---------------------------------------------------------------------------------
    def save(self, name: str) -> None:
        """Write checkpoint `name` atomically: parts, RNGs, step, best return, and the loop state when the
        env's can be captured."""
        tensors: dict[str, torch.Tensor] = {}
        meta: dict[str, Any] = {}
        for prefix, part in self.parts.items():
            tensors.update(module_tensors(prefix, part) if isinstance(part, nn.Module) else part.state_tensors(prefix))
        if self.content is not None:
            extra_tensors, extra_meta = self.content()
            tensors.update(extra_tensors)
            meta.update(extra_meta)
        rng_tensors, rng_meta = rng_state()
        tensors.update(rng_tensors)
        meta.update({"agent": self.agent, "settings": settings_to_dict(self.s), "step": self.global_step,
                     "update": self.update, "best_eval_return": self.best_return,
                     "process_cpu_s": self.process_cpu_s(), **rng_meta})
        if self.exact_problem is None and self._carry and self.envs is not None:
            loop = {"env": env_state(self.envs), **{key: get() for key, get in self._carry.items()}}
            loop_tensors, meta["loop"] = pack_tree("loop", loop)
            tensors.update(loop_tensors)
        save_checkpoint(self.ctx.run.checkpoint_path(name), tensors, meta)
        if name == "last":
            self._last_saved_at, self._ticks_since_last = time.perf_counter(), 0

    def process_cpu_s(self) -> float:
        """CPU seconds of this run's training processes so far, start-up and every resumed process included."""
        return self._cpu_before + time.process_time()

    def sps(self) -> float:
        return (self.global_step - self._start_step) / max(time.perf_counter() - self._start_time, 1e-9)

    # ---- after each iteration --------------------------------------------------------------------------
    def tick(self, metrics: Mapping[str, float] | Callable[[], Mapping[str, float]] | None, policy: Policy,
             recent_returns: Any, *, last: bool) -> bool:
        """After an iteration of the agent's loop (global_step already advanced): log `metrics` (a dict, a
        function computing it, or None: nothing to log) when due, evaluate and keep `best`, write step_N
        snapshots and the periodic `last`, report progress. True means stop now (Ctrl-C); `last` marks the
        final iteration, which is always evaluated."""
        s, ctx, step = self.s, self.ctx, self.global_step
        shown: dict[str, float] = {}
        report = False
        if not self.log_every or step >= self.next_log or last:
            if self.log_every:
                self.next_log = schedule_next(step, self.log_every) or 0
            values = metrics() if callable(metrics) else metrics
            if values is not None:
                shown = {**values, "charts/sps": self.sps(), "charts/process_cpu_s": self.process_cpu_s()}
                ctx.logger.log(step, shown)
                report = True
        due = self.next_eval is not None and (step >= self.next_eval or (last and self._last_eval_step != step))
        if ctx.evaluate is not None and due:
            eval_metrics = ctx.evaluate(policy, step)
            self._last_eval_step = step
            ctx.logger.log(step, eval_metrics)
            shown.update(eval_metrics)
            report = True
            self.next_eval = schedule_next(step, s.eval_every)
            if self.best_return is None or eval_metrics["eval/mean_return"] > self.best_return:
                self.best_return = eval_metrics["eval/mean_return"]
                self.save("best")
        if self.next_snapshot is not None and step >= self.next_snapshot:
            self.save(step_checkpoint_name(step))
            self.next_snapshot = schedule_next(step, s.checkpoint_every)
        self._ticks_since_last += 1
        if not last and (time.perf_counter() - self._last_saved_at >= s.checkpoint_interval_s
                         or 0 < s.checkpoint_interval_updates <= self._ticks_since_last):
            self.save("last")  # what a crash would lose is bounded by these two intervals
        if ctx.progress is not None:
            now = time.perf_counter()
            quiet_due = self.progress_every_s is not None and now - self._last_progress >= self.progress_every_s
            if report or quiet_due:
                self._last_progress = now
                shown.setdefault("charts/sps", self.sps())
                if len(recent_returns):
                    shown["charts/recent_return"] = float(np.mean(recent_returns))
                ctx.progress(step, shown)
        if ctx.stop_requested() and not last:
            self.status = "interrupted"
            return True
        return False

    def finish(self) -> TrainResult:
        """The final (or Ctrl-C) `last` checkpoint, and how the run ended."""
        self.save("last")
        return TrainResult(status=self.status, final_step=self.global_step)
