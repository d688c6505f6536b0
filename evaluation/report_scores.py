"""The report's score sections: per env (mean, median, IQM with CIs) and across envs (normalised
aggregates, probability of improvement), each comparing every row with the leader."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rlsuite.envs import reference_score
from rlsuite.evaluation import plots, stats
from rlsuite.evaluation.plots import Interval
from rlsuite.evaluation.report_document import (
    Block,
    Code,
    Figure,
    Heading,
    Para,
    Strong,
    Table,
    Text,
    anchor,
    format_interval,
    format_number,
    slug,
    text,
)
from rlsuite.evaluation.report_selection import Run, Selection, kwarg_items

TABLE_STATS = ("mean", "median", "iqm")
AGGREGATE_ORDER = ("median", "iqm", "mean", "optimality_gap")
STAT_TITLES = {"mean": "Mean", "median": "Median", "iqm": "IQM", "optimality_gap": "Optimality gap"}
BEST = "\u2605"  # the star beside the best agent

MIN_RUNS = 3
"""Runs (training seeds) per configuration below which a report says its intervals cannot speak for
training variance."""


def _score_matrix(runs: Sequence[Run]) -> tuple[np.ndarray, bool]:
    """(runs, 1) matrix of run scores; for a single run its episode returns, flagged True."""
    if len(runs) == 1:
        return runs[0].returns[:, None], True  # (episodes, 1)
    return np.array([[run.score] for run in runs]), False  # (runs, 1)


def _metric_means(runs: Sequence[Run]) -> dict[str, float]:
    """Env metric -> mean over runs of the run's mean over the episodes that report it."""
    names = sorted({name for run in runs for ep in run.episodes for name in ep.metrics})
    means: dict[str, float] = {}
    for name in names:
        per_run = [
            float(np.mean([ep.metrics[name] for ep in run.episodes if name in ep.metrics]))
            for run in runs
            if any(name in ep.metrics for ep in run.episodes)
        ]
        means[name] = float(np.mean(per_run))
    return means


def _agent_cell(agent: str, mark: str | None) -> Text:
    """The agent's name, with `★ best` for a significant winner or `= tied for best` for tied leaders."""
    if mark == "best":
        return text(Strong(agent), f" {BEST} best")
    if mark == "tied":
        return text(Strong(agent), " = tied for best")
    return text(agent)


def _coverage(n_runs: int) -> str:
    """What an interval over `n_runs` runs measures, in words a reader notices."""
    if n_runs >= MIN_RUNS:
        return f"training seeds ({n_runs} runs)"
    if n_runs == 2:
        return f"2 training seeds only: too few; needs \u2265 {MIN_RUNS}"
    return f"episode noise only, not training variance; needs \u2265 {MIN_RUNS} seeds"


@dataclass(frozen=True)
class _Comparison:
    """Every agent against the leader (highest IQM point): IQM difference and P(agent > leader), with CIs."""

    leader: str
    differences: Mapping[str, tuple[float, float, float]]  # agent -> IQM(agent) - IQM(leader)
    improvement: Mapping[str, tuple[float, float, float]]  # agent -> P(agent > leader)
    tied: frozenset[str]  # the leader and every agent whose difference's CI holds 0

    @property
    def winner(self) -> str | None:
        """The leader when its lead over every other agent is significant (CI excludes 0), else None."""
        return self.leader if len(self.tied) == 1 else None

    def mark(self, agent: str) -> str | None:
        if agent == self.winner:
            return "best"
        return "tied" if agent in self.tied and self.winner is None else None


