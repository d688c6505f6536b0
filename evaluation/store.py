"""The results database: every run, evaluation and episode, in one SQLite file.

The harness writes here and reports read from here, so a report can always be rebuilt from the
database alone. SQLite in WAL mode with a busy timeout lets parallel sweep workers write to the same
file: writers queue for the lock instead of failing. Each evaluation lands with all its episodes in one
transaction or not at all, so a crash never leaves a half-recorded evaluation for a report to average.

A file that is not ours (another SQLite database, a text file) is never modified: the store checks
what it opened before writing anything.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from rlsuite.evaluation.identity import evaluation_key
from rlsuite.evaluation.records import EpisodeRecord, EvaluationRecord, RunRecord, TuneRunRecord

__all__ = ["DEFAULT_DB", "SCHEMA_VERSION", "ResultsStore", "StoreError"]

SCHEMA_VERSION = 3
"""Bumped whenever the tables change; older rlsuite refuses newer files rather than misread them, and
this one upgrades older files in place (version 2 added runs.label, version 3 the tune_runs table)."""

DEFAULT_DB = Path("results.db")
"""Where `rlsuite evaluate` and `rlsuite report` look when no --db is given."""

_BUSY_TIMEOUT_MS = 60_000
"""How long a writer waits for another process's transaction before giving up."""

