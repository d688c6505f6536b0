"""SpokenReach: the Reacher arm must touch the coloured target that a spoken command names.

## Description
Four coloured targets (red, blue, green, yellow) lie in the workspace of Reacher's 2-link arm
(envs/reacher.py, same dynamics). At reset a voice says one colour; the arm must put its fingertip on
that target. The speech is real: espeak-ng clips in many voices, pitches and speeds, shipped with
rlsuite (envs/speech_data.py); `voices="train"` draws from the training voices, `voices="heldout"` from
voices whose timbre is never used in training. Each episode adds white noise at `snr_db` and shifts the
clip to a random start inside the 1 s listening window.

## Action space
`Box(-1, 1, (2,), float32)`: joint torques, as Reacher.

## Observation space
A Dict:
- `audio`: log-mel spectrogram `(98, 40)` float32 (16 kHz, 25 ms window, 10 ms hop, 40 mels, 1 s), the
  same on every step of an episode; `audio="waveform"` gives the raw `(16000,)` float32 samples instead.
- `state`: cos and sin of the joint angles, joint velocities (rad/s), fingertip x, y (m) and every
  target's x, y in colour order (m): `8 + 2 * 4` float32.
- with `image=True`: `image`, a top-down `(64, 64, 3)` uint8 render of arm and targets, and `state`
  loses the target positions (the policy must see where the colours are and hear which one).

Log-mel features of each clip are computed once and cached. Per episode the shift slices the cached
spectrogram of the zero-padded clip (exactly the spectrogram of the shifted waveform, shifts being whole
hops), and the noise adds the mel power of a cached white-noise spectrogram scaled to the SNR (power
adds in expectation; the cross term of signal and noise is left out). The waveform option shifts and
adds noise sample by sample.

## Rewards
`-distance to the named target (m) - 0.1 sum(action^2) - wrong_penalty x (wrong-target event)`: the
right target is rewarded through the distance term (0 on it), the wrong one is penalised.
`wrong_penalty_on` says when a wrong-target event counts:
- `"end"` (default): only the last step of the episode, if the fingertip ends on another target (what
  `wrong_target` in the last `info` reports);
- `"step"`: every step the fingertip is within `success_tolerance` of another target;
- `"enter"`: only the step the fingertip enters another target's circle (it was outside it the step before),
  so a sweep across a target costs `wrong_penalty` once instead of once per step spent in it.

`"end"` is the default: with `"step"` a sweep across a distractor costs more than the distance term
can teach to avoid (docs/reacher.md, the oracle diagnostic).

## Starting state
Reacher's start for the arm; the four targets uniform by area over the reachable annulus, at least
`MIN_SEPARATION` apart; the command, its clip (from the chosen voices), the clip's start in the window
and the noise drawn per episode from the env's seeded generator.

## Episode end
Truncation after 50 steps. The last step's `info` has `is_success` (on the named target),
`wrong_target` (on another one), `distance`, `control_effort`, `heldout_voice`. The vector env's `info`
also has `command` at reset and every step: the index of the word each returned observation says, a
label for training-only auxiliary losses (PPO's `aux_label_key`), never an input of the policy. With
`image=True` it also has `target_xy`, (N, 4, 2): where each target's centre is in the observed image (x from
-1 at the left edge to +1 at the right, y from -1 at the top to +1 at the bottom), a training-only label
for keypoint losses (PPO's `aux_keypoint_key`).

## Arguments
`gym.make("rlsuite/SpokenReach-v0", voices="train", snr_db=20.0, audio="logmel", image=False,
mute=False, wrong_penalty=1.0, wrong_penalty_on="end")` (the fields of `SpokenParams`);
`rlsuite/SpokenReachImage-v0` sets `image=True`. `mute=True` zeroes the audio (the ablation that shows
an agent uses what it hears). `snr_db=None` adds no noise. The vector env is envs/vector.py's base.

## Version history
- v0: first version.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import cv2
import gymnasium as gym
import numpy as np

from rlsuite.envs import speech_data as sd
from rlsuite.envs.reacher import (
    PIXELS,
    ReacherCore,
    ReacherState,
    TaskParams,
    arena_scale,
    default_params,
    draw_arena,
    pd_to_target,
)
from rlsuite.envs.vector import CoreEnv, NumpyVectorEnv

COLOURS = {"red": (220, 40, 40), "blue": (40, 80, 220), "green": (40, 170, 60), "yellow": (225, 195, 20)}
VOICE_SPLITS = ("train", "heldout", "all")
AUDIO_KINDS = ("logmel", "waveform")
WINDOW_SECONDS = 1.0
PENALTY_RULES = ("step", "enter", "end")
MIN_SEPARATION = 0.07  # m between targets: tolerance circles never overlap


@cache
def _padded(clip_id: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Clip `clip_id` as float, zero-padded by (window - length) on both sides, its mel power (cached), and
    its mean power. A listening window starting `k` hops in sees frames `k : k + F` of that spectrogram."""
    clips = sd._shipped_clips()
    wave = clips.clip(clip_id).astype(np.float64) / 32768.0
    window = int(WINDOW_SECONDS * sd.SAMPLE_RATE)
    pad = np.zeros(window - len(wave))
    padded = np.concatenate([pad, wave, pad])
    return padded, sd.mel_power(padded), float(np.mean(wave**2))


