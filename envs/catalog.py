"""Which env ids can be made here, what to install for those that cannot, and the list `rlsuite list envs` shows.

Light-weight on purpose: it reads Gymnasium's registry and looks optional packages up with
`importlib.util.find_spec`, importing none of them, so an id whose dependency is missing is refused at
once with the command that installs it (instead of a traceback from deep inside Gymnasium).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import gymnasium as gym

# Gymnasium modules (by prefix of the entry point) -> (the package they import, the command that installs it).
_NEEDS: tuple[tuple[str, str, str], ...] = (
    ("gymnasium.envs.box2d", "Box2D", 'pip install swig && pip install "gymnasium[box2d]"'),
    ("gymnasium.envs.mujoco", "mujoco", 'pip install "gymnasium[mujoco]"'),
    ("gymnasium.envs.phys2d", "jax", 'pip install "gymnasium[jax]"'),
    ("gymnasium.envs.tabular", "jax", 'pip install "gymnasium[jax]"'),
    ("gymnasium.envs.functional_jax_env", "jax", 'pip install "gymnasium[jax]"'),
    ("gymnasium.envs.classic_control", "pygame", 'pip install "gymnasium[classic-control]"'),
    ("gymnasium.envs.toy_text", "pygame", 'pip install "gymnasium[toy-text]"'),
    ("ale_py", "ale_py", 'pip install "rlsuite[atari]"'),
)


_FAMILIES = {"classic_control": "classic control", "toy_text": "toy text", "mujoco": "MuJoCo", "box2d": "Box2D",
             "phys2d": "JAX physics", "tabular": "JAX tabular"}


@dataclass(frozen=True)
class EnvEntry:
    """One line of `rlsuite list envs`."""

    env_id: str
    group: str
    """"rlsuite", "atari" or "gymnasium"."""
    description: str


def _entry_module(spec: gym.envs.registration.EnvSpec) -> str:
    entry = spec.entry_point
    if isinstance(entry, str):
        return entry.partition(":")[0]
    return f"{getattr(entry, '__module__', '')}:{getattr(entry, '__name__', '')}"


def unavailable_reason(env_id: str) -> str | None:
    """None when `env_id` can be made here; else what is missing and the command that installs it."""
    spec = gym.registry.get(env_id)
    if spec is None:
        return None  # an unknown id is check_env_id's to report, with close matches
    module = _entry_module(spec)
    if module.endswith("_raise_mujoco_py_error"):
        name, _, _ = env_id.rpartition("-v")
        return (f"{env_id} needs mujoco-py, which Gymnasium 1.x no longer supports: use {name}-v5 "
                f"(pip install \"gymnasium[mujoco]\").")
    if module.endswith("_raise_shimmy_error"):
        return f"{env_id} wraps old OpenAI Gym envs through shimmy, which is not installed: pip install \"shimmy[gym-v26]\"."
    for prefix, package, command in _NEEDS:
        if module.startswith(prefix) and importlib.util.find_spec(package) is None:
            return f"{env_id} needs the package {package!r}, which is not installed here. Install it with: {command}"
    return None


def rlsuite_descriptions() -> dict[str, str]:
    """One line per rlsuite/ id (registered in envs/__init__.py)."""
    from rlsuite.envs import DESCRIPTIONS

    return dict(DESCRIPTIONS)


def env_catalog() -> list[EnvEntry]:
    """rlsuite's envs first, then the ALE games when ale-py is installed, then the rest of Gymnasium's
    registry that can be made here (ids whose dependency is missing are left out)."""
    import rlsuite.envs  # noqa: F401  (registers the rlsuite/ ids)

    entries = [EnvEntry(env_id, "rlsuite", line) for env_id, line in rlsuite_descriptions().items()]
    if importlib.util.find_spec("ale_py") is not None:
        import ale_py

        gym.register_envs(ale_py)
        entries += [EnvEntry(env_id, "atari", f"Atari 2600 {env_id[4:-3]} on the ALE, with the preset's preprocessing "
                             f"(also as {env_id[4:-3]}NoFrameskip-v4)")
                    for env_id in sorted(gym.registry) if env_id.startswith("ALE/") and env_id.endswith("-v5")
                    and "-ram" not in env_id]
    taken = {e.env_id for e in entries}
    for env_id, spec in sorted(gym.registry.items()):
        if env_id in taken or env_id.startswith(("rlsuite/", "ALE/")) or _entry_module(spec).startswith("ale_py"):
            continue
        if unavailable_reason(env_id) is None:
            family = _entry_module(spec).split(".")[2] if _entry_module(spec).startswith("gymnasium.envs.") else ""
            entries.append(EnvEntry(env_id, "gymnasium", f"Gymnasium {_FAMILIES.get(family, family)}".rstrip()))
    return entries
