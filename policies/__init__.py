"""The shared perception backbone: small torch modules built from gymnasium spaces.

Every agent (our PPO, DQN, A2C, and Stable-Baselines3 through its features-extractor seam) assembles its
network from these pieces, each an `nn.Module` that states its output width as `features_dim`:

- encoders (`make_encoder`): observation -> features (B, features_dim): MLP for vectors and one-hot
  discrete observations, Nature or IMPALA CNN for images, Conv1d + LSTM for (time, features) arrays,
  one encoder per key for Dict spaces;
- `LSTMCore`: memory across env steps, reset at episode starts;
- heads: features -> action distribution (`make_action_head`), state value (`ValueHead`) or Q-values
  (`QHead`).

Which losses train an encoder:

- PPO/A2C with one encoder shared by actor and critic: the actor loss, the value loss and the entropy
  bonus all backpropagate into it, which is why the value-loss coefficient also weighs how much the
  critic shapes the shared features.
- PPO/A2C with separate actor and critic encoders: each loss trains only its own encoder (policy loss
  and entropy the actor's, value loss the critic's).
- DQN: the TD loss trains the online network's encoder; the target network is a copy that gets no
  gradients and changes only when it is synced.

This package imports torch, gymnasium and numpy only; it never imports rlsuite.envs or rlsuite.agents.
"""

from rlsuite.policies.encoders import (
    ACTIVATIONS,
    CNN_KINDS,
    DictEncoder,
    Encoder,
    ImageLayout,
    ImpalaCNN,
    MLPEncoder,
    NatureCNN,
    NipsCNN,
    SequenceEncoder,
    SpaceError,
    SpatialKeypoints,
    image_layout,
    is_image_space,
    is_sequence_space,
    layer_init,
    make_encoder,
    mlp_layers,
)
from rlsuite.policies.heads import (
    SQUASH_MODES,
    ActionDist,
    CategoricalDist,
    CategoricalHead,
    GaussianDist,
    GaussianHead,
    MultiCategoricalDist,
    MultiCategoricalHead,
    QHead,
    ValueHead,
    make_action_head,
)
from rlsuite.policies.recurrent import LSTMCore, LSTMState

__all__ = [
    "ACTIVATIONS",
    "CNN_KINDS",
    "SQUASH_MODES",
    "ActionDist",
    "CategoricalDist",
    "CategoricalHead",
    "DictEncoder",
    "Encoder",
    "GaussianDist",
    "GaussianHead",
    "ImageLayout",
    "ImpalaCNN",
    "LSTMCore",
    "LSTMState",
    "MLPEncoder",
    "MultiCategoricalDist",
    "MultiCategoricalHead",
    "NatureCNN",
    "NipsCNN",
    "QHead",
    "SequenceEncoder",
    "SpatialKeypoints",
    "SpaceError",
    "ValueHead",
    "image_layout",
    "is_image_space",
    "is_sequence_space",
    "layer_init",
    "make_action_head",
    "make_encoder",
    "mlp_layers",
]
