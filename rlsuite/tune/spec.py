"""What a tuning study is: its spec (command-line options or a tuning YAML), checked before any work."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rlsuite.agents.registry import get_spec
from rlsuite.envs.factory import reference_score
from rlsuite.evaluation.store import DEFAULT_DB
from rlsuite.sweep import BACKENDS, SweepError, read_spec_file

CONFIRM_SEED_BASE = 10_000
"""First training seed of the confirm stage: tuning trains on seeds 0 .. K-1, confirmation on fresh ones."""


PRUNERS = ("median", "halving", "none")


OBJECTIVES: dict[str, Literal["maximize", "minimize"]] = {"return": "maximize", "cpu_seconds": "minimize"}
"""Built-in objectives; `metric:NAME:max` or `metric:NAME:min` names an env metric (e.g. metric:crashed:min)."""


PROTOCOL_SETTINGS = ("eval_every=0", "tensorboard=false")
"""Set on every tuning and confirm run: no periodic evaluation (it costs time, and the last checkpoint is
what is evaluated), no TensorBoard files. Never written back."""


_NOT_WRITTEN_BACK = ("seed", "env_id", "eval_every", "eval_episodes", "tensorboard", "checkpoint_every")


class TuneError(SweepError):
    """A user-facing problem with a tuning study's definition; the message says what to change."""


@dataclass(frozen=True)
class TuneSpec:
    """One tuning study: what is searched, how each trial is scored, how the winner is confirmed."""

    agent: str
    envs: tuple[str, ...]
    trials: int = 20
    """Configurations to try (pruned and failed ones count)."""
    seeds: int = 3
    """Training seeds per trial (0 .. seeds-1), on every env; each seed is one pruning rung."""
    steps: int | None = None
    """Training steps of every run (None: the preset's total_steps)."""
    objectives: tuple[str, ...] = ("return",)
    """return (maximise), cpu_seconds (minimise), metric:NAME:max|min; several: a multi-objective study."""
    pruner: Literal["median", "halving", "none"] = "median"
    """Prune on the IQM after each seed: median (below the median of earlier trials at that rung), halving
    (successive halving, keep the top half), none. Multi-objective studies do not prune."""
    episodes: int = 20
    """Validation episodes per run."""
    confirm_top: int = 3
    """Best trials rerun on fresh seeds (0: no confirm stage, no write-back)."""
    confirm_seeds: int = 5
    """Fresh training seeds per confirmed configuration."""
    config_file: Path | None = None
    """Settings YAML applied under the searched values (the base configuration)."""
    set_args: tuple[str, ...] = ()
    """`key=value` settings fixed for every trial; a searched setting cannot be fixed too."""
    search_space: Path | None = None
    """A search-space YAML replacing rlsuite/search_spaces/<agent>.yaml."""
    space_overrides: Mapping[str, Any] = field(default_factory=dict)
    """Param definitions (or null to drop one) applied over the search space."""
    sampler_seed: int = 0
    """Seed of Optuna's TPE sampler: the same command proposes the same configurations."""
    backend: Literal["local", "ray"] = "local"
    workers: int | None = None
    ray_address: str | None = None
    cpus_per_trial: float = 1.0
    """CPUs per run (the local pool divides the cores by it; Ray reserves it)."""
    retries: int = 1
    """Extra attempts for a run that fails or whose worker dies."""
    db: Path = DEFAULT_DB
    out: Path = Path("tune")
    """Study folder: study.journal, runs/, best.yaml, report/."""

    def validate(self) -> None:
        if not self.envs:
            raise TuneError("name at least one env: --env Acrobot-v1 (repeatable).")
        if len(set(self.envs)) != len(self.envs):
            raise TuneError(f"envs repeat: {list(self.envs)}; name each once.")
        if not get_spec(self.agent).trainable:
            raise TuneError(f"{self.agent} is a baseline with nothing to tune; pick a trained agent "
                            "(`rlsuite list agents`).")
        for name in ("trials", "seeds", "episodes", "confirm_seeds"):
            if getattr(self, name) < 1:
                raise TuneError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}.")
        if self.confirm_top < 0 or self.retries < 0:
            raise TuneError("--confirm-top and --retries must be >= 0.")
        if self.steps is not None and self.steps < 1:
            raise TuneError(f"--steps must be >= 1, got {self.steps}.")
        if self.pruner not in PRUNERS:
            raise TuneError(f"unknown pruner {self.pruner!r}; accepted: {', '.join(PRUNERS)}.")
        if self.backend not in BACKENDS:
            raise TuneError(f"unknown backend {self.backend!r}; accepted: {', '.join(BACKENDS)}.")
        if self.workers is not None and self.workers < 1:
            raise TuneError(f"--workers must be >= 1, got {self.workers}.")
        if not self.objectives:
            raise TuneError("give at least one objective, e.g. --objective return.")
        for objective in self.objectives:
            objective_direction(objective)
        if len(self.envs) > 1:
            missing = [env for env in self.envs if reference_score(env) is None]
            if missing:
                raise TuneError(f"tuning on several envs normalises each by its reference scores, and rlsuite "
                                f"knows none for {', '.join(missing)}; tune those envs one at a time.")


def objective_direction(objective: str) -> Literal["maximize", "minimize"]:
    """'maximize' or 'minimize' for an objective name; TuneError for an unknown one."""
    if objective in OBJECTIVES:
        return OBJECTIVES[objective]
    parts = objective.split(":")
    if len(parts) == 3 and parts[0] == "metric" and parts[1] and parts[2] in ("max", "min"):
        return "maximize" if parts[2] == "max" else "minimize"
    raise TuneError(f"unknown objective {objective!r}; accepted: return, cpu_seconds, or metric:NAME:max / "
                    "metric:NAME:min for an env metric (e.g. metric:crashed:min).")


_FILE_KEYS = {"agent", "envs", "trials", "seeds", "steps", "objectives", "pruner", "episodes", "confirm_top",
              "confirm_seeds", "config", "set_args", "search_space", "sampler_seed", "backend", "workers",
              "ray_address", "cpus_per_trial", "retries", "db", "out"}


def load_tune_file(path: Path) -> dict[str, Any]:
    """The TuneSpec fields a tuning YAML sets (paths relative to the file). `search_space` is either a
    file name or a mapping of param definitions applied over the agent's space."""
    raw = read_spec_file(path, "tuning", _FILE_KEYS, "agent, envs, trials", TuneError)
    base = Path(path).parent
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ("envs", "objectives", "set_args"):
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, list):
                raise TuneError(f"`{key}` in {path} must be a list, got {value!r}.")
            values[key] = tuple(str(v).strip() for v in items if str(v).strip())
        elif key in ("config", "db", "out"):
            values["config_file" if key == "config" else key] = base / str(value)
        elif key == "search_space":
            if isinstance(value, Mapping):
                values["space_overrides"] = dict(value)
            else:
                values["search_space"] = base / str(value)
        else:
            values[key] = value
    for key in ("trials", "seeds", "episodes", "confirm_top", "confirm_seeds", "sampler_seed", "retries"):
        if key in values and (not isinstance(values[key], int) or isinstance(values[key], bool)):
            raise TuneError(f"`{key}` in {path} must be an integer, got {values[key]!r}.")
    return values
