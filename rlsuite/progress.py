"""The training progress display: a live bar on a terminal, whole plain lines anywhere else (logs, CI, pipes).

Steps per second are the training loop's own figure (`charts/sps`, which every agent logs from its
clock); metrics that carry none (an evaluation's) keep the last figure rather than showing 0. The
count is the env steps actually trained: agents train in whole updates (a rollout of n_envs x n_steps,
a step of every sub-env), so a run may end a little past or short of its budget; the total follows
what was trained (rlsuite/train.py then says why).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

PLAIN_EVERY_FRACTION = 0.1
"""Without a terminal, a line every tenth of the budget ..."""
PLAIN_EVERY_SECONDS = 30.0
"""... or every 30 s, whichever comes first, and one when training ends."""


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class TrainingProgress:
    """Shows `step / total` env steps, steps/s and the latest return; a context manager around training."""

    def __init__(self, description: str, total: int, *, start: int = 0, console: Console,
                 enabled: bool = True, plain: bool | None = None) -> None:
        self.description, self.total, self.step = description, int(total), int(start)
        self.console = console
        self.enabled = enabled
        self.plain = (not console.is_terminal) if plain is None else plain
        self.sps: float | None = None
        self.ret = "-"
        self._start_time = time.monotonic()
        self._start_step = self.step
        self._last_line_time = self._start_time
        self._last_line_step = self.step
        self._bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[sps]} steps/s"), TextColumn("return {task.fields[ret]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console, disable=not enabled or self.plain,
        )
        self._task: TaskID = self._bar.add_task(description, total=self.total, completed=self.step,
                                                sps=self._sps_text(), ret=self.ret)

    def _sps_text(self) -> str:
        return "-" if self.sps is None else f"{self.sps:.0f}"

    def __enter__(self) -> TrainingProgress:
        self._bar.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._bar.__exit__(exc_type, exc, tb)

    def update(self, step: int, metrics: Mapping[str, float]) -> None:
        """After an update: the global env step and that update's metrics."""
        self.step = int(step)
        self.total = max(self.total, self.step)
        if metrics.get("charts/sps") is not None:
            self.sps = float(metrics["charts/sps"])
        ret = metrics.get("eval/mean_return", metrics.get("charts/recent_return"))
        if ret is not None:
            self.ret = f"{ret:.1f}"
        self._bar.update(self._task, total=self.total, completed=self.step, sps=self._sps_text(), ret=self.ret)
        if self.enabled and self.plain:
            now = time.monotonic()
            due = (self.step - self._last_line_step >= PLAIN_EVERY_FRACTION * self.total
                   or now - self._last_line_time >= PLAIN_EVERY_SECONDS)
            if due:
                self._print_line(now)

    def finish(self, final_step: int, *, done: bool) -> None:
        """Training stopped at `final_step`; `done`: it ran to its end, so that is the run's total too."""
        self.step = int(final_step)
        self.total = self.step if done else max(self.total, self.step)
        self._bar.update(self._task, total=self.total, completed=self.step, sps=self._sps_text(), ret=self.ret)
        if self.enabled and self.plain and (self._last_line_step != self.step or self._last_line_time == self._start_time):
            self._print_line(time.monotonic())

    def line(self, now: float | None = None) -> str:
        """The plain display's line, e.g. `ppo CartPole-v1: 20480/100000 steps (20%), 5123 steps/s, ...`."""
        now = time.monotonic() if now is None else now
        elapsed = now - self._start_time
        percent = 100.0 * self.step / self.total if self.total else 100.0
        text = f"{self.description}: {self.step}/{self.total} steps ({percent:.0f}%), {self._sps_text()} steps/s, " \
               f"return {self.ret}, {_clock(elapsed)} elapsed"
        if self.sps and self.step < self.total:
            text += f", {_clock(math.ceil((self.total - self.step) / self.sps))} left"
        return text

    def _print_line(self, now: float) -> None:
        print(self.line(now), file=self.console.file, flush=True)
        self._last_line_time, self._last_line_step = now, self.step
