"""Building single and vector envs the same way for training, evaluation and recording.

Every vector env we hand out uses Gymnasium's next-step autoreset, stated explicitly: after a step
that ends an episode, the following step ignores its action and returns the reset observation with
reward 0. Agents mask that one transition out (see agents/ppo.py); in exchange the final observation
of a truncated episode arrives as an ordinary next observation, ready for bootstrapping.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import yaml
from gymnasium.vector import AutoresetMode

from rlsuite.envs.atari_scores import ATARI_SCORE_SOURCE, ATARI_SCORES, atari_game_ids, is_atari_id
from rlsuite.envs.catalog import unavailable_reason

VectorMode = Literal["auto", "sync", "async", "vector_entry_point"]
VECTOR_MODES: tuple[str, ...] = ("auto", "sync", "async", "vector_entry_point")
Purpose = Literal["train", "eval"]


class EnvError(ValueError):
    """A user-facing problem with an env id or env settings; the message says what to do."""


# Packages that register env ids when imported, keyed by the id prefix they own.
_ENV_PROVIDERS: dict[str, str] = {"ALE/": "ale_py", "rlsuite/": "rlsuite.envs"}


def check_env_id(env_id: str) -> gym.envs.registration.EnvSpec:
    """The spec of `env_id`, or an EnvError naming close matches, or (for an id whose optional dependency is
    missing) the command that installs it."""
    for prefix, module in _ENV_PROVIDERS.items():
        if env_id.startswith(prefix):
            try:
                importlib.import_module(module)
            except ImportError as err:
                raise EnvError(
                    f"Env id {env_id!r} needs the package {module!r}, which is not installed ({err}). "
                    f"Install it (for Atari: pip install 'rlsuite[atari]') and try again."
                ) from None
    if is_atari_id(env_id):  # *NoFrameskip-v4 ids have no ALE/ prefix
        try:
            import ale_py

            gym.register_envs(ale_py)
        except ImportError as err:
            raise EnvError(f"Env id {env_id!r} needs ale-py ({err}): pip install 'rlsuite[atari]'.") from None
    if env_id in gym.registry:
        missing = unavailable_reason(env_id)
        if missing is not None:
            raise EnvError(missing)
        return gym.registry[env_id]
    close = difflib.get_close_matches(env_id, list(gym.registry), n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise EnvError(
        f"Unknown env id {env_id!r}.{hint} Run `rlsuite list envs` for every registered id; "
        f"ids of optional packages (Box2D, ALE) appear once those are installed."
    )


def _check_preset(env_id: str, preset: str, purpose: str) -> None:
    if purpose not in ("train", "eval"):
        raise EnvError(f"Unknown env purpose {purpose!r}; accepted: train, eval.")
    if preset and not is_atari_id(env_id):
        raise EnvError(f"{env_id} has no preprocessing presets (env_preset={preset!r}); leave env_preset empty. "
                       f"Presets exist for Atari ids (ALE/<Game>-v5, <Game>NoFrameskip-v4).")


def describe_env_preset(env_id: str, preset: str = "", purpose: Purpose = "train") -> dict[str, Any] | None:
    """The preprocessing preset `env_id` gets and its settings, for manifests and reports; None if it has none."""
    _check_preset(env_id, preset, purpose)
    if not is_atari_id(env_id):
        return None
    from rlsuite.envs.atari import get_preset

    return get_preset(preset).describe(purpose)


# --- env keyword arguments from the command line ---
_NOT_ENV_KWARGS = ("self", "render_mode", "num_envs")  # set by the factory, not by the user


def env_kwarg_types(env_id: str) -> dict[str, Any] | None:
    """Keyword arguments the env constructor of `env_id` accepts -> their annotation (Any if unknown).

    Read from the registered entry point's signature; an entry point that only forwards `**kwargs` can
    declare its real parameters with `__signature__`. None when the accepted names cannot be known.
    """
    spec = check_env_id(env_id)
    entry = spec.entry_point
    creator = gym.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry
    if creator is None:
        return None
    try:
        try:
            signature = inspect.signature(creator, eval_str=True)
        except Exception:  # noqa: BLE001  (annotations naming TYPE_CHECKING-only types: read them as text)
            signature = inspect.signature(creator)
    except (TypeError, ValueError):
        return None
    params = [p for p in signature.parameters.values() if p.name not in _NOT_ENV_KWARGS]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name: p.annotation if p.annotation is not inspect.Parameter.empty and not isinstance(p.annotation, str)
            else Any for p in params if p.kind in keyword}


def parse_env_kwargs(items: Sequence[str]) -> dict[str, str]:
    """`["profile=held_out", "pressure=true"]` -> {"profile": "held_out", "pressure": "true"}; later repeats win.
    The text is typed by `check_env_kwargs`, which knows the env's annotations."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key.isidentifier():
            raise EnvError(f"Malformed --env-kwarg {item!r}: expected key=value with a keyword of the env's "
                           f"constructor, e.g. --env-kwarg profile=held_out.")
        out[key] = raw.strip()
    return out


