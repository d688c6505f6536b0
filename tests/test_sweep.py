"""`rlsuite sweep`: the grid, idempotent resume, retries, and the same results on a process pool and on Ray.

The slow tests run real worker processes: a spawn process pool, a real local Ray instance started here
on loopback, and the CLI driver in a subprocess that is SIGKILLed mid-grid.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from test_cli import rlsuite

from rlsuite.agents.settings import settings_to_dict
from rlsuite.evaluation.evaluate import evaluate_baseline
from rlsuite.evaluation.store import ResultsStore, StoreError
from rlsuite.sweep import (
    SweepError,
    SweepSpec,
    load_sweep_file,
    parse_seeds,
    plan_trials,
    run_sweep,
    run_trial,
)
from rlsuite.train import prepare_settings

TINY = ("n_epochs=4", "eval_every=0", "tensorboard=false")
"""PPO settings for trials of a few tenths of a second: 1024 steps, no periodic evaluation."""


def grid(tmp: Path, **overrides) -> SweepSpec:
    """ppo + random x CartPole-v1 x seeds 0, 1 with tiny budgets: the acceptance grid."""
    values = dict(agents=("ppo", "random"), envs=("CartPole-v1",), seeds=(0, 1), steps=1024, set_args=TINY,
                  episodes=5, workers=2, db=tmp / "results.db", out=tmp / "sweep", report=False)
    values.update(overrides)
    return SweepSpec(**values)


def returns_by_run(db: Path) -> dict[str, list[float]]:
    """run_id -> episode returns of its (only) evaluation; fails if a run has more than one."""
    with ResultsStore(db, create=False) as store:
        evaluations = store.evaluations()
        run_ids = [e.run_id for e in evaluations]
        assert len(run_ids) == len(set(run_ids)), f"a trial was recorded twice: {run_ids}"
        assert sorted(r.run_id for r in store.runs()) == sorted(run_ids)
        return {e.run_id: [ep.episode_return for ep in store.episodes(e.eval_id)] for e in evaluations}


# --- the grid's definition (no workers) ------------------------------------------------------------------


@pytest.mark.parametrize("text, seeds", [("0-4", (0, 1, 2, 3, 4)), ("3", (3,)), ("0,3,7", (0, 3, 7)),
                                         ("0-2, 9", (0, 1, 2, 9)), ([5, 6], (5, 6)), (2, (2,))])
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text, fragment", [("4-1", "runs backwards"), ("a-b", "cannot read seeds"), ("", "cannot")])
def test_parse_seeds_rejects(text, fragment):
    with pytest.raises(SweepError, match=fragment):
        parse_seeds(text)


def test_trials_keys_and_commands(tmp_path):
    trials = plan_trials(grid(tmp_path))
    assert [(t.agent, t.seed) for t in trials] == [("ppo", 0), ("ppo", 1), ("random", 0), ("random", 1)]
    assert len({t.run_id for t in trials}) == 4
    assert [t.key for t in trials] == [t.key for t in plan_trials(grid(tmp_path))]  # stable across calls
    changed = plan_trials(grid(tmp_path, set_args=(*TINY, "learning_rate=0.0005")))
    assert [t.key == c.key for t, c in zip(trials, changed, strict=True)] == [False, False, True, True]
    assert plan_trials(grid(tmp_path, episodes=6))[2].key != trials[2].key  # the protocol is part of a trial
    ppo = trials[1]
    assert ppo.settings["total_steps"] == 1024 and ppo.settings["seed"] == 1 and ppo.settings["n_epochs"] == 4
    assert trials[2].settings == {} and not trials[2].trainable
    # The recorded command reproduces the trial's settings exactly when run on its own.
    args = shlex.split(ppo.command)
    assert args[:6] == ["rlsuite", "train", "--agent", "ppo", "--env", "CartPole-v1"]
    set_args = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    assert settings_to_dict(prepare_settings("ppo", "CartPole-v1", set_args=set_args)) == ppo.settings


def test_per_agent_settings_from_a_sweep_file(tmp_path):
    (tmp_path / "sweep.yaml").write_text(
        "agents: ppo, random\nenvs: [CartPole-v1]\nseeds: 0-2\nsteps: 2048\nepisodes: 3\nout: grid\n"
        "settings:\n  ppo:\n    default: {n_envs: 4}\n    CartPole-v1: {learning_rate: 0.002}\n")
    values = load_sweep_file(tmp_path / "sweep.yaml")
    assert values["seeds"] == (0, 1, 2) and values["out"] == tmp_path / "grid"
    trial = plan_trials(SweepSpec(**values))[0]
    assert trial.settings["n_envs"] == 4 and trial.settings["learning_rate"] == 0.002
    assert trial.settings["total_steps"] == 2048 and trial.runs_root == str((tmp_path / "grid" / "runs").resolve())


def test_example_sweep_file_plans():
    root = Path(__file__).resolve().parents[1]
    values = load_sweep_file(root / "sweeps" / "cartpole.yaml")
    trials = plan_trials(SweepSpec(**values))
    assert len(trials) == 10 and trials[0].settings["total_steps"] == 50_000
    assert trials[0].runs_root == str(root / "sweeps" / "cartpole" / "runs")


@pytest.mark.parametrize("overrides, fragment", [
    (dict(backend="dask"), "unknown backend 'dask'; accepted: local, ray"),
    (dict(seeds=(0, 0)), "seeds repeat"),
    (dict(agents=()), "at least one of agents"),
    (dict(settings={"dqn": {"lr": 1}}), "settings are given for dqn"),
    (dict(agents=("ppo", "nope")), "Unknown agent 'nope'"),
    (dict(set_args=("n_epoch=4",)), "n_epoch"),
])
def test_bad_sweeps_fail_before_any_work(tmp_path, overrides, fragment):
    with pytest.raises(ValueError, match=fragment):
        plan_trials(grid(tmp_path, **overrides))
    assert not (tmp_path / "sweep").exists() and not (tmp_path / "results.db").exists()


@pytest.mark.parametrize("text, fragment", [
    ("agents: [ppo]\nenvz: [CartPole-v1]\n", "unknown keys envz; accepted:"),
    ("agents: [ppo]\nsteps: lots\n", "`steps` in"),
    ("agents: [ppo]\nreport: 1\n", "`report` in"),
    ("- ppo\n", "must be a mapping"),
    ("settings: {ppo: 3}\n", "maps each agent name to its settings"),
])
def test_sweep_file_errors(tmp_path, text, fragment):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(SweepError, match=fragment):
        load_sweep_file(tmp_path / "bad.yaml")


def test_cli_user_errors(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from rlsuite.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    (tmp_path / "bad.yaml").write_text("agents: [ppo]\nenvz: [CartPole-v1]\n")
    for args, fragments in [
        ([str(tmp_path / "bad.yaml")], ["unknown keys envz", "accepted:"]),
        (["--agents", "ppo", "--envs", "CartPole-v1", "--seeds", "3-1"], ["runs backwards"]),
        (["--agents", "ppo", "--seeds", "0"], ["name the grid's envs"]),
    ]:
        result = CliRunner().invoke(app, ["sweep", *args])
        assert result.exit_code == 2, result.output
        text = " ".join(result.output.split())
        assert all(fragment in text for fragment in fragments), text
    assert not (tmp_path / "results.db").exists() and not (tmp_path / "sweep").exists()


def test_label_names_the_trained_configuration(tmp_path):
    plain = plan_trials(grid(tmp_path))
    labelled = plan_trials(grid(tmp_path, label="tuned"))
    assert [t.label for t in labelled] == ["tuned", "tuned", None, None]  # baselines keep their own name
    assert "--label tuned" in labelled[0].command
    assert labelled[0].key != plain[0].key and labelled[2].key == plain[2].key  # a named run is its own trial
    both = plan_trials(grid(tmp_path, agents=("ppo", "a2c"), seeds=(0,), set_args=("eval_every=0",), label="tuned"))
    assert [t.label for t in both] == ["tuned-ppo", "tuned-a2c"]


def test_baseline_trial_equals_rlsuite_evaluate(tmp_path):
    """A worker's records for the random baseline equal what `rlsuite evaluate --agent random` stores."""
    trial = plan_trials(grid(tmp_path, agents=("random",), seeds=(0,)))[0]
    result = run_trial(trial)
    assert result.status == "finished" and result.run.status == "baseline" and result.run.run_id == trial.run_id
    reference = evaluate_baseline("random", "CartPole-v1", episodes=5, db=tmp_path / "ref.db")
    assert [e.episode_return for e in result.episodes] == [e.episode_return for e in reference.episodes]
    assert result.evaluation.seeds == reference.evaluation.seeds
    assert not (tmp_path / "results.db").exists()  # workers never write the database


