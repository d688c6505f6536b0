"""`rlsuite tune`: Optuna hyperparameter search whose winner is checked on fresh seeds before it is kept.

A *trial* is one configuration sampled from the agent's search space (rlsuite/search_spaces/<agent>.yaml,
RL Zoo's ranges as data). It trains K seeds on each env and scores every run with the evaluation
harness on the *validation* seeds (never the test seeds reports use); the trial's score is the IQM of
those K x envs scores, each normalised by its env's reference scores when there is more than one env.
Seeds run as rungs: after each seed (all envs) the driver reports the running IQM to Optuna's pruner
(median or successive halving), so a poor configuration stops after one or two seeds instead of being
judged on one noisy evaluation, and a good one is judged on all K.

The driver alone talks to Optuna (ask and tell) and to the results database; workers are the sweep's:
a local process pool or Ray tasks, running `run_unit` (train one seed on one env, evaluate it). The
study lives in a journal file in --out, so rerunning the same command resumes it: finished trials are
kept, a trial the driver was running when it died is picked up again, and every unit already in the
results database is reused, never retrained. A unit whose worker dies is retried once.

When the study is complete the *confirm stage* reruns the top-k configurations, the preset and the
untuned defaults on fresh training seeds and evaluates each run on the validation seeds (to pick the
winner) and on the test seeds (to report it, with bootstrap CIs). The winner is written as a preset
block (`ENV_ID:` with only the fields it changes) that `rlsuite train --config` loads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import random
import shlex
import socket
import time
import traceback
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import yaml
from rich.console import Console

from rlsuite.agents.registry import agent_module, get_spec
from rlsuite.agents.run import RunFolder
from rlsuite.agents.settings import (
    ConfigError,
    coerce_field,
    load_yaml_mapping,
    parse_set_args,
    preset_path,
    settings_to_dict,
)
from rlsuite.envs.factory import reference_score
from rlsuite.evaluation.evaluate import checkpoint_selection, load_agent, run_protocol
from rlsuite.evaluation.harness import TEST_SEED_BASE, eval_epsilon, evaluate_policy, validation_seeds
from rlsuite.evaluation.records import EpisodeRecord, EvaluationRecord, RunRecord, TuneRunRecord
from rlsuite.evaluation.stats import iqm, normalize
from rlsuite.evaluation.store import DEFAULT_DB, ResultsStore
from rlsuite.evaluation.tune_report import write_tune_report
from rlsuite.sweep import (
    BACKENDS,
    SweepError,
    SweepSpec,
    Trial,
    machine_cores,
    plan_trials,
    read_spec_file,
    train_trial,
)
from rlsuite.sweep import _LocalBackend as LocalBackend
from rlsuite.sweep import _RayBackend as RayBackend

if TYPE_CHECKING:
    import optuna

__all__ = ["CONFIRM_SEED_BASE", "OBJECTIVES", "PRUNERS", "Param", "TuneError", "TuneSpec",
           "TuneSummary", "TuneUnit", "UnitResult", "load_search_space", "load_tune_file", "run_tune", "run_unit",
           "sample_params"]

CONFIRM_SEED_BASE = 10_000
"""First training seed of the confirm stage: tuning trains on seeds 0 .. K-1, confirmation on fresh ones."""

SEARCH_SPACE_DIR = Path(__file__).parent / "search_spaces"
PRUNERS = ("median", "halving", "none")
OBJECTIVES: dict[str, Literal["maximize", "minimize"]] = {"return": "maximize", "cpu_seconds": "minimize"}
"""Built-in objectives; `metric:NAME:max` or `metric:NAME:min` names an env metric (e.g. metric:crashed:min)."""
PROTOCOL_SETTINGS = ("eval_every=0", "tensorboard=false")
"""Set on every tuning and confirm run: no periodic evaluation (it costs time, and the last checkpoint is
what is evaluated), no TensorBoard files. Never written back."""
_NOT_WRITTEN_BACK = ("seed", "env_id", "eval_every", "eval_episodes", "tensorboard", "checkpoint_every")
_POLL_S = 0.5


class TuneError(SweepError):
    """A user-facing problem with a tuning study's definition; the message says what to change."""


# ---------------------------------------------------------------------------------------------------
# Search spaces: data files, one per agent


@dataclass(frozen=True)
class Param:
    """One searched setting: a float or int range (optionally log-scaled) or a list of choices."""

    name: str
    """The settings field it sets."""
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    """Sample integers in [low, high] (the field is an int)."""
    choices: tuple[Any, ...] = ()
    one_minus: bool = False
    """Sample 1 - value in [low, high] (log-scaled): how RL Zoo searches gamma and gae_lambda near 1."""

    @property
    def optuna_name(self) -> str:
        return f"one_minus_{self.name}" if self.one_minus else self.name


def _choice_key(value: Any) -> Any:
    """Optuna stores None, bool, int, float and str choices; a list (hidden sizes) travels as '64,64'."""
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return value


