"""rlsuite's environments and the env factory used by every agent.

Importing this package registers our envs under the `rlsuite/` namespace with Gymnasium. Gymnasium 1.x
has no plugin entry points, so a process that builds our envs must import `rlsuite.envs` first (every
factory here does), or use Gymnasium's module prefix: `gym.make("rlsuite.envs:rlsuite/<Env>-v0")`.
"""

from rlsuite.envs.factory import EnvError, check_env_id, make_env, make_vec_env, reference_score

__all__ = ["EnvError", "check_env_id", "make_env", "make_vec_env", "reference_score"]
