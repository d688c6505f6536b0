"""Golden trajectories: a short seeded run of every registered rlsuite/ id hashes to the value recorded from
the code as it was before a refactor, so a change of the envs' structure cannot change their numbers.

The hash covers observations, rewards, terminated, truncated and the numeric info arrays of the vector env
(next-step autoreset included) and of the single env. A deliberate change of an env's behaviour updates
the table (run this file with `RECORD=1` to print the new hashes) and the env's version history.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import yaml

import rlsuite.envs  # noqa: F401  (registers the ids)

IDS = sorted(env_id for env_id in gym.registry if env_id.startswith("rlsuite/"))
SCENARIOS = Path(rlsuite.envs.__file__).parent / "scenarios"

GOLDEN: dict[str, str] = {
    "rlsuite/Highway-Continuous-v0@3": "eba9ebf8efd08fb59eb299b3f546d79df33b1783098b848f812d75dd92368f6a",
    "rlsuite/Highway-Dense-v0@3": "9bd26736ba8d1343a1c6a6a238fae3ffc87ad33ffa9bb5a2a5f687c622bdf8d3",
    "rlsuite/Highway-Fast-v0@3": "4b064c4afc8807bd214498f6d7a12c86b5516926cc1abfa8ae500ef4010b0bcb",
    "rlsuite/Highway-Pixels-v0@3": "67cdbd91a6e77302944c4126163c6ad0bb685ac454a147274c3d9600ba13b530",
    "rlsuite/Highway-PixelsSmall-v0@3": "9e87aec1296e1af9dd24c2391ece4f4bdb2430340080759cb564ba4cf0aea3ba",
    "rlsuite/Highway-v0@3": "6b02c756c72c71e13ddd68afeed74e223a8046e34900687cc385dcaa9fa3b341",
    "rlsuite/MemoryCue-v0@3": "cf61208ff4c3fe72f75116cd7147a7f694e1b4cb74a2452509bb2c36a414b8f9",
    "rlsuite/Merge-Reference-v0@3": "32aff7ebfb7c3fdc2838cab2d252481a2fe94773df218e62fe49d3682f1698df",
    "rlsuite/Merge-v0@3": "db32b2c9f80ee57f2bc86f748ab9d9a8a7299f0132f91cf7bc823c1df1c17c08",
    "rlsuite/Reacher-v0@3": "b3cf9d4f5c5449814c91f3ef32f9c214370b37e327ca70132209e2d798d96bd8",
    "rlsuite/Reacher3Link-v0@3": "e926ddc59ed3b3a21368eb151823489efd09e552d48146dabcd6c88b42311466",
    "rlsuite/ReacherGoal-v0@3": "0bd6ca21e4f1ca9296d7a3e663df2ac394c1a201ebda19eb27f1c112dc812b78",
    "rlsuite/ReacherPixels-v0@3": "1afb90967e4776585d223771c2e105a2a713ce658316bb59de08fe69cfc6c46c",
    "rlsuite/SpokenReach-v0@3": "26e5f9c10c44fff6ffab68af6c3383e7a0c8ff89896d3b610c8c87308c050246",
    "rlsuite/SpokenReachImage-v0@3": "bae8bae615345089aff7bd74e32c456b8fd449437865665fb1422f3065273ccc",
    "rlsuite/TrafficArterial-v0@3": "4a6766c0eef6db1a21f79ef0e857c6c7e1b6335b0a5bfeb37de07cbead464727",
    "rlsuite/TrafficArterialShared-v0@3": "569f8923abe76491bca789139cd297f31d47bb815ec9e4ef7cb648f9765fdc8a",
    "rlsuite/TrafficGrid-v0@3": "1ba7924a28a3ce7697d927f9761e51677fff304213790c54e61ce93c58db486a",
    "rlsuite/TrafficGrid4x4-v0@3": "c066353cd071ba7e5ae53d3adaabf294533324b6f160e28c5cb39db32ddcf17a",
    "rlsuite/TrafficGrid4x4Shared-v0@3": "10066b3896f4f13c1d4ee52a4a1fb8017aa839a52328a833b9a36aa6be8dca6c",
    "rlsuite/TrafficGridShared-v0@3": "252d261c66b7a78748ba36d1b32b5104689bff5f0c490a0d775d10d9f877651c",
    "rlsuite/TrafficSingle-v0@3": "a5a30031201f4fe78be8d89214669c759da9c671aa7705c1e97fb680e2936fa1",
    "rlsuite/TrafficSingleShared-v0@3": "14a375b382689178ab7e28c37a10ed86b6187540306eb4cf9950e49d8dc976cb",
    "rlsuite/Highway-Fast-v0@64": "f235c8de9e0df8fdbcaaaeb536a5553d42a4022b0d6c3165aca937c205ef754d",
    "rlsuite/Highway-v0@64": "5aa56e755dfa3c03764b26c34f0ebe32ae20c438c0bf09fbb39c1b3bd9763501",
    "rlsuite/TrafficSingle-v0@3:single_sumo": "e58c4dbac8b24348f65f48000085bcb17c3896375be3d5f4ce2e4cdebbce51de",
    "rlsuite/TrafficSingleShared-v0@3:single_sumo": "ad9be6a00b0da646eb892a7156fd358d78908dbbae56198692a0db5318243fd0",
}


def _short(env_id: str, scenario: str | None = None) -> dict[str, Any]:
    """Traffic episodes of 40 s (8 decisions), so the run sees autoresets; `scenario` replaces the id's."""
    scenario = scenario or gym.spec(env_id).kwargs.get("scenario")
    if scenario is None:
        return {}
    raw = yaml.safe_load((SCENARIOS / f"{scenario}.yaml").read_text())
    raw["duration_s"] = 40
    return {"scenario": raw}


