"""Diagnostic: PPO on SpokenReach with the command given as a one-hot in the state and no audio.

Separates the two halves of SpokenReach: hearing (which word was said) and the gated reach (steer by the
named target's coordinates). Here hearing is solved by construction, so what is measured is whether
PPO learns the reach to a selected target under a reward rule and a set of hyperparameters.

The diagnostic env `diagnostic/SpokenOracle-v0` is registered by this script only (never a user-facing
id): SpokenReach's vector core with `mute=True` (no audio cost), observed as one flat Box:

- `obs="onehot"`: SpokenReach's state (16 floats: cos, sin, joint velocities, fingertip, 4 targets) plus
  the command one-hot (4);
- `obs="offsets"`: the same plus every fingertip-to-target offset (8);
- `obs="dict"`: a Dict of `state` (SpokenReach's 16 floats) and `command` (the one-hot), for the Dict
  encoder (DictEncoder);
- the `pointer` family, what a policy behind a pointer into the state could read (the ablation behind
  spoken_pointer's `select` and `offset`): `pointer` is `onehot` plus the named target's x, y;
  `pointer_off` adds the fingertip's offset from it; `pointer_nodis` is `pointer_off` without the other
  targets (arm state, one-hot, named target, offset); `pointer_min` is the arm state and the named target
  only;
- `obs="named"`: Reacher's layout for the named target only (the sanity check: this is Reacher with
  three distractors that only the wrong-target penalty sees; it is also exactly what spoken_pointer with `select:
  "state:8:16", offset: "6:8"` gives the MLPs when the classifier names the command).

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/spoken_oracle.py --obs onehot --steps 300000 \
        --env-kwarg wrong_penalty_on=enter --set hidden_sizes=256,256

prints the success, wrong-target rate and mean return of the final policy on 200 fresh seeds
(3,000,000+), with the training CPU time.
"""

from __future__ import annotations

import argparse
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from _common import train_ppo_then_evaluate
from gymnasium.vector.utils import batch_space

from rlsuite.envs.spoken import SpokenReachEnv, SpokenReachVectorEnv
from rlsuite.train import prepare_settings

ENV_ID = "diagnostic/SpokenOracle-v0"
OBS_KINDS = ("onehot", "offsets", "named", "dict", "pointer", "pointer_off", "pointer_nodis", "pointer_min")


def oracle_obs(env: Any, kind: str) -> Any:
    """(N, D) float32 flat observation (or a Dict of them) of a SpokenReach env with the command given, not heard."""
    core, s = env.core, env.state
    if kind == "dict":
        return {"command": np.eye(core.num_targets, dtype=np.float32)[s.command],
                "state": core.observe(s)["state"]}
    state = core.observe(s)["state"].astype(np.float64)  # (N, 16)
    n, k = core.num_envs, core.num_targets
    tip = s.arm.tip  # (N, 2), m
    named = s.targets[np.arange(n), s.command]  # (N, 2), m
    onehot = np.eye(k)[s.command]  # (N, k)
    arm = state[:, :8]  # cos, sin, joint velocities, fingertip
    parts = {
        "named": [arm, named, tip - named],
        "onehot": [state, onehot],
        "offsets": [state, onehot, (tip[:, None, :] - s.targets).reshape(n, -1)],  # (N, 2k) offsets, m
        "pointer": [state, onehot, named],
        "pointer_off": [state, onehot, named, tip - named],
        "pointer_nodis": [arm, onehot, named, tip - named],
        "pointer_min": [arm, named],
    }[kind]
    return np.concatenate(parts, 1).astype(np.float32)


def _space(kind: str) -> gym.Space:
    if kind == "dict":
        return gym.spaces.Dict({"command": gym.spaces.Box(0, 1, (4,), np.float32),
                                "state": gym.spaces.Box(-np.inf, np.inf, (16,), np.float32)})
    size = {"onehot": 20, "offsets": 28, "named": 12, "pointer": 22, "pointer_off": 24, "pointer_nodis": 16, "pointer_min": 10}[kind]
    return gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)


