"""`rlsuite evaluate`, `record` and `report` on a real trained run: reproducible, stored, and strict on bad input."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from test_cli import assert_user_error, rlsuite
from videoprobe import probe

from rlsuite.evaluation.store import ResultsStore


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    run_dir = root / "runs" / "ppo-short"
    result = rlsuite("train", "--steps", "3072", "--n-envs", "4", "--set", "eval_every=1024", "--set", "eval_episodes=3",
                     "--run-dir", str(run_dir), "--no-progress", cwd=root)
    assert result.returncode == 0, result.stderr
    return run_dir


def _evaluate_json(run_dir: Path, db: Path, *extra: str) -> dict:
    result = rlsuite("evaluate", str(run_dir), "--episodes", "5", "--db", str(db), "--json", *extra, cwd=db.parent)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_same_checkpoint_same_seeds_same_returns(trained_run, tmp_path):
    db = tmp_path / "results.db"
    first = _evaluate_json(trained_run, db, "--checkpoint", "last")
    second = _evaluate_json(trained_run, db, "--checkpoint", "last")
    assert first["checkpoint"] == "last" and first["checkpoint_step"] == 3072
    assert first["seeds"] == [1_000_000, 1_000_004]
    with ResultsStore(db, create=False) as store:
        (run,) = store.runs(agent="ppo")
        evaluations = store.evaluations(run_id=run.run_id)
        assert len(evaluations) == 2
        returns = [[e.episode_return for e in store.episodes(ev.eval_id)] for ev in evaluations]
    assert returns[0] == returns[1]
    assert first["mean"] == second["mean"] == pytest.approx(sum(returns[0]) / 5)
    assert run.command.startswith("rlsuite train") and run.status == "finished"


def test_best_is_selected_on_validation_seeds_and_measured_on_test_seeds(trained_run, tmp_path):
    validation = json.loads((trained_run / "manifest.json").read_text())["validation_seeds"]
    assert validation == [2_000_000, 2_000_001, 2_000_002]  # eval_episodes=3
    summary = _evaluate_json(trained_run, tmp_path / "results.db")
    assert summary["checkpoint"] == "best"
    test_seeds = range(summary["seeds"][0], summary["seeds"][1] + 1)
    assert not set(validation) & set(test_seeds)
    with ResultsStore(tmp_path / "results.db", create=False) as store:
        (evaluation,) = store.evaluations()
    assert evaluation.protocol["checkpoint_selection"].startswith("best: highest eval/mean_return during training "
                                                                  "on validation seeds 2000000-2000002")


def test_json_is_strict_and_says_null_for_no_finite_value(tmp_path):
    from rlsuite.evaluation.records import json_safe, strict_json

    assert json.loads(strict_json({"min_ttc": float("inf"), "x": [float("nan"), 1.5], "n": 2})) == {
        "min_ttc": None, "x": [None, 1.5], "n": 2}
    assert json_safe({"a": (float("-inf"),)}) == {"a": [None]}
    # Highway's min_ttc is +inf in an episode without a car ahead; the CLI prints strict JSON all the same.
    result = rlsuite("evaluate", "--agent", "highway-idm", "--env", "rlsuite/Highway-v0", "--episodes", "2",
                     "--db", str(tmp_path / "r.db"), "--json", "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    summary = json.loads(result.stdout, parse_constant=refuse)
    assert "min_ttc" in summary["env_metrics"]


def test_record_of_an_evaluated_run_shows_in_the_report(tmp_path):
    db = tmp_path / "results.db"
    evaluated = rlsuite("evaluate", "--agent", "random", "--env", "CartPole-v1", "--episodes", "5", "--db", str(db),
                        "--json", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    episode = json.loads(evaluated.stdout)
    video = tmp_path / "clips" / "random.mp4"
    recorded = rlsuite("record", "--agent", "random", "--env", "CartPole-v1", "--seed", "1000002", "--db", str(db),
                       "--out", str(video), "--max-steps", "500", "--no-progress", cwd=tmp_path)
    assert recorded.returncode == 0, recorded.stderr
    assert "attached to evaluation" in recorded.stdout
    with ResultsStore(db, create=False) as store:
        (ev,) = store.evaluations()
        (same,) = [e for e in store.episodes(ev.eval_id) if e.seed == 1_000_002]
    assert f"return {same.episode_return:.2f}, length {same.length}" in recorded.stdout  # record == evaluate
    report = rlsuite("report", "--db", str(db), "--out", str(tmp_path / "report"), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    markdown = (tmp_path / "report" / "report.md").read_text()
    caption = f"recorded with rlsuite record: seed 1000002, return {same.episode_return:.2f}, {same.length} steps"
    assert caption in markdown  # CartPole returns below 100 print with two decimals
    assert (tmp_path / "report" / "videos" / "random__CartPole-v1.mp4").read_bytes() == video.read_bytes()
    assert episode["eval_id"] == ev.eval_id


def test_baseline_record_and_report(trained_run, tmp_path):
    db = tmp_path / "results.db"
    _evaluate_json(trained_run, db, "--video-dir", str(tmp_path / "videos"))
    baseline = rlsuite("evaluate", "--agent", "random", "--env", "CartPole-v1", "--episodes", "5", "--db", str(db),
                       "--json", cwd=tmp_path)
    assert baseline.returncode == 0, baseline.stderr
    assert json.loads(baseline.stdout)["run_id"] == "baseline:random:CartPole-v1"

    video = tmp_path / "ppo.mp4"
    recorded = rlsuite("record", str(trained_run), "--out", str(video), "--gif", str(tmp_path / "ppo.gif"), cwd=tmp_path)
    assert recorded.returncode == 0, recorded.stderr
    stream = probe(video)
    assert (stream["codec_name"], stream["pix_fmt"]) == ("h264", "yuv420p")
    assert (tmp_path / "ppo.gif").read_bytes()[:4] == b"GIF8"

    report = rlsuite("report", "--db", str(db), "--out", str(tmp_path / "report"), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "ppo" in markdown and "random" in markdown
    assert list((tmp_path / "report" / "videos").glob("*.mp4"))


def test_bad_evaluation_input_writes_nothing(trained_run, tmp_path):
    # An env whose observations differ from the ones the agent was trained on.
    db = tmp_path / "results.db"
    assert_user_error(rlsuite("evaluate", str(trained_run), "--env", "Pendulum-v1", "--db", str(db), cwd=tmp_path),
                      "CartPole-v1")
    assert not db.exists()

    # A run folder without any checkpoint.
    empty_run = tmp_path / "runs" / "nocheckpoint"
    (empty_run / "checkpoints").mkdir(parents=True)
    manifest = json.loads((trained_run / "manifest.json").read_text())
    (empty_run / "manifest.json").write_text(json.dumps(manifest))
    assert_user_error(rlsuite("evaluate", str(empty_run), "--db", str(db), cwd=tmp_path), "checkpoint")
    assert not db.exists()

    # A database that is not ours, and an empty file pretending to be one in a report.
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    before = foreign.read_bytes()
    assert_user_error(rlsuite("evaluate", str(trained_run), "--db", str(foreign), cwd=tmp_path), "not an rlsuite")
    assert foreign.read_bytes() == before
    assert_user_error(rlsuite("report", "--db", str(tmp_path / "missing.db"), "--out", str(tmp_path / "r"),
                              cwd=tmp_path), "missing.db")
    assert not (tmp_path / "r").exists()
