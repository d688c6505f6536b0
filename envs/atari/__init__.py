"""Atari 2600 games with DeepMind-style preprocessing over the real ALE, as named, recorded presets.

## Description
Libraries disagree on Atari preprocessing: Gymnasium's `AtariPreprocessing` does no fire reset, reward
clipping or frame stacking; SB3's `AtariWrapper` does; ALE v5 ids add sticky actions and a frame skip
of their own. Scores are only comparable under the same protocol, so rlsuite names it: a *preset*
(`ATARI_PRESETS`) fixes every preprocessing choice, and a *purpose* says whether the env is for
training (episodic life and reward clipping, when the preset asks for them) or for evaluation (whole
games, raw rewards, the 108,000-frame cap). The preset name and its settings go into the run manifest.

The wrappers below are small Gymnasium wrappers written with NumPy and OpenCV. From the emulator up:

| wrapper | what it does |
| --- | --- |
| `StickyAction` | with probability p repeat the previous action (Machado et al. 2018); the pipeline uses the ALE's own per-frame stickiness, this wrapper serves envs without it |
| `NoopReset` | after reset take 1..noop_max NOOP frames (count from the env's seeded generator) |
| `MaxAndSkip` | repeat the action for `skip` frames, sum rewards, observe the max of the last two frames |
| `EpisodicLife` | training only: a lost life ends the episode (`info["life_loss"]`), the game goes on |
| `FireReset` | games that need FIRE to start (detected from the action meanings) get FIRE, then action 2 |
| `WarpFrame` | grayscale (`cv2.cvtColor` on RGB, or the ALE's own grayscale screen) and 84x84 `INTER_AREA` |
| `ClipReward` | training only: sign of the reward; the raw reward stays in `info["raw_reward"]` |
| `FrameStack` | the last 4 frames, channel-first uint8, a view into a ring buffer (no per-step copies) |

## Action space
`Discrete(n)` with the game's minimal action set (`full_action_space=False`, the ALE v5 default).

## Observation space
`Box(0, 255, (frame_stack, 84, 84), uint8)`: the last `frame_stack` grayscale 84x84 frames, oldest
first; frames before the start of an episode are zeros (as SB3's `VecFrameStack`).

## Rewards
The game score difference per agent step (sum over the skipped frames); its sign when training with a
preset that clips rewards (`info["raw_reward"]` keeps the game's reward).

## Starting state
The game's reset, then 1..noop_max NOOP frames (from the env's seeded generator) and, for games that
need it, FIRE then action 2.

## Episode end
The game ends (`terminated`), or the 108,000-frame cap is reached (`truncated`, 30 minutes of play at
60 Hz, the ALE's `max_num_frames_per_episode`). In training with episodic life a lost life also
terminates the episode; resetting then continues the same game with a NOOP step.

## Arguments
`make_atari_env(env_id, num_envs, preset="dqn-nature", purpose="train")` for vector envs,
`make_atari(env_id, preset=..., purpose="eval")` for one env. `env_id` is an `ALE/<Game>-v5` id (its
frame skip is set to 1 and its sticky actions to the preset's) or a `<Game>NoFrameskip-v4` id.
rlsuite's env factory (`make_env`, `make_vec_env`) routes these ids here, so every agent gets the
pipeline. The vector path is ale-py's C++ `AtariVectorEnv` when its preprocessing is the preset's
(grayscale from the ALE), else Gymnasium's sync or async vector env of single preprocessed envs.

## Version history
- v0: first version (ale-py 0.12, Gymnasium 1.x).
"""

from rlsuite.envs.atari.make import make_atari, make_atari_env, wrap_atari
from rlsuite.envs.atari.native import AtariNativeVectorEnv
from rlsuite.envs.atari.presets import (
    ATARI_PRESETS,
    DEFAULT_PRESET,
    PURPOSES,
    AtariError,
    AtariPreset,
    Purpose,
    get_preset,
)
from rlsuite.envs.atari.wrappers import (
    ClipReward,
    EpisodicLife,
    FireReset,
    FrameStack,
    GameStatistics,
    MaxAndSkip,
    NoopReset,
    StickyAction,
    WarpFrame,
    needs_fire,
)

__all__ = ["ATARI_PRESETS", "DEFAULT_PRESET", "PURPOSES", "AtariError", "AtariNativeVectorEnv", "AtariPreset",
           "ClipReward", "EpisodicLife", "FireReset", "FrameStack", "GameStatistics", "MaxAndSkip", "NoopReset",
           "Purpose", "StickyAction", "WarpFrame", "get_preset", "make_atari", "make_atari_env", "needs_fire",
           "wrap_atari"]