def _row(obs: Any) -> Any:
    return {k: v[0] for k, v in obs.items()} if isinstance(obs, dict) else obs[0]


class OracleEnv(gym.Env):
    """Single env (for the space checks): SpokenReach muted, observed as `oracle_obs`."""

    metadata = {"render_modes": []}

    def __init__(self, obs: str = "onehot", **kwargs: Any) -> None:
        self.inner = SpokenReachEnv(mute=True, **kwargs)
        self.kind = obs
        self.observation_space, self.action_space = _space(obs), self.inner.action_space

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        _, info = self.inner.reset(seed=seed)
        return _row(oracle_obs(self.inner, self.kind)), info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        _, r, term, trunc, info = self.inner.step(action)
        return _row(oracle_obs(self.inner, self.kind)), r, term, trunc, info


class OracleVectorEnv(gym.vector.VectorEnv):
    """SpokenReach's vector env muted (next-step autoreset, row i == seed + i), observed as `oracle_obs`."""

    metadata = {"render_modes": [], "autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int, obs: str = "onehot", render_mode: str | None = None, **kwargs: Any) -> None:
        self.inner = SpokenReachVectorEnv(num_envs, mute=True, **kwargs)
        self.kind, self.num_envs = obs, num_envs
        self.single_observation_space, self.single_action_space = _space(obs), self.inner.single_action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = self.inner.action_space

    def reset(self, *, seed: Any = None, options: Any = None) -> tuple[Any, dict]:
        _, info = self.inner.reset(seed=seed)
        return oracle_obs(self.inner, self.kind), info

    def step(self, actions: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        _, r, term, trunc, info = self.inner.step(actions)
        return oracle_obs(self.inner, self.kind), r, term, trunc, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--obs", choices=OBS_KINDS, default="onehot")
    parser.add_argument("--steps", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--env-kwarg", nargs="*", default=[], help="SpokenReach kwargs, key=value")
    parser.add_argument("--set", nargs="*", default=[], help="PPO settings overrides, key=value")
    parser.add_argument("--run-dir", default=None, help="keep the run here (default: a temporary folder)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    gym.register(ENV_ID, entry_point=OracleEnv, vector_entry_point=OracleVectorEnv, kwargs={"obs": args.obs})
    env_kwargs: dict[str, Any] = {}
    for item in args.env_kwarg:
        key, value = item.split("=", 1)
        env_kwargs[key] = float(value) if key == "wrong_penalty" else value
    # Reacher's preset as the starting point (agents/presets/ppo.yaml), then --set
    base = ["n_envs=16", "n_steps=64", "n_minibatches=8", "n_epochs=10", "gamma=0.95", "gae_lambda=0.95",
            "learning_rate=1e-3", "anneal_lr=true", "ent_coef=0.0", "normalize_obs=true", "normalize_reward=true",
            "log_std_init=-0.5", "eval_every=0"]
    settings = prepare_settings("ppo", ENV_ID, cli_values={"seed": args.seed, "tensorboard": False,
                                                           "total_steps": args.steps},
                                set_args=base + args.set, env_kwargs=env_kwargs)
    episodes, clock = train_ppo_then_evaluate(settings, ENV_ID, args.seed, "spoken_oracle",
                                              eval_seeds=range(3_000_000, 3_000_200), n_envs=100,
                                              env_kwargs=env_kwargs, run_dir=args.run_dir)
    success = float(np.mean([e.metrics["is_success"] for e in episodes]))
    wrong = float(np.mean([e.metrics["wrong_target"] for e in episodes]))
    ret = float(np.mean([e.episode_return for e in episodes]))
    print(f"obs={args.obs} env {env_kwargs} set {args.set}: success {success:.3f}, wrong {wrong:.3f}, "
          f"return {ret:.2f}; {args.steps} steps, {clock.cpu:.0f} CPU s ({clock.wall:.0f} s wall)", flush=True)


if __name__ == "__main__":
    main()
