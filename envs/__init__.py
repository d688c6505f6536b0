"""rlsuite's environments and the env factory used by every agent.

Importing this package registers our envs under the `rlsuite/` namespace with Gymnasium. Gymnasium 1.x
has no plugin entry points, so a process that builds our envs must import `rlsuite.envs` first (every
factory here does), or use Gymnasium's module prefix: `gym.make("rlsuite.envs:rlsuite/<Env>-v0")`.
"""

from typing import Any

from gymnasium.envs.registration import register

from rlsuite.envs.factory import EnvError, check_env_id, make_env, make_vec_env, reference_score

DESCRIPTIONS: dict[str, str] = {}
"""One line per rlsuite/ id, for `rlsuite list envs` (envs/catalog.py)."""


def _register(env_id: str, description: str, entry_point: str, vector_entry_point: str, **kwargs: Any) -> None:
    register(id=env_id, entry_point=entry_point, vector_entry_point=vector_entry_point, **kwargs)
    DESCRIPTIONS[env_id] = description


# Each env family registers its ids below, with string entry points so nothing heavy is imported here.
# --- memory task ---
_register("rlsuite/MemoryCue-v0", "a cue shown once must be named after a delay: needs memory",
          "rlsuite.envs.memory:MemoryCueEnv", "rlsuite.envs.memory:MemoryCueVectorEnv")

# --- driving ---
for _id, _kwargs, _text in (
    ("rlsuite/Highway-v0", {}, "highway driving among IDM/MOBIL traffic, 3 lanes, 20 vehicles"),
    ("rlsuite/Highway-Continuous-v0", {"action": "continuous"}, "Highway-v0 with throttle and steering"),
    ("rlsuite/Highway-Pixels-v0", {"observation": "pixels"}, "Highway-v0 from 4 stacked 84x84 top-down frames"),
    # A smaller image (64x64 at 1 px/m) for CPU training of a CNN: about half Nature CNN's compute at 84x84.
    ("rlsuite/Highway-PixelsSmall-v0", {"observation": "pixels", "image_size": 64, "image_scale": 1.0},
     "Highway-v0 from 4 stacked 64x64 frames (a CNN a CPU can train)"),
    ("rlsuite/Highway-Dense-v0", {"lanes_count": 4, "vehicles_count": 50}, "Highway-v0 with 4 lanes and 50 vehicles"),
    # highway-fast-v0's traffic: only the ego collides, and every traffic vehicle's MOBIL has politeness 0
    # (highway-env's IDMVehicle.POLITENESS; its other settings are Highway-v0's defaults).
    ("rlsuite/Highway-Fast-v0", {"collision_scope": "controlled", "politeness_range": (0.0, 0.0)},
     "Highway-v0 with highway-fast-v0's traffic (ego-only collisions, politeness 0)"),
    ("rlsuite/Merge-v0", {"merge_ramp": True, "lanes_count": 2, "vehicles_count": 12, "ramp_vehicles": 3},
     "a 2-lane highway with merging traffic from a ramp"),
    # merge-v0's settings where Merge-v0's differ and the env can express them: highway-env's IDMVehicle traffic
    # (politeness 0), 3 vehicles on the road and 1 on the ramp, the ego in the right lane at 30 m/s, traffic at about
    # 20 m/s (merge-v0's lanes' limit caps IDM's desired speed; here drawn in 0.7-0.8 x 26.7 m/s), episodes that end
    # 60 m past the ramp's end, ramp vehicles that merge only beside its last 80 m when MOBIL's incentive pays, and
    # merge-v0's reward (its weights and its altruistic term). It simulates at 5 Hz (merge-v0: 15 Hz), which would
    # make training about 1.5x as long.
    ("rlsuite/Merge-Reference-v0",
     {"merge_ramp": True, "lanes_count": 2, "vehicles_count": 4, "ramp_vehicles": 1, "initial_lane": 1,
      "ego_speed": 30.0, "politeness_range": (0.0, 0.0), "speed_limit": 80.0 / 3.0, "end_position": 460.0,
      "ramp_merge_length": 80.0, "high_speed_reward": 0.2, "lane_change_reward": -0.05, "merging_speed_reward": -0.5},
     "Merge-v0 with merge-v0's traffic, episode end, merging rule and reward"),
):
    _register(_id, _text, "rlsuite.envs.highway:HighwayEnv", "rlsuite.envs.highway:HighwayVectorEnv", kwargs=_kwargs)

# --- traffic ---
for _name, _scenario, _text in (("TrafficGrid", "grid2x2", "2x2 grid"), ("TrafficSingle", "single", "single intersection"),
                                ("TrafficArterial", "arterial", "4-signal arterial"), ("TrafficGrid4x4", "grid4x4", "4x4 grid")):
    _register(f"rlsuite/{_name}-v0", f"signal control of a {_text} (one agent for every signal)",
              "rlsuite.envs.traffic:TrafficGridEnv", "rlsuite.envs.traffic:TrafficGridVectorEnv",
              kwargs={"scenario": _scenario})
    # Parameter sharing: one row per intersection (gym.make gives the same game with the agents in turn).
    _register(f"rlsuite/{_name}Shared-v0", f"signal control of a {_text}, one shared policy per signal",
              "rlsuite.envs.traffic:make_shared_env", "rlsuite.envs.traffic:make_shared_vector_env",
              kwargs={"scenario": _scenario})

# --- robot arm and spoken commands ---
for _name, _kwargs, _text in (("Reacher-v0", {}, "a 2-link torque-driven arm reaches for a target (MuJoCo Reacher's task)"),
                              ("Reacher3Link-v0", {"num_links": 3}, "Reacher-v0 with a 3-link arm"),
                              ("ReacherPixels-v0", {"obs_mode": "pixels"}, "Reacher-v0 from 64x64 top-down images")):
    _register(f"rlsuite/{_name}", _text, "rlsuite.envs.reacher:ReacherEnv", "rlsuite.envs.reacher:ReacherVectorEnv",
              kwargs=_kwargs)
# Without gym.make's wrappers (the env enforces reset-before-step itself), so the made env keeps compute_reward,
# which SB3's env checker and goal-env code call on the env they are given.
_register("rlsuite/ReacherGoal-v0", "Reacher-v0 as a goal env (Dict with goals, compute_reward) for HER",
          "rlsuite.envs.reacher:ReacherGoalEnv", "rlsuite.envs.reacher:ReacherGoalVectorEnv",
          order_enforce=False, disable_env_checker=True)
_register("rlsuite/SpokenReach-v0", "the Reacher arm touches the coloured target a real spoken command names",
          "rlsuite.envs.spoken:SpokenReachEnv", "rlsuite.envs.spoken:SpokenReachVectorEnv")
_register("rlsuite/SpokenReachImage-v0", "SpokenReach-v0 with the targets seen in an image, not given",
          "rlsuite.envs.spoken:SpokenReachEnv", "rlsuite.envs.spoken:SpokenReachVectorEnv", kwargs={"image": True})

# --- end of registrations ---

__all__ = ["DESCRIPTIONS", "EnvError", "check_env_id", "make_env", "make_vec_env", "reference_score"]