def _compare(matrices: Mapping[str, np.ndarray], reps: int, seed: int, confidence: float) -> _Comparison:
    """The leader by IQM and each other agent's difference from it (stats.difference_ci) and probability
    of improvement over it (stats.probability_of_improvement_ci), all on the same (rows, envs) matrices."""
    points = {agent: stats.iqm(m) for agent, m in matrices.items()}
    leader = min(points, key=lambda agent: (-points[agent], agent))
    differences, improvement = {}, {}
    for agent in sorted(matrices, key=lambda a: (-points[a], a)):
        if agent == leader:
            continue
        differences[agent] = stats.difference_ci(matrices[agent], matrices[leader], stats.iqm, reps=reps,
                                                 confidence=confidence, seed=seed)
        improvement[agent] = stats.probability_of_improvement_ci(matrices[agent], matrices[leader], reps=reps,
                                                                 confidence=confidence, seed=seed)
    tied = {leader} | {agent for agent, (_, low, high) in differences.items() if low <= 0.0 <= high}
    return _Comparison(leader, differences, improvement, frozenset(tied))


def _comparison_blocks(
    comparison: _Comparison, runs: Mapping[str, int], confidence: float, anchor: str, unit: str
) -> list[Block]:
    """The table of differences from the leader, and what its intervals can and cannot say."""
    leader = comparison.leader
    rows = tuple(
        (
            text(agent),
            text(format_interval(*comparison.differences[agent])),
            text(_normalised_ci(comparison.improvement[agent])),
            text("tied (CI holds 0)" if agent in comparison.tied else "below the leader"),
            text(_coverage(min(runs[agent], runs[leader]))),
        )
        for agent in comparison.differences
    )
    verdict = (
        f"{BEST} {leader} leads every other agent: each difference's {confidence:.0%} CI excludes 0."
        if comparison.winner
        else f"No single winner: {', '.join(sorted(comparison.tied))} are tied for the lead (the {confidence:.0%} "
             f"CI of the IQM difference from {leader} holds 0)."
    )
    blocks: list[Block] = [
        Heading(4, f"Against the leader ({leader})", anchor),
        Table(
            ("Agent", f"IQM {unit} \u2212 leader's [{confidence:.0%} CI]", f"P(agent > leader) [{confidence:.0%} CI]",
             "Verdict", "Interval covers"),
            rows,
            numeric=frozenset({1, 2}),
            wrap=frozenset({4}),
        ),
        Para(text(verdict)),
        Para(
            text(
                "Difference: IQM of the agent minus IQM of the leader, with a stratified-bootstrap CI that resamples "
                "both agents' runs independently (Agarwal et al. 2021). P(agent > leader): the chance that a run of "
                "the agent scores higher than a run of the leader (ties count half); 0.5 means no evidence either way."
            ),
            note=True,
        ),
    ]
    few = sorted(agent for agent, n in runs.items() if n < MIN_RUNS)
    if few:
        blocks.append(
            Para(
                text(
                    f"Fewer than {MIN_RUNS} runs ({', '.join(few)}): an interval over one run's episodes covers "
                    "episode noise only, not training variance (how much another training seed would change the "
                    f"score), so it can call a difference that another seed would erase. A sound comparison needs "
                    f"at least {MIN_RUNS} training seeds per configuration, 5 or more preferably: e.g. ",
                    Code("rlsuite sweep --agents AGENT --envs ENV --seeds 0-4"),
                    ".",
                ),
                note=True,
            )
        )
    return blocks