def _fit(tp: Any, value: Any) -> Any:
    """A value for annotation `tp`: command-line text stays text for string fields and is read as a YAML
    scalar otherwise (true/false, numbers, null, [lists]); whole numbers widen for float fields."""
    union = typing.get_origin(tp) in (typing.Union, types.UnionType)
    arms = typing.get_args(tp) if union else (tp,)
    if isinstance(value, str) and not (str in arms and not any(a in arms for a in (bool, int, float))):
        try:
            value = yaml.safe_load(value) if value else value
        except yaml.YAMLError:
            pass
    if float in arms and int not in arms and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def check_env_kwargs(env_id: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """`kwargs` checked against the keywords `env_id`'s constructor accepts (an EnvError lists them) and
    typed by their annotations; the env is then built once with them, so that a value it refuses (its own
    ValueError, or a TypeError of a **kwargs constructor) is reported as an EnvError before any work."""
    accepted = env_kwarg_types(env_id)
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        if accepted is not None and key not in accepted:
            close = difflib.get_close_matches(key, list(accepted), n=3, cutoff=0.6)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise EnvError(f"{env_id} takes no keyword argument {key!r}.{hint} "
                           f"Accepted env kwargs: {', '.join(accepted) or 'none'}.")
        out[key] = _fit(Any if accepted is None else accepted[key], value)
    if out:
        try:
            make_env(env_id, **out).close()
        except EnvError:
            raise
        except (TypeError, ValueError) as err:
            names = f" Accepted env kwargs: {', '.join(accepted)}." if accepted is not None else ""
            raise EnvError(f"{env_id} refused the env kwargs {out!r}: {err}{names}") from None
    return out


def make_env(env_id: str, render_mode: str | None = None, *, preset: str = "", purpose: Purpose = "eval",
             **env_kwargs: Any) -> gym.Env:
    """One env, as `gym.make` builds it, after checking the id.

    Env families with preprocessing presets (Atari, envs/atari/) get theirs: `preset` ("" = the
    family's default) and `purpose`: a single env serves evaluation, recording and reading spaces, so
    it defaults to the evaluation protocol.
    """
    spec = check_env_id(env_id)
    _check_preset(env_id, preset, purpose)
    if is_atari_id(env_id):
        from rlsuite.envs.atari import make_atari

        return make_atari(env_id, preset, purpose, render_mode=render_mode, **env_kwargs)
    return gym.make(spec, render_mode=render_mode, **env_kwargs)


def make_vec_env(
    env_id: str,
    num_envs: int,
    mode: VectorMode = "auto",
    record_stats: bool = True,
    *,
    preset: str = "",
    purpose: Purpose = "train",
    **env_kwargs: Any,
) -> gym.vector.VectorEnv:
    """A vector env with next-step autoreset and, by default, episode statistics in `info["episode"]`.

    `mode="auto"` takes the env's natively vectorised core when it has one (`vector_entry_point`),
    else Gymnasium's SyncVectorEnv. The caller seeds it with `reset(seed=...)`. Atari ids get the
    preprocessing `preset` for `purpose` (training by default; the harness asks for "eval").
    """
    if mode not in VECTOR_MODES:
        raise EnvError(f"Unknown vectorization mode {mode!r}; accepted: {', '.join(VECTOR_MODES)}.")
    if num_envs < 1:
        raise EnvError(f"num_envs must be at least 1, got {num_envs}.")
    spec = check_env_id(env_id)
    _check_preset(env_id, preset, purpose)
    if is_atari_id(env_id):
        from rlsuite.envs.atari import make_atari_env

        # whole-game raw scores in info["episode"], across episodic-life episodes and reward clipping
        return make_atari_env(env_id, num_envs, preset, purpose=purpose, mode=mode, record_stats=record_stats,
                              **env_kwargs)
    if mode == "auto":
        mode = "vector_entry_point" if spec.vector_entry_point is not None else "sync"
    if mode == "vector_entry_point" and spec.vector_entry_point is None:
        raise EnvError(f"{env_id} has no natively vectorised core; use mode 'sync' or 'async'.")
    vector_kwargs: dict[str, Any] = {}
    if mode != "vector_entry_point":
        vector_kwargs["autoreset_mode"] = AutoresetMode.NEXT_STEP
    envs = gym.make_vec(spec, num_envs=num_envs, vectorization_mode=mode, vector_kwargs=vector_kwargs, **env_kwargs)
    autoreset = envs.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    if autoreset != AutoresetMode.NEXT_STEP:
        envs.close()
        raise EnvError(f"{env_id} vectorises with autoreset mode {autoreset}; rlsuite agents need next-step autoreset.")
    if record_stats:
        envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)
    return envs