def test_env_missing_its_optional_dependency_is_a_failed_trial_and_the_grid_goes_on(tmp_path):
    """LunarLander-v3 needs Box2D (not installed in the test environment): its trials are recorded as failed
    with the install command, without running; CartPole-v1's run."""
    import importlib.util

    if importlib.util.find_spec("Box2D") is not None:
        pytest.skip("Box2D is installed here")
    spec = grid(tmp_path, agents=("random",), envs=("LunarLander-v3", "CartPole-v1"), seeds=(0,), workers=1)
    summary = run_sweep(spec, show_progress=False)
    assert (summary.finished, summary.failed) == (1, 1)
    (failed_id,) = summary.failures
    assert "LunarLander" in failed_id and 'pip install "gymnasium[box2d]"' in summary.failures[failed_id]
    with ResultsStore(spec.db, create=False) as store:
        runs = {r.run_id: r for r in store.runs()}
        assert runs[failed_id].status == "failed" and "Box2D" in runs[failed_id].error


# --- real workers -------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.device_count() > 7, reason="needs a machine without a GPU number 7")
def test_failing_trial_is_retried_then_recorded_and_reported(tmp_path):
    spec = grid(tmp_path, agents=("ppo", "random"), seeds=(0,), workers=1, retries=1, report=True,
                set_args=(*TINY, "device=cuda:7"))
    summary = run_sweep(spec, show_progress=False)
    assert (summary.finished, summary.failed, summary.skipped) == (1, 1, 0)
    (failed_id,) = summary.failures
    with ResultsStore(spec.db, create=False) as store:
        runs = {r.run_id: r for r in store.runs()}
        assert runs[failed_id].status == "failed" and "cuda" in runs[failed_id].error.lower()
        assert runs[failed_id].command.startswith("rlsuite train --agent ppo")
        assert [e.run_id for e in store.evaluations()] == [r for r in runs if r != failed_id]
    assert failed_id in (summary.report.parent / "report.md").read_text()
    # A re-run tries the failed trial again (it is not finished) and skips the finished one.
    again = run_sweep(dataclasses.replace(spec, retries=0, report=False), show_progress=False)
    assert (again.skipped, again.failed, again.finished) == (1, 1, 0)
    with ResultsStore(spec.db, create=False) as store:
        assert len(store.runs()) == 2