def env_section(
    env_id: str, sel: Selection, colours: Mapping[str, str], reps: int, seed: int, confidence: float
) -> list[Block]:
    agents = [agent for agent in sel.agents if sel.runs(env_id, agent)]
    metric_names = sorted({name for agent in agents for name in _metric_means(sel.runs(env_id, agent))})
    cis: dict[str, dict[str, tuple[float, float, float]]] = {}
    single: dict[str, bool] = {}
    matrices: dict[str, np.ndarray] = {}
    for agent in agents:
        matrices[agent], single[agent] = _score_matrix(sel.runs(env_id, agent))
        cis[agent] = {
            name: stats.stratified_bootstrap_ci(
                matrices[agent], stats.AGGREGATES[name], reps=reps, confidence=confidence, seed=seed
            )
            for name in TABLE_STATS
        }
    comparison = _compare(matrices, reps, seed, confidence) if len(agents) >= 2 else None
    marks = {agent: comparison.mark(agent) if comparison else None for agent in agents}
    rows = []
    for agent in agents:
        runs = sel.runs(env_id, agent)
        metrics = _metric_means(runs)
        rows.append(
            (
                _agent_cell(agent, marks[agent]),
                text(f"{len(runs)}\u2020" if single[agent] else str(len(runs))),
                *(text(format_interval(*cis[agent][name])) for name in TABLE_STATS),
                text(format_number(float(np.mean([run.mean_length for run in runs])))),
                *(text(format_number(metrics[m]) if m in metrics else "\u2014") for m in metric_names),
                text(_coverage(len(runs))),
            )
        )
    header = (
        "Agent",
        "Runs",
        *(f"{STAT_TITLES[name]} return [{confidence:.0%} CI]" for name in TABLE_STATS),
        "Length (steps)",
        *metric_names,
        "CIs cover",
    )
    coverage_column = len(header) - 1
    blocks: list[Block] = [
        Heading(3, env_id, f"env-{anchor(env_id)}"),
        Table(
            header,
            tuple(rows),
            best=frozenset(i for i, a in enumerate(agents) if marks[a] is not None),
            numeric=frozenset(range(1, len(header))) - {coverage_column},
            wrap=frozenset({coverage_column}),
        ),
        Para(
            text(
                f"Mean, median and IQM of run scores across runs, with {confidence:.0%} stratified-bootstrap "
                f"CIs. {BEST} marks the highest IQM only when the CI of its difference from every other agent "
                "excludes 0; otherwise the leaders are marked tied. Episode length (env steps) and env metrics"
                + (f" ({', '.join(metric_names)})" if metric_names else "")
                + " are means over runs of each run's episode mean."
            ),
            note=True,
        ),
    ]
    singles = [agent for agent in agents if single[agent]]
    if singles:
        counts = ", ".join(f"{a}: {len(sel.runs(env_id, a)[0].episodes)} episodes" for a in singles)
        blocks.append(
            Para(
                text(
                    f"\u2020 A single run ({counts}): there are no runs to resample, so its CIs bootstrap "
                    "over the run's episodes instead (episode noise only, not training variance), and its median "
                    "and IQM are of episode returns."
                ),
                note=True,
            )
        )
    if comparison is not None:
        runs_per_agent = {agent: len(sel.runs(env_id, agent)) for agent in agents}
        blocks += _comparison_blocks(comparison, runs_per_agent, confidence, f"vs-{anchor(env_id)}", "return")
    scores = {agent: Interval(*cis[agent]["iqm"]) for agent in agents}
    blocks.append(
        Figure(
            f"figures/scores_{slug(env_id)}.png",
            plots.env_scores_figure(env_id, scores, colours, confidence),
            f"IQM return per agent on {env_id} with {confidence:.0%} CIs",
        )
    )
    return blocks


@dataclass(frozen=True)
class _Normaliser:
    random: float
    reference: float
    random_source: str
    reference_source: str


def _normalisers(sel: Selection, references: Mapping[str, float]) -> tuple[dict[str, _Normaliser], list[str]]:
    """Random and reference score per env that has both, and a note for each env left out (saying how to
    provide what is missing): a missing score never blocks a report, it only shrinks the aggregate."""
    out: dict[str, _Normaliser] = {}
    notes: list[str] = []
    for env_id in sel.envs:
        # the table's scores are for the env as registered; a variant (other env kwargs) needs its own
        known = reference_score(env_id) if sel.env_ids[env_id] == env_id else None
        if env_id in references:
            reference, reference_source = float(references[env_id]), "given (--reference)"
        elif known is not None:
            reference, reference_source = known.reference, known.source
        else:
            where = ("add it to _REFERENCE_SCORES in envs/factory.py, or " if sel.env_ids[env_id] == env_id
                     else "")
            why = "" if sel.env_ids[env_id] == env_id else " (the reference table covers envs as registered)"
            notes.append(f"{env_id} is left out of the aggregates: it has no reference score (normalised 1){why}. "
                         f"To include it, {where}pass --reference '{env_id}=SCORE' to rlsuite report.")
            continue
        if known is not None:
            random, random_source = known.random, "rlsuite reference table"
        elif sel.runs(env_id, "random"):
            runs = sel.runs(env_id, "random")
            random = float(np.mean([run.score for run in runs]))
            episodes = sum(len(run.episodes) for run in runs)
            random_source = f"random agent in this database ({episodes} episodes)"
        else:
            flags = "".join(f" --env-kwarg {item}" for item in kwarg_items(sel.env_kwargs[env_id]))
            notes.append(f"{env_id} is left out of the aggregates: it has no random score (normalised 0). To "
                         f"include it, evaluate the random agent (rlsuite evaluate --agent random --env "
                         f"{sel.env_ids[env_id]}{flags}) into the same database.")
            continue
        if reference == random:
            notes.append(f"{env_id} is left out of the aggregates: its reference score equals its random score "
                         f"({reference}), so it cannot be normalised; pass another --reference.")
            continue
        out[env_id] = _Normaliser(random, reference, random_source, reference_source)
    return out, notes


