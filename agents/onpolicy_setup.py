"""What PPO, A2C and REINFORCE build before their loop, in one place: the vector env, the seeded network (through
the speed seam, agents/fast), the normalisers, the inference policy and the rollout collector.

The algorithm files keep what differs between them (optimiser, rollout length, the loop); this is plumbing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import gymnasium as gym
import torch

from rlsuite.agents import fast
from rlsuite.agents.actor_critic import (
    ActorCritic,
    ActorCriticPolicy,
    ActorCriticSettings,
    check_actor_critic_spaces,
)
from rlsuite.agents.checkpoint import seed_global_rngs
from rlsuite.agents.interface import TrainContext
from rlsuite.agents.normalize import ObsNormalizer, RewardScaler
from rlsuite.agents.rollout import RolloutCollector
from rlsuite.agents.tensors import resolve_device
from rlsuite.envs import make_vec_env


class OnPolicyParts(NamedTuple):
    envs: gym.vector.VectorEnv
    network: ActorCritic
    obs_normalizer: ObsNormalizer | None
    reward_scaler: RewardScaler | None
    policy: ActorCriticPolicy
    collector: RolloutCollector
    device: torch.device


def build_on_policy(agent: str, s: ActorCriticSettings, ctx: TrainContext, gamma: float,
                    make_network: Callable[[gym.Space, gym.Space, Any], ActorCritic] = ActorCritic) -> OnPolicyParts:
    """Threads and device; the vector env (its spaces checked for `agent`); the global RNGs seeded before the network,
    whose initial weights are part of the seeded run; `fast.accelerate` on it; normalisers as `s` asks (rewards
    scaled by the std of the `gamma`-discounted return); the policy evaluation acts with; a collector stepping
    with `fast.rollout_step`."""
    torch.set_num_threads(s.torch_threads)
    device = resolve_device(s.device)
    envs = make_vec_env(s.env_id, s.n_envs, mode=s.vectorization, record_stats=False,  # the collector counts episodes
                        preset=s.env_preset, **s.env_kwargs)
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    check_actor_critic_spaces(agent, obs_space, act_space)
    seed_global_rngs(s.seed)
    network = make_network(obs_space, act_space, s).to(device)
    fast.accelerate(network)  # the same function, faster where it applies
    obs_normalizer = ObsNormalizer(obs_space) if s.normalize_obs else None
    reward_scaler = RewardScaler(s.n_envs, gamma) if s.normalize_reward else None
    policy = ActorCriticPolicy(network, obs_space, act_space, obs_normalizer, device)
    collector = RolloutCollector(envs, network, device, obs_normalizer, reward_scaler, ctx, fast.rollout_step(network))
    return OnPolicyParts(envs, network, obs_normalizer, reward_scaler, policy, collector, device)
