"""Atari protocols as named presets: every preprocessing choice, and what training and evaluation change."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from rlsuite.envs.factory import EnvError

Purpose = Literal["train", "eval"]
PURPOSES: tuple[str, ...] = ("train", "eval")
DEFAULT_PRESET = "dqn-nature"


@dataclass(frozen=True)
class AtariPreset:
    """Every preprocessing choice of one Atari protocol; `purpose="eval"` turns the training-only ones off."""

    name: str
    """Preset name, as written in run manifests and reports."""
    source: str
    """Where the protocol comes from."""
    noop_max: int = 30
    """Up to this many NOOP frames after reset (0: none)."""
    frame_skip: int = 4
    """Emulator frames per agent step (action repeated, rewards summed)."""
    max_pool: bool = True
    """Observe the pixel-wise max of the last two skipped frames (removes sprite flicker)."""
    episodic_life: bool = True
    """Training only: a lost life ends the episode."""
    fire_reset: bool = True
    """Press FIRE after reset in games that need it to start."""
    clip_rewards: bool = True
    """Training only: rewards become their sign."""
    screen_size: int = 84
    """Side of the square grayscale observation."""
    grayscale_source: Literal["ale", "rgb"] = "ale"
    """`ale`: the emulator's grayscale screen (as Gymnasium's AtariPreprocessing and ale-py's vector env);
    `rgb`: `cv2.cvtColor` of the max-pooled RGB frame (as SB3's AtariWrapper)."""
    frame_stack: int = 4
    """Frames stacked channel-first."""
    sticky_prob: float = 0.0
    """Probability that the emulator repeats the previous action on each frame (Machado et al. 2018)."""
    full_action_space: bool = False
    """All 18 joystick actions instead of the game's minimal set."""
    max_frames: int = 108_000
    """Frame cap per episode (30 minutes at 60 Hz), training and evaluation."""

    def for_purpose(self, purpose: Purpose) -> AtariPreset:
        """The settings actually applied for `purpose`: evaluation plays whole games with raw rewards."""
        if purpose == "eval":
            return dataclasses.replace(self, episodic_life=False, clip_rewards=False)
        return self

    def describe(self, purpose: Purpose = "train") -> dict[str, Any]:
        """The preset's settings for `purpose`, JSON-ready, for manifests and reports."""
        return {"purpose": purpose, **dataclasses.asdict(self.for_purpose(purpose))}


ATARI_PRESETS: dict[str, AtariPreset] = {
    "dqn-nature": AtariPreset(
        name="dqn-nature",
        source="Mnih et al. 2015 (Nature), as SB3's AtariWrapper and CleanRL: no-op starts, skip 4, episodic life, "
               "fire reset, 84x84 gray, clipped rewards, 4 frames; no sticky actions",
    ),
    "machado2018": AtariPreset(
        name="machado2018",
        source="Machado et al. 2018 (JAIR), 'Revisiting the ALE': sticky actions p=0.25, no life-loss signal, "
               "no no-op starts; skip 4, 84x84 gray, 4 frames; minimal action set",
        noop_max=0,
        episodic_life=False,
        fire_reset=False,
        sticky_prob=0.25,
    ),
}


class AtariError(EnvError):
    """A user-facing problem with an Atari id or preset; the message says what to do."""


def get_preset(preset: str | AtariPreset) -> AtariPreset:
    """The preset named `preset` (an AtariPreset passes through); AtariError lists the names."""
    if isinstance(preset, AtariPreset):
        return preset
    name = preset or DEFAULT_PRESET
    if name not in ATARI_PRESETS:
        raise AtariError(f"Unknown Atari preset {preset!r}; accepted: {', '.join(ATARI_PRESETS)}.")
    return ATARI_PRESETS[name]


def _check_purpose(purpose: str) -> None:
    if purpose not in PURPOSES:
        raise AtariError(f"Unknown purpose {purpose!r}; accepted: {', '.join(PURPOSES)}.")




def _native_vector_ok(p: AtariPreset) -> bool:
    """Whether ale-py's C++ emulators can serve this preset: everything but the grayscale source is ours.

    The C++ side max-pools the ALE's grayscale screen and resizes it with INTER_AREA, as our `ale`
    grayscale source does (checked frame by frame in tests/test_atari.py); SB3's `rgb` source converts
    max-pooled RGB frames instead, which the C++ side cannot do, and its max pooling needs a skip of 2+.
    """
    return p.grayscale_source == "ale" and p.max_pool and p.frame_skip >= 2
