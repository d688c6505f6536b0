"""Typed settings of the Stable-Baselines3 agents: one dataclass per algorithm, its SB3 constructor
arguments (our defaults = SB3's)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rlsuite.agents.settings import TrainSettings


@dataclass
class SB3Settings(TrainSettings):
    learning_rate: float = 3e-4
    """Optimiser step size (at the start of training when annealed)."""
    anneal_lr: bool = False
    """Decay the learning rate linearly to 0 over training (RL Zoo's `lin_<lr>`)."""
    gamma: float = 0.99
    """Discount factor."""
    encoder_hidden: tuple[int, ...] = (64, 64)
    """MLP widths of our encoder for vector observations (the features extractor); () flattens only."""
    activation: Literal["tanh", "relu", "elu", "silu"] = "tanh"
    """Activation of the encoder MLP and of SB3's net_arch layers."""
    cnn: Literal["nature", "nips", "impala"] = "nature"
    """CNN of our encoder for image observations."""
    net_arch: tuple[int, ...] = ()
    """SB3's layers between the encoder and the heads (for the actor and for the critic each); () puts the
    heads straight on the encoder's features, like our PPO."""
    share_features_extractor: bool | None = None
    """One encoder for actor and critic. None: SB3's convention (shared on-policy; separate for SAC and TD3);
    DQN and QR-DQN have a single Q-network and take no value here."""

    def validate(self) -> None:
        super().validate()
        self.require(self.learning_rate > 0, "learning_rate", "must be > 0")
        self.require(0.0 <= self.gamma <= 1.0, "gamma", "must lie in [0, 1]")
        self.require(all(w >= 1 for w in self.encoder_hidden), "encoder_hidden", "widths must be >= 1")
        self.require(all(w >= 1 for w in self.net_arch), "net_arch", "widths must be >= 1")


@dataclass
class SB3OnPolicySettings(SB3Settings):
    n_steps: int = 2048
    """Env steps per sub-env per rollout."""
    gae_lambda: float = 0.95
    """GAE lambda: 0 is one-step TD, 1 is Monte Carlo."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient."""
    vf_coef: float = 0.5
    """Value loss coefficient."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    normalize_advantage: bool = True
    """Normalise advantages per minibatch."""
    log_std_init: float = 0.0
    """Initial log standard deviation of Gaussian actions (Box action spaces)."""
    ortho_init: bool = True
    """SB3's orthogonal initialisation of the encoder (gain sqrt 2) and heads (0.01 actor, 1 critic)."""

    def validate(self) -> None:
        super().validate()
        self.require(self.n_steps >= 1, "n_steps", "must be >= 1")
        self.require(0.0 <= self.gae_lambda <= 1.0, "gae_lambda", "must lie in [0, 1]")


@dataclass
class SB3PPOSettings(SB3OnPolicySettings):
    batch_size: int = 64
    """Minibatch size (transitions) of each gradient step; n_envs * n_steps should be a multiple of it."""
    n_epochs: int = 10
    """Passes over each rollout."""
    clip_range: float = 0.2
    """PPO ratio clip."""
    anneal_clip: bool = False
    """Decay the clip range linearly to 0 (RL Zoo's `lin_0.2`)."""
    target_kl: float | None = None
    """Stop an update's epochs early once the approximate KL exceeds this (None: never)."""

    def validate(self) -> None:
        super().validate()
        rollout = self.n_envs * self.n_steps
        self.require(1 < self.batch_size <= rollout, "batch_size",
                     f"must lie in [2, n_envs * n_steps = {rollout}] (advantages are normalised per minibatch)")
        self.require(self.n_epochs >= 1, "n_epochs", "must be >= 1")
        self.require(self.clip_range > 0, "clip_range", "must be > 0")


@dataclass
class SB3RecurrentPPOSettings(SB3PPOSettings):
    n_steps: int = 128
    """Env steps per sub-env per rollout."""
    batch_size: int = 128
    """Minibatch size (transitions, cut into whole sequences) of each gradient step."""
    lstm_hidden_size: int = 256
    """LSTM hidden size."""
    n_lstm_layers: int = 1
    """Stacked LSTM layers."""
    shared_lstm: bool = False
    """Actor and critic share one LSTM (the critic's gradient then stops before it)."""
    enable_critic_lstm: bool = True
    """The critic has its own LSTM (when not shared); false: the critic reads the encoder's features."""

    def validate(self) -> None:
        super().validate()
        self.require(self.lstm_hidden_size >= 1, "lstm_hidden_size", "must be >= 1")
        self.require(not (self.shared_lstm and self.enable_critic_lstm), "shared_lstm",
                     "cannot be true together with enable_critic_lstm=true (set one of them false)")


@dataclass
class SB3A2CSettings(SB3OnPolicySettings):
    learning_rate: float = 7e-4
    """Optimiser step size (at the start of training when annealed)."""
    n_steps: int = 5
    """Env steps per sub-env per update."""
    gae_lambda: float = 1.0
    """GAE lambda (1: plain n-step returns, A2C's classic choice)."""
    normalize_advantage: bool = False
    """Normalise advantages per update."""
    use_rms_prop: bool = True
    """RMSprop (alpha 0.99) as in the A2C paper instead of Adam."""
    rms_prop_eps: float = 1e-5
    """RMSprop epsilon."""


@dataclass
class SB3OffPolicySettings(SB3Settings):
    n_envs: int = 1
    """Number of sub-envs stepped together in one vector env."""
    buffer_size: int = 1_000_000
    """Replay buffer capacity (transitions)."""
    learning_starts: int = 100
    """Env steps of experience collected before the first gradient step."""
    batch_size: int = 256
    """Transitions per gradient step."""
    tau: float = 0.005
    """Polyak coefficient of the target network update (1: hard copy)."""
    train_freq: int = 1
    """Env steps (per sub-env) between training phases."""
    gradient_steps: int = 1
    """Gradient steps per training phase (-1: as many as env steps collected)."""

    def validate(self) -> None:
        super().validate()
        self.require(self.buffer_size >= 1, "buffer_size", "must be >= 1")
        self.require(self.learning_starts >= 0, "learning_starts", "must be >= 0")
        self.require(self.batch_size >= 1, "batch_size", "must be >= 1")
        self.require(0.0 < self.tau <= 1.0, "tau", "must lie in (0, 1]")
        self.require(self.train_freq >= 1, "train_freq", "must be >= 1")
        self.require(self.gradient_steps >= 1 or self.gradient_steps == -1, "gradient_steps", "must be >= 1 or -1")


@dataclass
class SB3DQNSettings(SB3OffPolicySettings):
    learning_rate: float = 1e-4
    """Adam step size (at the start of training when annealed)."""
    activation: Literal["tanh", "relu", "elu", "silu"] = "relu"
    """Activation of the encoder MLP and of SB3's net_arch layers."""
    batch_size: int = 32
    """Transitions per gradient step."""
    tau: float = 1.0
    """Polyak coefficient of the target network update (1: hard copy)."""
    train_freq: int = 4
    """Env steps (per sub-env) between training phases."""
    target_update_interval: int = 10_000
    """Env steps between target network updates."""
    exploration_fraction: float = 0.1
    """Fraction of training over which epsilon decays linearly."""
    exploration_initial_eps: float = 1.0
    """Epsilon at the start."""
    exploration_final_eps: float = 0.05
    """Epsilon after the decay."""
    max_grad_norm: float | None = 10.0
    """Global gradient-norm clip (None: none)."""

    def validate(self) -> None:
        super().validate()
        self.require(self.share_features_extractor is None, "share_features_extractor",
                     "must stay unset (none): DQN-style agents have one Q-network and no actor")
        self.require(self.target_update_interval >= 1, "target_update_interval", "must be >= 1")
        for name in ("exploration_fraction", "exploration_initial_eps", "exploration_final_eps"):
            self.require(0.0 <= getattr(self, name) <= 1.0, name, "must lie in [0, 1]")


@dataclass
class SB3QRDQNSettings(SB3DQNSettings):
    learning_rate: float = 5e-5
    """Adam step size (at the start of training when annealed)."""
    exploration_fraction: float = 0.005
    """Fraction of training over which epsilon decays linearly."""
    exploration_final_eps: float = 0.01
    """Epsilon after the decay."""
    max_grad_norm: float | None = None
    """Global gradient-norm clip (None: none)."""
    n_quantiles: int = 200
    """Quantiles of the return distribution per action."""

    def validate(self) -> None:
        super().validate()
        self.require(self.n_quantiles >= 1, "n_quantiles", "must be >= 1")


@dataclass
class SB3SACSettings(SB3OffPolicySettings):
    encoder_hidden: tuple[int, ...] = ()
    """MLP widths of our encoder for vector observations; () flattens only, and SB3's net_arch layers follow
    (the critic must see the action before its hidden layers)."""
    net_arch: tuple[int, ...] = (256, 256)
    """SB3's layers after the encoder, for the actor and for each Q-network (which also reads the action)."""
    activation: Literal["tanh", "relu", "elu", "silu"] = "relu"
    """Activation of the encoder MLP and of SB3's net_arch layers."""
    ent_coef: float | str = "auto"
    """Entropy coefficient: a number, `auto` (learned, starting at 1) or `auto_<start>` (learned)."""
    target_entropy: float | Literal["auto"] = "auto"
    """Target entropy of the learned coefficient; auto: -dim(actions)."""
    target_update_interval: int = 1
    """Gradient steps between target network updates."""

    def validate(self) -> None:
        super().validate()
        if isinstance(self.ent_coef, str):
            ok = self.ent_coef == "auto"
            if self.ent_coef.startswith("auto_"):
                try:
                    ok = float(self.ent_coef[5:]) > 0
                except ValueError:
                    ok = False
            self.require(ok, "ent_coef", "must be a number > 0, 'auto' or 'auto_<start>' such as auto_0.1")
        else:
            self.require(self.ent_coef >= 0, "ent_coef", "must be >= 0")
        self.require(self.target_update_interval >= 1, "target_update_interval", "must be >= 1")


@dataclass
class SB3TD3Settings(SB3OffPolicySettings):
    learning_rate: float = 1e-3
    """Adam step size (at the start of training when annealed)."""
    encoder_hidden: tuple[int, ...] = ()
    """MLP widths of our encoder for vector observations; () flattens only, and SB3's net_arch layers follow
    (the critic must see the action before its hidden layers)."""
    net_arch: tuple[int, ...] = (400, 300)
    """SB3's layers after the encoder, for the actor and for each Q-network (which also reads the action)."""
    activation: Literal["tanh", "relu", "elu", "silu"] = "relu"
    """Activation of the encoder MLP and of SB3's net_arch layers."""
    policy_delay: int = 2
    """Critic updates per actor (and target) update."""
    target_policy_noise: float = 0.2
    """Std of the noise added to target actions (target policy smoothing)."""
    target_noise_clip: float = 0.5
    """Clip of that noise."""
    action_noise_sigma: float = 0.1
    """Std of the Gaussian exploration noise, as a fraction of the action range's half-width (0: none)."""

    def validate(self) -> None:
        super().validate()
        self.require(self.policy_delay >= 1, "policy_delay", "must be >= 1")
        self.require(self.action_noise_sigma >= 0, "action_noise_sigma", "must be >= 0")
