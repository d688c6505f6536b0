"""The results database: round trips, atomicity, foreign files, concurrency."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from rlsuite.evaluation.records import EpisodeRecord, EvaluationRecord, RunRecord
from rlsuite.evaluation.store import SCHEMA_VERSION, ResultsStore, StoreError


def _run(run_id: str = "ppo-cartpole-s0", agent: str = "ppo", env_id: str = "CartPole-v1", **kw) -> RunRecord:
    fields = dict(
        run_id=run_id,
        agent=agent,
        env_id=env_id,
        seed=0,
        status="running",
        run_dir=f"runs/{run_id}",
        command=f"rlsuite train --agent {agent} --env {env_id} --seed 0",
        config={"lr": 3e-4, "layers": [64, 64], "preset": None},
        versions={"torch": "2.13", "gymnasium": "1.4"},
        git_commit="abc123",
    )
    fields.update(kw)
    return RunRecord(**fields)


def _evaluation(
    run: RunRecord, checkpoint: str = "best", step: int | None = 1000, n: int = 3
) -> EvaluationRecord:
    return EvaluationRecord(
        run_id=run.run_id,
        agent=run.agent,
        env_id=run.env_id,
        checkpoint=checkpoint,
        checkpoint_step=step,
        deterministic=True,
        seeds=tuple(range(100, 100 + n)),
        protocol={"max_frames": 108000, "wrappers": ["TimeLimit"]},
    )


def _episodes(n: int = 3, offset: float = 0.0) -> list[EpisodeRecord]:
    return [
        EpisodeRecord(
            index=i,
            seed=100 + i,
            episode_return=10.0 * i + offset + 0.25,
            length=50 + i,
            metrics={"success": i % 2},
        )
        for i in range(n)
    ]


def _count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


# ---------------------------------------------------------------------------------------------------
# Round trips


def test_round_trip(tmp_path: Path) -> None:
    db = tmp_path / "results.db"
    run = _run()
    baseline = RunRecord(
        run_id="baseline:random:CartPole-v1",
        agent="random",
        env_id="CartPole-v1",
        seed=None,
        status="baseline",
    )
    with ResultsStore(db) as store:
        assert store.schema_version == SCHEMA_VERSION
        store.record_run(run)
        store.record_run(baseline)
        eval_id = store.record_evaluation(_evaluation(run), _episodes())
        base_id = store.record_evaluation(
            replace(_evaluation(baseline, checkpoint="none", step=None), deterministic=False), _episodes(2)
        )
        assert base_id > eval_id

    # reopen: everything reads back as written
    with ResultsStore(db, create=False) as store:
        runs = store.runs()
        assert [r.run_id for r in runs] == [run.run_id, baseline.run_id]
        got = runs[0]
        assert replace(got, created_at="") == run
        assert got.created_at.endswith("+00:00") and "T" in got.created_at
        assert runs[1].seed is None and runs[1].config == {}

        evals = store.evaluations()
        assert [e.eval_id for e in evals] == [eval_id, base_id]
        e = evals[0]
        assert replace(e, eval_id=None, created_at="") == _evaluation(run)
        assert isinstance(e.seeds, tuple) and e.deterministic is True
        assert evals[1].checkpoint_step is None and evals[1].deterministic is False

        assert store.episodes(eval_id) == _episodes()
        assert store.episodes(base_id) == _episodes(2)
        assert store.episodes(9999) == []

        # filters
        assert [r.run_id for r in store.runs(agent="random")] == [baseline.run_id]
        assert store.runs(env_id="Pendulum-v1") == []
        assert [x.eval_id for x in store.evaluations(agent="ppo")] == [eval_id]
        assert [x.eval_id for x in store.evaluations(run_id=baseline.run_id)] == [base_id]
        assert [x.eval_id for x in store.evaluations(agent="ppo", env_id="CartPole-v1")] == [eval_id]

    # the summary columns reports may read directly
    with sqlite3.connect(db) as conn:
        n, mean_return = conn.execute(
            "SELECT n_episodes, mean_return FROM evaluations WHERE eval_id = ?", (eval_id,)
        ).fetchone()
    assert n == 3 and mean_return == pytest.approx((0.25 + 10.25 + 20.25) / 3)


def test_new_file_is_wal_with_schema_version(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "results.db"  # parent folder created on demand
    ResultsStore(db).close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    assert meta["schema_version"] == str(SCHEMA_VERSION) and meta["created_at"]


def test_set_video(tmp_path: Path) -> None:
    with ResultsStore(tmp_path / "r.db") as store:
        run = _run()
        store.record_run(run)
        eval_id = store.record_evaluation(_evaluation(run), _episodes())
        store.set_video(eval_id, "runs/x/videos/best.mp4")
        assert store.evaluations()[0].video_path == "runs/x/videos/best.mp4"
        with pytest.raises(StoreError, match="no evaluation with eval_id 12345"):
            store.set_video(12345, "v.mp4")


def test_upsert_run_status(tmp_path: Path) -> None:
    with ResultsStore(tmp_path / "r.db") as store:
        run = _run(created_at="2025-01-01T00:00:00.000+00:00")
        store.record_run(run)
        store.record_run(_run("other"))
        store.record_run(replace(run, status="failed", error="RuntimeError: boom", created_at=""))
        runs = store.runs()
        assert len(runs) == 2 and runs[0].run_id == run.run_id  # updated in place, order kept
        assert (runs[0].status, runs[0].error) == ("failed", "RuntimeError: boom")
        assert runs[0].created_at == "2025-01-01T00:00:00.000+00:00"  # first creation time kept
        # the same run id for a different agent is refused
        with pytest.raises(StoreError, match="already recorded for agent 'ppo'"):
            store.record_run(replace(run, agent="dqn"))
        assert store.runs()[0].agent == "ppo"


def test_latest_evaluations_picks_newest_per_run(tmp_path: Path) -> None:
    with ResultsStore(tmp_path / "r.db") as store:
        a, b = _run("a"), _run("b", seed=1)
        c = _run("c", agent="dqn")
        for r in (a, b, c):
            store.record_run(r)
        a1 = store.record_evaluation(_evaluation(a), _episodes())
        b1 = store.record_evaluation(_evaluation(b), _episodes())
        a2 = store.record_evaluation(_evaluation(a), _episodes(offset=5.0))  # a re-evaluated: replaces a1
        c1 = store.record_evaluation(_evaluation(c), _episodes())
        assert a1 < b1 < a2 < c1
        latest = store.latest_evaluations()
        assert [(e.run_id, e.eval_id) for e in latest] == [("b", b1), ("a", a2), ("c", c1)]
        assert [e.eval_id for e in store.latest_evaluations(agent="ppo")] == [b1, a2]
        assert [e.eval_id for e in store.latest_evaluations(agent="dqn", env_id="CartPole-v1")] == [c1]
        assert store.latest_evaluations(env_id="Acrobot-v1") == []
        assert len(store.evaluations()) == 4  # the history stays


def test_one_result_per_configuration_seed_and_protocol(tmp_path: Path) -> None:
    """Pooling is refused by construction: only runs of one configuration are its runs, and the same
    configuration and seed evaluated again replaces the older result (a second `rlsuite demo`)."""
    with ResultsStore(tmp_path / "r.db") as store:
        first = _run("ppo-s0-monday")
        again = _run("ppo-s0-tuesday")  # same settings and seed, another run folder
        other_seed = _run("ppo-s1", seed=1)
        other_lr = _run("ppo-s0-lr", config={**first.config, "lr": 1e-5})
        labelled = _run("ppo-s0-new-code", label="ppo-new")
        slower_device = _run("ppo-s0-gpu", config={**first.config, "device": "cuda", "torch_threads": 4})
        for r in (first, again, other_seed, other_lr, labelled, slower_device):
            store.record_run(r)
        store.record_evaluation(_evaluation(first), _episodes())
        last = store.record_evaluation(_evaluation(first, "last"), _episodes())  # another protocol: kept
        store.record_evaluation(_evaluation(again), _episodes())
        newest = store.record_evaluation(_evaluation(slower_device), _episodes())  # replaces both above
        kept = {store.record_evaluation(_evaluation(r), _episodes()) for r in (other_seed, other_lr, labelled)}
        latest = {e.eval_id for e in store.latest_evaluations()}
        assert latest == {last, newest, *kept}


def test_version_1_database_is_upgraded_and_stays_readable(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with ResultsStore(db) as store:
        run = _run()
        store.record_run(run)
        eval_id = store.record_evaluation(_evaluation(run), _episodes())
    with sqlite3.connect(db) as conn:  # turn it into what rlsuite with schema 1 wrote
        conn.execute("ALTER TABLE runs DROP COLUMN label")
        conn.execute("DROP TABLE tune_runs")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    with ResultsStore(db, create=False) as store:
        assert store.schema_version == SCHEMA_VERSION == 3
        assert store.tune_runs() == []
        assert store.runs()[0].label is None and store.runs()[0].config == run.config
        assert [e.eval_id for e in store.latest_evaluations()] == [eval_id]
        store.record_run(replace(run, label="named"))
        assert store.runs()[0].label == "named"


# ---------------------------------------------------------------------------------------------------
# Atomicity and validation


def test_crash_mid_evaluation_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "r.db"
    with ResultsStore(db) as store:
        run = _run()
        store.record_run(run)
        calls = []
        real_insert = ResultsStore._insert_evaluation_row

        def insert_then_note(self, *args, **kwargs):
            eval_id = real_insert(self, *args, **kwargs)
            calls.append(eval_id)  # the evaluation row is in, inside the transaction
            return eval_id

        def crash(self, *args, **kwargs):
            raise RuntimeError("killed mid-write")

        monkeypatch.setattr(ResultsStore, "_insert_evaluation_row", insert_then_note)
        monkeypatch.setattr(ResultsStore, "_insert_episode_rows", crash)
        with pytest.raises(RuntimeError, match="killed mid-write"):
            store.record_evaluation(_evaluation(run), _episodes())
        assert len(calls) == 1
        assert store.evaluations() == []
        monkeypatch.undo()
        # the store is still usable afterwards
        eval_id = store.record_evaluation(_evaluation(run), _episodes())
        assert len(store.episodes(eval_id)) == 3
    assert _count(db, "evaluations") == 1 and _count(db, "episodes") == 3


def test_duplicate_episode_index_rolls_back(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    with ResultsStore(db) as store:
        run = _run()
        store.record_run(run)
        eps = _episodes()
        with pytest.raises(StoreError, match="repeat"):
            store.record_evaluation(_evaluation(run), [*eps, eps[0]])
    assert _count(db, "evaluations") == 0 and _count(db, "episodes") == 0


def test_evaluation_needs_run_and_episodes(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    with ResultsStore(db) as store:
        run = _run()
        with pytest.raises(StoreError, match="record the run first"):
            store.record_evaluation(_evaluation(run), _episodes())
        store.record_run(run)
        with pytest.raises(StoreError, match="no episodes"):
            store.record_evaluation(_evaluation(run), [])
        bad = [replace(_episodes(1)[0], episode_return=float("nan"))]
        with pytest.raises(StoreError, match="NaN return"):
            store.record_evaluation(_evaluation(run, n=1), bad)
        bad = [replace(_episodes(1)[0], metrics={"outcome": "crashed"})]
        with pytest.raises(StoreError, match="not a number"):
            store.record_evaluation(_evaluation(run, n=1), bad)
    assert _count(db, "evaluations") == 0


def test_unserialisable_config_is_refused(tmp_path: Path) -> None:
    with ResultsStore(tmp_path / "r.db") as store:
        with pytest.raises(StoreError, match="config of run"):
            store.record_run(_run(config={"fn": object()}))
        assert store.runs() == []


def test_numpy_values_are_stored_as_plain_json(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    with ResultsStore(tmp_path / "r.db") as store:
        run = _run(config={"lr": np.float32(0.5), "sizes": np.array([1, 2])}, seed=np.int64(3))
        store.record_run(run)
        got = store.runs()[0]
        assert got.config == {"lr": 0.5, "sizes": [1, 2]} and got.seed == 3


# ---------------------------------------------------------------------------------------------------
# Opening: foreign files, versions, missing files


def test_text_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("my precious notes\n" * 50)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="is not an rlsuite results database.*pass --db"):
        ResultsStore(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_other_sqlite_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO customers (name) VALUES ('ada')")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"not an rlsuite results database \(it has tables \['customers'\]"):
        ResultsStore(path)
    assert path.read_bytes() == before
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # not switched to WAL
    conn.close()


def test_meta_without_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "meta.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="no schema_version"):
        ResultsStore(path)
    assert path.read_bytes() == before


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    ResultsStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.close()
    with pytest.raises(StoreError, match="upgrade rlsuite"):
        ResultsStore(path)


def test_missing_file_without_create(tmp_path: Path) -> None:
    path = tmp_path / "nope.db"
    with pytest.raises(StoreError, match=r"does not exist; create it by running `rlsuite evaluate"):
        ResultsStore(path, create=False)
    assert not path.exists()
    with pytest.raises(StoreError, match="is a directory"):
        ResultsStore(tmp_path)


def test_closed_store_says_so(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "r.db")
    store.close()
    store.close()  # twice is fine
    with pytest.raises(StoreError, match="closed"):
        store.runs()


# ---------------------------------------------------------------------------------------------------
# Concurrency


def _write_many(path: str, worker: int, n: int) -> None:
    """Run in a spawned process: open the shared file and record one run with n evaluations."""
    with ResultsStore(path) as store:
        run = _run(f"w{worker}")
        store.record_run(run)
        for k in range(n):
            store.record_evaluation(_evaluation(run, f"step_{k}", k), _episodes(2, offset=float(k)))
        store.record_run(replace(run, status="finished"))


def test_concurrent_writers_all_land(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"  # not created in advance: both processes race to create it
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(str(path), w, 20)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    with ResultsStore(path, create=False) as store:
        assert sorted(r.run_id for r in store.runs()) == ["w0", "w1"]
        assert {r.status for r in store.runs()} == {"finished"}
        evals = store.evaluations()
        assert len(evals) == 40
        for w in ("w0", "w1"):
            assert sorted(e.checkpoint_step for e in evals if e.run_id == w) == list(range(20))
        assert all(len(store.episodes(e.eval_id)) == 2 for e in evals)
