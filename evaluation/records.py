"""Plain records that flow from the harness into the results database and out into reports, and their
strict-JSON form for `--json` output."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
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
    """Training seed (a baseline's: the seed of its random draws); None when unknown."""
    status: str
    """running | finished | interrupted | failed | crashed (its process died while running) | baseline."""
    run_dir: str | None = None
    command: str | None = None
    """The exact command line that reproduces the run (`rlsuite train ...`)."""
    config: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    git_commit: str | None = None
    error: str | None = None
    """Why a failed run failed (last line of the exception), else None."""
    created_at: str = ""
    label: str | None = None
    """The configuration's name given by the user (`--label`); part of its identity. None: named by its
    settings (evaluation/identity.py)."""


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


@dataclass(frozen=True)
class TuneRunRecord:
    """Which tuning study trained a run, for which of its configurations, at which stage.

    A run can serve several studies (the same settings and seed are trained once and reused), so a run
    may have several of these; each (study, stage, candidate, run) is recorded once."""

    study: str
    """The study's name (`<agent>-<envs>-<hash>`, as `rlsuite tune` prints it)."""
    stage: str
    """search (a trial's run, evaluated on validation seeds) | confirm (a fresh-seed rerun, also on test seeds)."""
    candidate: str
    """The configuration within the study: `trial N`, `preset` or `untuned defaults`."""
    trial: int | None
    """Optuna's trial number; None for the preset and the untuned defaults."""
    run_id: str
    params: dict[str, Any] = field(default_factory=dict)
    """The trial's searched values, or the settings the untuned defaults change from the preset."""
    created_at: str = ""


def json_safe(obj: Any) -> Any:
    """`obj` with every NaN or infinite float replaced by None (JSON null), recursively.

    Strict JSON has no NaN or Infinity, and strict parsers reject them; a non-finite value means "no
    finite value was measured" (e.g. Highway's `min_ttc` is +inf when no car was ever ahead), which
    null says in every language.
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {key: json_safe(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(value) for value in obj]
    return obj


def strict_json(obj: Any, indent: int | None = 2) -> str:
    """`obj` as strict JSON (RFC 8259): non-finite numbers become null (`json_safe`), never NaN/Infinity."""
    return json.dumps(json_safe(obj), indent=indent, allow_nan=False)