def _normalised_matrix(
    agent: str, sel: Selection, norms: Mapping[str, _Normaliser]
) -> tuple[np.ndarray, str, list[str]]:
    """(rows, envs) normalised scores of an agent evaluated on every env of `norms`, its row kind, and notes.

    Rows are runs (truncated to the fewest runs any env has, in seed order) when every env has 2+ runs;
    otherwise the single run's episodes, like the per-env tables.
    """
    envs = list(norms)
    groups = [sel.runs(env_id, agent) for env_id in envs]
    notes: list[str] = []
    n_runs = min(len(runs) for runs in groups)
    if n_runs >= 2:
        if any(len(runs) > n_runs for runs in groups):
            notes.append(f"{agent}: envs have different numbers of runs; the first {n_runs} by seed are used.")
        columns = [np.array([run.score for run in runs[:n_runs]]) for runs in groups]  # envs x (runs,)
        kind = f"{n_runs} runs"
    else:
        if any(len(runs) > 1 for runs in groups):
            notes.append(f"{agent}: an env has a single run, so only the first run of each env is used.")
        n_eps = min(len(runs[0].episodes) for runs in groups)
        if any(len(runs[0].episodes) > n_eps for runs in groups):
            notes.append(f"{agent}: evaluations differ in length; the first {n_eps} episodes are used.")
        columns = [runs[0].returns[:n_eps] for runs in groups]
        kind = f"1 run\u2020 ({n_eps} episodes)"
    normalised = [
        stats.normalize(col, norms[env_id].random, norms[env_id].reference)
        for env_id, col in zip(envs, columns, strict=True)
    ]
    return np.stack(normalised, axis=1), kind, notes  # (rows, envs)


def _normalised_ci(ci: tuple[float, float, float]) -> str:
    """Normalised scores and probabilities live near [0, 1]: always three decimals."""
    point, low, high = ci
    return format_interval(point, low, high, decimals=3)


