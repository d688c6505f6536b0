"""Highway: an ego vehicle among IDM/MOBIL traffic on a straight multi-lane road, natively vectorised.

## Description
The decision-making task of highway-env (Leurent 2018), rebuilt around one NumPy core: the state is a
`HighwayState` of `(num_envs, num_vehicles)` arrays (state.py), the parameters a frozen `HighwayParams`
(params.py), and `HighwayCore.step(state, action)` (dynamics.py) advances the state in place. Car
following (IDM), lane changes (MOBIL), the neighbour search (one sort per substep), the lateral
controllers, the kinematic bicycle model and the collision checks are array operations, with no Python
loop over vehicles or envs in `step`. The single env is the same core with one row.

Traffic vehicles follow the Intelligent Driver Model (Treiber et al. 2000) towards their own desired
speed and exponent, and change lane with MOBIL (Kesting et al. 2007) with their own politeness, at most
once per `lane_change_delay`. The ego (vehicle 0) is driven by the agent. Units are SI: metres, seconds,
m/s, m/s^2, radians. Lane 0 is the leftmost lane, lane `lanes_count - 1` the rightmost; `y` grows to the
right, lane `l` is centred on `y = l * lane_width`.

Settings match highway-env's `highway-fast-v0` by default: 3 lanes, 20 traffic vehicles, simulation at
5 Hz, decisions at 1 Hz, 30 s episodes, the same spawn rule, the same IDM/MOBIL constants, the same
target-speed semantics and the same reward. Unlike `highway-fast-v0`, collisions are checked between all
vehicles (`collision_scope="all"`), so no vehicle can pass through another, and each traffic vehicle's
MOBIL politeness is drawn in [0, 0.3] (highway-env's is 0). `rlsuite/Highway-Fast-v0` is highway-fast-v0's
traffic: `collision_scope="controlled"`, its rule, where only pairs with a controlled vehicle collide (it
sets `check_collisions = False` on every traffic vehicle) and traffic may overlap, and
`politeness_range=(0, 0)`.

## Action space
- `action="discrete"` (default): `Discrete(5)` meta-actions as in highway-env: 0 LANE_LEFT, 1 IDLE,
  2 LANE_RIGHT, 3 FASTER, 4 SLOWER. FASTER/SLOWER pick the target speed one step above/below the one
  closest to the current speed in `target_speeds` (default 20, 25, 30 m/s); a speed controller
  (time constant 0.6 s) and a lateral position/heading controller track the target speed and lane.
  `info["action_mask"]` marks impossible actions (no lane beyond the road edge, no speed beyond the ends).
- `action="continuous"`: `Box(-1, 1, (2,))`: acceleration (times 5 m/s^2) and front-wheel steering angle
  (times pi/4 rad) of the kinematic bicycle model.

## Observation space
Chosen with `observation=`:

| kind | space | content |
| --- | --- | --- |
| `kinematics` (default) | `Box(-1, 1, (obs_vehicles * 6,), float32)` | rows of (presence, x, y, vx, vy, heading), flattened: the ego, then the `obs_vehicles - 1` nearest vehicles by distance (ahead only unless `see_behind`); empty rows are 0 |
| `occupancy` | `Box(-1, 1, (4 * 11 * 11,), float32)` | grid around the ego (cells of 5 m over +-27.5 m), features (presence, vx, vy, on_road), flattened feature-major |
| `pixels` | `Box(0, 255, (frame_stack, image_size, image_size), uint8)` | top-down grayscale image around the ego (road 80, lane lines 140, traffic 190, ego 255), `frame_stack` latest frames |
| `dict` | `Dict(kinematics=..., pixels=...)` | both of the above |

Kinematics normalisation (then clipped to [-1, 1]): x over +-200 m (5 x 40 m/s), y over
+-lanes_count x lane_width, vx and vy over +-80 m/s, heading over +-pi. With `absolute=False` (default)
the ego row holds x = 0, its lateral position y, its velocity and heading, and the other rows hold
positions and velocities relative to the ego; with `absolute=True` every row holds absolute values, x
measured from the start of the road over +-road_length.

## Rewards
As in highway-env: `collision_reward * crashed + right_lane_reward * lane / (lanes_count - 1) +
high_speed_reward * clip((forward_speed - 20) / (30 - 20), 0, 1) + lane_change_reward * [lane change
action]`, mapped linearly from [collision_reward, high_speed_reward + right_lane_reward] to [0, 1] when
`normalize_reward`, then multiplied by `on_road`. Each term is in `info` (`collision_reward`,
`right_lane_reward`, `high_speed_reward`, `on_road_reward`). With `merging_speed_reward` (a weight,
default 0; merge-v0's -0.5; merge roads only) the reward adds merge-v0's altruistic term, reported as
`info["merging_speed_reward"]`: the sum over traffic vehicles on the ramp beside its merge section (the
last `ramp_merge_length` metres, or all of it) of (desired speed - speed) / desired speed, and the
normalisation map's low end becomes collision_reward + merging_speed_reward, as in merge-v0. Metrics:
`crashed`, `speed` (m/s), `distance` (m travelled since reset), `lane_changes` (since reset), `min_ttc`
(smallest time-to-collision with the vehicle ahead in the ego's lane over the step's substeps, s; inf
when not closing in).

## Starting state
Vehicles are placed as highway-env places them: the ego first, on a random lane (or `initial_lane`) at
25 m/s, then each traffic vehicle on a random lane ahead of the last one, `spacing * (12 + speed) *
exp(-5/40 * lanes_count) * U(0.9, 1.1)` metres further, at a speed drawn in [0.7, 0.8] x speed_limit that
is also its desired speed; IDM exponent in [3.5, 4.5], politeness in `politeness_range`, lane-change
timer phase in [0, 1) s. Every draw comes from the env's seeded generator.

## Episode end
Terminates when the ego crashes (or leaves the road with `offroad_terminal`, or passes x = `end_position`
metres when that is set: merge-v0 ends its episodes once the ego is past its ramp); truncates after
`duration` seconds (30 decisions by default).

## Arguments
`gym.make("rlsuite/Highway-v0", **fields of HighwayParams)` (envs/highway/params.py), e.g. `lanes_count=4, vehicles_count=50,
observation="pixels"`. `gym.make_vec("rlsuite/Highway-v0", num_envs=256, vectorization_mode=
"vector_entry_point")` gives the batched core, row i equal to a single env reset with seed + i, with
next-step autoreset (default; the step after an episode ends returns the reset observation, reward 0,
and ignores its action) or same-step autoreset (`autoreset_mode="same_step"`: the reset observation
comes at once and the last one is in `info["final_obs"]`). `render_mode="rgb_array"` draws a frame with
OpenCV (no display, no pygame). Variants: `rlsuite/Highway-Continuous-v0` (continuous actions),
`rlsuite/Highway-Pixels-v0` (pixel observations), `rlsuite/Highway-PixelsSmall-v0` (4 stacked 64x64
frames at 1 px/m, cheap enough to train a CNN on a CPU), `rlsuite/Highway-Dense-v0` (4 lanes, 50
vehicles, as highway-v0), `rlsuite/Highway-Fast-v0` (highway-fast-v0's traffic: ego-only collision checks
and politeness 0), `rlsuite/Merge-v0` (2 lanes and an on-ramp: its vehicles merge anywhere on it when
it is safe; with `ramp_merge_length` only on its last metres and when MOBIL's incentive pays, as merge-v0's),
`rlsuite/Merge-Reference-v0` (Merge-v0 with every merge-v0 setting the env expresses but its 15 Hz
simulation: its traffic, ego start, episode end, merging rule and reward).

## Version history
- v0: first version.
"""

from rlsuite.envs.highway.collisions import COLLISION_WINDOW, FULL_CHECK_PAIRS
from rlsuite.envs.highway.controllers import IDMController, MOBILController
from rlsuite.envs.highway.dynamics import HighwayCore, idm_acceleration, mobil_incentive
from rlsuite.envs.highway.env import HighwayEnv, HighwayVectorEnv
from rlsuite.envs.highway.observations import kinematics, observation_space, occupancy, pixels
from rlsuite.envs.highway.params import *  # noqa: F403  (its __all__: the constants, HighwayParams, fields_of)
from rlsuite.envs.highway.params import HighwayParams
from rlsuite.envs.highway.pettingzoo import HighwayParallelEnv, highway_parallel_env
from rlsuite.envs.highway.rendering import render_frame
from rlsuite.envs.highway.state import HighwayState

__all__ = ["COLLISION_WINDOW", "FULL_CHECK_PAIRS", "HighwayCore", "HighwayEnv", "HighwayParallelEnv", "HighwayParams",
           "HighwayState", "HighwayVectorEnv", "IDMController", "MOBILController", "highway_parallel_env", "idm_acceleration",
           "kinematics", "mobil_incentive", "observation_space", "occupancy", "pixels", "render_frame"]
