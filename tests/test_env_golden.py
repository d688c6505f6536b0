"""Golden trajectories: a short seeded run of every registered rlsuite/ id hashes to the value recorded from
the code as it was before a refactor, so a change of the envs' structure cannot change their numbers.

The hash covers observations, rewards, terminated, truncated and the numeric info arrays of the vector env
(next-step autoreset included) and of the single env, floats to 9 decimals so that it holds on every CPU with
AVX2 or AVX-512. A deliberate change of an env's behaviour updates the table (run this file with `RECORD=1`
to print the new hashes) and the env's version history.
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
    "rlsuite/Highway-Continuous-v0@3": "2768a484af31b2e5aa75b843df3b9531660d954a421f4e9db31dacb1aeab4cec",
    "rlsuite/Highway-Dense-v0@3": "8204ea553c710b05e53a020308cc9826c92a7879f00f808c4c6163757bf3b75d",
    "rlsuite/Highway-Fast-v0@3": "e4440da72a520a3e16676cc6df55396434e07a96e0be0cc050f66c84c4b8699b",
    "rlsuite/Highway-Pixels-v0@3": "70b944746b166ca93f0a99682c74aa97c42961dc23fda99544c9117cb377917b",
    "rlsuite/Highway-PixelsSmall-v0@3": "a28b40c61d543983e9f8955949c176b78288dd7856daccb540a0d843d3982044",
    "rlsuite/Highway-v0@3": "81c50c8be5e681f0aafcf9800c3cdbf585576321298f91a8243788be440540ce",
    "rlsuite/MemoryCue-v0@3": "8979f76a211ad964b7230f3f45658febe645a49f6e6599d624559f8042a7d7d8",
    "rlsuite/Merge-Reference-v0@3": "a754ec0ea540ff9a94dfc7999d633958bd53d9c6fedd5e7d92e376bc016c682d",
    "rlsuite/Merge-v0@3": "6d75db46069148c4ac8573c7da59422a1a07eb6beb4a50e1e73f4583fb036e25",
    "rlsuite/Reacher-v0@3": "a98dd03404c79d56039af85bf2040831cf0b8f5df10fe39e9bb4dd1a6a081fdc",
    "rlsuite/Reacher3Link-v0@3": "10065cf2ea24fd08c95aa9473f6185332fe4350d58cd0efbce3d308797480f68",
    "rlsuite/ReacherGoal-v0@3": "56e414c8282b4dc78d97b9b3c433d63f0b2902fb76cc49c5f3fbaebd61a5a7d2",
    "rlsuite/ReacherPixels-v0@3": "6fd427893ec347cdf74961b38b6b47c986f5b64aa70a23f84bb08576dcb0c7af",
    "rlsuite/SpokenReach-v0@3": "a2a9d1ec67c27e3bae8371f576aad16a98f16c116102cbd8ac6ffa7a1c595808",
    "rlsuite/SpokenReachImage-v0@3": "2db45de5bcd17cc4e060c5e07a744d9261ad102c8e3656beb5793cdf5ad2ecd0",
    "rlsuite/TrafficArterial-v0@3": "ea4e96f8fd3ea44aa73bee07fb9c1355e1185e237765f421de6fc6f370f80eb1",
    "rlsuite/TrafficArterialShared-v0@3": "da9ce468637d1812b85ed28f40acdb50eb82fdbc05837e516ce2d6aa5060dc39",
    "rlsuite/TrafficGrid-v0@3": "3a3c77d2314cc321fa33de75d4f292b74b367ff740815150fa0c5a47c0ca251b",
    "rlsuite/TrafficGrid4x4-v0@3": "4bd7a6e002c2c192c35cebdf7213b029a13d63a781f347533defa7597139b825",
    "rlsuite/TrafficGrid4x4Shared-v0@3": "2a2e27a30593ad92da30f05ca8f14700935bd93afa1e2a069ef04aa7a7cf0c14",
    "rlsuite/TrafficGridShared-v0@3": "c56e859a3f885d9f4d219079f718093e0522504c018693482c3338db95b62b9e",
    "rlsuite/TrafficSingle-v0@3": "3be379bbb1ee3bfdedd1490d9c4311e8d996ec3b7e5a8e1c532e857bf24b4337",
    "rlsuite/TrafficSingleShared-v0@3": "386ccb2fe520a598f7e1167cdac807d856c7558c89094f8eed74381f63225b89",
    "rlsuite/Highway-Fast-v0@64": "c6b4a92a073a6cf8cc4e2815f5e4f0d29ef51e1e5fd3362e87ece928bdf6d2ef",
    "rlsuite/Highway-v0@64": "0a13d615b2f27713d5e18fca4be7a0214d7a379cceea6b3b27051f384415a685",
    "rlsuite/TrafficSingle-v0@3:single_sumo": "da7b0f997bdcf22e21a51756d6046b4ddfec401d9f85f04d2097f644dfe32960",
    "rlsuite/TrafficSingleShared-v0@3:single_sumo": "4c53e0578c217088c1ce49a09b1bd6cd868245b8e66346d9fa65f48f2bdc8726",
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
    if array.dtype.kind == "f":
        # NumPy's SIMD kernels differ in the last bits between CPUs (AVX-512 against AVX2: up to 3.3e-16 on these
        # trajectories); 9 decimals hide that and nothing an env change does. + 0.0 turns -0.0 into 0.0. (A CPU
        # without AVX2 and its FMA rounds float32 differently, and Highway's dynamics amplify that ulp.)
        array = np.round(array.astype(np.float64), 9) + 0.0
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
