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
for _id, _kwargs in (
    ("rlsuite/Highway-v0", {}),
    ("rlsuite/Highway-Continuous-v0", {"action": "continuous"}),
    ("rlsuite/Highway-Pixels-v0", {"observation": "pixels"}),
    # A smaller image (64x64 at 1 px/m) for CPU training of a CNN: about half Nature CNN's compute at 84x84.
    ("rlsuite/Highway-PixelsSmall-v0", {"observation": "pixels", "image_size": 64, "image_scale": 1.0}),
    ("rlsuite/Highway-Dense-v0", {"lanes_count": 4, "vehicles_count": 50}),
    # highway-fast-v0's collision rule (only the ego collides; its other settings are Highway-v0's defaults).
    ("rlsuite/Highway-Fast-v0", {"collision_scope": "controlled"}),
    ("rlsuite/Merge-v0", {"merge_ramp": True, "lanes_count": 2, "vehicles_count": 12, "ramp_vehicles": 3}),
):
    register(id=_id, entry_point="rlsuite.envs.highway:HighwayEnv", vector_entry_point="rlsuite.envs.highway:HighwayVectorEnv",
             kwargs=_kwargs)

# --- traffic (issue 7) ---
for _name, _scenario in (("TrafficGrid", "grid2x2"), ("TrafficSingle", "single"), ("TrafficArterial", "arterial"),
                         ("TrafficGrid4x4", "grid4x4")):
    register(id=f"rlsuite/{_name}-v0", entry_point="rlsuite.envs.traffic:TrafficGridEnv",
             vector_entry_point="rlsuite.envs.traffic:TrafficGridVectorEnv", kwargs={"scenario": _scenario})
    # Parameter sharing: one row per intersection (gym.make gives the same game with the agents in turn).
    register(id=f"rlsuite/{_name}Shared-v0", entry_point="rlsuite.envs.traffic:make_shared_env",
             vector_entry_point="rlsuite.envs.traffic:make_shared_vector_env", kwargs={"scenario": _scenario})

# --- robot arm and spoken commands (issue 8) ---
for _name, _kwargs in (("Reacher-v0", {}), ("Reacher3Link-v0", {"num_links": 3}), ("ReacherPixels-v0", {"obs_mode": "pixels"})):
    register(id=f"rlsuite/{_name}", entry_point="rlsuite.envs.reacher:ReacherEnv",
             vector_entry_point="rlsuite.envs.reacher:ReacherVectorEnv", kwargs=_kwargs)
# Without gym.make's wrappers (the env enforces reset-before-step itself), so the made env keeps compute_reward,
# which SB3's env checker and goal-env code call on the env they are given.
register(id="rlsuite/ReacherGoal-v0", entry_point="rlsuite.envs.reacher:ReacherGoalEnv",
         vector_entry_point="rlsuite.envs.reacher:ReacherGoalVectorEnv", order_enforce=False, disable_env_checker=True)
register(id="rlsuite/SpokenReach-v0", entry_point="rlsuite.envs.spoken:SpokenReachEnv",
         vector_entry_point="rlsuite.envs.spoken:SpokenReachVectorEnv")
register(id="rlsuite/SpokenReachImage-v0", entry_point="rlsuite.envs.spoken:SpokenReachEnv",
         vector_entry_point="rlsuite.envs.spoken:SpokenReachVectorEnv", kwargs={"image": True})

# --- end of registrations ---

__all__ = ["EnvError", "check_env_id", "make_env", "make_vec_env", "reference_score"]