_SQLITE_MAGIC = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    env_id TEXT NOT NULL,
    seed INTEGER,
    status TEXT NOT NULL,
    run_dir TEXT,
    command TEXT,
    config_json TEXT NOT NULL,
    versions_json TEXT NOT NULL,
    git_commit TEXT,
    error TEXT,
    created_at TEXT NOT NULL,
    label TEXT
);
CREATE INDEX runs_agent_env ON runs (agent, env_id);
CREATE TABLE evaluations (
    eval_id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    agent TEXT NOT NULL,
    env_id TEXT NOT NULL,
    checkpoint TEXT NOT NULL,
    checkpoint_step INTEGER,
    deterministic INTEGER NOT NULL,
    seeds_json TEXT NOT NULL,
    protocol_json TEXT NOT NULL,
    video_path TEXT,
    n_episodes INTEGER NOT NULL,
    mean_return REAL NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX evaluations_agent_env ON evaluations (agent, env_id);
CREATE INDEX evaluations_run ON evaluations (run_id);
CREATE TABLE episodes (
    eval_id INTEGER NOT NULL REFERENCES evaluations (eval_id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    "return" REAL NOT NULL,
    length INTEGER NOT NULL,
    metrics_json TEXT NOT NULL,
    PRIMARY KEY (eval_id, idx)
);
CREATE TABLE tune_runs (
    study TEXT NOT NULL,
    stage TEXT NOT NULL,
    candidate TEXT NOT NULL,
    trial INTEGER,
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    params_json TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (study, stage, candidate, run_id)
);
"""

_TUNE_RUNS_TABLE = _SCHEMA[_SCHEMA.index("CREATE TABLE tune_runs"):]
_TUNE_STAGES = ("search", "confirm")


class StoreError(ValueError):
    """The results database cannot be opened or a record cannot be stored; the message says what to do."""


def _now() -> str:
    """ISO-8601 UTC timestamp, e.g. 2025-01-31T12:00:00.123+00:00."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _json_default(obj: Any) -> Any:
    """Let NumPy scalars/arrays and paths through json.dumps; anything else is a caller bug."""
    if hasattr(obj, "tolist"):  # numpy scalar or array
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def _dumps(obj: Any, what: str) -> str:
    try:
        return json.dumps(obj, sort_keys=True, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"cannot store {what}: {exc}; use plain numbers, strings, lists and dicts") from exc


class ResultsStore:
    """Opens (or creates) an rlsuite results database.

    `create=False` refuses to create a missing file (reports must not silently invent an empty one).
    Use as a context manager or call `close()`.
    """

    def __init__(self, path: Path | str, *, create: bool = True) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a directory; pass --db with a file name such as results.db")
        exists = self.path.exists()
        if not exists and not create:
            raise StoreError(
                f"{self.path} does not exist; create it by running `rlsuite evaluate ... --db {self.path}`, "
                "or pass --db with the path of an existing results database"
            )
        if exists:
            self._check_header()
        elif not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(str(self.path), timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path}: {exc}; check the path and its permissions") from exc
        self._conn = conn
        try:
            self._open(create)
        except BaseException:
            self.close()
            raise

    # -- opening ---------------------------------------------------------------------------------

    def _check_header(self) -> None:
        """Reject non-SQLite files before SQLite touches them (an empty file is a new database)."""
        try:
            with open(self.path, "rb") as f:
                head = f.read(len(_SQLITE_MAGIC))
        except OSError as exc:
            raise StoreError(f"cannot read {self.path}: {exc}; check the path and its permissions") from exc
        if head and head != _SQLITE_MAGIC:
            raise self._foreign("not a SQLite file")

    def _foreign(self, why: str) -> StoreError:
        return StoreError(
            f"{self.path} is not an rlsuite results database ({why}); pass --db with a new file name "
            "or an rlsuite database"
        )

    def _tables(self) -> set[str]:
        rows = self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return {r[0] for r in rows if not r[0].startswith("sqlite_")}

    def _open(self, create: bool) -> None:
        conn = self._db
        # Connection settings only; nothing here writes to the file.
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        try:
            tables = self._tables()
        except sqlite3.DatabaseError as exc:  # "file is not a database", encrypted, corrupt
            if _is_busy(exc):
                raise StoreError(
                    f"{self.path} stayed locked by another process for {_BUSY_TIMEOUT_MS // 1000} s; retry "
                    "when it is done"
                ) from exc
            raise self._foreign(str(exc)) from exc
        if tables:
            version = self._check_ours(tables)  # raises before anything is written to a foreign file
            self._enable_wal()  # no-op when already WAL
            if version < SCHEMA_VERSION:
                self._migrate()
            return
        if not create:
            raise StoreError(
                f"{self.path} is an empty database with no rlsuite results; record some with "
                f"`rlsuite evaluate ... --db {self.path}`"
            )
        # An empty database (new file, or one another process is initialising right now): WAL must be
        # set outside a transaction; the schema goes in under the write lock, re-checked inside it so two
        # processes creating the same file do not both create tables.
        self._enable_wal()
        with self._transaction():
            tables = self._tables()
            if tables:
                self._check_ours(tables)
                return
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [("schema_version", str(SCHEMA_VERSION)), ("created_at", _now())],
            )

    def _enable_wal(self) -> None:
        """Switch to write-ahead logging so readers never block writers.

        SQLite answers "database is locked" at once, without waiting for the busy timeout, when another
        process holds a lock during the switch (two workers creating the same file), so retry here.
        """
        deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
        delay = 0.005
        while True:
            try:
                mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise StoreError(
                        f"cannot open {self.path}: {exc}; is another program holding it?"
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
        if str(mode).lower() != "wal":
            raise StoreError(
                f"{self.path} cannot use write-ahead logging (journal mode stays {mode!r}); put the database "
                "on a local disk (network file systems do not support it)"
            )

    def _migrate(self) -> None:
        """Upgrade an older rlsuite database in place, under the write lock (re-checked inside it)."""
        with self._transaction() as conn:
            version = int(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
            if version < 2:
                conn.execute("ALTER TABLE runs ADD COLUMN label TEXT")
            if version < 3:
                conn.execute(_TUNE_RUNS_TABLE)
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))

    def _check_ours(self, tables: set[str]) -> int:
        """The schema version, or raise unless this is an rlsuite database whose schema this version understands."""
        if "meta" not in tables:
            raise self._foreign(f"it has tables {sorted(tables)} but no rlsuite meta table")
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise self._foreign(f"its meta table is unreadable: {exc}") from exc
        if row is None:
            raise self._foreign("its meta table has no schema_version")
        try:
            version = int(row[0])
        except (TypeError, ValueError):
            raise self._foreign(f"schema_version is {row[0]!r}, not an integer") from None
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} uses results schema version {version}, newer than this rlsuite understands "
                f"({SCHEMA_VERSION}); upgrade rlsuite (pip install -U rlsuite) to read it"
            )
        if version < 1:
            raise self._foreign(f"schema_version {version} is not a valid rlsuite version")
        return version

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"the results store {self.path} is closed; open a new ResultsStore")
        return self._conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT: take the write lock up front (waiting up to the busy timeout) so
        the transaction cannot fail half-way on a lock upgrade; roll back on any exception."""
        conn = self._db
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may already have rolled back (e.g. disk full)
                conn.execute("ROLLBACK")
            raise

    # -- lifecycle ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        """The schema version recorded in the file."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0])

    # -- writing -----------------------------------------------------------------------------------

    def record_run(self, run: RunRecord) -> None:
        """Insert a run, or update it when its run_id is already recorded (status, error, config...).

        The first `created_at` is kept. A run_id recorded for another agent or env is refused: run ids
        name one run folder, and evaluations already filed under it would otherwise change meaning.
        """
        row = self._run_row(run)  # serialised before the transaction: a bad config never takes the lock
        with self._transaction() as conn:
            self._upsert_run(conn, run, row)

    def record_run_with_evaluation(
        self, run: RunRecord, evaluation: EvaluationRecord, episodes: Sequence[EpisodeRecord]
    ) -> int:
        """Record a run and one evaluation of it (with its episodes) in one transaction; return the eval_id.

        Sweeps use this so that a driver killed at any moment leaves either the whole trial or nothing:
        never a finished run without its evaluation, which a re-run could not tell from a missing one.
        """
        if evaluation.run_id != run.run_id:
            raise StoreError(
                f"evaluation of run {evaluation.run_id!r} cannot be recorded with run {run.run_id!r}; "
                "pass the run that was evaluated"
            )
        row = self._run_row(run)
        episode_rows, mean_return = self._evaluation_rows(evaluation, episodes)
        with self._transaction() as conn:
            self._upsert_run(conn, run, row)
            eval_id = self._insert_evaluation_row(conn, evaluation, len(episode_rows), mean_return)
            self._insert_episode_rows(conn, eval_id, episode_rows)
        return eval_id

    def record_tune_run(
        self,
        run: RunRecord,
        evaluations: Sequence[tuple[EvaluationRecord, Sequence[EpisodeRecord]]],
        tune: TuneRunRecord,
    ) -> list[int]:
        """Record a tuning study's run, its evaluations and which study and configuration it serves, in one
        transaction; return the eval_ids. All or nothing, so a resumed study can trust what it finds."""
        for evaluation, _ in evaluations:
            if evaluation.run_id != run.run_id:
                raise StoreError(
                    f"evaluation of run {evaluation.run_id!r} cannot be recorded with run {run.run_id!r}; "
                    "pass the run that was evaluated"
                )
        if tune.run_id != run.run_id:
            raise StoreError(f"tuning record of run {tune.run_id!r} cannot be recorded with run {run.run_id!r}")
        row = self._run_row(run)
        rows = [self._evaluation_rows(evaluation, episodes) for evaluation, episodes in evaluations]
        tune_row = self._tune_row(tune)
        eval_ids = []
        with self._transaction() as conn:
            self._upsert_run(conn, run, row)
            for (evaluation, _), (episode_rows, mean_return) in zip(evaluations, rows, strict=True):
                eval_id = self._insert_evaluation_row(conn, evaluation, len(episode_rows), mean_return)
                self._insert_episode_rows(conn, eval_id, episode_rows)
                eval_ids.append(eval_id)
            self._insert_tune_row(conn, tune_row)
        return eval_ids

    def link_tune_run(self, tune: TuneRunRecord) -> None:
        """Record that a study uses a run already in the database (trained for another trial or study);
        recording the same link again changes nothing."""
        tune_row = self._tune_row(tune)
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (tune.run_id,)).fetchone() is None:
                raise StoreError(
                    f"run {tune.run_id!r} is not in {self.path}; record it with ResultsStore.record_tune_run"
                )
            self._insert_tune_row(conn, tune_row)

    def _tune_row(self, tune: TuneRunRecord) -> tuple[Any, ...]:
        if tune.stage not in _TUNE_STAGES:
            raise StoreError(f"tuning stage {tune.stage!r} is not one of {', '.join(_TUNE_STAGES)}")
        trial = None if tune.trial is None else int(tune.trial)
        params = _dumps(tune.params, f"the params of {tune.candidate!r} in study {tune.study!r}")
        return (tune.study, tune.stage, tune.candidate, trial, tune.run_id, params, tune.created_at or _now())

    def _insert_tune_row(self, conn: sqlite3.Connection, row: tuple[Any, ...]) -> None:
        conn.execute(
            """INSERT INTO tune_runs (study, stage, candidate, trial, run_id, params_json, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING""",
            row,
        )

    def _run_row(self, run: RunRecord) -> tuple[Any, ...]:
        return (
            run.run_id,
            run.agent,
            run.env_id,
            None if run.seed is None else int(run.seed),
            run.status,
            run.run_dir,
            run.command,
            _dumps(run.config, f"the config of run {run.run_id!r}"),
            _dumps(run.versions, f"the versions of run {run.run_id!r}"),
            run.git_commit,
            run.error,
            run.created_at or _now(),
            run.label or None,
        )

    def _upsert_run(self, conn: sqlite3.Connection, run: RunRecord, row: tuple[Any, ...]) -> None:
        old = conn.execute("SELECT agent, env_id FROM runs WHERE run_id = ?", (run.run_id,)).fetchone()
        if old is not None and tuple(old) != (run.agent, run.env_id):
            raise StoreError(
                f"run {run.run_id!r} is already recorded for agent {old[0]!r} on {old[1]!r}, not "
                f"{run.agent!r} on {run.env_id!r}; use a new run folder (run id) for a different run"
            )
        conn.execute(
            """INSERT INTO runs (run_id, agent, env_id, seed, status, run_dir, command, config_json,
                                 versions_json, git_commit, error, created_at, label)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (run_id) DO UPDATE SET
                   seed = excluded.seed, status = excluded.status, run_dir = excluded.run_dir,
                   command = excluded.command, config_json = excluded.config_json,
                   versions_json = excluded.versions_json, git_commit = excluded.git_commit,
                   error = excluded.error, label = excluded.label""",
            row,
        )

    def record_evaluation(self, evaluation: EvaluationRecord, episodes: Sequence[EpisodeRecord]) -> int:
        """Store one evaluation with all its episodes atomically and return its eval_id.

        The evaluation's run must be recorded first (`record_run`). `eval_id` and `created_at` on the
        record are ignored and assigned here (created_at is kept if given).
        """
        episode_rows, mean_return = self._evaluation_rows(evaluation, episodes)
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (evaluation.run_id,)).fetchone() is None:
                raise StoreError(
                    f"run {evaluation.run_id!r} is not in {self.path}; record the run first "
                    "(ResultsStore.record_run) and then its evaluations"
                )
            eval_id = self._insert_evaluation_row(conn, evaluation, len(episode_rows), mean_return)
            self._insert_episode_rows(conn, eval_id, episode_rows)
        return eval_id

    def _evaluation_rows(
        self, evaluation: EvaluationRecord, episodes: Sequence[EpisodeRecord]
    ) -> tuple[list[tuple[int, int, float, int, str]], float]:
        """Checked episode rows and their mean return, ready to insert."""
        if not episodes:
            raise StoreError(
                f"evaluation of run {evaluation.run_id!r} has no episodes; evaluate at least one episode"
            )
        episode_rows = [self._episode_row(ep) for ep in episodes]
        indexes = [r[0] for r in episode_rows]
        if len(set(indexes)) != len(indexes):
            raise StoreError(
                f"episode indexes of the evaluation of run {evaluation.run_id!r} repeat ({indexes}); "
                "number the episodes 0..n-1"
            )
        mean_return = math.fsum(r[2] for r in episode_rows) / len(episode_rows)
        return episode_rows, mean_return

    def _episode_row(self, ep: EpisodeRecord) -> tuple[int, int, float, int, str]:
        ret = float(ep.episode_return)
        if math.isnan(ret):
            raise StoreError(
                f"episode {ep.index} has a NaN return; check the env's rewards before storing results"
            )
        try:
            metrics = {str(k): float(v) for k, v in ep.metrics.items()}
        except (TypeError, ValueError) as exc:
            raise StoreError(
                f"episode {ep.index} has a metric that is not a number ({exc}); metrics are numeric values "
                "from the env's final info (success, collisions, ...)"
            ) from exc
        return (
            int(ep.index),
            int(ep.seed),
            ret,
            int(ep.length),
            _dumps(metrics, f"episode {ep.index} metrics"),
        )

    def _insert_evaluation_row(
        self, conn: sqlite3.Connection, ev: EvaluationRecord, n_episodes: int, mean_return: float
    ) -> int:
        cur = conn.execute(
            """INSERT INTO evaluations (run_id, agent, env_id, checkpoint, checkpoint_step, deterministic,
                                        seeds_json, protocol_json, video_path, n_episodes, mean_return,
                                        created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                ev.run_id,
                ev.agent,
                ev.env_id,
                ev.checkpoint,
                None if ev.checkpoint_step is None else int(ev.checkpoint_step),
                int(bool(ev.deterministic)),
                _dumps([int(s) for s in ev.seeds], "evaluation seeds"),
                _dumps(ev.protocol, "the evaluation protocol"),
                ev.video_path,
                n_episodes,
                mean_return,
                ev.created_at or _now(),
            ),
        )
        assert cur.lastrowid is not None
        return int(cur.lastrowid)

    def _insert_episode_rows(
        self, conn: sqlite3.Connection, eval_id: int, rows: list[tuple[int, int, float, int, str]]
    ) -> None:
        conn.executemany(
            'INSERT INTO episodes (eval_id, idx, seed, "return", length, metrics_json) VALUES (?, ?, ?, ?, ?, ?)',
            [(eval_id, *r) for r in rows],
        )

    def set_video(self, eval_id: int, video_path: str) -> None:
        """Attach the recorded video (median-return episode) to an evaluation."""
        with self._transaction() as conn:
            cur = conn.execute(
                "UPDATE evaluations SET video_path = ? WHERE eval_id = ?", (str(video_path), int(eval_id))
            )
            if cur.rowcount == 0:
                raise StoreError(
                    f"no evaluation with eval_id {eval_id} in {self.path}; list them with "
                    "ResultsStore.evaluations()"
                )

    # -- reading -----------------------------------------------------------------------------------

    def runs(self, agent: str | None = None, env_id: str | None = None) -> list[RunRecord]:
        """Recorded runs, optionally filtered, in the order they were first recorded."""
        where, args = _filters(agent=agent, env_id=env_id)
        rows = self._db.execute(
            f"""SELECT run_id, agent, env_id, seed, status, run_dir, command, config_json, versions_json,
                       git_commit, error, created_at, label FROM runs {where} ORDER BY rowid""",
            args,
        ).fetchall()
        return [
            RunRecord(
                run_id=r[0],
                agent=r[1],
                env_id=r[2],
                seed=r[3],
                status=r[4],
                run_dir=r[5],
                command=r[6],
                config=json.loads(r[7]),
                versions=json.loads(r[8]),
                git_commit=r[9],
                error=r[10],
                created_at=r[11],
                label=r[12],
            )
            for r in rows
        ]

    def evaluations(
        self, agent: str | None = None, env_id: str | None = None, run_id: str | None = None
    ) -> list[EvaluationRecord]:
        """All recorded evaluations, optionally filtered, ordered by eval_id (oldest first)."""
        where, args = _filters(agent=agent, env_id=env_id, run_id=run_id)
        return self._select_evaluations(where, args)

    def latest_evaluations(
        self, agent: str | None = None, env_id: str | None = None
    ) -> list[EvaluationRecord]:
        """The newest evaluation of each configuration, training seed, env variant and protocol, by eval_id.

        Reports use this so that evaluating the same thing again (the same run re-evaluated, or a second
        run of the same configuration and seed, e.g. `rlsuite demo` twice) replaces the earlier result
        instead of counting it twice, while different settings, env kwargs (a held-out profile) or
        protocols (checkpoint, episodes, actions) stay separate results (evaluation/identity.py).
        """
        runs = {run.run_id: run for run in self.runs()}
        newest: dict[str, EvaluationRecord] = {}
        for ev in self.evaluations(agent=agent, env_id=env_id):  # oldest first: later ones replace
            newest[evaluation_key(runs.get(ev.run_id), ev)] = ev
        return sorted(newest.values(), key=lambda ev: ev.eval_id or 0)

    def tune_runs(self, study: str | None = None) -> list[TuneRunRecord]:
        """Runs that tuning studies trained or reused, with their study, stage and configuration, in the
        order they were recorded."""
        where, args = _filters(study=study)
        rows = self._db.execute(
            f"""SELECT study, stage, candidate, trial, run_id, params_json, created_at FROM tune_runs {where}
                ORDER BY rowid""",
            args,
        ).fetchall()
        return [
            TuneRunRecord(study=r[0], stage=r[1], candidate=r[2], trial=r[3], run_id=r[4],
                          params=json.loads(r[5]), created_at=r[6])
            for r in rows
        ]

    def episodes(self, eval_id: int) -> list[EpisodeRecord]:
        """The episodes of one evaluation, ordered by index."""
        rows = self._db.execute(
            'SELECT idx, seed, "return", length, metrics_json FROM episodes WHERE eval_id = ? ORDER BY idx',
            (int(eval_id),),
        ).fetchall()
        return [
            EpisodeRecord(index=r[0], seed=r[1], episode_return=r[2], length=r[3], metrics=json.loads(r[4]))
            for r in rows
        ]

    def _select_evaluations(self, where: str, args: list[Any]) -> list[EvaluationRecord]:
        rows = self._db.execute(
            f"""SELECT eval_id, run_id, agent, env_id, checkpoint, checkpoint_step, deterministic, seeds_json,
                       protocol_json, video_path, created_at FROM evaluations {where} ORDER BY eval_id""",
            args,
        ).fetchall()
        return [
            EvaluationRecord(
                run_id=r[1],
                agent=r[2],
                env_id=r[3],
                checkpoint=r[4],
                checkpoint_step=r[5],
                deterministic=bool(r[6]),
                seeds=tuple(json.loads(r[7])),
                protocol=json.loads(r[8]),
                video_path=r[9],
                eval_id=r[0],
                created_at=r[10],
            )
            for r in rows
        ]


def _is_busy(exc: sqlite3.Error) -> bool:
    """True for lock contention (worth waiting for), False for real errors."""
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc))


def _filters(**columns: str | None) -> tuple[str, list[Any]]:
    """A WHERE clause for the given column = value pairs (None means no filter); column names are ours."""
    used = {k: v for k, v in columns.items() if v is not None}
    if not used:
        return "", []
    return "WHERE " + " AND ".join(f"{k} = ?" for k in used), list(used.values())
