"""Atari throughput, ours vs Stable-Baselines3, in one process run: the preprocessed vector pipeline and
the PPO training loop.

1. Pipeline: frames per second (agent steps x 4) of uniformly random actions through the preprocessed
   vector env, same games, same number of envs, all under the dqn-nature protocol (SB3's AtariWrapper).
   Ours: `make_vec_env(id, n, preset="dqn-nature")` on the native path (`auto`: ale-py's C++ emulators
   with the resets in NumPy, `AtariNativeVectorEnv`) and on Gymnasium's sync vector env (the reference
   path). SB3: `make_atari_env` + `VecFrameStack(4)` with DummyVecEnv and SubprocVecEnv. Configurations
   alternate within each repeat (A B C ... A B C ...), so background load hits all alike.
2. PPO: env frames per wall second over the whole training run (env and network construction, rollouts
   and updates, on both sides) for a fixed number of frames on Breakout, our PPO with its Atari preset
   vs SB3's PPO with RL Zoo's Atari settings (8 envs, n_steps 128, batch 256, 4 epochs, Nature CNN), one
   torch thread each; then the CPU seconds per update of the CNN (plain, as SB3 runs it, and as our PPO
   trains it) and of the env, which bound the PPO ratio.

Run: `python benchmarks/atari_pipeline.py [--envs 8] [--steps 400] [--repeats 2] [--ppo-frames 32768]`
(`--split-only`: only the CPU split; `--ppo-only`: the PPO comparison and the split).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from rlsuite.envs import make_vec_env

GAMES = ("Pong", "Breakout")
FRAME_SKIP = 4


def _time_steps(step: Callable[[np.ndarray], object], n_actions: int, n_envs: int, steps: int) -> float:
    rng = np.random.default_rng(0)
    actions = rng.integers(0, n_actions, (steps, n_envs))
    start = time.perf_counter()
    for step_actions in actions:
        step(step_actions)
    return steps * n_envs * FRAME_SKIP / (time.perf_counter() - start)


def ours(game: str, n_envs: int, steps: int, mode: str) -> float:
    envs = make_vec_env(f"ALE/{game}-v5", n_envs, mode=mode, record_stats=False, preset="dqn-nature")  # type: ignore[arg-type]
    envs.reset(seed=0)
    try:
        return _time_steps(envs.step, int(envs.single_action_space.n), n_envs, steps)  # type: ignore[attr-defined]
    finally:
        envs.close()


def sb3(game: str, n_envs: int, steps: int, subproc: bool) -> float:
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import SubprocVecEnv, VecFrameStack

    vec_cls = SubprocVecEnv if subproc else None
    envs = VecFrameStack(make_atari_env(f"ale_py:{game}NoFrameskip-v4", n_envs=n_envs, seed=0, vec_env_cls=vec_cls), 4)
    envs.reset()
    try:
        return _time_steps(envs.step, int(envs.action_space.n), n_envs, steps)  # type: ignore[attr-defined]
    finally:
        envs.close()


def atari_ours(frames: int, root: Path, game: str = "Breakout", config: str | None = None,
               agent: str = "ppo", overrides: dict[str, object] | None = None) -> tuple[float, float]:
    """(frames per wall second, frames per CPU second of the process, emulator threads included) of our
    `agent` (PPO by default) with its Atari preset, or with the named `--config` recipe over it (e.g. "cpu"),
    and any `--set` overrides."""
    from rlsuite.agents.interface import TrainContext
    from rlsuite.agents.logger import MetricLogger
    from rlsuite.agents.registry import agent_module
    from rlsuite.agents.run import RunFolder
    from rlsuite.agents.settings import resolve_settings, settings_to_dict

    env_id = f"ALE/{game}-v5"
    module = agent_module(agent)
    settings = resolve_settings(module.Settings, agent, env_id, config_file=Path(config) if config else None,
                                cli_values={"total_steps": frames // FRAME_SKIP, "eval_every": 0, "tensorboard": False,
                                            "torch_threads": 1, **(overrides or {})})
    run = RunFolder.create(root, agent=agent, env_id=env_id, seed=0, settings=settings_to_dict(settings),
                           command="benchmark", device="cpu")
    with MetricLogger(run.path, tensorboard=False) as logger:
        start, cpu = time.perf_counter(), time.process_time()
        result = module.train(settings, TrainContext(run=run, logger=logger))
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return result.final_step * FRAME_SKIP / elapsed, result.final_step * FRAME_SKIP / cpu


def ppo_sb3(frames: int, game: str = "Breakout") -> tuple[float, float]:
    """As `atari_ours`; DummyVecEnv, so all of SB3's CPU is this process's."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    def linear(start: float) -> Callable[[float], float]:
        return lambda progress_remaining: progress_remaining * start

    start, cpu = time.perf_counter(), time.process_time()  # from the env's creation, as ours (train builds its env)
    envs = VecFrameStack(make_atari_env(f"ale_py:{game}NoFrameskip-v4", n_envs=8, seed=0), 4)
    model = PPO("CnnPolicy", envs, n_steps=128, batch_size=256, n_epochs=4, learning_rate=linear(2.5e-4),
                clip_range=linear(0.1), ent_coef=0.01, vf_coef=0.5, seed=0, device="cpu", verbose=0)
    model.learn(total_timesteps=frames // FRAME_SKIP)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    envs.close()
    return model.num_timesteps * FRAME_SKIP / elapsed, model.num_timesteps * FRAME_SKIP / cpu


def dqn_sb3(frames: int, game: str = "Breakout", learning_starts: int = 100_000) -> tuple[float, float]:
    """As `ppo_sb3`, for SB3's DQN with RL Zoo's Atari settings (one env, Nature CNN, 100k replay, one
    gradient step of 32 samples per 4 agent steps); `learning_starts` lowered makes a short run time the
    learning loop rather than the warm-up."""
    from stable_baselines3 import DQN
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    start, cpu = time.perf_counter(), time.process_time()
    envs = VecFrameStack(make_atari_env(f"ale_py:{game}NoFrameskip-v4", n_envs=1, seed=0), 4)
    model = DQN("CnnPolicy", envs, buffer_size=100_000, learning_rate=1e-4, batch_size=32,
                learning_starts=learning_starts, target_update_interval=1000, train_freq=4, gradient_steps=1,
                exploration_fraction=0.1, exploration_final_eps=0.01, optimize_memory_usage=False, seed=0,
                device="cpu", verbose=0)
    model.learn(total_timesteps=frames // FRAME_SKIP)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    envs.close()
    return model.num_timesteps * FRAME_SKIP / elapsed, model.num_timesteps * FRAME_SKIP / cpu


def _cpu_seconds(fn: Callable[[], object]) -> float:
    start = time.process_time()  # all threads of this process: the C++ emulator threads count too
    fn()
    return time.process_time() - start


def cost_split(repeats: int = 2) -> None:
    """CPU seconds per PPO update (4,096 frames at the benchmark's settings) of the Nature CNN and of the
    env, ours and SB3's; prints the PPO ratio they leave possible.

    CNN: 128 rollout forward passes of 8 observations, then 4 epochs x 4 minibatches of 256 forward,
    backward and an Adam step, of our encoder (SB3's CnnPolicy has the same layers): by the plain module
    (what SB3 runs) and as our PPO trains it (the minibatches by `NatureCNN.forward_channels_last`, the
    rollout by the plain module). Env: 128 vector steps of 8 Breakout games with random actions, ours
    native vs SB3's DummyVecEnv + VecFrameStack, and a floor: ale-py's AtariVectorEnv emulating the same
    steps in one C++ call for all games, without the preset's resets and frame stacking. CPU time, not wall time, so the figures hold on a loaded
    machine (SubprocVecEnv would hide its CPU in children).
    """
    from ale_py.vector_env import AtariVectorEnv
    from gymnasium import spaces
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    from rlsuite.policies.encoders import make_encoder

    encoder = make_encoder(spaces.Box(0, 255, (4, 84, 84), np.uint8))
    heads = torch.nn.Linear(encoder.features_dim, 4 + 1)  # policy logits and value
    optimizer = torch.optim.Adam([*encoder.parameters(), *heads.parameters()], lr=2.5e-4)
    rng = np.random.default_rng(0)
    rollout = torch.as_tensor(rng.integers(0, 256, (128, 8, 4, 84, 84), dtype=np.uint8))
    batch = torch.as_tensor(rng.integers(0, 256, (256, 4, 84, 84), dtype=np.uint8))
    actions = rng.integers(0, 4, (128, 8))  # one rollout: 128 steps x 8 envs x 4 frames = 4,096 frames

    def cnn(train_forward: Callable[[torch.Tensor], torch.Tensor]) -> None:
        with torch.inference_mode():
            for obs in rollout:
                heads(encoder(obs))
        for _ in range(4 * 4):
            loss = heads(train_forward(batch)).square().mean()  # (256, 5) -> scalar
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    ours_env = make_vec_env("ALE/Breakout-v5", 8, record_stats=False, preset="dqn-nature")
    sb3_env = VecFrameStack(make_atari_env("ale_py:BreakoutNoFrameskip-v4", n_envs=8, seed=0), 4)
    # the emulation floor: ale-py's own vector env, all 8 games in one C++ call, the same frame skip, max
    # pooling and resize, and no resets but the game overs' (no no-op starts, fire or life-loss steps)
    floor_env = AtariVectorEnv("breakout", 8, num_threads=2, stack_num=1, noop_max=0, episodic_life=False,
                               use_fire_reset=False, reward_clipping=False)
    ours_env.reset(seed=0)
    sb3_env.reset()
    floor_env.reset(seed=0)
    figures: dict[str, list[float]] = {"cnn plain": [], "cnn ours": [], "env ours": [], "env ours driver": [],
                                       "env sb3": [], "env floor": []}
    for _ in range(repeats):  # alternating
        figures["cnn plain"].append(_cpu_seconds(lambda: cnn(encoder)))
        figures["cnn ours"].append(_cpu_seconds(lambda: cnn(encoder.forward_channels_last)))  # type: ignore[operator]
        driver_start = time.thread_time()  # this thread only: our NumPy/Python driver, not the emulator threads
        figures["env ours"].append(_cpu_seconds(lambda: [ours_env.step(row) for row in actions]))
        figures["env ours driver"].append(time.thread_time() - driver_start)
        figures["env sb3"].append(_cpu_seconds(lambda: [sb3_env.step(row) for row in actions]))
        figures["env floor"].append(_cpu_seconds(lambda: [floor_env.step(row) for row in actions]))
    ours_env.close()
    sb3_env.close()
    floor_env.close()
    median = {name: float(np.median(values)) for name, values in figures.items()}
    cnn_sb3, cnn_ours = median["cnn plain"], median["cnn ours"]
    env_ours, env_sb3, env_floor = median["env ours"], median["env sb3"], median["env floor"]
    print(f"CPU s per update of 4096 frames (median of {repeats}): CNN plain (SB3) {cnn_sb3:.2f}, CNN ours "
          f"{cnn_ours:.2f} (ratio {cnn_sb3 / cnn_ours:.2f}), env ours {env_ours:.2f} (of which the Python/NumPy "
          f"driver thread {median['env ours driver']:.2f}), env sb3 {env_sb3:.2f} (ratio {env_sb3 / env_ours:.2f}); "
          f"PPO ratio with nothing else: {(cnn_sb3 + env_sb3) / (cnn_ours + env_ours):.2f}; env floor (ale-py "
          f"AtariVectorEnv, one call for all games, no resets) {env_floor:.2f}: env CPU ratio at most "
          f"{env_sb3 / env_floor:.2f}")
    for name, values in figures.items():
        print(f"  {name}: {' '.join(f'{v:.2f}' for v in values)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--envs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=400, help="vector steps per pipeline measurement")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--ppo-frames", type=int, default=32_768, help="0 skips the PPO comparison")
    parser.add_argument("--split-only", action="store_true", help="only the CPU split of a PPO update")
    parser.add_argument("--ppo-only", action="store_true", help="skip the pipeline measurements")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.split_only:
        cost_split(args.repeats)
        return
    configs: dict[str, Callable[[str], float]] = {
        "ours native (C++ emulators)": lambda game: ours(game, args.envs, args.steps, "vector_entry_point"),
        "ours sync (Gymnasium)": lambda game: ours(game, args.envs, args.steps, "sync"),
        "sb3 DummyVecEnv": lambda game: sb3(game, args.envs, args.steps, subproc=False),
        "sb3 SubprocVecEnv": lambda game: sb3(game, args.envs, args.steps, subproc=True),
    }
    results: dict[tuple[str, str], list[float]] = {}
    for _ in range(0 if args.ppo_only else args.repeats):
        for game in GAMES:
            for name, fn in configs.items():
                fps = fn(game)
                results.setdefault((game, name), []).append(fps)
                print(f"{game:9s} {name:34s} {fps:9.0f} frames/s", flush=True)
    print(f"\npipeline, {args.envs} envs, median of {args.repeats} (frames/s; ratio vs sb3 DummyVecEnv | SubprocVecEnv):")
    for game in GAMES if results else ():
        dummy = np.median(results[(game, "sb3 DummyVecEnv")])
        subproc = np.median(results[(game, "sb3 SubprocVecEnv")])
        for name in configs:
            fps = float(np.median(results[(game, name)]))
            print(f"| {game} | {name} | {fps:.0f} | {fps / dummy:.2f} | {fps / subproc:.2f} |")
    if args.ppo_frames:
        torch.optim.Adam([torch.zeros(1, requires_grad=True)], fused=True)  # pay torch._dynamo's import up front
        ours_fps, sb3_fps = [], []
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(args.repeats):
                ours_fps.append(atari_ours(args.ppo_frames, Path(tmp)))
                sb3_fps.append(ppo_sb3(args.ppo_frames))
                (ours_wall, ours_cpu), (sb3_wall, sb3_cpu) = ours_fps[-1], sb3_fps[-1]
                print(f"PPO Breakout {args.ppo_frames} frames: ours {ours_wall:.0f} frames/s ({ours_cpu:.0f} per CPU "
                      f"s), sb3 {sb3_wall:.0f} frames/s ({sb3_cpu:.0f} per CPU s), ratio {ours_wall / sb3_wall:.2f} "
                      f"wall, {ours_cpu / sb3_cpu:.2f} CPU", flush=True)
        for column, unit in enumerate(("wall", "CPU")):
            ours_median = np.median([run[column] for run in ours_fps])
            sb3_median = np.median([run[column] for run in sb3_fps])
            paired = np.median([ours[column] / sb3[column] for ours, sb3 in zip(ours_fps, sb3_fps, strict=True)])
            print(f"PPO median frames per {unit} second: ours {ours_median:.0f}, sb3 {sb3_median:.0f}, ratio of "
                  f"medians {ours_median / sb3_median:.2f}, median of paired ratios {paired:.2f}")
        cost_split(args.repeats)  # what bounds the ratio


if __name__ == "__main__":
    main()
