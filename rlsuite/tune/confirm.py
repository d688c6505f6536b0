"""The confirm stage (the top trials, the preset and the untuned defaults rerun on fresh seeds, scored on
validation and test seeds) and the write-back of the winner as a preset block."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml
from rich.console import Console

from rlsuite.evaluation.harness import TEST_SEED_BASE
from rlsuite.tune.driver import _Driver
from rlsuite.tune.spec import _NOT_WRITTEN_BACK, CONFIRM_SEED_BASE, TuneSpec, objective_direction
from rlsuite.tune.units import (
    _base_settings,
    _Config,
    _defaults_params,
    _Scorer,
    _settings_for,
    _units,
    confirm_label,
)

if TYPE_CHECKING:
    import optuna


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
