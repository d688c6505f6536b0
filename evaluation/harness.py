"""One evaluation protocol for every agent: fixed seeds, one episode per seed, deterministic actions.

Every agent (trained, random, heuristic) is measured the same way: `evaluate_policy` runs exactly one
episode per evaluation seed and returns one `EpisodeRecord` each. Evaluation seeds start at
`EVAL_SEED_BASE` (1_000_000), far above the small seeds training uses (0 .. seed + n_envs), so an agent
is never scored on the very episodes it was trained on.

Episodes run in waves on a *sync* vector env: each sub-env is then an ordinary `gym.make(env_id)` env,
and `reset(seed=[s, ...])` seeds sub-env i exactly like `gym.make(env_id).reset(seed=s)`. That is what
lets `evaluation/video.py` re-run one episode alone (say the median one, for the report) and get the
same return. The vector env autoresets with next-step semantics (envs/factory.py): once a sub-env has
finished its episode, everything it returns afterwards belongs to a second episode and is ignored.

Envs with a separate evaluation protocol get it here (`purpose="eval"` in envs/factory.py). For Atari
that is the standard one: whole games (no episodic life), raw unclipped game scores, the
108,000-frame cap; reports then normalise by the pinned random and human scores (envs/atari_scores.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from numbers import Real
from typing import Any

import gymnasium as gym
import numpy as np
import scipy.stats
import torch

from rlsuite.agents.interface import Policy
from rlsuite.envs.factory import make_vec_env
from rlsuite.evaluation.records import EpisodeRecord

EVAL_SEED_BASE = 1_000_000
"""First evaluation seed; training uses small seeds (0 .. seed + n_envs), so the two never meet."""

DEFAULT_MAX_WAVE = 8
"""Sub-envs per wave when the caller does not say: enough to batch the policy, few enough for any env."""

# Keys Gymnasium's wrappers and vector envs add to `info`; they are bookkeeping, not env metrics.
_GYMNASIUM_INFO_KEYS = frozenset({"episode", "final_obs", "final_info", "final_observation"})


class EvaluationError(ValueError):
    """A user-facing problem with an evaluation request; the message says what to do."""


def evaluation_seeds(episodes: int, base: int = EVAL_SEED_BASE) -> list[int]:
    """The seeds of an `episodes`-long evaluation: [base, base + 1, ...], disjoint from training seeds."""
    if episodes < 1:
        raise EvaluationError(f"episodes must be at least 1, got {episodes}.")
    if base < 0:
        raise EvaluationError(f"the seed base must be non-negative (Gymnasium seeds are >= 0), got {base}.")
    return list(range(base, base + episodes))


def _describe_space(space: gym.Space) -> str:
    """A short human description: the shape and dtype for arrays, the full repr otherwise."""
    if isinstance(space, gym.spaces.Box):
        return f"shape {space.shape} ({space.dtype})"
    if isinstance(space, gym.spaces.Discrete):
        return f"Discrete({space.n})"
    return str(space)


def check_spaces(policy: Policy, env: gym.Env | gym.vector.VectorEnv, env_id: str | None = None) -> None:
    """Refuse to evaluate an agent on an env whose single observation or action space differs from its own.

    A policy fed observations of another shape either crashes deep inside torch or, worse, runs and
    produces meaningless scores; this catches it up front with a message naming both sides.
    """
    if isinstance(env, gym.vector.VectorEnv):
        obs_space, act_space = env.single_observation_space, env.single_action_space
    else:
        obs_space, act_space = env.observation_space, env.action_space
    if env_id is None:
        spec = getattr(env, "spec", None)
        env_id = spec.id if spec is not None else "this env"
    trained_on = getattr(policy, "env_id", None)
    hint = f"its manifest says env_id={trained_on!r}" if trained_on else "its run manifest names the env id"
    for kind, mine, theirs in (
        ("observations", policy.observation_space, obs_space),
        ("actions", policy.action_space, act_space),
    ):
        if mine == theirs:
            continue
        have, want = _describe_space(mine), _describe_space(theirs)
        if have == want:  # same shape and dtype: the bounds (or sub-spaces) differ
            have, want = str(mine), str(theirs)
        raise EvaluationError(
            f"the agent was trained on {kind} of {have} but {env_id} gives {want}: "
            f"evaluate it on the env it was trained on ({hint})."
        )


def episode_metrics(info: Mapping[str, Any]) -> dict[str, float]:
    """The env's own numeric scalar metrics from one sub-env's final-step `info`.

    Gymnasium's bookkeeping ("episode", "final_obs", "final_info", "_"-prefixed masks) is dropped, and
    so is anything that is not a single number (arrays, strings, nested dicts).
    """
    metrics: dict[str, float] = {}
    for key, value in info.items():
        if key.startswith("_") or key in _GYMNASIUM_INFO_KEYS:
            continue
        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value.item()
        if isinstance(value, (Real, np.bool_)):  # bool and numpy scalars are Real too
            metrics[key] = float(value)
    return metrics


def _sub_env_info(info: Mapping[str, Any], index: int) -> dict[str, Any]:
    """Sub-env `index`'s entries of a vector env's batched `info` (only those its `_key` mask marks)."""
    own: dict[str, Any] = {}
    for key, values in info.items():
        if key.startswith("_") or isinstance(values, Mapping):
            continue
        mask = info.get(f"_{key}")
        if mask is not None and not mask[index]:
            continue
        own[key] = values[index]
    return own


def _run_wave(
    envs: gym.vector.VectorEnv, policy: Policy, seeds: Sequence[int], deterministic: bool
) -> list[tuple[float, int, dict[str, float]]]:
    """One episode on each sub-env, seeded by `seeds`: (return, length, metrics) per sub-env."""
    n = len(seeds)
    obs, _ = envs.reset(seed=list(seeds))  # type: ignore[arg-type]  # one seed per sub-env; Gymnasium's stub says int
    policy.reset(n)
    episode_start = np.ones(n, dtype=bool)
    returns = np.zeros(n, dtype=np.float64)
    lengths = np.zeros(n, dtype=np.int64)
    done = np.zeros(n, dtype=bool)
    metrics: list[dict[str, float]] = [{} for _ in range(n)]
    while not done.all():
        actions = policy.act(obs, episode_start, deterministic=deterministic)
        obs, rewards, terminated, truncated, info = envs.step(actions)
        ended = terminated | truncated  # (n,)
        running = ~done  # sub-envs still in their first episode; the rest are autoresetting: ignored
        returns[running] += np.asarray(rewards, dtype=np.float64)[running]
        lengths[running] += 1
        for i in np.flatnonzero(running & ended):
            metrics[i] = episode_metrics(_sub_env_info(info, int(i)))
        done |= ended
        episode_start = ended
    return [(float(returns[i]), int(lengths[i]), metrics[i]) for i in range(n)]


def evaluate_policy(
    policy: Policy,
    env_id: str,
    *,
    episodes: int,
    seeds: Sequence[int] | None = None,
    deterministic: bool = True,
    n_envs: int | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    max_episode_steps: int | None = None,
) -> list[EpisodeRecord]:
    """Run exactly one episode per seed and return their records, in seed order.

    Episodes run in waves of up to `n_envs` sub-envs (default min(episodes, 8)). Stochastic
    evaluations (`deterministic=False`) seed torch with each wave's first seed, inside a forked RNG so
    a periodic evaluation during training leaves the training's random stream untouched.
    """
    seeds = evaluation_seeds(episodes) if seeds is None else [int(s) for s in seeds]
    if len(seeds) != episodes:
        raise EvaluationError(
            f"got {len(seeds)} seeds for {episodes} episodes: pass one seed per episode, or no seeds "
            f"to use evaluation_seeds({episodes})."
        )
    if any(s < 0 for s in seeds):
        raise EvaluationError(f"seeds must be non-negative integers (Gymnasium's rule), got {seeds}.")
    wave = min(episodes, DEFAULT_MAX_WAVE) if n_envs is None else min(n_envs, episodes)
    if wave < 1:
        raise EvaluationError(f"n_envs must be at least 1, got {n_envs}.")
    kwargs = dict(env_kwargs or {})
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps

    results: list[tuple[float, int, dict[str, float]]] = []
    envs_by_size: dict[int, gym.vector.VectorEnv] = {}  # full waves, plus one smaller env for the rest
    try:
        for start in range(0, episodes, wave):
            wave_seeds = seeds[start : start + wave]
            size = len(wave_seeds)
            if size not in envs_by_size:
                envs_by_size[size] = make_vec_env(env_id, size, mode="sync", record_stats=False, purpose="eval",
                                                  **kwargs)
                check_spaces(policy, envs_by_size[size], env_id)
            rng = nullcontext() if deterministic else torch.random.fork_rng()
            with rng:
                if not deterministic:
                    torch.manual_seed(wave_seeds[0])
                results.extend(_run_wave(envs_by_size[size], policy, wave_seeds, deterministic))
    finally:
        for envs in envs_by_size.values():
            envs.close()
    return [
        EpisodeRecord(index=i, seed=seed, episode_return=ret, length=length, metrics=metrics)
        for i, (seed, (ret, length, metrics)) in enumerate(zip(seeds, results, strict=True))
    ]


def make_eval_callback(
    env_id: str,
    *,
    episodes: int,
    deterministic: bool = True,
    env_kwargs: Mapping[str, Any] | None = None,
) -> Callable[[Policy, int], dict[str, float]]:
    """The periodic evaluation rlsuite/train.py hands down to an agent (agents/interface.py EvalCallback).

    Uses the same seeds every call, so successive scores differ only because the agent changed.
    The callback calls `policy.reset`: hand it a policy whose recurrent state is not the rollout's.
    """
    seeds = evaluation_seeds(episodes)

    def evaluate(policy: Policy, step: int) -> dict[str, float]:
        records = evaluate_policy(
            policy, env_id, episodes=episodes, seeds=seeds, deterministic=deterministic, env_kwargs=env_kwargs
        )
        return summarize(records)

    return evaluate


def summarize(records: Sequence[EpisodeRecord]) -> dict[str, float]:
    """`eval/*` statistics of a set of episodes: return mean, std (population), median, IQM; mean length;
    and the mean of every env metric (over the episodes that report it)."""
    if not records:
        raise EvaluationError("no episodes to summarise: evaluate at least one episode.")
    returns = np.array([r.episode_return for r in records], dtype=np.float64)
    out = {
        "eval/mean_return": float(returns.mean()),
        "eval/std_return": float(returns.std()),
        "eval/median_return": float(np.median(returns)),
        "eval/iqm_return": float(scipy.stats.trim_mean(returns, 0.25)),
        "eval/mean_length": float(np.mean([r.length for r in records])),
    }
    names = sorted({name for r in records for name in r.metrics})
    for name in names:
        out[f"eval/{name}"] = float(np.mean([r.metrics[name] for r in records if name in r.metrics]))
    return out


def median_episode(records: Sequence[EpisodeRecord]) -> EpisodeRecord:
    """The episode with the median return (lower-middle for an even count, ties by index): the one a
    report shows as a video, typical rather than lucky."""
    if not records:
        raise EvaluationError("no episodes given: the median episode needs at least one record.")
    ranked = sorted(records, key=lambda r: (r.episode_return, r.index))
    return ranked[(len(ranked) - 1) // 2]