def across_section(
    sel: Selection,
    colours: Mapping[str, str],
    references: Mapping[str, float],
    reps: int,
    seed: int,
    confidence: float,
) -> list[Block]:
    norms, left_out = _normalisers(sel, references)
    blocks: list[Block] = [Heading(2, "Across envs", "across-envs")]
    blocks += [Para(text(note), note=True) for note in left_out]
    if len(norms) < 2:
        blocks.append(Para(text(f"Aggregates need at least two envs with random and reference scores; "
                                  f"{len(norms)} of {len(sel.envs)} have them, so none are shown.")))
        return blocks
    blocks += [
        Para(
            text(
                "Scores are normalised per env so that the random agent scores 0 and the reference scores 1, "
                "then aggregated over the envs below. CIs: stratified bootstrap over runs within each env "
                f"({reps} resamples, seed {seed}). Optimality gap: mean shortfall below 1 (lower is better)."
            )
        ),
        Table(
            ("Env", "Random score", "Reference score", "Random from", "Reference from"),
            tuple(
                (
                    text(env_id),
                    text(format_number(n.random)),
                    text(format_number(n.reference)),
                    text(n.random_source),
                    text(n.reference_source),
                )
                for env_id, n in norms.items()
            ),
            numeric=frozenset({1, 2}),
            wrap=frozenset({3, 4}),
        ),
    ]
    complete = [a for a in sel.agents if all(sel.runs(env_id, a) for env_id in norms)]
    missing = [a for a in sel.agents if a not in complete]
    matrices: dict[str, np.ndarray] = {}
    kinds: dict[str, str] = {}
    notes: list[str] = []
    for agent in complete:
        matrices[agent], kinds[agent], agent_notes = _normalised_matrix(agent, sel, norms)
        notes += agent_notes
    if missing:
        notes.append(
            f"Left out of the aggregates (not evaluated on every selected env): {', '.join(missing)}."
        )
    if not matrices:
        blocks.append(Para(text("No agent was evaluated on every selected env; nothing to aggregate."), note=True))
        blocks += [Para(text(note), note=True) for note in notes]
        return blocks

    aggregates = {
        agent: {
            name: stats.stratified_bootstrap_ci(
                matrix, stats.AGGREGATES[name], reps=reps, confidence=confidence, seed=seed
            )
            for name in AGGREGATE_ORDER
        }
        for agent, matrix in matrices.items()
    }
    comparison = _compare(matrices, reps, seed, confidence) if len(matrices) >= 2 else None
    marks = {agent: comparison.mark(agent) if comparison else None for agent in matrices}
    order = sorted(matrices)
    blocks.append(Heading(3, "Aggregate scores", "aggregates"))
    blocks.append(
        Table(
            ("Agent", "Rows per env", *(f"{STAT_TITLES[n]} [{confidence:.0%} CI]" for n in AGGREGATE_ORDER)),
            tuple(
                (
                    _agent_cell(agent, marks[agent]),
                    text(kinds[agent]),
                    *(text(_normalised_ci(aggregates[agent][name])) for name in AGGREGATE_ORDER),
                )
                for agent in order
            ),
            best=frozenset(i for i, agent in enumerate(order) if marks[agent] is not None),
            numeric=frozenset(range(2, 2 + len(AGGREGATE_ORDER))),
        )
    )
    if any("\u2020" in kind for kind in kinds.values()):
        notes.append(
            "\u2020 Agents with a single run per env (baselines) are aggregated over their episodes."
        )
    blocks += [Para(text(note), note=True) for note in notes]
    if comparison is not None:
        runs = {agent: int(matrices[agent].shape[0]) if "\u2020" not in kinds[agent] else 1 for agent in matrices}
        blocks += _comparison_blocks(comparison, runs, confidence, "vs-leader-aggregate", "normalised")
    blocks.append(
        Figure(
            "figures/aggregates.png",
            plots.aggregates_figure(
                {a: {n: Interval(*aggregates[a][n]) for n in AGGREGATE_ORDER} for a in order}, colours, confidence
            ),
            "Aggregate metrics of normalised scores with confidence intervals",
        )
    )

    if len(matrices) >= 2:
        ranked = sorted(matrices, key=lambda a: (-aggregates[a]["iqm"][0], a))
        pairs = []
        for i, x in enumerate(ranked):
            for y in ranked[i + 1 :]:
                ci = stats.probability_of_improvement_ci(
                    matrices[x], matrices[y], reps=reps, confidence=confidence, seed=seed
                )
                pairs.append((x, y, Interval(*ci)))
        blocks += [
            Heading(3, "Probability of improvement", "probability-of-improvement"),
            Para(
                text(
                    "P(X > Y): the chance that a run of X scores higher than a run of Y on an env, averaged "
                    "over envs (ties count half); 0.5 means no evidence either way."
                )
            ),
            Table(
                ("Comparison", f"P(X > Y) [{confidence:.0%} CI]"),
                tuple(
                    (text(f"P({x} > {y})"), text(_normalised_ci((iv.point, iv.low, iv.high))))
                    for x, y, iv in pairs
                ),
                numeric=frozenset({1}),
            ),
            Figure(
                "figures/probability_of_improvement.png",
                plots.improvement_figure(pairs, colours, confidence),
                "Probability of improvement between each pair of agents",
            ),
        ]
    return blocks