def _parse_param(settings_cls: type, name: str, raw: Any, source: str) -> Param:
    if not isinstance(raw, Mapping):
        raise TuneError(f"{source}: `{name}` must be a mapping such as {{low: 1.0e-5, high: 1.0e-2, log: true}} or "
                        f"{{choices: [1, 5, 10]}}, got {raw!r}.")
    unknown = sorted(set(raw) - {"low", "high", "log", "choices", "one_minus"})
    if unknown:
        raise TuneError(f"{source}: `{name}` has unknown keys {', '.join(unknown)}; accepted: low, high, log, "
                        "choices, one_minus.")
    try:
        if "choices" in raw:
            choices = raw["choices"]
            if not isinstance(choices, list) or not choices:
                raise TuneError(f"{source}: `{name}.choices` must be a non-empty list, got {choices!r}.")
            for choice in choices:  # each one must be a valid value of the field
                coerce_field(settings_cls, name, _choice_key(choice) if isinstance(choice, list) else choice)
            return Param(name, choices=tuple(_choice_key(c) for c in choices))
        low, high = raw.get("low"), raw.get("high")
        if not isinstance(low, int | float) or not isinstance(high, int | float) or isinstance(low, bool) \
                or not low < high:
            raise TuneError(f"{source}: `{name}` needs numbers low < high, got low={low!r}, high={high!r}.")
        one_minus = bool(raw.get("one_minus", False))
        probe_low, probe_high = (1 - high, 1 - low) if one_minus else (low, high)
        integer = isinstance(coerce_field(settings_cls, name, probe_low), int) and not one_minus
        if integer and not (isinstance(low, int) and isinstance(high, int)):
            raise TuneError(f"{source}: `{name}` is an integer setting; give integer low and high.")
        coerce_field(settings_cls, name, probe_high)
        log = bool(raw.get("log", False))
        if log and low <= 0:
            raise TuneError(f"{source}: `{name}` is log-scaled, so low must be > 0, got {low}.")
        return Param(name, float(low) if not integer else low, float(high) if not integer else high, log=log,
                     integer=integer, one_minus=one_minus)
    except ConfigError as err:
        raise TuneError(f"{source}: `{name}` does not fit {settings_cls.__name__}: {err}") from None


def load_search_space(agent: str, path: Path | None = None,
                      overrides: Mapping[str, Any] | None = None) -> dict[str, Param]:
    """The agent's search space: its data file (or `path`), then `overrides` (a param mapping, or null to
    drop a param). Every param must be a field of the agent's settings, with values of the field's type."""
    settings_cls = agent_module(agent).Settings
    source_path = path if path is not None else SEARCH_SPACE_DIR / f"{agent}.yaml"
    if path is None and not source_path.is_file():
        known = sorted(p.stem for p in SEARCH_SPACE_DIR.glob("*.yaml"))
        raise TuneError(f"no search space for agent {agent!r}; agents with one: {', '.join(known)}. Write one "
                        f"(see docs/tune.md) and pass it with --search-space FILE.")
    try:
        raw = load_yaml_mapping(source_path)
    except ConfigError as err:
        raise TuneError(str(err)) from None
    raw.update(overrides or {})
    space: dict[str, Param] = {}
    for name, definition in raw.items():
        if definition is None:
            continue
        space[name] = _parse_param(settings_cls, name, definition, f"search space {source_path}")
    if not space:
        raise TuneError(f"the search space of {agent} ({source_path}) is empty: name at least one setting.")
    return space


def sample_params(trial: optuna.Trial, space: Mapping[str, Param]) -> dict[str, Any]:
    """Draw (or, on a resumed trial, read back) one value per param, as settings values ('64,64' stays a
    string: the settings' --set parser turns it into a tuple)."""
    values: dict[str, Any] = {}
    for param in space.values():
        if param.choices:
            values[param.name] = trial.suggest_categorical(param.optuna_name, list(param.choices))
        elif param.integer:
            values[param.name] = trial.suggest_int(param.optuna_name, int(param.low), int(param.high),  # type: ignore[arg-type]
                                                   log=param.log)
        else:
            x = trial.suggest_float(param.optuna_name, float(param.low), float(param.high), log=param.log)  # type: ignore[arg-type]
            values[param.name] = 1.0 - x if param.one_minus else x
    return values


# ---------------------------------------------------------------------------------------------------
# What the user asks for


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


# ---------------------------------------------------------------------------------------------------
# Units: one seed of one configuration on one env, run in a worker


@dataclass(frozen=True)
class TuneUnit:
    """A sweep trial (one training run) plus where tuning evaluates it (plain data: it travels to workers)."""

    trial: Trial
    validation_seeds: tuple[int, ...]
    test: bool
    """Also evaluate on the harness's test seeds (the confirm stage)."""


@dataclass(frozen=True)
class UnitResult:
    """What a worker sends back: records for the driver to store, or why the unit did not finish."""

    run_id: str
    status: Literal["finished", "failed", "interrupted"]
    run: RunRecord | None = None
    validation: tuple[EvaluationRecord, tuple[EpisodeRecord, ...]] | None = None
    test: tuple[EvaluationRecord, tuple[EpisodeRecord, ...]] | None = None
    cpu_seconds: float = 0.0
    """Process CPU time of training and evaluation (one torch thread)."""
    error: str | None = None
    host: str = ""


