"""Plain records that flow from the harness into the results database and out into reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RunRecord:
    """One trained run (a run folder) or one baseline (random, heuristic) evaluated on an env."""

    run_id: str
    """Unique key: the run folder's name, or `baseline:<agent>:<env_id>` for agents that are not trained."""
    agent: str
    env_id: str
    seed: int | None
    """Training seed; None for baselines."""
    status: str
    """running | finished | interrupted | failed | baseline."""
    run_dir: str | None = None
    command: str | None = None
    """The exact command line that reproduces the run (`rlsuite train ...`)."""
    config: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    git_commit: str | None = None
    error: str | None = None
    """Why a failed run failed (last line of the exception), else None."""
    created_at: str = ""


@dataclass(frozen=True)
class EpisodeRecord:
    """One evaluation episode."""

    index: int
    seed: int
    episode_return: float
    length: int
    metrics: dict[str, float] = field(default_factory=dict)
    """The env's own numeric metrics taken from the final `info` (success, collision, travel time, ...)."""


@dataclass(frozen=True)
class EvaluationRecord:
    """One evaluation of one run (at one checkpoint) under one protocol."""

    run_id: str
    agent: str
    env_id: str
    checkpoint: str
    """best | last | step_<N> | none (baselines)."""
    checkpoint_step: int | None
    deterministic: bool
    seeds: tuple[int, ...]
    """The evaluation seeds, one per episode, disjoint from training seeds."""
    protocol: dict[str, Any] = field(default_factory=dict)
    """Anything else that defines the protocol (frame cap, preset, wrappers, package versions)."""
    video_path: str | None = None
    """An MP4 of the median-return episode, if recorded."""
    eval_id: int | None = None
    """Assigned by the store."""
    created_at: str = ""
