"""rlsuite: environments, agents and an evaluation harness in one package.

Subpackages: ``rlsuite.envs`` and ``rlsuite.policies`` at the ground, ``rlsuite.agents`` above them,
``rlsuite.evaluation`` above agents, and the CLI (``rlsuite.cli``) on top. Importing this package
imports nothing else, so ``import rlsuite.envs`` stays light.
"""

__version__ = "0.1.0"