def run_unit(unit: TuneUnit) -> UnitResult:
    """Train one run (reusing one an earlier attempt finished), evaluate it on the validation seeds and,
    for the confirm stage, on the test seeds; never writes the database."""
    import torch

    trial = unit.trial
    torch.set_num_threads(1)
    torch.manual_seed(trial.seed)
    np.random.seed(trial.seed)
    random.seed(trial.seed)
    host = socket.gethostname()
    cpu_start = time.process_time()
    try:
        path, status = train_trial(trial)
        if status != "finished":
            return UnitResult(trial.run_id, "interrupted", host=host)
        subject = load_agent(run_dir=path, checkpoint=trial.checkpoint)
        preset = str(subject.run.config.get("env_preset") or "")
        env_kwargs: dict[str, Any] = {"preset": preset} if preset else {}
        env_kwargs.update(subject.env_kwargs)
        epsilon = eval_epsilon(subject.env_id)
        episodes = evaluate_policy(subject.policy, subject.env_id, episodes=len(unit.validation_seeds),
                                   seeds=unit.validation_seeds, deterministic=trial.deterministic, env_kwargs=env_kwargs,
                                   epsilon=epsilon, threads=1)
        protocol: dict[str, Any] = {"vectorization": "sync", "split": "validation",
                                    "checkpoint_selection": checkpoint_selection(subject)}
        if epsilon > 0:
            protocol["epsilon"] = epsilon
        if subject.env_kwargs:
            protocol["env_kwargs"] = dict(subject.env_kwargs)
        validation = EvaluationRecord(run_id=trial.run_id, agent=trial.agent, env_id=subject.env_id,
                                      checkpoint=subject.checkpoint, checkpoint_step=subject.checkpoint_step,
                                      deterministic=trial.deterministic, seeds=unit.validation_seeds,
                                      protocol=protocol)
        test = None
        if unit.test:
            evaluation, records = run_protocol(subject, episodes=trial.episodes, deterministic=trial.deterministic)
            test = (evaluation, tuple(records))
        cpu = time.process_time() - cpu_start
        folder = RunFolder.open(path)
        folder.update_manifest(tune={**folder.manifest.get("tune", {}), "cpu_seconds": cpu})
        return UnitResult(trial.run_id, "finished", subject.run, (validation, tuple(episodes)), test, cpu, host=host)
    except Exception as err:  # the driver retries it, then records the error; KeyboardInterrupt passes
        detail = "".join(traceback.format_exception_only(type(err), err)).strip()
        return UnitResult(trial.run_id, "failed", error=f"{detail} (on {host})\n{traceback.format_exc()}", host=host)


@dataclass(frozen=True)
class UnitScore:
    """One finished run as tuning reads it."""

    env_id: str
    seed: int
    validation_return: float
    """Mean validation-episode return."""
    cpu_seconds: float
    metrics: dict[str, float] = field(default_factory=dict)
    """Mean validation-episode env metrics."""
    test_returns: tuple[float, ...] = ()


def _score(unit: TuneUnit, evaluation: tuple[EvaluationRecord, Sequence[EpisodeRecord]], cpu: float,
           test: Sequence[EpisodeRecord] | None) -> UnitScore:
    record, episodes = evaluation
    names = sorted({n for e in episodes for n in e.metrics})
    metrics = {n: float(np.mean([e.metrics[n] for e in episodes if n in e.metrics])) for n in names}
    return UnitScore(record.env_id, unit.trial.seed, float(np.mean([e.episode_return for e in episodes])), cpu,
                     metrics, tuple(e.episode_return for e in test or ()))


# ---------------------------------------------------------------------------------------------------
# Configurations: an Optuna trial, or a confirm candidate, as rungs of units


@dataclass
class _Config:
    """One configuration being run: its units by rung (one rung per training seed, one unit per env)."""

    label: str
    params: dict[str, Any]
    rungs: list[list[TuneUnit]]
    trial: optuna.Trial | None = None
    reported: set[int] = field(default_factory=set)
    stage: Literal["search", "confirm"] = "search"
    """Rungs whose value Optuna already holds (a resumed trial's)."""
    scores: dict[str, UnitScore] = field(default_factory=dict)
    submitted_rungs: int = 0
    """Rungs whose units have been queued."""
    done: bool = False


class _Scorer:
    """Objective values of a set of unit scores: IQM of (normalised) returns, mean CPU, mean metric."""

    def __init__(self, envs: Sequence[str], objectives: Sequence[str]) -> None:
        self.objectives = tuple(objectives)
        self.normalised = len(envs) > 1
        self.refs = {env: reference_score(env) for env in envs}

    def unit_return(self, score: UnitScore, value: float | None = None) -> float:
        x = score.validation_return if value is None else value
        ref = self.refs[score.env_id]
        return float(normalize(np.array(x), ref.random, ref.reference)) if self.normalised and ref else x

    def values(self, scores: Sequence[UnitScore]) -> list[float]:
        out: list[float] = []
        for objective in self.objectives:
            if objective == "return":
                out.append(iqm([self.unit_return(s) for s in scores]))
            elif objective == "cpu_seconds":
                out.append(float(np.mean([s.cpu_seconds for s in scores])))
            else:
                name = objective.split(":")[1]
                present = [s.metrics[name] for s in scores if name in s.metrics]
                if not present:
                    raise TuneError(f"objective {objective}: the env reports no metric {name!r} in its final info; "
                                    f"metrics it reports: {', '.join(sorted(scores[0].metrics)) or 'none'}.")
                out.append(float(np.mean(present)))
        return out


def _units(spec: TuneSpec, params: Mapping[str, Any], seeds: Sequence[int], test: bool,
           validation_seeds: tuple[int, ...], label: str | None = None) -> list[list[TuneUnit]]:
    """Rungs of units for one configuration, planned by the sweep (keys, run ids, reproduce commands);
    `label` names the runs' configuration in results and reports."""
    rungs: list[list[TuneUnit]] = [[] for _ in seeds]
    for env_id in spec.envs:
        sweep = SweepSpec(agents=(spec.agent,), envs=(env_id,), seeds=tuple(seeds), steps=spec.steps,
                          config_file=spec.config_file, settings={spec.agent: {env_id: dict(params)}},
                          set_args=(*spec.set_args, *PROTOCOL_SETTINGS), episodes=spec.episodes, checkpoint="last",
                          out=spec.out, db=spec.db, report=False, label=label)
        for i, trial in enumerate(plan_trials(sweep)):
            rungs[i].append(TuneUnit(trial, validation_seeds, test))
    return rungs


