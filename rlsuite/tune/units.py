"""Units, the work a worker does: one seed of one configuration on one env, trained and evaluated; and the
configurations (an Optuna trial, or a confirm candidate) as rungs of units, with how they are scored."""

from __future__ import annotations

import socket
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from rlsuite.agents.registry import agent_module
from rlsuite.agents.run import RunFolder
from rlsuite.agents.settings import load_yaml_mapping, parse_set_args, preset_path, settings_to_dict
from rlsuite.envs.factory import reference_score
from rlsuite.evaluation.evaluate import checkpoint_selection, load_agent, run_protocol
from rlsuite.evaluation.harness import eval_epsilon, evaluate_policy
from rlsuite.evaluation.records import EpisodeRecord, EvaluationRecord, RunRecord
from rlsuite.evaluation.stats import iqm, normalize
from rlsuite.sweep import SweepSpec, Trial, plan_trials, prepare_worker, train_trial
from rlsuite.tune.spec import _NOT_WRITTEN_BACK, PROTOCOL_SETTINGS, TuneError, TuneSpec

if TYPE_CHECKING:
    import optuna


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

    trial = unit.trial
    prepare_worker(trial.seed)
    host = socket.gethostname()
    cpu_start = time.process_time()
    try:
        path, status = train_trial(trial)
        if status != "finished":
            return UnitResult(trial.run_id, "interrupted", host=host)
        subject = load_agent(run_dir=path, checkpoint=trial.checkpoint)
        env_kwargs = subject.eval_env_kwargs
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
