"""The seams between agents and the layers around them.

`Policy` is what every trained or baseline agent hands to the evaluation harness; `TrainContext` is
what the orchestration (rlsuite/train.py) hands down to an agent's training loop, so agents never
import evaluation or the CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

if TYPE_CHECKING:
    from rlsuite.agents.logger import MetricLogger
    from rlsuite.agents.run import RunFolder


@runtime_checkable
class Policy(Protocol):
    """Acts on a batch of observations from a vector env (one row per sub-env).

    Recurrent policies keep their hidden state inside and clear a row where `episode_start` is True;
    feed-forward policies ignore it. Observations are exactly what the env returns (a batched array or a
    dict of batched arrays); actions come back batched, ready for `vector_env.step`.
    """

    observation_space: gym.Space  # the single-env space
    action_space: gym.Space  # the single-env space

    def reset(self, num_envs: int) -> None:
        """Forget all recurrent state and size it for `num_envs` sub-envs."""
        ...

    def act(self, obs: Any, episode_start: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions for a batch; `episode_start` is a (num_envs,) bool array."""
        ...


EvalCallback = Callable[[Policy, int], dict[str, float]]
"""Called by an agent every `eval_every` env steps with its current policy and step; returns
`eval/*` metrics (at least `eval/mean_return`) which the agent logs and uses to keep its `best` checkpoint."""


@dataclass
class TrainContext:
    """Everything a training loop receives from the orchestration besides its settings."""

    run: RunFolder
    """The run folder: manifest, checkpoints/ and metrics live here."""
    logger: MetricLogger
    """Writes `metrics.csv` and TensorBoard events; one flat namespace (`charts/...`, `losses/...`, `eval/...`)."""
    evaluate: EvalCallback | None = None
    """Periodic evaluation on separate envs with fixed seeds; None disables it."""
    progress: Callable[[int, Mapping[str, float]], None] | None = None
    """Called after each update with the global env step and the latest metrics (drives the progress bar)."""
    stop_requested: Callable[[], bool] = lambda: False
    """True once the user pressed Ctrl-C: finish the update, checkpoint, return."""
    resume_from: Path | None = None
    """A checkpoint to continue from (same step count, schedules, optimiser and normaliser state)."""


class AgentError(ValueError):
    """A user-facing problem with an agent choice (unknown name, unsupported spaces); says what to do."""


@dataclass(frozen=True)
class TrainResult:
    """How a training loop ended."""

    status: str
    """finished | interrupted (Ctrl-C: the last checkpoint holds everything needed to resume)."""
    final_step: int
    """Env steps taken in total, across resumes."""