def confirm_label(study: str, agent: str, candidate: str) -> str:
    """The name a confirm run's configuration carries in results and reports (its `--label`): the trial
    with its study, or the agent's preset and untuned defaults (the same settings in every study, so
    their runs are trained once and shared)."""
    if not candidate.startswith("trial "):
        return f"{agent} {candidate}"
    label = f"{study} {candidate}"
    return label if len(label) <= 80 else f"{agent}-{study[-12:]} {candidate}"  # labels hold 80 characters


def _settings_for(spec: TuneSpec, params: Mapping[str, Any], env_id: str) -> dict[str, Any]:
    """Resolved settings (seed 0) of a configuration on one env, as its runs train with them."""
    (rung,) = _units(spec, params, [0], False, ())
    return dict(next(u.trial.settings for u in rung if u.trial.env_id == env_id))


def _base_settings(spec: TuneSpec, env_id: str) -> dict[str, Any]:
    """Settings `rlsuite train` would use with the study's --config, --set and --steps: the preset."""
    return _settings_for(spec, {}, env_id)


def _defaults_params(spec: TuneSpec, env_id: str) -> dict[str, Any] | None:
    """The untuned configuration: the preset's `default:` block without the env's own block, expressed as
    the values that differ from the preset for this env; None when the env has no block of its own."""
    path = preset_path(spec.agent)
    if not path.is_file():
        return None
    mapping = load_yaml_mapping(path)
    if env_id not in mapping:
        return None
    settings_cls = agent_module(spec.agent).Settings
    untuned = {**settings_to_dict(settings_cls()), **(mapping.get("default") or {})}  # every field has a default
    base = _base_settings(spec, env_id)
    fixed = parse_set_args(spec.set_args)
    changed = {k: v for k, v in untuned.items() if k not in (*_NOT_WRITTEN_BACK, "total_steps", *fixed)
               and _jsonable(v) != base.get(k)}
    return changed or None


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# ---------------------------------------------------------------------------------------------------
# The driver


@dataclass
class TuneSummary:
    """How a tuning call ended."""

    study: str
    trials: int = 0
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    units_run: int = 0
    units_reused: int = 0
    interrupted: bool = False
    best_file: Path | None = None
    report: Path | None = None
    seconds: float = 0.0


def study_name(spec: TuneSpec, space: Mapping[str, Param]) -> str:
    """`<agent>-<envs>-<12 hex>`: a hash of everything that defines the study, so the same command finds
    (and resumes) the same study and a changed one starts a new study."""
    bases = {env: _base_settings(spec, env) for env in spec.envs}
    text = json.dumps({"agent": spec.agent, "envs": spec.envs, "seeds": spec.seeds, "objectives": spec.objectives,
                       "pruner": spec.pruner, "episodes": spec.episodes, "sampler_seed": spec.sampler_seed,
                       "validation_seeds": validation_seeds(1), "bases": bases,
                       "space": [dataclasses.asdict(p) for p in space.values()]},
                      sort_keys=True, separators=(",", ":"), default=str)
    envs = "+".join(env.replace("/", "_") for env in spec.envs)
    return f"{spec.agent}-{envs}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


@contextlib.contextmanager
def _study_lock(out: Path) -> Iterator[None]:
    """One driver per study folder: a second one would resume the first one's running trials."""
    out.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with (out / "study.lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TuneError(f"another `rlsuite tune` is driving the study in {out}; wait for it to finish, or "
                            "give this one another --out.") from None
        yield


def _open_study(spec: TuneSpec, name: str) -> optuna.Study:
    try:
        import optuna
    except ImportError:
        raise TuneError("rlsuite tune needs Optuna: pip install 'rlsuite[tune]' (or pip install optuna).") from None
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(spec.out / "study.journal")))
    pruner: optuna.pruners.BasePruner
    if spec.pruner == "median":
        pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    elif spec.pruner == "halving":
        pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2)
    else:
        pruner = optuna.pruners.NopPruner()
    study = optuna.create_study(study_name=name, storage=storage, pruner=pruner,
                                directions=[objective_direction(o) for o in spec.objectives], load_if_exists=True)
    # Seeded by the trials already asked: a fresh study proposes the same configurations for the same
    # command, and a resumed one does not propose its first ones again.
    study.sampler = optuna.samplers.TPESampler(seed=spec.sampler_seed + len(study.trials),
                                               n_startup_trials=min(5, spec.trials))
    return study


_Evaluated = tuple[EvaluationRecord, list[EpisodeRecord]]


def _recorded(db: Path) -> tuple[dict[str, dict[str, _Evaluated]], dict[str, RunRecord]]:
    """What the database already holds: run_id -> {"validation": ..., "test": ...}, and the runs by id."""
    if not db.exists():
        return {}, {}
    found: dict[str, dict[str, _Evaluated]] = {}
    with ResultsStore(db, create=False) as store:
        for evaluation in store.evaluations():
            split = "validation" if evaluation.protocol.get("split") == "validation" else "test"
            if split == "test" and evaluation.seeds[:1] != (TEST_SEED_BASE,):
                continue
            assert evaluation.eval_id is not None
            found.setdefault(evaluation.run_id, {})[split] = (evaluation, store.episodes(evaluation.eval_id))
        return found, {r.run_id: r for r in store.runs()}


