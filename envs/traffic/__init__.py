"""TrafficGrid: signalised intersections on a road network, a fast queue model of SUMO-style signal control.

## Description
A grid of four-leg intersections (a single intersection, an arterial 1xN, grids 2x2 and 4x4 ship as
scenario files in `envs/scenarios/`, and `single_sumo`: sumo-rl's single intersection, its geometry,
signal timing and demand read from its files, to train on before validating in SUMO). Every approach of
every intersection is a link with a length, a free-flow travel time, a storage capacity and lanes per
movement (left, through, right). Vehicles enter at the boundary as seeded Poisson processes with
time-varying rates, choose a movement on each link by the scenario's turning ratios, travel the link at
free flow, then queue at the stop line. A green movement discharges at its saturation flow (veh/s per
lane x lanes) unless the downstream link is full (spillback); vehicles leaving the grid are counted as
exits. The model steps in 1 s ticks over `(num_envs, links, movements)` arrays; there is no Python loop
over envs or vehicles in `step`. The state is a `TrafficState` of arrays (dynamics.py), the knobs a
frozen `TrafficParams` plus the scenario's `Network`, and `TrafficSim.step(state, action)` (env.py)
advances the state in place, one decision of `delta_time_s` ticks of `TrafficCore.tick(state)`.

Signals run four phases: 0 north-south through (with right turns), 1 north-south left, 2 east-west
through (with right turns), 3 east-west left. Every `delta_time_s` (5 s) the agent names the next green
phase of each intersection; naming the current phase extends it. A change starts `yellow_s` of yellow
and `all_red_s` of all-red, then the new green. Requests are ignored before `min_green_s` of green and
during clearance; a phase held `max_green_s` is ended by moving to the next phase in the cycle.

## Action space
`MultiDiscrete([4] * num_intersections)`: the next green phase of each intersection (row-major order).

## Observation space
sumo-rl's layout per intersection, intersections stacked row-major and flattened:
| entries | meaning |
| --- | --- |
| 4 | green phase one-hot (the committed phase, also during its clearance) |
| 1 | min-green flag: 1 when a phase change would be accepted now |
| 12 | density per movement (approach N, E, S, W x left, through, right): vehicles / storage |
| 12 | queue per movement: stopped vehicles / storage |
| 1 | with `pressure=True`: (queued in - vehicles on exit links) / storage, clipped to [-1, 1] |
| 16 | with `neighbour_phases=True`: the phase one-hot of the N, E, S, W neighbours (0 at the edge) |
With `obs_mode="pixels"` the observation is the `rgb_array` frame instead (uint8, H x W x 3).

## Rewards
One per intersection, summed for the single-agent env. `reward="wait"` (default, sumo-rl's
diff-waiting-time): minus the waiting time accrued during the decision interval (vehicle-seconds
stopped at the intersection's stop lines) / 100. `"queue"`: minus the stopped vehicles at the end of
the interval / 10. `"pressure"`: minus (queued on the approaches - vehicles on the exit links) / 10.

## Metrics (`info`, every step, scalar per env)
`travel_time` (average over all generated vehicles of the time in the system so far, CityFlow's
definition: vehicle-seconds / vehicles generated), `delay` (time stopped at stop lines or waiting to
enter, per vehicle), `waiting_time` (time stopped at stop lines, per vehicle), `queue_length` (mean
stopped vehicles per intersection), `throughput` (vehicles that left), `in_network` (vehicles inside or
waiting at the boundary), `generated`, `entered`, `exited`.

## Starting state
An empty network at time 0, phase 0 of every signal just turned green. The demand profile is drawn
from the scenario's training profiles (`profile="train"`), its held-out ones (`"held_out"`) or named.

## Episode end
Truncation after `duration_s` simulated seconds; the env never terminates.

## Arguments
`gym.make("rlsuite/TrafficGrid-v0", scenario="grid2x2", profile="train", reward="wait",
pressure=False, neighbour_phases=False, obs_mode="vector")` (the fields of `TrafficParams`, envs/traffic/env.py);
`scenario` is a shipped name or a path to a YAML file of the same form (loaded into `Network`).
`gym.make_vec(..., vectorization_mode="vector_entry_point")` gives the batched core on envs/vector.py's base
(next-step autoreset), row i equal to a single env reset with seed + i.

## Version history
- v0: first version.
"""

from rlsuite.envs.traffic.controllers import (
    ActuatedController,
    FixedTimeController,
    MaxPressureController,
    webster_plan,
)
from rlsuite.envs.traffic.dynamics import TrafficCore, TrafficState
from rlsuite.envs.traffic.env import (
    TrafficGridEnv,
    TrafficGridVectorEnv,
    TrafficParams,
    TrafficSim,
    make_shared_env,
    make_shared_vector_env,
    obs_dim,
)
from rlsuite.envs.traffic.network import (
    DIRECTIONS,
    MOVEMENTS,
    OBS_MODES,
    PHASE_GREEN,
    PHASE_NAMES,
    REWARDS,
    SCENARIO_DIR,
    Network,
    ScenarioError,
    load_network,
    scenario_names,
)
from rlsuite.envs.traffic.pettingzoo import TrafficParallelEnv
from rlsuite.envs.traffic.rendering import frame_shape, render_frames

__all__ = ["DIRECTIONS", "MOVEMENTS", "OBS_MODES", "PHASE_GREEN", "PHASE_NAMES", "REWARDS", "SCENARIO_DIR",
           "ActuatedController", "FixedTimeController", "MaxPressureController", "Network", "ScenarioError",
           "TrafficCore", "TrafficGridEnv", "TrafficGridVectorEnv", "TrafficParallelEnv", "TrafficParams", "TrafficSim",
           "TrafficState", "frame_shape", "load_network", "make_shared_env", "make_shared_vector_env", "obs_dim", "render_frames",
           "scenario_names", "webster_plan"]
