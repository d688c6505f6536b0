"""`rlsuite tune`: search spaces, pruning on seed rungs, retries, resume, the confirm stage and write-back.

Most tests drive real Optuna studies through the real driver and process pool with a synthetic unit
(`fake_unit`, no training: a run's validation return is a known function of its settings and seed), so
the study's decisions can be checked against hand-computed oracles in seconds. One test trains real
PPO runs end to end and loads the written-back preset with `--config`; the Ray test starts a local Ray.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import typing
from pathlib import Path

import numpy as np
import pytest
from test_cli import assert_user_error, rlsuite

from rlsuite.agents.registry import agent_module
from rlsuite.agents.settings import coerce_field
from rlsuite.evaluation.harness import TEST_SEED_BASE, VALIDATION_SEED_BASE
from rlsuite.evaluation.records import EpisodeRecord, EvaluationRecord, RunRecord
from rlsuite.evaluation.stats import iqm
from rlsuite.evaluation.store import ResultsStore
from rlsuite.train import prepare_settings
from rlsuite.tune import (
    SEARCH_SPACE_DIR,
    TuneError,
    TuneSpec,
    TuneUnit,
    UnitResult,
    load_search_space,
    load_tune_file,
    run_tune,
    sample_params,
)

optuna = pytest.importorskip("optuna")

LOG_ENV = "RLSUITE_TEST_TUNE_LOG"
"""File each fake unit appends its run id to (one line per execution), so tests count executions."""


def fake_return(settings: dict, seed: int) -> float:
    """The synthetic validation return of a run: higher learning rates score higher, seeds add a little."""
    return 1000.0 * float(settings["learning_rate"]) + 0.01 * seed


def fake_unit(unit: TuneUnit) -> UnitResult:
    """A unit without training: records like run_unit's, with the return fake_return gives.

    Env-var switches make it misbehave once per run id: KILL_ONCE (SIGKILL its own worker the first time
    a run id with that seed comes), KILL_ALWAYS (every time), STOP_AT_SEED (report an interrupted run
    for that seed the first time, as a stopped driver would see)."""
    trial = unit.trial
    log = Path(os.environ[LOG_ENV])
    seen = log.read_text().splitlines() if log.exists() else []
    with log.open("a") as f:
        f.write(trial.run_id + "\n")
    if os.environ.get("KILL_ALWAYS") == str(trial.seed) or (
            os.environ.get("KILL_ONCE") == str(trial.seed) and trial.run_id not in seen):
        os.kill(os.getpid(), 9)
    if os.environ.get("STOP_AT_SEED") == str(trial.seed) and trial.run_id not in seen:
        return UnitResult(trial.run_id, "interrupted")
    value = fake_return(trial.settings, trial.seed)
    run = RunRecord(run_id=trial.run_id, agent=trial.agent, env_id=trial.env_id, seed=trial.seed, status="finished",
                    config=trial.settings, label=trial.label)
    episodes = tuple(EpisodeRecord(index=i, seed=s, episode_return=value, length=1)
                     for i, s in enumerate(unit.validation_seeds))
    validation = EvaluationRecord(run_id=trial.run_id, agent=trial.agent, env_id=trial.env_id, checkpoint="last",
                                  checkpoint_step=1, deterministic=True, seeds=unit.validation_seeds,
                                  protocol={"split": "validation"})
    test = None
    if unit.test:  # test returns deliberately disagree with validation: the winner must not be picked on them
        test_seeds = tuple(range(1_000_000, 1_000_000 + trial.episodes))
        test = (dataclasses.replace(validation, seeds=test_seeds, protocol={}),
                tuple(EpisodeRecord(index=i, seed=s, episode_return=-value, length=1) for i, s in enumerate(test_seeds)))
    cpu = 1.0 + 10.0 * float(trial.settings["learning_rate"])  # higher rates "cost" more: a real trade-off
    return UnitResult(trial.run_id, "finished", run, (validation, episodes), test, cpu_seconds=cpu)


def spec(tmp: Path, **overrides) -> TuneSpec:
    """A fast study of ppo on CartPole-v1 over learning_rate only, on the fake unit."""
    values = dict(agent="ppo", envs=("CartPole-v1",), trials=6, seeds=3, steps=1024, episodes=2, confirm_top=0,
                  workers=1, db=tmp / "results.db", out=tmp / "tune",
                  space_overrides={name: None for name in load_search_space("ppo") if name != "learning_rate"})
    values.update(overrides)
    return TuneSpec(**values)


@pytest.fixture
def unit_log(tmp_path, monkeypatch) -> Path:
    log = tmp_path / "units.log"
    monkeypatch.setenv(LOG_ENV, str(log))
    for name in ("KILL_ONCE", "KILL_ALWAYS", "STOP_AT_SEED"):
        monkeypatch.delenv(name, raising=False)
    return log


def study_of(s: TuneSpec) -> optuna.Study:
    from rlsuite.tune.study import _open_study, study_name

    return _open_study(s, study_name(s, load_search_space(s.agent, s.search_space, s.space_overrides)))


def evaluations_by_run(db: Path) -> dict[str, int]:
    with ResultsStore(db, create=False) as store:
        counts: dict[str, int] = {}
        for e in store.evaluations():
            counts[e.run_id] = counts.get(e.run_id, 0) + 1
        return counts


# --- search spaces ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("agent", sorted(p.stem for p in SEARCH_SPACE_DIR.glob("*.yaml")))
def test_sampling_stays_within_settings_types(agent):
    """Every sampled value is a valid value of its settings field (the settings' own coercion is the oracle),
    of the field's type, and inside the declared range or choices."""
    space = load_search_space(agent)
    cls = agent_module(agent).Settings
    hints = typing.get_type_hints(cls)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(40):
        trial = study.ask()
        values = sample_params(trial, space)
        for name, value in values.items():
            typed = coerce_field(cls, name, value)
            param = space[name]
            if param.choices:
                assert value in param.choices
            else:
                assert param.low <= (1 - value if param.one_minus else value) <= param.high
                assert isinstance(typed, int if hints[name] is int else float)
        study.tell(trial, 0.0)
    assert set(space) <= {f.name for f in dataclasses.fields(cls)}


def test_hidden_sizes_choice_becomes_a_tuple():
    space = load_search_space("ppo", overrides={"hidden_sizes": {"choices": [[256, 256]]}})
    trial = optuna.create_study().ask()
    value = sample_params(trial, space)["hidden_sizes"]
    assert coerce_field(agent_module("ppo").Settings, "hidden_sizes", value) == (256, 256)


@pytest.mark.parametrize("definition, fragment", [
    ({"learning_rte": {"low": 1e-4, "high": 1e-3}}, "has no field 'learning_rte'"),
    ({"n_epochs": {"choices": ["many"]}}, "expected int"),
    ({"n_epochs": {"low": 1.5, "high": 4}}, "expected int, got 1.5"),
    ({"learning_rate": {"low": 0.0, "high": 1e-3, "log": True}}, "low must be > 0"),
    ({"learning_rate": {"low": 1e-3, "high": 1e-4}}, "low < high"),
    ({"learning_rate": {"min": 1e-4}}, "unknown keys min"),
])
def test_bad_search_space_is_refused(definition, fragment):
    with pytest.raises(TuneError, match=fragment):
        load_search_space("ppo", overrides=definition)


def test_searched_setting_cannot_be_fixed_too(tmp_path, unit_log):
    with pytest.raises(TuneError, match="learning_rate is searched and also fixed by --set"):
        run_tune(spec(tmp_path, set_args=("learning_rate=0.001",)), task=fake_unit)


def test_tune_file(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("agent: ppo\nenvs: [CartPole-v1]\ntrials: 4\nobjectives: [return, cpu_seconds]\n"
                    "search_space: {learning_rate: {low: 1.0e-4, high: 1.0e-3, log: true}, ent_coef: null}\n"
                    "out: here\n")
    values = load_tune_file(path)
    assert values["envs"] == ("CartPole-v1",) and values["out"] == tmp_path / "here"
    assert values["space_overrides"]["ent_coef"] is None
    (tmp_path / "bad.yaml").write_text("agent: ppo\ntrails: 4\n")
    with pytest.raises(TuneError, match="unknown keys trails"):
        load_tune_file(tmp_path / "bad.yaml")


def test_cli_user_errors(tmp_path):
    assert_user_error(rlsuite("tune", "--agent", "ppo", "--env", "CartPole-v1", "--objective", "speed", cwd=tmp_path),
                      "unknown objective 'speed'")
    assert_user_error(rlsuite("tune", "--env", "CartPole-v1", cwd=tmp_path), "name the study's agent")


@pytest.mark.parametrize("overrides, fragment", [
    (dict(agent="random"), "baseline with nothing to tune"),
    (dict(envs=("CartPole-v1", "Acrobot-v1")), "knows none for Acrobot-v1"),
    (dict(seeds=0), "--seeds must be >= 1"),
    (dict(pruner="hyperband"), "unknown pruner 'hyperband'"),
    (dict(objectives=("metric:crashed",)), "metric:NAME:max"),
])
def test_bad_studies_fail_before_any_work(tmp_path, overrides, fragment):
    with pytest.raises(TuneError, match=fragment):
        spec(tmp_path, **overrides).validate()
    assert not (tmp_path / "tune").exists()


# --- the driver on the fake unit -------------------------------------------------------------------------


def test_pruning_acts_on_seed_rungs(tmp_path, unit_log):
    """Each trial reports the IQM after each seed; one pruned after seed r ran exactly r + 1 seeds, and its
    value there was below the median of earlier trials' values at that rung (MedianPruner's rule)."""
    s = spec(tmp_path, trials=8, pruner="median")
    summary = run_tune(s, task=fake_unit)
    trials = study_of(s).trials
    assert summary.pruned >= 1 and summary.complete >= 2
    runs = unit_log.read_text().splitlines()
    for t in trials:
        lr = t.params["learning_rate"]
        rungs = sorted(t.intermediate_values)
        seeds_run = len(rungs)
        for rung in rungs:  # the reported value is the IQM of the first `rung` seeds' returns
            assert t.intermediate_values[rung] == pytest.approx(iqm([fake_return({"learning_rate": lr}, k)
                                                                     for k in range(rung)]))
        if t.state.name == "PRUNED":
            assert seeds_run < 3
            step = rungs[-1]
            earlier = [u.intermediate_values[step] for u in trials
                       if u.number < t.number and step in u.intermediate_values and u.state.name != "RUNNING"]
            assert t.intermediate_values[step] < np.median(earlier)
        else:
            assert t.state.name == "COMPLETE" and seeds_run == 3
    assert len(runs) == sum(len(t.intermediate_values) for t in trials)  # pruned trials stopped training
    assert max(evaluations_by_run(s.db).values()) == 1


@pytest.mark.slow
def test_killed_worker_unit_is_retried_once(tmp_path, unit_log, monkeypatch):
    """Seed 0's worker dies once: the run is retried and the trial goes on. Seed 1's worker dies on every
    attempt: after one retry the trial is recorded as failed, with the reason, and nothing is stored twice."""
    monkeypatch.setenv("KILL_ONCE", "0")
    monkeypatch.setenv("KILL_ALWAYS", "1")
    s = spec(tmp_path, trials=1, seeds=2, pruner="none")
    summary = run_tune(s, task=fake_unit)
    assert summary.failed == 1 and summary.complete == 0
    runs = unit_log.read_text().splitlines()
    assert [r.split("-s")[-1][0] for r in runs] == ["0", "0", "1", "1"]  # each seed: two attempts
    (trial,) = study_of(s).trials
    assert "worker process died" in trial.user_attrs["error"]
    assert list(evaluations_by_run(s.db).values()) == [1]  # seed 0, stored once


def test_rerun_resumes_without_repeating(tmp_path, unit_log, monkeypatch):
    """A stop in the middle of a trial leaves it RUNNING; the rerun finishes that trial with its own params,
    reusing its finished seed; raising --trials extends the same study. No run is executed twice."""
    monkeypatch.setenv("STOP_AT_SEED", "1")
    s = spec(tmp_path, trials=3, pruner="none")
    first = run_tune(s, task=fake_unit)
    assert first.interrupted
    running = [t for t in study_of(s).trials if t.state.name == "RUNNING"]
    assert len(running) == 1
    params = running[0].params
    monkeypatch.delenv("STOP_AT_SEED")
    second = run_tune(s, task=fake_unit)
    assert not second.interrupted and second.complete == 3 and second.trials == 3
    resumed = study_of(s).trials[running[0].number]
    assert resumed.state.name == "COMPLETE" and resumed.params == params
    third = run_tune(dataclasses.replace(s, trials=5), task=fake_unit)
    assert third.trials == 5 and third.units_run == 6  # only the two new trials trained
    runs = unit_log.read_text().splitlines()
    stopped = [r for r in runs if runs.count(r) > 1]
    assert len(set(stopped)) == 1 and "-s1-" in stopped[0]  # only the run reported as stopped ran again
    assert set(evaluations_by_run(s.db).values()) == {1} and len(evaluations_by_run(s.db)) == 15


def test_multi_objective_pareto_front(tmp_path, unit_log):
    """Return vs CPU seconds: the fake unit makes both grow with the learning rate, so every trial is on the
    front; the report's front equals the brute-force non-dominated set."""
    s = spec(tmp_path, trials=5, seeds=1, objectives=("return", "cpu_seconds"))
    run_tune(s, task=fake_unit)
    data = json.loads((s.out / "tune.json").read_text())
    points = {t["number"]: t["values"] for t in data["trials"] if t["state"] == "COMPLETE"}

    def dominated(a, b):  # b dominates a: return no lower, cpu no higher, one strictly
        return b[0] >= a[0] and b[1] <= a[1] and (b[0] > a[0] or b[1] < a[1])

    front = {n for n, v in points.items() if not any(dominated(v, w) for m, w in points.items() if m != n)}
    assert set(data["pareto"]) == front and len(front) == 5
    assert (s.out / "report" / "pareto.png").is_file()


def test_confirm_picks_on_validation_and_reports_test(tmp_path, unit_log):
    """The fake unit's test returns are the negated validation returns: the winner must still be the best
    on validation, and the table must show its (bad) test score."""
    s = spec(tmp_path, trials=4, seeds=1, pruner="none", confirm_top=2, confirm_seeds=2)
    summary = run_tune(s, task=fake_unit)
    data = json.loads((s.out / "tune.json").read_text())
    tuned = [r for r in data["confirm"] if r["trial"] is not None]
    assert len(tuned) == 2 and {r["label"] for r in data["confirm"]} >= {"preset"}
    best = max(tuned, key=lambda r: np.mean(r["validation"]))
    assert data["winner"] == best["label"]
    assert np.mean(best["test"]) == pytest.approx(-np.mean(best["validation"]))
    assert all(r["seeds"] == [10_000, 10_001] for r in data["confirm"])
    text = summary.best_file.read_text()
    assert f"IQM {-np.mean(best['validation']):.2f}" in text
    report = (s.out / "report" / "report.md").read_text()
    assert "confirm: test IQM" in report and "\u2605" in report


def test_trials_land_in_results_db_once_with_their_identity(tmp_path, unit_log):
    """Every run is stored once with its evaluations and its place in the study (stage, configuration,
    trial number, searched values); a rerun adds nothing. `rlsuite report` shows confirm runs as their own
    labelled rows, lists the search stage in its tuning section and keeps validation scores out of its
    comparison tables."""
    from rlsuite.evaluation.report import write_report
    from rlsuite.tune.study import study_name

    s = spec(tmp_path, trials=3, seeds=2, pruner="none", confirm_top=1, confirm_seeds=2)
    run_tune(s, task=fake_unit)
    study = study_name(s, load_search_space(s.agent, s.search_space, s.space_overrides))
    trials = {t.number: t for t in study_of(s).trials}
    with ResultsStore(s.db, create=False) as store:
        links, runs = store.tune_runs(), {r.run_id: r for r in store.runs()}
    assert {t.study for t in links} == {study}
    search = [t for t in links if t.stage == "search"]
    assert sorted((t.trial, runs[t.run_id].seed) for t in search) == [(n, seed) for n in range(3) for seed in (0, 1)]
    for t in search:  # the identity matches Optuna's record of the trial, and the run trained with those values
        assert t.candidate == f"trial {t.trial}" and t.params == trials[t.trial].user_attrs["settings"]
        assert runs[t.run_id].config["learning_rate"] == pytest.approx(t.params["learning_rate"])
        assert runs[t.run_id].label is None
    confirm = [t for t in links if t.stage == "confirm"]
    best = max(trials.values(), key=lambda t: t.value).number
    assert sorted({(t.candidate, t.trial) for t in confirm}) == [
        ("preset", None), (f"trial {best}", best), ("untuned defaults", None)]
    labels = {t.candidate: runs[t.run_id].label for t in confirm}
    assert labels == {"preset": "ppo preset", "untuned defaults": "ppo untuned defaults",
                      f"trial {best}": f"{study} trial {best}"}
    assert all(runs[t.run_id].seed in (10_000, 10_001) for t in confirm)
    counts = evaluations_by_run(s.db)
    assert {counts[t.run_id] for t in search} == {1} and {counts[t.run_id] for t in confirm} == {2}

    again = run_tune(s, task=fake_unit)  # resumed, complete: nothing trained, nothing stored twice
    assert again.units_run == 0
    with ResultsStore(s.db, create=False) as store:
        assert store.tune_runs() == links
    assert evaluations_by_run(s.db) == counts

    report = write_report(s.db, tmp_path / "report", reps=100).with_name("report.md").read_text()
    tables, tuning = report.split("## Tuning studies")
    for label in labels.values():
        assert label in tables  # a row of the comparison tables
    assert "(learning_rate=" not in tables  # search-stage runs (validation only) are not rows
    assert f"Study {study}" in tuning and tuning.count("| search |") == 3 and tuning.count("| confirm |") == 3
    assert "not evaluated" not in report  # search-stage runs are not listed as unevaluated


# --- real training --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_write_back_loads_with_config(tmp_path):
    """Real PPO runs (1024 steps): the winner's block holds only the fields it changes, and `--config` loads
    exactly the winner's settings."""
    s = TuneSpec(agent="ppo", envs=("CartPole-v1",), trials=2, seeds=1, steps=1024, episodes=2, confirm_top=1,
                 confirm_seeds=1, workers=2, db=tmp_path / "results.db", out=tmp_path / "tune",
                 space_overrides={"n_steps": {"choices": [32, 64]}, "n_epochs": {"choices": [1, 2]}})
    summary = run_tune(s)
    assert summary.complete == 2 and summary.best_file is not None
    data = json.loads((s.out / "tune.json").read_text())
    winner = next(r for r in data["confirm"] if r["label"] == data["winner"])
    loaded = prepare_settings("ppo", "CartPole-v1", config_file=summary.best_file)
    for name, value in winner["params"].items():
        assert getattr(loaded, name) == coerce_field(type(loaded), name, value), name
    assert loaded.total_steps == 1024
    block = __import__("yaml").safe_load(summary.best_file.read_text())["CartPole-v1"]
    assert not {"seed", "eval_every", "tensorboard", "env_id"} & set(block)
    preset = prepare_settings("ppo", "CartPole-v1")
    assert all(getattr(preset, k) != getattr(loaded, k) for k in block if k != "total_steps")
    with ResultsStore(s.db, create=False) as store:
        splits = [e.protocol.get("split", "test") for e in store.evaluations()]
        seeds = {e.seeds[0] for e in store.evaluations()}
    assert splits.count("test") == 3 and seeds == {VALIDATION_SEED_BASE, TEST_SEED_BASE}  # winner, preset, defaults
    assert math.isfinite(winner["cpu_seconds"]) and winner["cpu_seconds"] > 0


@pytest.mark.slow
def test_ray_backend_on_local_ray(tmp_path, unit_log):
    """The same study on a local Ray instance gives the same trials and values as on the process pool."""
    ray = pytest.importorskip("ray")
    local = spec(tmp_path / "local", trials=3, seeds=2, pruner="none")
    run_tune(local, task=fake_unit)
    tests = str(Path(__file__).parent)  # Ray's workers import fake_unit from this module
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": tests, LOG_ENV: os.environ[LOG_ENV]}})
    try:
        remote = spec(tmp_path / "ray", trials=3, seeds=2, pruner="none", backend="ray", workers=2)
        summary = run_tune(remote, task=fake_unit)
    finally:
        ray.shutdown()
    assert summary.complete == 3
    assert [(t.params, t.values) for t in study_of(remote).trials] == \
        [(t.params, t.values) for t in study_of(local).trials]