@cache
def _noise_bank() -> tuple[np.ndarray, np.ndarray]:
    """10 s of unit-variance white noise (fixed seed) and its mel power, computed once."""
    wave = np.random.default_rng(12345).standard_normal(10 * sd.SAMPLE_RATE)
    return wave, sd.mel_power(wave)


@dataclass(frozen=True)
class SpokenParams:
    """Every knob of SpokenReach (the arm is Reacher's 2-link arm, `default_params(2)`)."""

    voices: str = "train"
    """Voices the commands are drawn from: "train", "heldout" or "all"."""
    snr_db: float | None = 20.0
    """White noise added at this signal-to-noise ratio, dB; None adds none."""
    audio: str = "logmel"
    """"logmel" spectrogram or raw "waveform"."""
    image: bool = False
    """Add a top-down image and drop the target positions from `state`."""
    mute: bool = False
    """Zero the audio (the ablation that shows an agent uses what it hears)."""
    wrong_penalty: float = 1.0
    """Penalty of a wrong-target event."""
    wrong_penalty_on: str = "end"
    """When a wrong-target event counts: "end", "step" or "enter" (module docstring)."""
    max_episode_steps: int = 50
    """Truncation after this many steps."""
    success_tolerance: float = 0.02
    """m, fingertip-to-target distance that counts as reached."""

    def __post_init__(self) -> None:
        if self.wrong_penalty_on not in PENALTY_RULES:
            raise ValueError(f"wrong_penalty_on must be one of {', '.join(PENALTY_RULES)}, got {self.wrong_penalty_on!r}.")
        if self.voices not in VOICE_SPLITS:
            raise ValueError(f"voices must be one of {', '.join(VOICE_SPLITS)}, got {self.voices!r}.")
        if self.audio not in AUDIO_KINDS:
            raise ValueError(f"audio must be one of {', '.join(AUDIO_KINDS)}, got {self.audio!r}.")


@dataclass
class SpokenState:
    """N arms with their targets and spoken commands (rows first)."""

    arm: ReacherState
    """The arm; its `target` is the named target."""
    targets: np.ndarray
    """(N, targets, 2) target centres, m."""
    command: np.ndarray
    """(N,) index of the named target."""
    on_wrong: np.ndarray
    """(N, targets) the fingertip is inside each other target's circle."""
    clip: np.ndarray
    """(N,) the recording that says the command."""
    shift: np.ndarray
    """(N,) its start in the window, hops."""
    noise_start: np.ndarray
    """(N,) hops into the noise bank."""
    audio: np.ndarray
    """(N, window) waveform or (N, frames, mels) log-mel, float32."""


