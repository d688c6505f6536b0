"""Runs survive crashes: a dead run is shown as crashed, and a kill during a checkpoint write or a results
transaction leaves the previous state readable and complete.

The processes killed here are real subprocesses, killed with SIGKILL at the moment they are inside the
write (they announce it through a marker file), and at arbitrary moments of a write loop.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import torch

from rlsuite.agents.checkpoint import load_checkpoint, save_checkpoint
from rlsuite.agents.run import (
    STALE_AFTER_S,
    RunFolder,
    crash_reason,
    process_gone,
    process_identity,
)
from rlsuite.evaluation.records import RunRecord
from rlsuite.evaluation.store import ResultsStore

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL semantics")


def _create(tmp_path: Path, name: str = "r") -> RunFolder:
    return RunFolder.create(tmp_path, agent="ppo", env_id="CartPole-v1", seed=0, settings={"seed": 0},
                            command="rlsuite train --agent ppo --env CartPole-v1", device="cpu", name=name)


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def _ago(seconds: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(seconds=seconds)).isoformat(timespec="seconds")


# --- liveness ------------------------------------------------------------------------------------------------


def test_a_live_run_is_running_and_a_killed_one_is_crashed(tmp_path):
    run = _create(tmp_path)
    manifest = run.manifest
    assert manifest["process"]["pid"] == os.getpid() and manifest["process"]["host"] == socket.gethostname()
    assert run.effective_status() == "running"
    child = _sleeper()
    try:
        run.update_manifest(process=process_identity(child.pid))
        assert run.effective_status() == "running"
        assert "still training" in run.status_note()
        child.kill()  # not yet reaped: a zombie, which is as dead as a reaped process
        deadline = time.monotonic() + 10
        while run.effective_status() != "crashed" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert run.effective_status() == "crashed"
    finally:
        child.kill()
        child.wait()
    assert run.effective_status() == "crashed"
    note = run.status_note()
    assert f"process {child.pid} on {socket.gethostname()} is gone" in note
    assert f"rlsuite train --resume {run.path}" in note
    assert run.manifest["status"] == "running"  # effective status is computed, never stored


def test_a_reused_pid_is_not_taken_for_the_run(tmp_path):
    run = _create(tmp_path)
    identity = process_identity()
    assert process_gone(identity) is False
    if identity["start_ticks"] is None:
        pytest.skip("no /proc: start times are not available here")
    reused = {**identity, "start_ticks": str(int(identity["start_ticks"]) + 1)}
    assert process_gone(reused) is True
    run.update_manifest(process=reused)
    assert run.effective_status() == "crashed"


def test_another_machines_run_is_judged_by_its_heartbeat(tmp_path):
    elsewhere = {"pid": 1, "host": "another-machine.example", "boot_id": None, "start_ticks": None}
    fresh = {"status": "running", "process": elsewhere, "heartbeat": _ago(60)}
    stale = {**fresh, "heartbeat": _ago(STALE_AFTER_S + 60)}
    assert crash_reason(fresh) is None
    assert "no heartbeat for 0:31:00" in crash_reason(stale)
    assert crash_reason({**stale, "status": "finished"}) is None
    assert crash_reason({"status": "running"}) is None  # written before processes were recorded: unknown
    run = _create(tmp_path)
    run.update_manifest(process=elsewhere)  # not our process: our writes do not refresh its heartbeat
    run.update_manifest(heartbeat=_ago(STALE_AFTER_S + 5))
    run.update_manifest(note="evaluated elsewhere")
    assert run.effective_status() == "crashed"


def test_heartbeat_is_throttled_and_refreshed_by_the_training_process(tmp_path, monkeypatch):
    run = _create(tmp_path)
    run.update_manifest(heartbeat=_ago(100))  # our own process: the write itself refreshes it
    assert crash_reason({**run.manifest, "process": {**run.manifest["process"], "host": "x"}}) is None
    before = run.manifest["heartbeat"]
    writes: list[dict] = []
    real = RunFolder.update_manifest
    monkeypatch.setattr(RunFolder, "update_manifest", lambda self, **f: (writes.append(f), real(self, **f)))
    for _ in range(100):
        run.heartbeat()  # cheap: the loop may call it every update
    assert writes == []
    run.heartbeat(force=True)
    assert len(writes) == 1 and run.manifest["heartbeat"] >= before


def test_training_beats_after_every_update(tmp_path, monkeypatch):
    from rlsuite import train as training

    beats: list[int] = []
    real = RunFolder.heartbeat
    monkeypatch.setattr(RunFolder, "heartbeat", lambda self, force=False: (beats.append(1), real(self, force)))
    run, result = training.train("ppo", "CartPole-v1", cli_values={"total_steps": 1024, "n_envs": 4},
                                 set_args=("n_steps=64", "n_epochs=1", "eval_every=0", "tensorboard=false"),
                                 run_dir=tmp_path / "r", show_progress=False)
    assert result.status == "finished" and len(beats) == 1024 // (4 * 64)  # one per update


def test_resume_takes_over_the_run(tmp_path):
    run = _create(tmp_path)
    run.update_manifest(process=process_identity(_dead_pid()))
    RunFolder.open(run.path).mark_resumed(2048)
    manifest = run.manifest
    assert manifest["process"]["pid"] == os.getpid() and run.effective_status() == "running"
    assert manifest["resumed"][-1]["step"] == 2048 and "is gone" in manifest["resumed"][-1]["after_crash"]


# --- the commands show it ----------------------------------------------------------------------------------


def _dead_pid() -> int:
    child = _sleeper()
    child.kill()
    child.wait()
    return child.pid


def test_list_runs_shows_crashed_runs_with_the_resume_command(tmp_path):
    from test_cli import assert_user_error, rlsuite

    root = tmp_path / "runs"
    _create(root, "done").set_status("finished", final_step=4096)
    _create(root, "live")  # this test's own process trains it, and it is alive
    dead = _create(root, "dead")
    dead.update_manifest(process={**process_identity(), "pid": _dead_pid()})
    result = rlsuite("list", "runs", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[1]: line for line in result.stdout.splitlines() if line.split()[1:2] in (["done"], ["live"], ["dead"])}
    assert "crashed" in rows["dead"] and "rlsuite train --resume runs/dead" in rows["dead"]
    assert "running" in rows["live"] and "--resume" not in rows["live"]
    assert "finished" in rows["done"] and "4096" in rows["done"] and "rlsuite evaluate runs/done" in rows["done"]
    assert_user_error(rlsuite("list", "runs", "nowhere", cwd=tmp_path), "nowhere is not a folder of runs")
    assert_user_error(rlsuite("list", "envs", "runs", cwd=tmp_path), "takes no folder")
    live = rlsuite("train", "--resume", "runs/live", cwd=tmp_path)
    assert_user_error(live, f"still being trained by process {os.getpid()}")


@pytest.mark.slow
def test_a_killed_training_is_crashed_everywhere_and_its_checkpoint_still_evaluates(tmp_path):
    """`rlsuite train` SIGKILLed (by the crash-test hook) right after its first checkpoint: listed as crashed,
    evaluated with a note, recorded and reported as crashed, each time with the command that resumes it."""
    from test_cli import rlsuite

    from rlsuite.agents.checkpoint import KILL_AFTER_CHECKPOINT_ENV

    env = dict(os.environ, COLUMNS="200", **{KILL_AFTER_CHECKPOINT_ENV: str(tmp_path / "killed.json")})
    train = subprocess.run([sys.executable, "-m", "rlsuite.cli", "train", "--agent", "ppo", "--env", "CartPole-v1",
                            "--steps", "8192", "--set", "checkpoint_every=1024", "--set", "eval_every=0", "--set",
                            "tensorboard=false", "--run-dir", "runs/r", "--no-progress"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert train.returncode == -signal.SIGKILL, train.stderr
    killed = json.loads((tmp_path / "killed.json").read_text())
    assert json.loads((tmp_path / "runs/r/manifest.json").read_text())["status"] == "running"  # as the kill left it

    listed = rlsuite("list", "runs", cwd=tmp_path)
    assert "crashed" in listed.stdout and "rlsuite train --resume runs/r" in listed.stdout
    assert str(killed["step"]) in listed.stdout  # the step a resume would continue from

    evaluated = rlsuite("evaluate", "runs/r", "--checkpoint", "latest", "--episodes", "2", "--no-progress", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    note = " ".join(evaluated.stderr.split())
    assert "crashed" in note and "is gone" in note and "rlsuite train --resume runs/r" in note
    with ResultsStore(tmp_path / "results.db", create=False) as store:
        (run,) = store.runs()
        (evaluation,) = store.evaluations()
    assert run.status == "crashed" and evaluation.checkpoint_step == killed["step"]

    report = rlsuite("report", "--out", "report", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "report" / "report.md").read_text()
    assert "crashed (its process died before it finished" in text and "rlsuite train --resume" in text


# --- a kill during a write leaves the previous state -------------------------------------------------------

_CHECKPOINT_WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    import torch
    from rlsuite.agents.checkpoint import save_checkpoint
    path, log = Path(sys.argv[1]), Path(sys.argv[2])
    version = int(sys.argv[3])
    while True:
        version += 1
        save_checkpoint(path, {"w": torch.full((2_000_000,), float(version))}, {"step": version})  # 8 MB
        with log.open("a") as f:
            f.write(f"{version}\\n")
""")