@pytest.fixture(scope="module")
def ray_local():
    """A real Ray instance on loopback with 2 CPUs, shared by this module's Ray tests."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def local_results(tmp_path_factory) -> dict[str, list[float]]:
    """The acceptance grid on the local process pool: run_id -> evaluation returns."""
    tmp = tmp_path_factory.mktemp("local")
    summary = run_sweep(grid(tmp, backend="local"), show_progress=False)
    assert (summary.finished, summary.failed, summary.skipped) == (4, 0, 0)
    return returns_by_run(tmp / "results.db")


@pytest.mark.slow
def test_local_and_ray_give_the_same_results(tmp_path, local_results, ray_local):
    summary = run_sweep(grid(tmp_path, backend="ray"), show_progress=False)
    assert (summary.finished, summary.failed) == (4, 0)
    ray_results = returns_by_run(tmp_path / "results.db")
    assert ray_results == local_results
    assert len(set(map(tuple, ray_results.values()))) == 4  # seeds and agents do differ
    # A second run of the same grid finds every trial done.
    again = run_sweep(grid(tmp_path, backend="ray"), show_progress=False)
    assert (again.skipped, again.finished) == (4, 0) and returns_by_run(tmp_path / "results.db") == ray_results


@pytest.mark.slow
def test_ray_worker_killed_mid_trial_is_retried(tmp_path, local_results, ray_local):
    spec = grid(tmp_path, backend="ray")
    runs = spec.out / "runs"
    killed: dict[str, int] = {}
    stop = threading.Event()

    def kill_first_training_worker() -> None:
        while not stop.is_set() and not killed:
            for manifest in runs.glob("ppo-*/manifest.json"):
                try:
                    data = json.loads(manifest.read_text())
                except (OSError, ValueError):
                    continue  # being written
                if data.get("status") == "running" and "sweep" in data:
                    os.kill(data["sweep"]["pid"], signal.SIGKILL)
                    killed[manifest.parent.name] = data["sweep"]["pid"]
                    return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_first_training_worker, daemon=True)
    killer.start()
    try:
        summary = run_sweep(spec, show_progress=False)
    finally:
        stop.set()
        killer.join()
    assert killed, "no trial was caught mid-training"
    ((run_id, pid),) = killed.items()
    assert (summary.finished, summary.failed) == (4, 0)
    retried = json.loads((runs / run_id / "manifest.json").read_text())
    assert retried["status"] == "finished" and retried["sweep"]["pid"] != pid  # ran again in a new worker
    assert returns_by_run(spec.db) == local_results  # nothing lost, nothing twice, the same numbers


@pytest.mark.slow
def test_driver_killed_mid_grid_then_rerun_skips_finished(tmp_path):
    args = ["sweep", "--agents", "ppo", "--envs", "CartPole-v1", "--seeds", "0-3", "--steps", "1024",
            *[a for s in TINY for a in ("--set", s)], "--episodes", "3", "--workers", "1", "--no-progress",
            "--no-report"]
    db = tmp_path / "results.db"
    env = dict(os.environ, COLUMNS="200")
    driver = subprocess.Popen([sys.executable, "-m", "rlsuite.cli", *args], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while _evaluated(db) < 1:
            assert driver.poll() is None, "the sweep ended before it could be killed"
            assert time.monotonic() < deadline, "no trial finished in time"
            time.sleep(0.05)
        driver.send_signal(signal.SIGKILL)
    finally:
        driver.kill()
        driver.wait()
    with ResultsStore(db, create=False) as store:
        before = {e.run_id: e.created_at for e in store.evaluations()}
    assert 1 <= len(before) < 4
    manifests = {p.parent.name: json.loads(p.read_text()) for p in (tmp_path / "sweep" / "runs").glob("*/manifest.json")}
    orphans = [m["sweep"]["pid"] for m in manifests.values() if m["status"] == "running"]
    for pid in orphans:  # the worker notices its driver is gone and exits
        _wait_gone(pid, timeout=15)

    result = rlsuite(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{len(before)} already done" in " ".join(result.stderr.split())
    with ResultsStore(db, create=False) as store:
        evaluations = store.evaluations()
        assert sorted(e.run_id for e in evaluations) == sorted(r.run_id for r in store.runs())
        assert len(evaluations) == len({e.run_id for e in evaluations}) == 4
        assert all(r.status == "finished" for r in store.runs())
        after = {e.run_id: e.created_at for e in evaluations}
    assert {k: after[k] for k in before} == before  # finished trials were skipped, not redone
    for run_id in before:  # ... nor retrained
        manifest = json.loads((tmp_path / "sweep" / "runs" / run_id / "manifest.json").read_text())
        assert manifest["sweep"]["pid"] == manifests[run_id]["sweep"]["pid"]


def _evaluated(db: Path) -> int:
    """Evaluations recorded so far by a driver running in another process (0 before it made the tables)."""
    if not db.exists():
        return 0
    try:
        with ResultsStore(db, create=False) as store:
            return len(store.evaluations())
    except StoreError:  # the driver is still creating the file
        return 0


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    pytest.fail(f"worker {pid} outlived its driver by {timeout} s")


@pytest.mark.slow
def test_killed_local_worker_resumes_its_trial_from_its_own_checkpoint(tmp_path, monkeypatch):
    """A trial's worker SIGKILLs itself right after its first checkpoint; the retry continues that run folder
    from that checkpoint (not from scratch), the trial is recorded once, with the numbers of a clean run."""
    from rlsuite.agents.checkpoint import KILL_AFTER_CHECKPOINT_ENV
    from rlsuite.agents.settings import TrainSettings

    # A `last` checkpoint after the first update where the settings offer it, else the final one.
    early = ("checkpoint_interval_updates=1",) if "checkpoint_interval_updates" in TrainSettings.__dataclass_fields__ else ()
    values = dict(agents=("ppo",), seeds=(0,), steps=2048, workers=1, retries=1, set_args=(*TINY, *early))
    clean = run_sweep(grid(tmp_path / "clean", **values), show_progress=False)
    assert (clean.finished, clean.failed) == (1, 0)

    marker = tmp_path / "killed.json"
    monkeypatch.setenv(KILL_AFTER_CHECKPOINT_ENV, str(marker))
    spec = grid(tmp_path / "killed", **values)
    summary = run_sweep(spec, show_progress=False)
    killed = json.loads(marker.read_text())  # written by the worker just before it killed itself
    assert (summary.finished, summary.failed) == (1, 0)
    (run_dir,) = (spec.out / "runs").iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert Path(killed["checkpoint"]).parent == run_dir / "checkpoints"
    assert manifest["status"] == "finished" and manifest["sweep"]["pid"] != killed["pid"]
    (resumed,) = manifest["resumed"]  # resumed once, from the checkpoint written before the kill
    assert resumed["step"] == killed["step"] > 0 and "is gone" in resumed["after_crash"]
    assert returns_by_run(spec.db) == returns_by_run(tmp_path / "clean" / "results.db")  # recorded once, same numbers


@pytest.mark.slow
def test_trial_whose_worker_died_on_its_last_attempt_is_recorded_crashed_and_a_rerun_resumes_it(tmp_path, monkeypatch):
    from rlsuite.agents.checkpoint import KILL_AFTER_CHECKPOINT_ENV

    spec = grid(tmp_path, agents=("ppo",), seeds=(0,), steps=2048, workers=1, retries=0)
    marker = tmp_path / "killed.json"
    monkeypatch.setenv(KILL_AFTER_CHECKPOINT_ENV, str(marker))
    first = run_sweep(spec, show_progress=False)
    (run_id,) = first.failures
    assert (first.finished, first.failed) == (0, 1) and "re-run the sweep to resume" in first.failures[run_id]
    with ResultsStore(spec.db, create=False) as store:
        assert [(r.run_id, r.status) for r in store.runs()] == [(run_id, "crashed")]
    again = run_sweep(spec, show_progress=False)
    assert (again.finished, again.failed) == (1, 0)
    manifest = json.loads((spec.out / "runs" / run_id / "manifest.json").read_text())
    assert [r["step"] for r in manifest["resumed"]] == [json.loads(marker.read_text())["step"]]
    with ResultsStore(spec.db, create=False) as store:
        assert [(r.run_id, r.status) for r in store.runs()] == [(run_id, "finished")]
        assert len(store.evaluations()) == 1