@dataclass(frozen=True)
class ReferenceScore:
    """Scores that normalise returns in reports: random -> 0, reference -> 1."""

    random: float
    reference: float
    source: str


# Gymnasium's classic envs: `reference` is the best achievable (or the usual "solved") return; `random`
# is a uniform random policy's mean return, measured with rlsuite's harness (100 episodes, seeds 10_000+).
_REFERENCE_SCORES: dict[str, ReferenceScore] = {
    "CartPole-v1": ReferenceScore(random=22.0, reference=500.0, source="maximum return (500 steps)"),
    # --- memory task ---
    "rlsuite/MemoryCue-v0": ReferenceScore(random=0.25, reference=1.0, source="chance with 4 cues; always right"),

    # --- driving ---
    "rlsuite/Highway-v0": ReferenceScore(random=8.80, reference=21.89, source="highway-idm baseline (IDM ego, keeps its lane), 100 episodes"),
    # Highway-Fast-v0's traffic has politeness 0, so it cuts in more often: highway-idm scores 21.55 with 2% crashes
    # (100 episodes, seeds 10,000+, as Highway-v0's entry), random 7.84 (the same for any batching of the harness).
    "rlsuite/Highway-Fast-v0": ReferenceScore(random=7.84, reference=21.55, source="highway-idm baseline (IDM ego, keeps its lane), 100 episodes"),
    "rlsuite/Merge-v0": ReferenceScore(random=5.32, reference=18.99, source="highway-idm baseline (IDM ego, keeps its lane), 100 episodes"),

    # --- traffic ---
    # Returns (minus waiting time / 100, summed over intersections) of the random and max-pressure
    # baselines, rlsuite's harness, 8 episodes, seeds 1_000_000+, training profiles. The shared ids
    # (one row per intersection) score the same team return.
    **{f"rlsuite/Traffic{name}{shared}-v0": ReferenceScore(random=rnd, reference=mp, source="max-pressure controller")
       for name, rnd, mp in (("Single", -244.5, -78.5), ("Arterial", -897.9, -346.0), ("Grid", -836.3, -303.7),
                                 ("Grid4x4", -3323.3, -1222.7))
       for shared in ("", "Shared")},

    # --- robot arm and spoken commands ---
    # reference: the reacher_pd baseline (IK + computed-torque PD), 100 episodes, seeds 10_000+
    "rlsuite/Reacher-v0": ReferenceScore(random=-14.4, reference=-3.29, source="reacher_pd baseline (IK + PD)"),
    "rlsuite/Reacher3Link-v0": ReferenceScore(random=-15.8, reference=-4.48, source="reacher_pd baseline (IK + PD)"),
    "rlsuite/ReacherGoal-v0": ReferenceScore(random=-14.4, reference=-3.29, source="reacher_pd baseline (IK + PD)"),
    # SpokenReach with the default wrong-target penalty at the episode's end (with the per-step rule the same
    # protocol gives random -14.8, spoken_pd -4.09)
    "rlsuite/SpokenReach-v0": ReferenceScore(random=-14.0, reference=-3.34,
                                             source="spoken_pd baseline (word classifier + IK + PD), train voices"),

    # --- Atari ---
    # reference = human: normalised scores are human-normalised, (score - random) / (human - random)
    **{env_id: ReferenceScore(random=random, reference=human, source=ATARI_SCORE_SOURCE)
       for game, (random, human) in ATARI_SCORES.items() for env_id in atari_game_ids(game)},

    # --- end of reference scores ---
}


def reference_score(env_id: str) -> ReferenceScore | None:
    """The reference scores of `env_id`, or None when rlsuite knows none."""
    return _REFERENCE_SCORES.get(env_id)