def _wait_for(predicate, child: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert child.poll() is None, f"the writer exited before {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.001)


def _logged(log: Path) -> list[int]:
    return [int(line) for line in log.read_text().split()] if log.exists() else []


@pytest.mark.slow
def test_a_kill_during_a_checkpoint_write_leaves_the_previous_checkpoint(tmp_path):
    run = _create(tmp_path)
    path, log = run.checkpoint_path("last"), tmp_path / "written.log"
    save_checkpoint(path, {"w": torch.full((2_000_000,), 0.0)}, {"step": 0})
    caught_mid_write = 0
    for attempt, mid_write in enumerate((True, True, False)):
        child = subprocess.Popen([sys.executable, "-c", _CHECKPOINT_WRITER, str(path), str(log), str(attempt * 1000)])
        try:
            _wait_for(lambda: len(_logged(log)) >= 1, child, "first complete checkpoint")
            if mid_write:  # the temp file exists: the writer is between its first byte and the rename
                _wait_for(lambda: any(p.name.endswith(".tmp") for p in run.checkpoints_dir.iterdir()), child,
                          "write in progress")
            else:
                time.sleep(0.05 + 0.1 * attempt)  # an arbitrary moment
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        temps = [p for p in run.checkpoints_dir.iterdir() if p.name.endswith(".tmp")]
        caught_mid_write += mid_write and bool(temps)
        tensors, meta = load_checkpoint(path)  # complete: it loads, and its body matches its header
        assert torch.equal(tensors["w"], torch.full((2_000_000,), float(meta["step"])))
        assert meta["step"] in (max(_logged(log)), max(_logged(log)) + 1)  # the newest complete one
        assert list(run.list_checkpoints()) == ["last"]  # a half-written temp file is never offered
        log.unlink()
    assert caught_mid_write >= 1, "no kill landed inside a write"


_STORE_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from rlsuite.evaluation.records import EpisodeRecord, EvaluationRecord, RunRecord
    from rlsuite.evaluation.store import ResultsStore
    db, log, hang = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "hang"
    store = ResultsStore(db)
    store._db.execute("PRAGMA cache_size = 5")  # spill uncommitted pages into the WAL before COMMIT
    if hang:  # stop inside the transaction, after its rows are written, and say so
        insert = ResultsStore._insert_episode_rows
        def insert_then_hang(self, conn, eval_id, rows):
            insert(self, conn, eval_id, rows)
            (log.parent / "in_transaction").write_text(str(eval_id))
            time.sleep(120)
        ResultsStore._insert_episode_rows = insert_then_hang
    run = RunRecord(run_id="r", agent="ppo", env_id="CartPole-v1", seed=0, status="finished")
    n = 0
    while True:
        n += 1
        metrics = {f"m{j}": float(j) for j in range(4)}
        episodes = [EpisodeRecord(index=i, seed=i, episode_return=float(n), length=i, metrics=metrics)
                    for i in range(2000)]
        evaluation = EvaluationRecord(run_id="r", agent="ppo", env_id="CartPole-v1", checkpoint="best",
                                      checkpoint_step=n, deterministic=True, seeds=tuple(range(2000)))
        store.record_run_with_evaluation(run, evaluation, episodes)
        with log.open("a") as f:
            f.write(f"{n}\\n")
""")


def _store_state(db: Path) -> list[tuple[int, int, int, float]]:
    """(checkpoint_step, n_episodes, episodes present, mean of their returns) per evaluation, after checking
    that the file is intact and opens as a results store."""
    with ResultsStore(db, create=False) as store:
        assert store.schema_version >= 1
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*) FROM episodes WHERE eval_id NOT IN "
                            "(SELECT eval_id FROM evaluations)").fetchone()[0] == 0  # no orphaned episode
        return conn.execute('SELECT e.checkpoint_step, e.n_episodes, COUNT(p.idx), AVG(p."return") FROM evaluations e '
                            "LEFT JOIN episodes p USING (eval_id) GROUP BY e.eval_id ORDER BY e.eval_id").fetchall()


@pytest.mark.parametrize("when", ["inside a transaction", "at an arbitrary moment"])
def test_a_kill_during_a_results_transaction_leaves_the_committed_rows(tmp_path, when):
    db, log = tmp_path / "results.db", tmp_path / "committed.log"
    hang = when == "inside a transaction"
    child = subprocess.Popen([sys.executable, "-c", _STORE_WRITER, str(db), str(log), "hang" if hang else "loop"])
    try:
        if hang:
            _wait_for(lambda: (tmp_path / "in_transaction").exists(), child, "open transaction")
            assert Path(f"{db}-wal").stat().st_size > 0  # its uncommitted rows are on disk, in the WAL
        else:
            _wait_for(lambda: len(_logged(log)) >= 3, child, "three commits")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    committed = _logged(log)
    state = _store_state(db)
    assert [s for s, *_ in state] in (committed, [*committed, len(committed) + 1])  # logged, or committed unlogged
    assert all(n == present == 2000 and mean == step for step, n, present, mean in state)  # whole evaluations only
    if hang:
        assert state == []  # the transaction that was killed left nothing
    with ResultsStore(db) as store:  # and the store takes new results
        store.record_run(RunRecord(run_id="after", agent="ppo", env_id="CartPole-v1", seed=0, status="finished"))
        assert [r.run_id for r in store.runs()][-1] == "after"
