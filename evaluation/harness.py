"""One evaluation protocol for every agent: fixed seeds, one episode per seed, deterministic actions.

Every agent (trained, random, heuristic) is measured the same way: `evaluate_policy` runs exactly one
episode per evaluation seed and returns one `EpisodeRecord` each.

Three disjoint seed ranges keep selection and measurement honest:
- training uses small seeds (0 .. seed + n_envs);
- `VALIDATION_SEEDS` (2,000,000 upward) serve the periodic evaluation during training: learning curves
  and the choice of the `best` checkpoint;
- `TEST_SEEDS` (1,000,000 upward) serve `rlsuite evaluate`, sweeps and reports.
A checkpoint chosen on validation episodes is then measured on test episodes it was never selected on.

An episode's actions depend on its seed alone, never on which other episodes share its wave:
`EpisodeActions` gives every episode its own random stream (seeded by the episode's seed) for
epsilon-greedy exploration and for policies that draw random actions (the random baseline), so
`evaluation/video.py` replays the very episode the harness measured.

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

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from numbers import Real
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlsuite.agents.interface import Policy
from rlsuite.envs.atari_scores import is_atari_id
from rlsuite.envs.factory import make_vec_env
from rlsuite.evaluation.records import EpisodeRecord
from rlsuite.evaluation.stats import trim_mean

TEST_SEEDS = range(1_000_000, 2_000_000)
"""Seeds of the final evaluation (`rlsuite evaluate`, sweeps, reports): never used to select anything."""

VALIDATION_SEEDS = range(2_000_000, 3_000_000)
"""Seeds of the evaluation during training (learning curves, choice of `best`); disjoint from TEST_SEEDS."""

TEST_SEED_BASE = TEST_SEEDS.start
VALIDATION_SEED_BASE = VALIDATION_SEEDS.start
EVAL_SEED_BASE = TEST_SEED_BASE
"""First test seed (the default of `evaluation_seeds`); training uses small seeds, so the two never meet."""

ATARI_EVAL_EPSILON = 0.05
"""Atari evaluation acts epsilon-greedily with this epsilon (Mnih et al. 2015; Machado et al. 2018): a
greedy policy that never presses FIRE after losing a life would otherwise stall to the 108k-frame cap."""

DEFAULT_EVAL_THREADS = 1
"""Torch CPU threads while evaluating or recording: small policy batches run fastest on one thread, as
training does (TrainSettings.torch_threads)."""

_EPSILON_STREAM = 0x5EED_E951
"""Mixed into each episode's seed for its action-noise generator, so it never equals the env's own."""

DEFAULT_MAX_WAVE = 8
"""Sub-envs per wave when the caller does not say: enough to batch the policy, few enough for any env."""

# Keys Gymnasium's wrappers and vector envs add to `info`; they are bookkeeping, not env metrics.
_GYMNASIUM_INFO_KEYS = frozenset({"episode", "final_obs", "final_info", "final_observation"})


class EvaluationError(ValueError):
    """A user-facing problem with an evaluation request; the message says what to do."""


def evaluation_seeds(episodes: int, base: int = TEST_SEED_BASE) -> list[int]:
    """The seeds of an `episodes`-long evaluation: [base, base + 1, ...]; test seeds unless told otherwise."""
    if episodes < 1:
        raise EvaluationError(f"episodes must be at least 1, got {episodes}.")
    if base < 0:
        raise EvaluationError(f"the seed base must be non-negative (Gymnasium seeds are >= 0), got {base}.")
    return list(range(base, base + episodes))


def validation_seeds(episodes: int) -> list[int]:
    """The seeds of the evaluation during training (curves, `best`): disjoint from the test seeds."""
    if episodes > len(VALIDATION_SEEDS):
        raise EvaluationError(f"at most {len(VALIDATION_SEEDS)} validation episodes, got {episodes}.")
    return evaluation_seeds(episodes, VALIDATION_SEED_BASE)


def eval_epsilon(env_id: str) -> float:
    """The evaluation protocol's epsilon for `env_id`: ATARI_EVAL_EPSILON for Atari ids, else 0 (greedy)."""
    return ATARI_EVAL_EPSILON if is_atari_id(env_id) else 0.0


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with `threads` torch CPU threads (None: leave them), then restore the old count."""
    if threads is None:
        yield
        return
    if threads < 1:
        raise EvaluationError(f"torch threads must be at least 1, got {threads}.")
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class EpisodeActions:
    """Chooses actions for a batch of episodes so that each episode's actions depend on its seed alone.

    Each episode (row) gets its own generator, `default_rng([_EPSILON_STREAM, seed])`, that draws one
    uniform number per step (plus one action index when it explores): with probability `epsilon` the
    policy's action is replaced by a uniform random one. A policy that draws its own random actions
    (the random baseline) is handed the episode seeds through its optional `seed_episodes(seeds)`, so
    it too draws per episode. Thus the harness's waves of 8 and the recorder's single env agree.
    """

    def __init__(self, policy: Policy, seeds: Sequence[int], deterministic: bool, epsilon: float = 0.0) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise EvaluationError(f"epsilon must lie in [0, 1], got {epsilon}.")
        if epsilon > 0 and not isinstance(policy.action_space, gym.spaces.Discrete):
            raise EvaluationError(
                f"epsilon-greedy evaluation needs a Discrete action space, not {policy.action_space}; "
                "evaluate with epsilon 0."
            )
        self.policy, self.deterministic, self.epsilon = policy, deterministic, epsilon
        policy.reset(len(seeds))
        seed_episodes = getattr(policy, "seed_episodes", None)
        if callable(seed_episodes):
            seed_episodes([int(s) for s in seeds])
        self._rngs = [np.random.default_rng([_EPSILON_STREAM, int(s)]) for s in seeds]

    def act(self, obs: Any, episode_start: np.ndarray) -> np.ndarray:
        """The policy's batched actions, each row replaced by a random action with probability epsilon."""
        actions = self.policy.act(obs, episode_start, deterministic=self.deterministic)
        if self.epsilon <= 0:
            return actions
        actions = np.array(actions, copy=True)  # (n,)
        n_actions = int(self.policy.action_space.n)  # type: ignore[attr-defined]  # Discrete, checked above
        for i, rng in enumerate(self._rngs):
            if rng.random() < self.epsilon:
                actions[i] = rng.integers(n_actions)
        return actions


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
    envs: gym.vector.VectorEnv, policy: Policy, seeds: Sequence[int], deterministic: bool, epsilon: float
) -> list[tuple[float, int, dict[str, float]]]:
    """One episode on each sub-env, seeded by `seeds`: (return, length, metrics) per sub-env."""
    n = len(seeds)
    obs, _ = envs.reset(seed=list(seeds))  # type: ignore[arg-type]  # one seed per sub-env; Gymnasium's stub says int
    chooser = EpisodeActions(policy, seeds, deterministic, epsilon)
    episode_start = np.ones(n, dtype=bool)
    returns = np.zeros(n, dtype=np.float64)
    lengths = np.zeros(n, dtype=np.int64)
    done = np.zeros(n, dtype=bool)
    metrics: list[dict[str, float]] = [{} for _ in range(n)]
    while not done.all():
        actions = chooser.act(obs, episode_start)
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
    epsilon: float | None = None,
    threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[EpisodeRecord]:
    """Run exactly one episode per seed and return their records, in seed order.

    Episodes run in waves of up to `n_envs` sub-envs (default min(episodes, 8)). `epsilon` (None: the
    protocol's, `eval_epsilon(env_id)`) replaces actions by random ones per episode (EpisodeActions).
    `threads` pins torch's CPU threads for the evaluation (None: leave them). `progress(done, total)`
    is called after every wave. Stochastic evaluations (`deterministic=False`) seed torch with each
    wave's first seed, inside a forked RNG so a periodic evaluation during training leaves the
    training's random stream untouched.
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
    eps = eval_epsilon(env_id) if epsilon is None else float(epsilon)

    results: list[tuple[float, int, dict[str, float]]] = []
    envs_by_size: dict[int, gym.vector.VectorEnv] = {}  # full waves, plus one smaller env for the rest
    try:
        with torch_threads(threads):
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
                    results.extend(_run_wave(envs_by_size[size], policy, wave_seeds, deterministic, eps))
                if progress is not None:
                    progress(len(results), episodes)
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

    Runs on the validation seeds (`validation_seeds`), the same every call, so successive scores differ
    only because the agent changed, and the `best` checkpoint they select is later measured on test
    seeds it was not chosen on. The callback calls `policy.reset`: hand it a policy whose recurrent
    state is not the rollout's.
    """
    seeds = validation_seeds(episodes)

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
        "eval/iqm_return": float(trim_mean(returns, 0.25)),
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
