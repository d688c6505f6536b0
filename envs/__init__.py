"""rlsuite's environments and the env factory used by every agent.

Importing this package registers our envs under the `rlsuite/` namespace with Gymnasium. Gymnasium 1.x
has no plugin entry points, so a process that builds our envs must import `rlsuite.envs` first (every
factory here does), or use Gymnasium's module prefix: `gym.make("rlsuite.envs:rlsuite/<Env>-v0")`.
"""

from gymnasium.envs.registration import register

from rlsuite.envs.factory import EnvError, check_env_id, make_env, make_vec_env, reference_score

# Each env family registers its ids below, with string entry points so nothing heavy is imported here.
# --- memory task (issue 4) ---
register(id="rlsuite/MemoryCue-v0", entry_point="rlsuite.envs.memory:MemoryCueEnv",
         vector_entry_point="rlsuite.envs.memory:MemoryCueVectorEnv")

# --- driving (issue 6) ---

# --- traffic (issue 7) ---

# --- robot arm and spoken commands (issue 8) ---
for _name, _cls, _kwargs in (("Reacher-v0", "Reacher", {}), ("Reacher3Link-v0", "Reacher", {"num_links": 3}),
                             ("ReacherPixels-v0", "Reacher", {"obs_mode": "pixels"}), ("ReacherGoal-v0", "ReacherGoal", {})):
    register(id=f"rlsuite/{_name}", entry_point=f"rlsuite.envs.reacher:{_cls}Env",
             vector_entry_point=f"rlsuite.envs.reacher:{_cls}VectorEnv", kwargs=_kwargs)
register(id="rlsuite/SpokenReach-v0", entry_point="rlsuite.envs.spoken:SpokenReachEnv",
         vector_entry_point="rlsuite.envs.spoken:SpokenReachVectorEnv")
register(id="rlsuite/SpokenReachImage-v0", entry_point="rlsuite.envs.spoken:SpokenReachEnv",
         vector_entry_point="rlsuite.envs.spoken:SpokenReachVectorEnv", kwargs={"image": True})

# --- end of registrations ---

__all__ = ["EnvError", "check_env_id", "make_env", "make_vec_env", "reference_score"]