class SpokenCore:
    """The step of N arms, each with four targets and a spoken command, on a SpokenState; per-row seeded."""

    def __init__(self, num_envs: int, params: SpokenParams) -> None:
        self.params = params
        self.num_envs, self.audio_kind, self.image, self.mute = num_envs, params.audio, params.image, params.mute
        self.snr_db, self.wrong_penalty, self.wrong_penalty_on = params.snr_db, params.wrong_penalty, params.wrong_penalty_on
        voices, audio = params.voices, params.audio
        self.arm = ReacherCore(num_envs, default_params(2),
                               TaskParams("state", params.max_episode_steps, params.success_tolerance))
        clips = sd._shipped_clips()
        self.words = clips.words
        self.num_targets = len(self.words)
        in_split = np.ones(len(clips), bool) if voices == "all" else clips.heldout == (voices == "heldout")
        self.clips_by_word = [np.flatnonzero(in_split & (clips.word == w)) for w in range(self.num_targets)]
        self.voice_names, self.clip_voice, self.clip_heldout = clips.voices, clips.voice, clips.heldout
        self.window = int(WINDOW_SECONDS * sd.SAMPLE_RATE)  # samples
        self.frames = sd.frames_for(WINDOW_SECONDS)
        self.audio_shape = (self.frames, sd.N_MELS) if audio == "logmel" else (self.window,)

    def init_state(self) -> SpokenState:
        N, T = self.num_envs, self.num_targets
        return SpokenState(self.arm.init_state(), np.zeros((N, T, 2)), np.zeros(N, np.int64), np.zeros((N, T), bool),
                           np.zeros(N, np.int64), np.zeros(N, np.int64), np.zeros(N, np.int64),
                           np.zeros((N, *self.audio_shape), np.float32))

    def observation_space(self) -> gym.spaces.Dict:
        n_state = 8 + (0 if self.image else 2 * self.num_targets)
        spaces: dict[str, gym.Space] = {
            "audio": gym.spaces.Box(-np.inf, np.inf, self.audio_shape, np.float32),
            "state": gym.spaces.Box(-np.inf, np.inf, (n_state,), np.float32)}
        if self.image:
            spaces["image"] = gym.spaces.Box(0, 255, (PIXELS, PIXELS, 3), np.uint8)
        return gym.spaces.Dict(spaces)

    def reset_rows(self, s: SpokenState, rows: np.ndarray, rngs: list[np.random.Generator]) -> None:
        self.arm.reset_rows(s.arm, rows, rngs)
        arm = self.arm
        for i, rng in zip(rows, rngs, strict=True):  # every draw of a row from that row's generator
            placed: list[np.ndarray] = []
            while len(placed) < self.num_targets:  # rejection: uniform by area in the reachable annulus
                u = rng.random(2)
                radius = np.sqrt(arm.min_radius**2 + (arm.max_radius**2 - arm.min_radius**2) * u[0])
                point = radius * np.array([np.cos(np.pi * (2 * u[1] - 1)), np.sin(np.pi * (2 * u[1] - 1))])
                if all(np.linalg.norm(point - other) >= MIN_SEPARATION for other in placed):
                    placed.append(point)
            s.targets[i] = placed
            s.command[i] = rng.integers(self.num_targets)
            s.clip[i] = rng.choice(self.clips_by_word[s.command[i]])
            padded, _, _ = _padded(int(s.clip[i]))
            s.shift[i] = rng.integers(0, (len(padded) - self.window) // sd.HOP + 1)
            s.noise_start[i] = rng.integers(0, (len(_noise_bank()[0]) - self.window) // sd.HOP)
            s.audio[i] = 0.0 if self.mute else self._features(s, i)
        s.on_wrong[rows] = False
        s.arm.target[rows] = s.targets[rows, s.command[rows]]  # the arm's reward measures the named target

    def _noise_scale(self, s: SpokenState, i: int) -> float:
        """Noise standard deviation for the SNR (dB) relative to the clip's mean power; 0 without noise."""
        if self.snr_db is None:
            return 0.0
        return float(np.sqrt(_padded(int(s.clip[i]))[2] / 10 ** (self.snr_db / 10)))

    def waveform(self, s: SpokenState, i: int) -> np.ndarray:
        """Row i's command as heard: the shifted clip plus noise, (window,) float32 in about [-1, 1]."""
        padded, _, _ = _padded(int(s.clip[i]))
        start = int(s.shift[i]) * sd.HOP
        noise = _noise_bank()[0][int(s.noise_start[i]) * sd.HOP:][: self.window]
        return (padded[start : start + self.window] + self._noise_scale(s, i) * noise).astype(np.float32)

    def _features(self, s: SpokenState, i: int) -> np.ndarray:
        if self.audio_kind == "waveform":
            return self.waveform(s, i)
        _, power, _ = _padded(int(s.clip[i]))
        noise = _noise_bank()[1][int(s.noise_start[i]):][: self.frames]
        shift = int(s.shift[i])
        mixed = power[shift : shift + self.frames] + self._noise_scale(s, i) ** 2 * noise  # (F, mels)
        return np.log(mixed + sd.LOG_FLOOR).astype(np.float32)

    def observe(self, s: SpokenState) -> dict[str, np.ndarray]:
        arm = s.arm
        parts = [np.cos(arm.q), np.sin(arm.q), arm.qd, arm.tip]
        if not self.image:
            parts.append(s.targets.reshape(self.num_envs, -1))
        obs = {"audio": s.audio.copy(), "state": np.concatenate(parts, 1).astype(np.float32)}
        if self.image:
            obs["image"] = np.stack([self.draw(s, i, PIXELS) for i in range(self.num_envs)])
        return obs

    def target_xy(self, s: SpokenState) -> np.ndarray:
        """(N, 4, 2) float32 target centres in the observed image's frame: x from -1 (left edge) to +1 (right
        edge), y from -1 (top) to +1 (bottom), as `draw` places them (a pixel's centre is half a pixel in)."""
        half = PIXELS / 2
        scale = arena_scale(self.arm.p, PIXELS)  # px per m
        x = (s.targets[..., 0] * scale + 0.5) / half  # (N, 4)
        y = (-s.targets[..., 1] * scale + 0.5) / half  # (N, 4): image rows grow downwards
        return np.stack([x, y], -1).astype(np.float32)

    def draw(self, s: SpokenState, i: int, size: int) -> np.ndarray:
        """Arena with the arm and the four coloured targets (the arm's own target marker covered by them)."""
        img = draw_arena(self.arm.p, s.arm.q[i], s.targets[i, s.command[i]], size)
        scale = arena_scale(self.arm.p, size)  # px per m
        for k, word in enumerate(self.words):
            x, y = s.targets[i, k]
            centre = (int(round((size / 2 + x * scale) * 16)), int(round((size / 2 - y * scale) * 16)))
            cv2.circle(img, centre, max(2, size // 20) * 16, COLOURS[word], -1, cv2.LINE_AA, 4)
        tip_x, tip_y = s.arm.tip[i]
        tip = (int(round((size / 2 + tip_x * scale) * 16)), int(round((size / 2 - tip_y * scale) * 16)))
        cv2.circle(img, tip, max(1, size // 40) * 16, (40, 40, 40), -1, cv2.LINE_AA, 4)  # fingertip on top
        return img

    def step(self, s: SpokenState, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        rewards, terminated, truncated, info = self.arm.step(s.arm, actions)
        tol = self.arm.task.success_tolerance
        gaps = np.linalg.norm(s.targets - s.arm.tip[:, None, :], axis=2)  # (N, targets), m
        gaps[np.arange(self.num_envs), s.command] = np.inf
        inside = gaps < tol  # (N, targets)
        wrong = inside.any(1)
        if self.wrong_penalty_on == "step":
            event = wrong
        elif self.wrong_penalty_on == "enter":
            event = (inside & ~s.on_wrong).any(1)
        else:  # "end"
            event = wrong & truncated
        s.on_wrong = inside
        rewards = rewards - self.wrong_penalty * event
        info = {**info, "wrong_target": wrong, "heldout_voice": self.clip_heldout[s.clip].copy(), **self.labels(s)}
        return rewards, terminated, truncated, info

    def labels(self, s: SpokenState) -> dict[str, np.ndarray]:
        """Training-only labels of the current observations: the command, and on the image variant where the
        targets are in the image."""
        out = {"command": s.command.copy()}  # index of the word each observation says
        if self.image:
            out["target_xy"] = self.target_xy(s)
        return out

    def reset_info(self, s: SpokenState) -> dict[str, np.ndarray]:
        return self.labels(s)


class SpokenReachEnv(CoreEnv):
    """The single env: the core with one row, with rendering (arena, spectrogram strip, caption)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(self, render_mode: str | None = None, render_size: int = 256, **kwargs: Any) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}.")
        self.params = SpokenParams(**kwargs)
        super().__init__(SpokenCore(1, self.params))
        self.observation_space = self.core.observation_space()
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.render_mode, self.render_size = render_mode, render_size

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        obs, _ = super().reset(seed=seed, options=options)
        return obs, {"command": self.core.words[self.state.command[0]]}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = super().step(action)
        for label in ("command", "target_xy"):  # the vector env's training labels
            info.pop(label, None)
        return obs, reward, terminated, truncated, info

    def command_audio(self) -> tuple[np.ndarray, int]:
        """The command as the agent hears it this episode (shifted, noisy): (samples float32, sample rate)."""
        return self.core.waveform(self.state, 0), sd.SAMPLE_RATE

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        if self.render_mode != "rgb_array":
            return None
        size, core, s = self.render_size, self.core, self.state
        arena = core.draw(s, 0, size)
        if core.audio_kind == "logmel" and not core.mute:
            spec = s.audio[0].T[::-1]  # (mels, frames), low frequencies at the bottom
        else:
            spec = sd.log_mel(core.waveform(s, 0)).T[::-1]
        lo, hi = np.percentile(spec, 2), spec.max()
        strip = np.clip((spec - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)
        strip = cv2.applyColorMap(cv2.resize(strip, (size, size // 4), interpolation=cv2.INTER_NEAREST),
                                  cv2.COLORMAP_VIRIDIS)[..., ::-1]  # BGR -> RGB
        caption = np.full((max(20, size // 10), size, 3), 255, np.uint8)
        word = core.words[s.command[0]]
        voice = core.voice_names[core.clip_voice[s.clip[0]]]
        split = "held-out" if core.clip_heldout[s.clip[0]] else "train"
        cv2.putText(caption, f'said "{word}" ({voice}, {split})', (4, caption.shape[0] - 6),
                    cv2.FONT_HERSHEY_SIMPLEX, size / 700, (20, 20, 20), 1, cv2.LINE_AA)
        return np.concatenate([arena, strip, caption], 0)


class SpokenReachVectorEnv(NumpyVectorEnv):
    """`num_envs` SpokenReach envs stepped in array operations. `info` carries the training-only labels
    `command` (and `target_xy` on the image variant) of the returned observations, at reset and every step."""

    def __init__(self, num_envs: int, render_mode: str | None = None, **kwargs: Any) -> None:
        vector_kwargs = {k: kwargs.pop(k) for k in ("autoreset_mode", "episode_statistics") if k in kwargs}
        self.params = SpokenParams(**kwargs)
        core = SpokenCore(num_envs, self.params)
        super().__init__(core, core.observation_space(), gym.spaces.Box(-1.0, 1.0, (2,), np.float32),
                         render_mode=render_mode, **vector_kwargs)


# ------------------------------------------------------------------------------------------- the baseline


def word_features(log_mel: Any) -> np.ndarray:
    """(B, 3 * mels) shift-invariant summary of B (frames, mels) log-mels: the loud frames (total power
    above the midpoint of each clip's range) cut in three time thirds, each averaged, then standardised."""
    out = []
    for spec in log_mel:
        loudness = np.log(np.exp(spec.astype(np.float64)).sum(1))  # (frames,)
        loud = np.flatnonzero(loudness > (loudness.min() + loudness.max()) / 2)
        region = spec[loud[0] : loud[-1] + 1] if len(loud) >= 3 else spec
        f = np.concatenate([part.mean(0) for part in np.array_split(region, 3, axis=0)])
        out.append((f - f.mean()) / (f.std() + 1e-9))
    return np.array(out)


class SpokenReachController:
    """A listening baseline that learns nothing: a nearest-centroid word classifier (centroids from the
    training voices' clean clips) on the audio observation, then the Reacher IK + PD controller to the
    target of the recognised colour. Needs the log-mel `audio` and target positions in `state`."""

    def __init__(self, env: gym.Env) -> None:
        self.observation_space, self.action_space = env.observation_space, env.action_space
        core: SpokenCore = env.unwrapped.core  # type: ignore[attr-defined]
        if core.image or core.audio_kind != "logmel":
            raise ValueError("the spoken_pd baseline reads target positions from `state` and log-mel `audio`: "
                             "use rlsuite/SpokenReach-v0 with audio='logmel' (not the image variant).")
        self.params = core.arm.p
        clips = sd._shipped_clips()
        train = np.flatnonzero(~clips.heldout)
        feats = word_features([sd.log_mel(np.pad(clips.clip(int(i)) / 32768.0, (400, 400))) for i in train])
        self.centroids = np.stack([feats[clips.word[train] == w].mean(0) for w in range(len(clips.words))])
        self._choice = np.zeros(0, np.int64)

    def reset(self, num_envs: int) -> None:
        self._choice = np.zeros(0, np.int64)

    def act(self, obs: Any, episode_start: np.ndarray, deterministic: bool = True) -> np.ndarray:
        state = np.asarray(obs["state"], np.float64)
        feats = word_features(np.asarray(obs["audio"]))
        choice = np.argmin(((feats[:, None] - self.centroids[None]) ** 2).sum(-1), axis=1)  # (B,)
        targets = state[:, 8:].reshape(len(state), -1, 2)  # (B, targets, 2), m
        q = np.arctan2(state[:, 2:4], state[:, 0:2])
        return pd_to_target(self.params, q, state[:, 4:6], targets[np.arange(len(state)), choice])
