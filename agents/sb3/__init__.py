"""Stable-Baselines3 agents on our backbone, our CLI, our run folders and our safe checkpoints.

Seven agents, one table (`ALGORITHMS`): sb3-ppo, sb3-a2c, sb3-dqn, sb3-sac, sb3-td3 from
stable-baselines3 and sb3-recurrent-ppo, sb3-qrdqn from sb3-contrib. Each is SB3's own algorithm class,
unchanged, trained by SB3's `learn()`; what rlsuite supplies around it:

- the network's perception: `RLSuiteExtractor` (policies/sb3_extractor.py), i.e. `make_encoder`, so an
  SB3 agent holds the very encoder classes our agents use (the sharing rule for actor and critic is
  stated there);
- the envs: our vector envs through `SB3VecEnv` (same-step autoreset, `terminal_observation`);
- settings: one typed dataclass per algorithm (its SB3 constructor arguments, our defaults = SB3's), so
  `--set` and `presets/sb3-*.yaml` are checked field by field like every agent's;
- a callback that feeds our metric logger (SB3's logger keys mapped into charts/..., losses/...), the
  progress bar, periodic evaluation through our harness (fixed seeds), best/last/step checkpoints and
  Ctrl-C;
- checkpoints without pickle: every torch state SB3 itself would save (policy weights, optimisers,
  SAC's entropy coefficient) as safetensors tensors, plus the policy's constructor arguments as JSON
  (`policy_spec`). Loading builds the SB3 policy class from that JSON and loads the weights; classes
  are looked up by name in fixed allow-lists, never imported from a string.

The replay buffer of the off-policy agents is not checkpointed (it can be gigabytes): a resumed run
refills it for `learning_starts` steps before it trains again.
"""

from __future__ import annotations

from rlsuite.agents.sb3.algorithms import (
    ALGORITHMS,
    Algorithm,
    algorithm_kwargs,
    check_algorithm_spaces,
    get_algorithm,
    policy_alias,
    policy_kwargs,
)
from rlsuite.agents.sb3.bridge import SB3Agent, a2c, dqn, metric_name, ppo, qrdqn, recurrent_ppo, sac, td3
from rlsuite.agents.sb3.import_zip import PICKLE_RISK, import_sb3_zip
from rlsuite.agents.sb3.settings import (
    SB3A2CSettings,
    SB3DQNSettings,
    SB3OffPolicySettings,
    SB3OnPolicySettings,
    SB3PPOSettings,
    SB3QRDQNSettings,
    SB3RecurrentPPOSettings,
    SB3SACSettings,
    SB3Settings,
    SB3TD3Settings,
)
from rlsuite.agents.sb3.state import (
    SB3Policy,
    build_policy,
    load_model_state,
    load_policy,
    model_state,
    policy_spec,
    sb3_observation_space,
)

__all__ = ['ALGORITHMS', 'Algorithm', 'PICKLE_RISK', 'SB3A2CSettings', 'SB3Agent', 'SB3DQNSettings', 'SB3OffPolicySettings', 'SB3OnPolicySettings', 'SB3PPOSettings', 'SB3Policy', 'SB3QRDQNSettings', 'SB3RecurrentPPOSettings', 'SB3SACSettings', 'SB3Settings', 'SB3TD3Settings', 'a2c', 'algorithm_kwargs', 'build_policy', 'check_algorithm_spaces', 'dqn', 'get_algorithm', 'import_sb3_zip', 'load_model_state', 'load_policy', 'metric_name', 'model_state', 'policy_alias', 'policy_kwargs', 'policy_spec', 'ppo', 'qrdqn', 'recurrent_ppo', 'sac', 'sb3_observation_space', 'td3']
