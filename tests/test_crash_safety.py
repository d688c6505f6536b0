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
from rlsuite.evaluation.records import EpisodeRecord, EvaluationRecord, RunRecord
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


def test_resume_takes_over_the_run_and_clears_half_written_files(tmp_path):
    run = _create(tmp_path)
    child = _sleeper()
    child.kill()
    child.wait()
    run.update_manifest(process=process_identity(child.pid))
    stale = run.checkpoints_dir / ".last.safetensors.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    RunFolder.open(run.path).mark_resumed(2048)
    manifest = run.manifest
    assert manifest["process"]["pid"] == os.getpid() and run.effective_status() == "running"
    assert manifest["resumed"][-1]["step"] == 2048 and "is gone" in manifest["resumed"][-1]["after_crash"]
    assert not stale.exists()
