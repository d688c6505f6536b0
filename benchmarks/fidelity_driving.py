"""Fidelity, driving: policies trained in rlsuite's Highway, evaluated in highway-env's highway-fast-v0 or merge-v0.

Every row is evaluated the same way: the peer env (`--peer`) with its default configuration,
environment seeds 1000+i, greedy actions. `highway-fast-v0`: 3 lanes, 20 vehicles, 5 Hz simulation,
1 Hz decisions, 30 s episodes, ego-only collisions. `merge-v0`: 2 lanes and an on-ramp whose 80 m
merge section ends at 310 m, the ego at 30 m/s in the right lane among 3 vehicles and 1 on the ramp,
15 Hz simulation, 1 Hz decisions; the episode ends past 370 m. Metrics: crash rate, mean ego speed
(m/s, averaged over the decisions of an episode, then over episodes) and return (highway-env's
normalised reward, summed).

Rows:
- `highway-idm`, `highway-mobil`: rlsuite's rule-based drivers acting through the adapter
  (benchmarks/fidelity/highway_adapter.py: our kinematics observation computed from highway-env's
  vehicles; the five meta-actions are the same, so actions pass unchanged).
- `ppo rlsuite (<variant>)`: rlsuite's PPO preset (one block for Highway-v0, Highway-Fast-v0 and
  Merge-v0) trained in our env as the variant sets it (`VARIANTS`: a registered id and env kwargs): the
  shipped `rlsuite/Highway-v0`; `highway-fast`, the reference profile `rlsuite/Highway-Fast-v0`
  (highway-fast-v0's traffic: ego-only collisions, politeness 0), and its two settings one at a time;
  `merge`, `rlsuite/Merge-v0` (2 lanes, an on-ramp ending at 400 m, 12 vehicles, 3 of them on the
  ramp), and `merge-*`, one of merge-v0's settings each. Acting through the adapter.
- `sb3-ppo highway-env (1x)`: SB3 PPO trained in the peer env itself with highway-env's own recipe
  (scripts/sb3_highway_ppo.py: 256x256 MLP, batch 64, 10 epochs, lr 5e-4, gamma 0.8, 768 steps per
  update) for the CPU seconds our training took (one env: the machine is shared).

Trained rows: one run per seed, a seed's score is its mean over the evaluation episodes; IQM and a 95%
stratified-bootstrap CI over seeds (rlsuite.evaluation.stats). Rule-based rows: IQM and CI over episodes.

Commands (the bench extra installs highway-env):
    python benchmarks/fidelity_driving.py all --seeds 0 1 2 --out runs/fidelity_driving      # everything
    python benchmarks/fidelity_driving.py train-ours --variant default --seed 0 --out DIR
    python benchmarks/fidelity_driving.py train-sb3 --seed 0 --budgets 300 --out DIR
    python benchmarks/fidelity_driving.py table --out DIR --episodes 50
    python benchmarks/fidelity_driving.py all --peer merge-v0 --seeds 0 1 2 --out runs/fidelity_merge
    # the merge-v0 ablation: one trained row per difference, evaluated in merge-v0
    python benchmarks/fidelity_driving.py all --peer merge-v0 --seeds 0 1 2 --out runs/fidelity_merge \
        --variants merge merge-zero-politeness merge-v0-traffic merge-v0-traffic-speed merge-15hz merge-v0-reward \
        merge-v0-end merge-v0-merge
    # a quick check that everything runs (a minute of CPU; the numbers mean nothing):
    python benchmarks/fidelity_driving.py all --out /tmp/fid_quick --seeds 0 --steps 4096 --episodes 2
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from fidelity.budget import CpuBudgetSnapshots, train_ppo_preset
from fidelity.rows import cache_rows, row_path

PEERS = ("highway-fast-v0", "merge-v0")
# Each variant of our env the PPO preset (one block for Highway-v0, Highway-Fast-v0 and Merge-v0) trains on: a
# registered id and env kwargs on top of it. highway-fast-v0: the shipped defaults; highway-fast-v0's settings
# where ours differ (collision rule, politeness of the traffic), one at a time; and both, which is the reference
# profile rlsuite/Highway-Fast-v0. merge-v0: rlsuite/Merge-v0, and one of merge-v0's settings where ours differ.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "default": ("rlsuite/Highway-v0", {}),
    "ego-collisions": ("rlsuite/Highway-v0", {"collision_scope": "controlled"}),
    "zero-politeness": ("rlsuite/Highway-v0", {"politeness_range": (0.0, 0.0)}),
    "highway-fast": ("rlsuite/Highway-Fast-v0", {}),
    "merge": ("rlsuite/Merge-v0", {}),
    # merge-v0's traffic is highway-env's IDMVehicle: MOBIL politeness 0
    "merge-zero-politeness": ("rlsuite/Merge-v0", {"politeness_range": (0.0, 0.0)}),
    # merge-v0's vehicles: 3 on the main road and 1 on the ramp; the ego starts in the right lane at 30 m/s
    "merge-v0-traffic": ("rlsuite/Merge-v0", {"vehicles_count": 4, "ramp_vehicles": 1, "initial_lane": 1,
                                              "ego_speed": 30.0}),
    # merge-v0's lanes keep highway-env's default speed limit, 20 m/s, which caps every IDM vehicle's desired
    # speed: traffic drives at about 20 m/s (here desired speeds drawn in 0.7-0.8 x 26.7 = 18.7-21.3 m/s)
    "merge-v0-traffic-speed": ("rlsuite/Merge-v0", {"speed_limit": 80.0 / 3.0}),
    # merge-v0 simulates at 15 Hz (highway-fast-v0 and our ids at 5 Hz)
    "merge-15hz": ("rlsuite/Merge-v0", {"simulation_frequency": 15}),
    # merge-v0's reward weights alone, and with its altruistic term (the ramp's merging vehicles' speed shortfall)
    "merge-v0-reward": ("rlsuite/Merge-v0", {"high_speed_reward": 0.2, "lane_change_reward": -0.05}),
    "merge-v0-altruism": ("rlsuite/Merge-v0", {"high_speed_reward": 0.2, "lane_change_reward": -0.05,
                                               "merging_speed_reward": -0.5}),
    # merge-v0's episode end: it terminates (no time limit) once the ego is past x = 370 m, 60 m beyond the end of
    # its ramp (310 m); here 60 m beyond ours (400 m). The 30 s time limit stays, but never binds there.
    "merge-v0-end": ("rlsuite/Merge-v0", {"end_position": 460.0}),
    # merge-v0's merging rule: its ramp vehicle (no route, so MOBIL's incentive decides) can change lane only where
    # the ramp runs beside the road, its last 80 m; ours merge anywhere on the ramp, whenever it is safe.
    "merge-v0-merge": ("rlsuite/Merge-v0", {"ramp_merge_length": 80.0}),
    # all of the above but the 15 Hz simulation: the reference profile rlsuite/Merge-Reference-v0
    "merge-reference": ("rlsuite/Merge-Reference-v0", {}),
}
# The variants whose settings the highway-fast-v0 ablation evaluates a trained policy under, in our env.
HIGHWAY_ABLATION = ("default", "ego-collisions", "zero-politeness", "highway-fast")
# What each peer is compared with: the variant whose runs set the SB3 budget (and are ablated, highway only).
FIRST_VARIANT = {"highway-fast-v0": "default", "merge-v0": "merge"}
SB3_PPO = {"n_steps": 768, "batch_size": 64, "n_epochs": 10, "learning_rate": 5e-4, "gamma": 0.8}
SB3_POLICY_KWARGS: dict[str, Any] = {"net_arch": {"pi": [256, 256], "vf": [256, 256]}}


STEPS_HELP = "our PPO's env steps instead of the preset's 150k: a quick check of the pipeline, not a result"


def make_peer(peer: str) -> gym.Env:
    import highway_env  # noqa: F401  (registers highway-env's ids)

    return gym.make(peer)


def env_kwargs(variant: str) -> dict[str, Any]:
    """Every env kwarg of `variant`: its id's registered kwargs, then the variant's own."""
    import rlsuite.envs  # noqa: F401  (registers the ids)

    env_id, kwargs = VARIANTS[variant]
    return {**gym.spec(env_id).kwargs, **kwargs}


def lanes_of(variant: str) -> int:
    """Main lanes of our env in `variant`: the adapter scales y by them, as our env does."""
    from rlsuite.envs.highway import HighwayParams

    return int(env_kwargs(variant).get("lanes_count", HighwayParams().lanes_count))


# --- training ---------------------------------------------------------------------------------------------------

def train_ours(variant: str, seed: int, out: Path, steps: int | None = None) -> Path:
    """rlsuite's PPO preset for the variant's id with its env kwargs (`steps`: instead of the preset's);
    the run folder, with its CPU seconds."""
    env_id, kwargs = VARIANTS[variant]
    return train_ppo_preset(env_id, kwargs, seed, out / "ours" / variant,
                            f"benchmarks/fidelity_driving.py train-ours --variant {variant} --seed {seed}", steps)


def train_sb3(peer: str, seed: int, budgets: list[float], out: Path) -> None:
    """SB3 PPO in the peer env until the largest budget of process CPU seconds, with a snapshot at each."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    torch.set_num_threads(1)
    start = time.process_time()
    vec = DummyVecEnv([lambda: make_peer(peer)])
    model = PPO("MlpPolicy", vec, seed=seed, device="cpu", verbose=0, policy_kwargs=SB3_POLICY_KWARGS, **SB3_PPO)
    model.learn(total_timesteps=10**9, callback=CpuBudgetSnapshots(budgets, out / "sb3" / f"seed{seed}", start))
    vec.close()
    print(f"sb3 seed {seed}: {model.num_timesteps} steps in {time.process_time() - start:.0f} CPU s", flush=True)


# --- evaluation ---------------------------------------------------------------------------------------------------

METRICS = ("crashed", "speed", "return")
Scores = dict[str, np.ndarray]  # metric -> (runs, 1) means over a run's evaluation episodes
Actor = Any  # (obs, episode_start) -> action


def eval_seeds(episodes: int) -> list[int]:
    return [1000 + i for i in range(episodes)]


def run_episode(env: gym.Env, act: Actor, seed: int) -> dict[str, float]:
    """One episode: crashed at the end (0/1), mean ego speed over the decisions, return."""
    obs, _ = env.reset(seed=seed)
    total, speeds, done, start = 0.0, [], False, True
    info: dict[str, Any] = {}
    while not done:
        obs, reward, terminated, truncated, info = env.step(act(obs, start))
        start = False
        total += float(reward)
        speeds.append(float(info["speed"]))
        done = terminated or truncated
    return {"crashed": float(info["crashed"]), "speed": float(np.mean(speeds)), "return": total}


def ours_actor(policy: Any) -> Actor:
    """A batched rlsuite policy acting on one observation."""
    return lambda obs, start: int(np.asarray(policy.act(obs[None], np.array([start]), deterministic=True)).reshape(-1)[0])


def episodes_in_peer(peer: str, act: Actor, episodes: int, lanes: int | None = None,
                     order: str = "euclidean") -> list[dict[str, float]]:
    """Episodes in the peer env: through our observation with y scaled by `lanes` lanes, or (`lanes` None)
    highway-env's own observation."""
    from fidelity.highway_adapter import OursInHighwayEnv

    env = make_peer(peer)
    if lanes is not None:
        env = OursInHighwayEnv(env, order=order, lanes_count=lanes)
    try:
        return [run_episode(env, act, seed) for seed in eval_seeds(episodes)]
    finally:
        env.close()


def episodes_in_ours(act: Actor, episodes: int, variant: str) -> list[dict[str, float]]:
    """Episodes in our env (single env) as `variant` sets it, same seeds."""
    from rlsuite.envs import make_env

    env_id, kwargs = VARIANTS[variant]
    env = make_env(env_id, **kwargs)
    try:
        return [run_episode(env, act, seed) for seed in eval_seeds(episodes)]
    finally:
        env.close()


def _scores(per_run: list[list[dict[str, float]]]) -> Scores:
    return {m: np.array([[np.mean([ep[m] for ep in run])] for run in per_run]) for m in METRICS}


def _runs(out: Path, variant: str) -> list[Path]:
    return sorted(p for p in (out / "ours" / variant).glob("*") if (p / "cpu_seconds.json").exists())


def _cell(matrix: np.ndarray, scale: float = 1.0, digits: int = 2) -> str:
    """IQM [95% CI] of a (runs, 1) matrix (stratified bootstrap over runs)."""
    from rlsuite.evaluation import stats

    point, low, high = (scale * v for v in stats.stratified_bootstrap_ci(matrix, stats.iqm, reps=2000, seed=0))
    return f"{point:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


Row = dict[str, tuple[Scores, str]]  # row name -> (scores, what its training cost)


def row_keys(variants: list[str], ablate: bool) -> list[str]:
    """The tables' rows, in order, by key: `rules`, `ours:<variant>`, `sb3`, then the ablation's two."""
    return ["rules", *(f"ours:{v}" for v in variants), "sb3", *(["ablation", "ablation-order"] if ablate else [])]


def our_budget(out: Path, variant: str) -> float:
    """Mean CPU seconds of our training runs of `variant`: the SB3 budget."""
    runs = _runs(out, variant)
    if not runs:
        raise SystemExit(f"No runs of ours for variant {variant} under {out}/ours: run train-ours first.")
    return float(np.mean([json.loads((r / "cpu_seconds.json").read_text())["cpu_s"] for r in runs]))


def evaluate_row(key: str, out: Path, episodes: int, first_variant: str, peer: str) -> Row:
    """Evaluate one row key in `peer`; {} when it has nothing to evaluate yet."""
    from rlsuite.agents.registry import load_policy, make_baseline
    from rlsuite.envs import make_env

    if key == "rules":  # the drivers read our observation of the first variant's road
        rows: Row = {}
        for name in ("highway-idm", "highway-mobil"):
            env_id, kwargs = VARIANTS[first_variant]
            driver = make_baseline(name, make_env(env_id, **kwargs))
            eps = episodes_in_peer(peer, ours_actor(driver), episodes, lanes_of(first_variant))
            rows[f"{name} (rlsuite, via adapter)"] = (_scores([[ep] for ep in eps]), f"- ({episodes} episodes)")
        return rows
    if key == "sb3":
        found = sb3_scores(peer, out, our_budget(out, first_variant), episodes)
        if found is None:
            return {}
        scores, cpu, steps = found
        return {"sb3-ppo highway-env, 1x CPU": (scores, f"{np.mean(cpu):.0f} CPU s, {np.mean(steps):.0f} steps "
                                                        f"({len(cpu)} seeds)")}
    variant = key.partition(":")[2] or first_variant
    runs = _runs(out, variant)
    if not runs:
        return {}
    loaded = [load_policy(run, "last") for run in runs]
    if key.startswith("ablation"):
        return _ablation([p.policy for p in loaded], variant, episodes, in_peer=key == "ablation-order")
    cpu = [json.loads((run / "cpu_seconds.json").read_text())["cpu_s"] for run in runs]
    per_run = [episodes_in_peer(peer, ours_actor(p.policy), episodes, lanes_of(variant)) for p in loaded]
    steps = np.mean([p.step for p in loaded])
    return {f"ppo rlsuite, {variant}": (_scores(per_run), f"{np.mean(cpu):.0f} CPU s, {steps:.0f} steps ({len(runs)} seeds)")}


def table(peer: str, out: Path, episodes: int, variants: list[str], ablate: bool, only: list[str] | None) -> None:
    """Evaluate the rows not yet evaluated (or just `only`), caching each under out/eval/, then print the
    Markdown tables of every cached row (and write them as JSON beside the runs)."""
    torch.set_num_threads(1)
    keys = row_keys(variants, ablate)
    cache_rows(out, episodes, only or keys, lambda key: evaluate_row(key, out, episodes, variants[0], peer))
    if only:
        return
    record: dict[str, Any] = {}
    tables: dict[bool, Row] = {False: {}, True: {}}
    for key in keys:
        path = row_path(out, key, episodes)
        for name, row in (json.loads(path.read_text()) if path.exists() else {}).items():
            tables[key.startswith("ablation")][name] = ({m: np.asarray(row[m]) for m in METRICS}, row["training"])
            record[name] = row
    _print(f"{peer} (highway-env), {episodes} episodes (seeds 1000+) per run; IQM [95% CI] over runs", tables[False])
    if tables[True]:
        _print(f"Ablation: PPO trained on {variants[0]}, evaluated under each difference ({episodes} episodes per run)",
               tables[True])
    (out / "table.json").write_text(json.dumps({"episodes": episodes, "rows": record}, indent=1))


def _print(title: str, rows: Row) -> None:
    print(f"\n{title}\n\n| policy | evaluated with / trained | crash rate (%) | mean speed (m/s) | return |\n"
          f"| --- | --- | ---: | ---: | ---: |")
    for name, (s, training) in rows.items():
        print(f"| {name} | {training} | {_cell(s['crashed'], 100.0, 1)} | {_cell(s['speed'])} | {_cell(s['return'])} |")


def _ablation(policies: list[Any], variant: str, episodes: int, in_peer: bool) -> Row:
    """The same trained policies under each modelling difference: in our env with highway-fast-v0's
    settings one at a time, or (`in_peer`) in highway-env with highway-env's ranking of the observed vehicles."""
    if in_peer:
        return {"highway-env, vehicles ranked by longitudinal distance": (
            _scores([episodes_in_peer("highway-fast-v0", ours_actor(p), episodes, lanes_of(variant), order="longitudinal")
                     for p in policies]), variant)}
    return {f"our env, {name}": (_scores([episodes_in_ours(ours_actor(p), episodes, name) for p in policies]), variant)
            for name in HIGHWAY_ABLATION}


def sb3_scores(peer: str, out: Path, budget_s: float, episodes: int) -> tuple[Scores, list[float], list[int]] | None:
    """SB3 snapshots nearest `budget_s` CPU seconds, evaluated on highway-env's own observation."""
    from fidelity.budget import greedy, load_sb3_actor

    env = make_peer(peer)
    spaces = env.observation_space, env.action_space
    env.close()
    per_run, cpu, steps = [], [], []
    for folder in sorted((out / "sb3").glob("seed*")):
        snaps = sorted((float(p.stem.removeprefix("cpu_")), p.with_suffix("")) for p in folder.glob("cpu_*.json"))
        if not snaps or snaps[-1][0] < budget_s - 30.0:  # not trained that far (snapshots every 30 CPU s)
            continue
        stem = min(snaps, key=lambda s: abs(s[0] - budget_s))[1]  # the snapshot nearest the budget
        policy, meta = load_sb3_actor(stem, *spaces, policy_kwargs=SB3_POLICY_KWARGS)
        per_run.append(episodes_in_peer(peer, lambda obs, start, policy=policy: greedy(policy, obs), episodes))
        cpu.append(meta["cpu_s"])
        steps.append(meta["steps"])
    return (_scores(per_run), cpu, steps) if per_run else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train-ours")
    p.add_argument("--variant", choices=sorted(VARIANTS), default="default")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=None, help=STEPS_HELP)
    p = sub.add_parser("train-sb3")
    p.add_argument("--peer", choices=PEERS, default=PEERS[0], help="the highway-env env SB3 trains in")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budgets", type=float, nargs="+", required=True, help="process CPU seconds of each snapshot")
    p.add_argument("--out", type=Path, required=True)
    for name in ("table", "all"):
        p = sub.add_parser(name)
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--peer", choices=PEERS, default=PEERS[0], help="the highway-env env every row is evaluated in")
        p.add_argument("--episodes", type=int, default=50, help="evaluation episodes per run")
        p.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=None,
                       help="variants our PPO trains on: the first sets the CPU budget and is ablated "
                            "(default: `default` for highway-fast-v0, `merge` for merge-v0)")
        p.add_argument("--no-ablation", action="store_true")
        p.add_argument("--rows", nargs="+", default=None,
                       help="evaluate only these row keys (rules, ours:<variant>, sb3, ablation, ablation-order) and exit; "
                            "separate processes can share the work, a last `table` prints everything")
        if name == "all":
            p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
            p.add_argument("--steps", type=int, default=None, help=STEPS_HELP)
    args = parser.parse_args()
    if importlib.util.find_spec("highway_env") is None:
        parser.exit(2, "error: highway-env is not installed; the peers come with the bench extra: "
                       "pip install -e \".[bench]\"\n")
    if args.command in ("table", "all"):
        args.variants = args.variants or [FIRST_VARIANT[args.peer]]
        if args.peer != "highway-fast-v0" and not args.no_ablation:
            args.no_ablation = True  # the ablation's settings are highway-fast-v0's
            print(f"(no ablation for {args.peer}: its settings are highway-fast-v0's)")
    if args.command == "all":
        for variant in args.variants:
            for seed in args.seeds:
                train_ours(variant, seed, args.out, args.steps)
        cpu = our_budget(args.out, args.variants[0])
        for seed in args.seeds:
            train_sb3(args.peer, seed, [math.ceil(cpu)], args.out)
    if args.command in ("table", "all"):
        table(args.peer, args.out, args.episodes, args.variants, not args.no_ablation, getattr(args, "rows", None))
    elif args.command == "train-ours":
        train_ours(args.variant, args.seed, args.out, args.steps)
    elif args.command == "train-sb3":
        train_sb3(args.peer, args.seed, args.budgets, args.out)


if __name__ == "__main__":
    main()
