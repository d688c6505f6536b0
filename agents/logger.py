"""Metric logging: a long-format CSV that reports read, plus optional TensorBoard events.

`metrics.csv` has one row per (step, metric): `step,wall_time,key,value`. Long format means any agent
can log any key from the flat namespace (`charts/episodic_return`, `losses/value_loss`, `eval/mean_return`)
without a fixed header, and appending a row never rewrites the file. The file is flushed after each
`log` call, so a killed run loses at most the update in progress.
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from rlsuite.agents.fileio import atomic_write_text

METRICS_FILE = "metrics.csv"
HEADER = ("step", "wall_time", "key", "value")


def _read_rows(path: Path) -> list[tuple[int, float, str, float]]:
    """Well-formed rows of a metrics file; a torn last line (run killed mid-write) is skipped."""
    rows: list[tuple[int, float, str, float]] = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        for record in reader:
            if len(record) != 4 or tuple(record) == HEADER:
                continue
            try:
                rows.append((int(record[0]), float(record[1]), record[2], float(record[3])))
            except ValueError:
                continue
    return rows


def _format_rows(rows: list[tuple[int, float, str, float]], header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(HEADER)
    for step, wall, key, value in rows:
        writer.writerow((step, repr(wall), key, repr(value)))
    return buffer.getvalue()


class LazyMetrics(Mapping[str, Any]):
    """Values for the logs, each computed on first read. A loss returns its terms this way: most gradient
    steps' terms are never logged (PPO logs one minibatch an update), and on a CPU with a small network the
    ops that compute them cost as much as a tenth of the step."""

    def __init__(self, **values: Any) -> None:
        self._values = values  # a value, or a function of no arguments computing it

    def __getitem__(self, key: str) -> Any:
        value = self._values[key]
        if callable(value):
            value = self._values[key] = value()
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


class MetricLogger:
    """Appends metrics to `<run_dir>/metrics.csv` (and TensorBoard under `<run_dir>/tb` when enabled)."""

    def __init__(self, run_dir: Path, tensorboard: bool = True, resume_step: int | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / METRICS_FILE
        if resume_step is not None and self.path.exists():
            # Rows after the checkpoint we resume from will be logged again: drop them now.
            kept = [row for row in _read_rows(self.path) if row[0] <= resume_step]
            atomic_write_text(self.path, _format_rows(kept, header=True))
        needs_header = not self.path.exists() or self.path.stat().st_size == 0
        if not needs_header:
            self._repair_torn_line()
        self._file = self.path.open("a", newline="", encoding="utf-8")
        self._csv = csv.writer(self._file, lineterminator="\n")
        if needs_header:
            self._csv.writerow(HEADER)
            self._file.flush()
        self._writer: Any = None
        if tensorboard:
            # Imported lazily: TensorBoard is slow to import and optional for a run.
            from tensorboard.compat.proto.summary_pb2 import Summary
            from torch.utils.tensorboard import SummaryWriter

            self._summary: Any = Summary
            purge = resume_step + 1 if resume_step is not None else None
            self._writer = SummaryWriter(log_dir=str(self.run_dir / "tb"), purge_step=purge)

    def _repair_torn_line(self) -> None:
        # A run killed mid-row leaves a line without "\n"; end it so the next row starts on its own line.
        with self.path.open("rb") as f:
            f.seek(-1, 2)
            last = f.read(1)
        if last != b"\n":
            with self.path.open("a", encoding="utf-8") as f:
                f.write("\n")

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        """Record each metric at env step `step`; None values are skipped."""
        if self._file.closed:
            raise ValueError(f"MetricLogger for {self.path} is closed; create a new one to log more.")
        wall = time.time()
        scalars = []
        for key, raw in metrics.items():
            if raw is None:
                continue
            value = float(raw)
            self._csv.writerow((int(step), repr(wall), key, repr(value)))
            if self._writer is not None and math.isfinite(value):
                scalars.append(self._summary.Value(tag=key, simple_value=value))
        if scalars:  # one event holding every scalar of the call, as TensorBoard reads them: add_scalar would write
            # one event per scalar, each a serialisation and a hand-off to the writer thread
            self._writer.file_writer.add_summary(self._summary(value=scalars), int(step), wall)
        self._file.flush()

    def close(self) -> None:
        """Flush and close the CSV file and the TensorBoard writer (safe to call twice)."""
        if not self._file.closed:
            self._file.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> MetricLogger:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def read_metrics(run_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Metric key -> (steps int64, values float64) in step order; {} when the run logged nothing."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return {}
    grouped: dict[str, tuple[list[int], list[float]]] = {}
    for step, _wall, key, value in _read_rows(path):
        steps, values = grouped.setdefault(key, ([], []))
        steps.append(step)
        values.append(value)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for key, (steps, values) in grouped.items():
        s = np.asarray(steps, dtype=np.int64)
        v = np.asarray(values, dtype=np.float64)
        order = np.argsort(s, kind="stable")  # stable: rows logged at one step keep their order
        out[key] = (s[order], v[order])
    return out