def _cpu_from_manifest(run: RunRecord | None) -> float:
    if run is None or run.run_dir is None:
        return float("nan")
    try:
        return float(RunFolder.open(Path(run.run_dir)).manifest.get("tune", {}).get("cpu_seconds", float("nan")))
    except (OSError, ValueError):
        return float("nan")


class _Driver:
    """Runs configurations' units on a backend, in rung order, storing every finished unit once."""

    def __init__(self, spec: TuneSpec, study: str, store: ResultsStore, console: Console,
                 task: Callable[[TuneUnit], UnitResult]) -> None:
        self.spec, self.study, self.store, self.console, self.task = spec, study, store, console, task
        self.recorded, self.runs = _recorded(spec.db)
        self.summary_run = 0
        self.summary_reused = 0
        self.attempts: dict[str, int] = {}
        self.backend: Any = None

    def _backend(self) -> Any:
        if self.backend is None:
            spec = self.spec
            if spec.backend == "ray":
                sweep = SweepSpec(agents=(spec.agent,), envs=spec.envs, seeds=(0,), backend="ray",
                                  workers=spec.workers, ray_address=spec.ray_address,
                                  cpus_per_trial=spec.cpus_per_trial, retries=spec.retries)
                self.backend = RayBackend(sweep, task=self.task)
            else:
                workers = spec.workers or max(1, int(machine_cores() // spec.cpus_per_trial))
                self.backend = LocalBackend(workers, task=self.task)
        return self.backend

    def close(self, force: bool = False) -> None:
        if self.backend is not None:
            self.backend.close(force=force)
            self.backend = None

    def _link(self, config: _Config, unit: TuneUnit) -> TuneRunRecord:
        """The run's place in the study: stage, configuration, trial number and searched values."""
        number = None if config.trial is None else config.trial.number
        if config.stage == "confirm" and config.label.startswith("trial "):
            number = int(config.label.split()[1])
        return TuneRunRecord(self.study, config.stage, config.label, number, unit.trial.run_id, dict(config.params))

    def reuse(self, config: _Config, unit: TuneUnit) -> UnitScore | None:
        """The unit's score from the database, if an earlier call (or another trial or study with the same
        settings) finished it; the run is then linked to this study's configuration too."""
        found = self.recorded.get(unit.trial.run_id, {})
        if "validation" not in found or (unit.test and "test" not in found):
            return None
        self.store.link_tune_run(self._link(config, unit))
        test = found["test"][1] if unit.test else None
        return _score(unit, found["validation"], _cpu_from_manifest(self.runs.get(unit.trial.run_id)), test)

    def store_result(self, config: _Config, unit: TuneUnit, result: UnitResult) -> UnitScore:
        """Record the run, its evaluations and its place in the study in one transaction."""
        assert result.run is not None and result.validation is not None
        validation, episodes = result.validation
        evaluations: list[tuple[EvaluationRecord, Sequence[EpisodeRecord]]] = [(validation, episodes)]
        found: dict[str, _Evaluated] = {"validation": (validation, list(episodes))}
        if unit.test and result.test is not None:
            evaluations.append(result.test)
            found["test"] = (result.test[0], list(result.test[1]))
        self.store.record_tune_run(result.run, evaluations, self._link(config, unit))
        self.recorded[unit.trial.run_id] = found
        return _score(unit, result.validation, result.cpu_seconds, result.test[1] if result.test else None)

    def run(self, next_config: Callable[[], _Config | None], on_rung: Callable[[_Config, int], bool],
            slots_hint: int | None = None) -> bool:
        """Run configurations from `next_config` until it returns None and all are settled. After each rung,
        `on_rung(config, rung)` says whether to go on with the next rung. Returns False if interrupted."""
        active: list[_Config] = []
        queue: deque[tuple[_Config, TuneUnit]] = deque()
        inflight: dict[Any, tuple[_Config, TuneUnit]] = {}
        pending: dict[int, set[str]] = {}  # id(config) -> run ids of its current rung not yet finished
        exhausted = False

        def open_rung(config: _Config) -> None:
            """Queue the config's next rung, settling at once the units the database already holds."""
            while config.submitted_rungs < len(config.rungs):
                rung = config.submitted_rungs
                config.submitted_rungs += 1
                waiting: set[str] = set()
                for unit in config.rungs[rung]:
                    reused = self.reuse(config, unit)
                    if reused is not None:
                        config.scores[unit.trial.run_id] = reused
                        self.summary_reused += 1
                    else:
                        waiting.add(unit.trial.run_id)
                        queue.append((config, unit))
                pending[id(config)] = waiting
                if waiting:
                    return
                if not on_rung(config, rung):  # every unit reused: settle the rung now
                    config.done = True
                    return
            config.done = True

        def slots() -> int:
            return self._backend().slots if slots_hint is None else slots_hint

        try:
            while True:
                while not exhausted and len(queue) < 1 and len(inflight) < slots():
                    config = next_config()
                    if config is None:
                        exhausted = True
                        break
                    active.append(config)
                    open_rung(config)
                while queue and len(inflight) < slots():
                    config, unit = queue.popleft()
                    inflight[self._backend().submit(unit)] = (config, unit)
                if not inflight and not queue and exhausted:
                    break
                if not inflight:
                    continue
                for handle, outcome in self._backend().wait(list(inflight), timeout=_POLL_S):
                    config, unit = inflight.pop(handle)
                    result = outcome if isinstance(outcome, UnitResult) else UnitResult(
                        unit.trial.run_id, "failed", error=_describe(outcome))
                    retry_allowed = isinstance(outcome, UnitResult) or self.spec.backend == "local"
                    if result.status == "finished":
                        config.scores[unit.trial.run_id] = self.store_result(config, unit, result)
                        self.summary_run += 1
                        self.console.print(f"[green]done[/] {config.label} {unit.trial.env_id} seed "
                                           f"{unit.trial.seed}: validation return "
                                           f"{config.scores[unit.trial.run_id].validation_return:.2f}",
                                           highlight=False)
                    elif result.status == "interrupted":
                        raise KeyboardInterrupt
                    else:
                        attempts = self.attempts[unit.trial.run_id] = self.attempts.get(unit.trial.run_id, 0) + 1
                        first = (result.error or "unknown error").splitlines()[0]
                        if retry_allowed and attempts <= self.spec.retries:
                            self.console.print(f"[yellow]retry[/] {unit.trial.run_id}: {first}", highlight=False)
                            queue.appendleft((config, unit))
                            continue
                        self.console.print(f"[red]failed[/] {config.label} {unit.trial.run_id}: {first}",
                                           highlight=False)
                        self._fail(config, first, queue)
                        continue
                    waiting = pending[id(config)]
                    waiting.discard(unit.trial.run_id)
                    if not waiting and not config.done:
                        if on_rung(config, config.submitted_rungs - 1):
                            open_rung(config)
                        else:
                            config.done = True
        except KeyboardInterrupt:
            self.close(force=True)
            return False
        return True

    def _fail(self, config: _Config, error: str, queue: deque[tuple[_Config, TuneUnit]]) -> None:
        if config.done:  # another of its runs failed first
            return
        config.done = True
        for item in [q for q in queue if q[0] is config]:
            queue.remove(item)
        if config.trial is not None:
            config.trial.set_user_attr("error", error)
            config.trial.study.tell(config.trial, state=_state("FAIL"))


def _state(name: str) -> Any:
    import optuna

    return getattr(optuna.trial.TrialState, name)


def _describe(error: BaseException) -> str:
    from concurrent.futures.process import BrokenProcessPool

    if isinstance(error, BrokenProcessPool):
        return "the worker process died (killed, or out of memory) while running the unit"
    lines = [line for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[-1] if lines else ''}"  # Ray's: a traceback, the exception last


def run_tune(spec: TuneSpec, *, command: str = "", console: Console | None = None,
             task: Callable[[TuneUnit], UnitResult] = run_unit) -> TuneSummary:
    """Run the study to `spec.trials` trials (resuming it), then the confirm stage, write-back and report.

    `task` runs one unit in a worker (a top-level function, so a spawned worker can import it)."""
    console = console or Console(stderr=True)
    started = time.monotonic()
    spec.validate()
    space = load_search_space(spec.agent, spec.search_space, spec.space_overrides)
    fixed = sorted(set(space) & set(parse_set_args(spec.set_args)))
    if fixed:
        raise TuneError(f"{', '.join(fixed)} is searched and also fixed by --set; drop it from --set, or from the "
                        "search space (search_space: {NAME: null} in a tuning file).")
    name = study_name(spec, space)
    summary = TuneSummary(study=name)
    with _study_lock(spec.out):
        study = _open_study(spec, name)
        scorer = _Scorer(spec.envs, spec.objectives)
        validation = tuple(validation_seeds(spec.episodes))
        single = len(spec.objectives) == 1
        with ResultsStore(spec.db) as store:
            driver = _Driver(spec, name, store, console, task)
            resumed = deque(study.get_trials(deepcopy=False, states=(_state("RUNNING"),)))
            counter = {"asked": len(study.trials)}

            def next_config() -> _Config | None:
                import optuna

                while True:
                    if resumed:
                        frozen = resumed.popleft()
                        trial = optuna.trial.Trial(study, frozen._trial_id)
                        reported = set(frozen.intermediate_values)
                        console.print(f"[cyan]resume[/] trial {frozen.number}", highlight=False)
                    elif counter["asked"] < spec.trials:
                        trial, reported = study.ask(), set()
                        counter["asked"] += 1
                    else:
                        return None
                    params = sample_params(trial, space)
                    trial.set_user_attr("settings", params)
                    try:
                        rungs = _units(spec, params, range(spec.seeds), False, validation)
                    except (ConfigError, SweepError) as err:  # a combination the settings refuse: not run
                        trial.set_user_attr("error", str(err))
                        study.tell(trial, state=_state("FAIL"))
                        console.print(f"[red]refused[/] trial {trial.number}: {err}", highlight=False)
                        continue
                    return _Config(f"trial {trial.number}", params, rungs, trial, reported)

            def on_rung(config: _Config, rung: int) -> bool:
                trial = config.trial
                assert trial is not None
                scores = list(config.scores.values())
                trial.set_user_attr("units", [dataclasses.asdict(s) for s in scores])
                values = scorer.values(scores)
                last = rung == len(config.rungs) - 1
                if single and rung + 1 not in config.reported:
                    trial.report(values[0], step=rung + 1)
                if single and not last:
                    if trial.should_prune():
                        study.tell(trial, state=_state("PRUNED"))
                        console.print(f"[yellow]pruned[/] {config.label} after {rung + 1} seed(s): "
                                      f"{values[0]:.3f}", highlight=False)
                        return False
                if last:
                    study.tell(trial, values[0] if single else values)
                    console.print(f"[bold]trial {trial.number}[/]: {_fmt_values(spec.objectives, values)}",
                                  highlight=False)
                    return False
                return True

            finished = driver.run(next_config, on_rung)
            if not finished:
                summary.interrupted = True
                summary.seconds = time.monotonic() - started
                return summary
            try:
                states = [t.state.name for t in study.trials]
                summary.trials, summary.complete = len(states), states.count("COMPLETE")
                summary.pruned, summary.failed = states.count("PRUNED"), states.count("FAIL")
                confirm = _confirm(spec, study, name, driver, scorer, validation, console) \
                    if spec.confirm_top > 0 and summary.complete > 0 else None
                if confirm is None and spec.confirm_top > 0 and summary.complete > 0:
                    summary.interrupted = True
            finally:
                driver.close()
            summary.units_run, summary.units_reused = driver.summary_run, driver.summary_reused
        if summary.interrupted:
            summary.seconds = time.monotonic() - started
            return summary
        best_file = _write_back(spec, name, confirm, validation) if confirm else None
        summary.best_file = best_file
        data = _report_data(spec, study, name, scorer, confirm, best_file, command, validation)
        _write_atomic(spec.out / "tune.json", json.dumps(data, indent=1, default=str))
        summary.report = write_tune_report(data, spec.out / "report")
    summary.seconds = time.monotonic() - started
    return summary


def _fmt_values(objectives: Sequence[str], values: Sequence[float]) -> str:
    return ", ".join(f"{o} {v:.3f}" for o, v in zip(objectives, values, strict=True))


# ---------------------------------------------------------------------------------------------------
# Confirm stage and write-back


@dataclass
class ConfirmRow:
    """One configuration rerun on fresh seeds: validation scores pick the winner, test scores report it."""

    label: str
    trial: int | None
    params: dict[str, Any]
    tuning_values: list[float] | None
    seeds: list[int]
    validation: list[list[float]]
    """(seeds, envs) mean validation returns."""
    test: list[list[float]]
    """(seeds, envs) mean test returns (the harness's test seeds)."""
    cpu_seconds: float
    validation_values: list[float] = field(default_factory=list)


def _top_trials(spec: TuneSpec, study: optuna.Study) -> list[Any]:
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    sign = 1.0 if objective_direction(spec.objectives[0]) == "maximize" else -1.0
    pool = study.best_trials if len(spec.objectives) > 1 else complete
    return sorted(pool, key=lambda t: (-sign * t.values[0], t.number))[: spec.confirm_top]


def _confirm(spec: TuneSpec, study: optuna.Study, name: str, driver: _Driver, scorer: _Scorer,
             validation_seeds: tuple[int, ...], console: Console) -> list[ConfirmRow] | None:
    """Rerun the top trials, the preset and the untuned defaults on fresh seeds, their runs labelled
    (`confirm_label`) so that reports show each as its own configuration; None if interrupted."""
    seeds = list(range(CONFIRM_SEED_BASE, CONFIRM_SEED_BASE + spec.confirm_seeds))
    candidates: list[tuple[str, int | None, dict[str, Any], list[float] | None]] = [
        (f"trial {t.number}", t.number, dict(t.user_attrs["settings"]), list(t.values)) for t in _top_trials(spec, study)]
    candidates.append(("preset", None, {}, None))
    defaults = _defaults_params(spec, spec.envs[0]) if len(spec.envs) == 1 else None
    if defaults is not None:
        candidates.append(("untuned defaults", None, defaults, None))
    configs = deque(_Config(label, params, _units(spec, params, seeds, True, validation_seeds,
                                                  confirm_label(name, spec.agent, label)), stage="confirm")
                    for label, _, params, _ in candidates)
    all_configs = list(configs)
    console.print(f"[bold]confirm[/]: {len(all_configs)} configurations x {len(seeds)} fresh seeds x "
                  f"{len(spec.envs)} env(s)", highlight=False)

    def next_config() -> _Config | None:
        return configs.popleft() if configs else None

    if not driver.run(next_config, lambda config, rung: True):
        return None
    rows: list[ConfirmRow] = []
    for (label, number, params, tuning), config in zip(candidates, all_configs, strict=True):
        by_key = {(s.seed, s.env_id): s for s in config.scores.values()}
        if len(by_key) < len(seeds) * len(spec.envs):
            continue  # a unit failed after its retries: this configuration has no complete confirm row
        validation = [[by_key[(seed, env)].validation_return for env in spec.envs] for seed in seeds]
        test = [[float(np.mean(by_key[(seed, env)].test_returns)) for env in spec.envs] for seed in seeds]
        cpu = float(np.mean([s.cpu_seconds for s in by_key.values()]))
        rows.append(ConfirmRow(label, number, params, tuning, seeds, validation, test, cpu,
                               scorer.values(list(by_key.values()))))
    return rows


def _winner(spec: TuneSpec, rows: Sequence[ConfirmRow]) -> ConfirmRow | None:
    """The tuned configuration with the best confirm-stage validation score (never chosen on test scores)."""
    tuned = [r for r in rows if r.trial is not None]
    if not tuned:
        return None
    sign = 1.0 if objective_direction(spec.objectives[0]) == "maximize" else -1.0
    return max(tuned, key=lambda r: (sign * r.validation_values[0], -(r.trial or 0)))


def _confirmed_text(spec: TuneSpec, row: ConfirmRow) -> str:
    from rlsuite.evaluation.tune_report import confirm_interval

    point, low, high = confirm_interval(row.test, spec.envs)
    return f"{point:.2f} [{low:.2f}, {high:.2f}]"


def _verdict(spec: TuneSpec, winner: ConfirmRow, preset: ConfirmRow) -> str:
    """Whether the winner's test return beats the preset's, and whether the intervals say so."""
    from rlsuite.evaluation.tune_report import confirm_interval

    w, w_low, w_high = confirm_interval(winner.test, spec.envs)
    p, p_low, p_high = confirm_interval(preset.test, spec.envs)
    better = "above" if w > p else "not above"
    overlap = "the intervals overlap" if w_low <= p_high and p_low <= w_high else "the intervals do not overlap"
    return f"The winner's test IQM is {better} the preset's; {overlap}."


def _write_back(spec: TuneSpec, name: str, rows: Sequence[ConfirmRow],
                validation_seeds: tuple[int, ...]) -> Path | None:
    """best.yaml: one block per env with only the fields the winner changes, commented with the study and its
    confirmed test score beside the preset's; `rlsuite train --config` loads it."""
    winner = _winner(spec, rows)
    if winner is None:
        return None
    preset = next((r for r in rows if r.label == "preset"), None)
    lines = [f"# rlsuite tune study {name}: {spec.trials} trials x {spec.seeds} seeds x "
             f"{spec.steps or 'preset'} steps, validation seeds {validation_seeds[0]}-{validation_seeds[-1]}.",
             f"# Winner {winner.label} (best confirm-stage validation score). Confirmed on fresh training seeds "
             f"{winner.seeds[0]}-{winner.seeds[-1]}, test seeds {TEST_SEED_BASE}-{TEST_SEED_BASE + spec.episodes - 1}:",
             f"#   IQM {_confirmed_text(spec, winner)}"
             + (f"; the preset: IQM {_confirmed_text(spec, preset)}" if preset is not None else "")
             + (" (normalised scores)" if len(spec.envs) > 1 else " (returns)") + ", 95% bootstrap CI.",
             f"# Load: rlsuite train --agent {spec.agent} --env {spec.envs[0]} --config best.yaml"]
    if preset is not None and spec.objectives[0] == "return":
        lines.insert(3, f"#   {_verdict(spec, winner, preset)}")
    blocks: dict[str, dict[str, Any]] = {}
    for env_id in spec.envs:
        base = _base_settings(spec, env_id)
        tuned = _settings_for(spec, winner.params, env_id)
        changed = {k: v for k, v in tuned.items() if k not in _NOT_WRITTEN_BACK and v != base.get(k)}
        if spec.steps is not None:
            changed["total_steps"] = spec.steps  # the budget it was tuned for
        blocks[env_id] = changed
    text = "\n".join(lines) + "\n" + yaml.safe_dump(blocks, sort_keys=False, default_flow_style=False)
    return _write_atomic(spec.out / "best.yaml", text)


def _write_atomic(path: Path, text: str) -> Path:
    """Write through a temporary file and rename, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------------------------------
# What the report reads


def _report_data(spec: TuneSpec, study: optuna.Study, name: str, scorer: _Scorer, rows: Sequence[ConfirmRow] | None,
                 best_file: Path | None, command: str, validation_seeds: tuple[int, ...]) -> dict[str, Any]:
    import optuna

    trials = [{"number": t.number, "state": t.state.name, "values": t.values,
               "settings": t.user_attrs.get("settings", {}), "error": t.user_attrs.get("error"),
               "intermediate": {str(k): v for k, v in sorted(t.intermediate_values.items())},
               "units": t.user_attrs.get("units", [])} for t in study.trials]
    importances: dict[str, dict[str, float]] = {}
    notes: list[str] = []
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    for i, objective in enumerate(spec.objectives):
        if len(complete) < 2:
            notes.append("parameter importances need at least two completed trials")
            break
        # PED-ANOVA (Optuna's default evaluator) ranks params by how they separate the best trials from the
        # rest, reading a given target as lower-is-better: a maximised objective is negated.
        sign = -1.0 if objective_direction(objective) == "maximize" else 1.0
        target = (lambda t, i=i, sign=sign: sign * t.values[i]) if len(spec.objectives) > 1 else None
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*computes the importances of params to achieve low")
                importances[objective] = {k: float(v) for k, v in
                                          optuna.importance.get_param_importances(study, target=target).items()}
        except (RuntimeError, ValueError) as err:  # e.g. every completed trial scored the same
            notes.append(f"no importances for {objective}: {err}")
    pareto = [t.number for t in study.best_trials] if len(spec.objectives) > 1 else []
    winner = _winner(spec, rows) if rows else None
    reproduce = None
    if best_file is not None:
        reproduce = shlex.join(["rlsuite", "train", "--agent", spec.agent, "--env", spec.envs[0], "--config",
                                str(best_file), "--seed", str(CONFIRM_SEED_BASE)])
    return {
        "study": name, "agent": spec.agent, "envs": list(spec.envs), "trials_asked": spec.trials,
        "seeds": spec.seeds, "steps": spec.steps, "episodes": spec.episodes, "pruner": spec.pruner,
        "objectives": [{"name": o, "direction": objective_direction(o)} for o in spec.objectives],
        "normalised": scorer.normalised, "validation_seeds": [validation_seeds[0], validation_seeds[-1]],
        "test_seeds": [TEST_SEED_BASE, TEST_SEED_BASE + spec.episodes - 1], "trials": trials,
        "importances": importances, "pareto": pareto,
        "confirm": [dataclasses.asdict(r) for r in rows or []],
        "winner": winner.label if winner else None, "best_file": str(best_file) if best_file else None,
        "command": command, "reproduce": reproduce,
        "references": {env: dataclasses.asdict(ref) for env in spec.envs
                       if (ref := reference_score(env)) is not None},
        "notes": notes,
        "not_finite": [t.number for t in complete if any(not math.isfinite(v) for v in t.values)],
    }
