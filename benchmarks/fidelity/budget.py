"""CPU-second budgets for training in the reference simulators, and SB3 policies saved without pickle.

A budget is process CPU time (`time.process_time`): libsumo and highway-env run inside the training
process, so the simulator's time counts, as our env's does when rlsuite trains. One SB3 run per seed
writes a snapshot whenever it passes each budget in `budgets_s` (1x and 10x of our training's CPU time
come from the same run; SB3's learning rate is constant, so the 1x snapshot is what a 1x run would
have learnt). A snapshot is the policy's tensors (safetensors) and a JSON file with the steps and CPU
seconds it took.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from safetensors.torch import load_file, save_file
from stable_baselines3.common.callbacks import BaseCallback


def train_ppo_preset(env_id: str, env_kwargs: dict[str, Any], seed: int, folder: Path, command: str,
                     total_steps: int | None = None) -> Path:
    """rlsuite's PPO preset for `env_id` with `env_kwargs`, one torch thread, in a run folder under `folder`
    that also records the training's process CPU seconds (cpu_seconds.json). `total_steps` replaces the
    preset's budget (a quick check of the pipeline, not a result)."""
    from rlsuite.agents.run import RunFolder
    from rlsuite.agents.settings import settings_to_dict
    from rlsuite.train import prepare_settings, run_training

    torch.set_num_threads(1)
    cli_values: dict[str, Any] = {"seed": seed, "tensorboard": False}
    if total_steps is not None:
        cli_values["total_steps"] = total_steps
    settings = prepare_settings("ppo", env_id, cli_values=cli_values, env_kwargs=env_kwargs)
    run = RunFolder.create(folder, agent="ppo", env_id=env_id, seed=seed, settings=settings_to_dict(settings),
                           command=command, device="cpu")
    cpu = time.process_time()
    result = run_training("ppo", settings, run, show_progress=False)  # Ctrl-C: stops, checkpoints, returns
    cpu = time.process_time() - cpu
    (run.path / "cpu_seconds.json").write_text(json.dumps({"cpu_s": round(cpu, 2), "steps": result.final_step,
                                                          "status": result.status}))
    print(f"ours {folder.name} seed {seed}: {result.final_step} steps ({result.status}), {cpu:.1f} CPU s "
          f"({run.path})", flush=True)
    return run.path


class CpuBudgetSnapshots(BaseCallback):
    """Save the policy when the run's process CPU time first passes each budget; stop after the last."""

    def __init__(self, budgets_s: list[float], out: Path, start_cpu: float) -> None:
        super().__init__()
        self.budgets, self.out, self.start = sorted(budgets_s), out, start_cpu
        self.out.mkdir(parents=True, exist_ok=True)

    def _on_step(self) -> bool:
        used = time.process_time() - self.start
        while self.budgets and used >= self.budgets[0]:
            save_snapshot(self.model.policy, self.out / f"cpu_{math.ceil(self.budgets.pop(0))}", self.num_timesteps, used)
        return bool(self.budgets)


def save_snapshot(policy: torch.nn.Module, stem: Path, steps: int, cpu_s: float) -> None:
    """`stem`.safetensors (the policy's tensors) and `stem`.json (steps, CPU seconds), each written atomically."""
    tmp = stem.with_suffix(".safetensors.tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()}, str(tmp))
    tmp.replace(stem.with_suffix(".safetensors"))
    meta = stem.with_suffix(".json.tmp")
    meta.write_text(json.dumps({"steps": int(steps), "cpu_s": round(float(cpu_s), 2)}))
    meta.replace(stem.with_suffix(".json"))


def load_sb3_actor(stem: Path, observation_space: gym.Space, action_space: gym.Space,
                   policy_kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """An SB3 ActorCriticPolicy with the snapshot's tensors, and the snapshot's metadata."""
    from stable_baselines3.common.policies import ActorCriticPolicy

    policy = ActorCriticPolicy(observation_space, action_space, lambda _: 0.0, **policy_kwargs)
    policy.load_state_dict(load_file(str(stem.with_suffix(".safetensors"))))
    policy.eval()
    return policy, json.loads(stem.with_suffix(".json").read_text())


def greedy(policy: Any, obs: np.ndarray) -> int:
    """The SB3 policy's deterministic action for one observation."""
    action, _ = policy.predict(np.asarray(obs, dtype=np.float32), deterministic=True)
    return int(np.asarray(action).reshape(-1)[0])
