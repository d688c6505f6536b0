"""Importing an SB3 `.zip` (which needs pickle) once, into a run folder with a safe checkpoint."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

from rlsuite.agents.checkpoint import (
    module_tensors,
    save_checkpoint,
)
from rlsuite.agents.interface import AgentError
from rlsuite.agents.run import RunFolder
from rlsuite.agents.sb3.algorithms import check_algorithm_spaces, get_algorithm
from rlsuite.agents.sb3.state import policy_spec, sb3_observation_space
from rlsuite.agents.settings import settings_to_dict
from rlsuite.envs import make_env

PICKLE_RISK = (
    "an SB3 .zip stores parts of the model (policy class, schedules, spaces, optimiser settings) as "
    "pickled Python objects, and loading it runs whatever code its author put there, with your user's "
    "rights (stable-baselines3 issue #2281). rlsuite loads it once, with SB3's own loader, and converts "
    "it into a run folder whose safetensors checkpoint loads without pickle."
)


def import_sb3_zip(path: Path, agent: str, env_id: str, out: Path, *, trust_pickle: bool = False,
                   command: str = "") -> RunFolder:
    """Convert an SB3 `.zip` into a run folder with a safe checkpoint; refuses unless `trust_pickle`."""
    algo = get_algorithm(agent)
    path = Path(path)
    if not path.is_file():
        raise AgentError(f"{path} does not exist; give the path of an SB3 .zip saved by model.save().")
    if not zipfile.is_zipfile(path):
        raise AgentError(f"{path} is not a zip archive; SB3 saves models as .zip files with model.save().")
    if not trust_pickle:
        raise AgentError(
            f"refusing to load {path}: {PICKLE_RISK} Nothing was read from it. Only if you trust where the "
            f"file came from, rerun with --trust-pickle."
        )
    if Path(out).exists() and any(Path(out).iterdir()):
        raise AgentError(f"{out} already exists and is not empty; choose another --out.")
    env = make_env(env_id)
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    check_algorithm_spaces(algo, obs_space, act_space)
    model = algo.sb3_class().load(str(path), device="cpu")  # the one place rlsuite unpickles, by request
    expected_obs = sb3_observation_space(obs_space)
    if model.observation_space != expected_obs or model.action_space != act_space:
        raise AgentError(
            f"{path} was trained on observations {model.observation_space} and actions {model.action_space}, "
            f"but {env_id} gives {obs_space} and {act_space}; pass the env it was trained on with --env."
        )
    settings = algo.settings(env_id=env_id, seed=int(model.seed or 0))
    settings.validate()
    run = RunFolder.create(Path(out).parent, agent=agent, env_id=env_id, seed=settings.seed,
                           settings=settings_to_dict(settings), command=command, device="cpu", name=Path(out).name)
    tensors = module_tensors("net.policy", model.policy)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    meta = {"agent": agent, "env_id": env_id, "settings": settings_to_dict(settings), "step": int(model.num_timesteps),
            "best_eval_return": None, "sb3": policy_spec(algo, model),
            "imported_from": {"file": path.name, "sha256": digest}}
    save_checkpoint(run.checkpoint_path("last"), tensors, meta)
    run.update_manifest(imported_from={"file": str(path), "sha256": digest})
    run.set_status("finished", final_step=int(model.num_timesteps))
    return run
