"""`run_tune`: the study from first trial to report: ask, run each trial's seed rungs (reporting each to the
pruner), tell; then the confirm stage, the write-back and the data the tuning report is drawn from."""

from __future__ import annotations

import dataclasses
import json
import math
import shlex
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from rlsuite.agents.settings import ConfigError, parse_set_args
from rlsuite.envs.factory import reference_score
from rlsuite.evaluation.harness import TEST_SEED_BASE, validation_seeds
from rlsuite.evaluation.store import ResultsStore
from rlsuite.evaluation.tune_report import write_tune_report
from rlsuite.sweep import SweepError
from rlsuite.tune.confirm import ConfirmRow, _confirm, _winner, _write_atomic, _write_back
from rlsuite.tune.driver import _Driver
from rlsuite.tune.space import load_search_space, sample_params
from rlsuite.tune.spec import CONFIRM_SEED_BASE, TuneError, TuneSpec, objective_direction
from rlsuite.tune.study import _open_study, _state, _study_lock, study_name
from rlsuite.tune.units import TuneUnit, UnitResult, _Config, _Scorer, _units, run_unit

if TYPE_CHECKING:
    import optuna


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
