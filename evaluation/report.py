"""Comparison reports: one self-contained HTML page and the same content in Markdown, from the database.

A report answers "which agent is better, by how much, and how sure are we?" for whatever the results
database holds. It reads only the store (and, for learning curves, the run folders it names), so it can
be rebuilt at any time; the same database and seed give a byte-identical `report.md`.

How scores are defined (one definition everywhere):
- A row is a configuration: agent + resolved settings + evaluation protocol (evaluation/identity.py),
  never the agent name alone. Its runs are its training seeds; a run's score on an env is the mean
  return of its latest evaluation; a baseline (random, heuristic) is one run over many episodes.
- An "env" is an env id plus the env kwargs it was evaluated with (`--env-kwarg`): the same run on a
  held-out profile is a separate result, titled e.g. `rlsuite/TrafficGrid-v0 (profile=held_out)`.
- Per env, mean / median / IQM go across runs with stratified-bootstrap CIs (Agarwal et al. 2021). An
  agent with a single run has nothing to resample across, so its CIs bootstrap over its episodes.
- Each env compares every row with the leader (highest IQM): the IQM difference with its stratified-
  bootstrap CI and the probability of improvement. A star marks a winner only when every such CI
  excludes 0; otherwise the leaders are shown tied.
- Across envs, scores are normalised (random = 0, reference = 1) so envs with different return scales
  can be aggregated; an env without a reference score is left out of the aggregate with a note, never
  mixed in as a raw score and never a reason not to write the report.

The page is built once as a list of blocks (`Heading`, `Table`, `Figure`, ...) and rendered twice,
to HTML and to Markdown, so the two never disagree. The HTML works offline from disk: CSS inline,
figures as base64 data URIs, videos as relative `videos/*.mp4` files next to it.

This module writes the files; the parts live beside it: report_selection.py (which evaluations, which
rows and their names), report_scores.py (the per-env and across-env sections), report_sections.py (the
protocol, learning curves, videos, failures, tuning studies and episodes.csv) and report_document.py
(the blocks, number formatting and the two renderers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

from rlsuite import __version__ as rlsuite_version
from rlsuite.agents.fileio import atomic_write_bytes
from rlsuite.evaluation import plots
from rlsuite.evaluation.report_document import (
    Block,
    Code,
    Figure,
    Heading,
    Link,
    Para,
    format_interval,
    format_number,
    render_html,
    render_md,
    text,
)
from rlsuite.evaluation.report_scores import across_section, env_section
from rlsuite.evaluation.report_sections import (
    curves_section,
    episodes_csv,
    failures_section,
    mean_curve,
    protocol_section,
    tuning_section,
    videos_section,
)
from rlsuite.evaluation.report_selection import ReportError, select
from rlsuite.evaluation.store import ResultsStore

__all__ = ["ReportError", "format_interval", "format_number", "mean_curve", "write_report"]

CONFIDENCE = 0.95
"""Confidence level of every interval in a report."""


def write_report(
    db_path: Path,
    out_dir: Path,
    *,
    envs: Sequence[str] | None = None,
    agents: Sequence[str] | None = None,
    reps: int = 2000,
    seed: int = 0,
    confidence: float = CONFIDENCE,
    references: Mapping[str, float] | None = None,
    now: datetime | None = None,
) -> Path:
    """Write report.html, report.md, episodes.csv, figures/ and videos/ into `out_dir`; return the HTML path.

    `envs` / `agents` restrict the report (None: everything in the database). `references` adds or
    overrides reference scores per env id (normalisation across envs needs one for every env). `now`
    fixes the "generated at" line (tests); everything else is a function of the database and `seed`.
    """
    db_path, out_dir = Path(db_path), Path(out_dir)
    if not db_path.exists():
        raise ReportError(
            f"No results database at {db_path}; pass --db with the file `rlsuite evaluate` wrote "
            "(default results.db)."
        )
    with ResultsStore(db_path, create=False) as store:
        sel = select(store, db_path, list(envs) if envs else None, list(agents) if agents else None)
        tuning = tuning_section(store, set(sel.env_ids.values()))
    colours = plots.agent_colors(sel.agents)
    videos: dict[str, Path] = {}
    generated = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M:%S %Z").strip()

    blocks: list[Block] = protocol_section(sel, reps, seed, confidence)
    blocks.append(Heading(2, "Results per env", "per-env"))
    for env_id in sel.envs:
        blocks += env_section(env_id, sel, colours, reps, seed, confidence)
    if len(sel.envs) >= 2:
        blocks += across_section(sel, colours, dict(references or {}), reps, seed, confidence)
    blocks += curves_section(sel, db_path, colours, reps, seed, confidence)
    blocks += videos_section(sel, db_path, videos)
    blocks += tuning
    blocks += failures_section(sel)
    blocks += [
        Heading(2, "Raw data", "raw-data"),
        Para(
            text(
                "Every episode behind this report, one row each (agent, env, env kwargs, run, evaluation, checkpoint, "
                "episode index, seed, return, length and the env's metrics): ",
                Link("episodes.csv", "episodes.csv"),
                ".",
            )
        ),
    ]

    title = "rlsuite comparison report"
    meta = [
        text(f"Generated at {generated} by rlsuite {rlsuite_version} from ", Code(db_path.name), "."),
        text(f"Envs: {', '.join(sel.envs)}. Agents: {', '.join(sel.agents)}."),
    ]

    out_dir.mkdir(parents=True, exist_ok=True)
    figures = [block for block in blocks if isinstance(block, Figure)]
    if figures:
        (out_dir / "figures").mkdir(exist_ok=True)
    for figure in figures:
        atomic_write_bytes(out_dir / figure.file, figure.png)
    if videos:
        (out_dir / "videos").mkdir(exist_ok=True)
    for file, source in sorted(videos.items()):
        atomic_write_bytes(out_dir / file, source.read_bytes())
    atomic_write_bytes(out_dir / "episodes.csv", episodes_csv(sel).encode("utf-8"))
    atomic_write_bytes(out_dir / "report.md", render_md(title, meta, blocks).encode("utf-8"))
    html_path = out_dir / "report.html"
    atomic_write_bytes(html_path, render_html(title, meta, blocks).encode("utf-8"))
    return html_path