def _steps(env_id: str) -> int:
    return 6 if "Pixels" in env_id or "Image" in env_id else 40


def _feed(h: Any, value: Any) -> None:
    if isinstance(value, dict):
        for key in sorted(value):
            if key in ("episode", "_episode", "final_obs", "_final_obs", "final_info", "_final_info", "profile"):
                continue
            h.update(key.encode())
            _feed(h, value[key])
        return
    if isinstance(value, tuple | list):
        for item in value:
            _feed(h, item)
        return
    array = np.asarray(value)
    if array.dtype == object:
        return
    h.update(str(array.dtype).encode() + str(array.shape).encode())
    h.update(np.ascontiguousarray(array).tobytes())


def trajectory_hash(env_id: str, num_envs: int = 3, scenario: str | None = None) -> str:
    """sha256 of a seeded run: the vector env of `num_envs` rows, then the single env."""
    kwargs = _short(env_id, scenario)
    if "Shared" in env_id:  # one row per intersection: two networks
        from rlsuite.envs.traffic import load_network

        num_envs = 2 * load_network(kwargs["scenario"]).num_nodes
    h = hashlib.sha256()
    vec = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
    _feed(h, vec.reset(seed=11))
    vec.single_action_space.seed(3)
    for _ in range(_steps(env_id)):
        _feed(h, vec.step(np.stack([vec.single_action_space.sample() for _ in range(num_envs)])))
    env = gym.make(env_id, **kwargs)
    _feed(h, env.reset(seed=5))
    env.action_space.seed(4)
    for _ in range(_steps(env_id)):
        out = env.step(env.action_space.sample())
        _feed(h, out)
        if out[2] or out[3]:
            _feed(h, env.reset())
    return h.hexdigest()


# (id, rows, shipped scenario instead of the id's own): the registered ids, Highway's big batches, and the
# traffic scenarios no id registers
CASES: list[tuple[str, int, str | None]] = [(env_id, 3, None) for env_id in IDS] + [
    ("rlsuite/Highway-Fast-v0", 64, None), ("rlsuite/Highway-v0", 64, None),
    ("rlsuite/TrafficSingle-v0", 3, "single_sumo"), ("rlsuite/TrafficSingleShared-v0", 3, "single_sumo")]


@pytest.mark.parametrize(("env_id", "num_envs", "scenario"), CASES)
def test_trajectory_matches_the_recorded_hash(env_id: str, num_envs: int, scenario: str | None) -> None:
    """Highway at 64 rows takes the big-batch code paths (split IDM, windowed collisions)."""
    digest = trajectory_hash(env_id, num_envs, scenario)
    key = f"{env_id}@{num_envs}" + (f":{scenario}" if scenario else "")
    if os.environ.get("RECORD"):
        print(f'    "{key}": "{digest}",')
        return
    assert digest == GOLDEN[key], f"{key}: the trajectory changed"
