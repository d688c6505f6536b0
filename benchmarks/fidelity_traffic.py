"""Fidelity, traffic: signal policies trained in rlsuite's queue model, evaluated in SUMO (sumo-rl, libsumo).

Every row is evaluated the same way: sumo-rl's `2way-single-intersection` with its two demand files
(`vertical`: north-south heavy, `horizontal`: east-west heavy), 1800 simulated seconds per episode,
sumo-rl's defaults (delta_time 5 s, yellow 2 s, min green 5 s), SUMO seeds 1000+i, every seed run on
both demands. Metrics: SUMO's mean waiting time per vehicle (tripinfo `waitingTime`, every vehicle that
entered, finished or not) and sumo-rl's return (diff-waiting-time reward summed over the episode).

Rows:
- `fixed-time (net)`: the net's own static program (sumo-rl `fixed_ts=True`).
- `fixed-time (rlsuite Webster)`, `max-pressure`: rlsuite's controllers acting through the adapter
  (benchmarks/fidelity/sumo_adapter.py), built on the shipped `single_sumo` scenario (the net's geometry
  and demand; one lane per movement, so max-pressure weighs halting vehicles alike).
- `ppo rlsuite, scenario <s>`: rlsuite's PPO preset for `rlsuite/TrafficSingleShared-v0` trained in
  our model, then acting in SUMO through the adapter (our observation layout from SUMO's lanes, our
  phases as sumo-rl's green phases). Scenarios: the shipped `single` and `single_sumo` (sumo-rl's
  intersection: its geometry, signal timing and demand), and between them the ablation scenarios in
  benchmarks/fidelity/scenarios, `single` with one of sumo-rl's settings each: `single_sumo_signal`
  (yellow 2 s, no all-red, no max green), `single_sumo_demand` (its two constant demands),
  `single_sumo_geometry` (142 m approaches, one lane per movement). The first scenario's mean CPU
  seconds set the SB3 budgets.
- `sb3-ppo sumo-rl (Nx)`: SB3 PPO trained in sumo-rl itself on the same demands (alternating per
  episode), for N times the CPU seconds our training took (snapshots of one run per seed).

Trained rows: one run per seed; a seed's score is its mean over the evaluation episodes; IQM and a 95%
stratified-bootstrap CI over seeds (rlsuite.evaluation.stats). Controllers: IQM and CI over episodes.

Commands (the bench extra installs sumo-rl, eclipse-sumo and libsumo):
    python benchmarks/fidelity_traffic.py all --seeds 0 1 2 --out runs/fidelity_traffic     # everything
    python benchmarks/fidelity_traffic.py train-ours --scenario single --seed 0 --out DIR
    python benchmarks/fidelity_traffic.py train-sb3 --seed 0 --budgets 60 600 --out DIR
    python benchmarks/fidelity_traffic.py table --out DIR --episodes 5
    # a quick check that everything runs (a minute of CPU; the numbers mean nothing):
    python benchmarks/fidelity_traffic.py all --out /tmp/fid_quick --seeds 0 --steps 4096 --episodes 1 \
        --scenarios single --multiples 1
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fidelity.budget import CpuBudgetSnapshots, greedy, load_sb3_actor, train_ppo_preset
from fidelity.rows import cache_rows, row_path
from fidelity.sumo_adapter import (
    ROUTES,
    AlternatingDemand,
    SumoProtocol,
    rlsuite_observation_class,
    run_episode,
    setup_sumo,
)

ENV_ID = "rlsuite/TrafficSingleShared-v0"
SCENARIO_DIR = Path(__file__).parent / "fidelity" / "scenarios"
# What our PPO trains on: the shipped scenario, then sumo-rl's settings one at a time, then the shipped
# scenario with all of them.
SCENARIOS = ("single", "single_sumo_signal", "single_sumo_demand", "single_sumo_geometry", "single_sumo")
# SB3 PPO in sumo-rl: our preset's algorithm settings where they carry over (lr, gamma, lambda, entropy,
# epochs, reward normalisation, 64x64 tanh MLP), one SUMO simulation per process, constant learning rate.
SB3_PPO = {"n_steps": 512, "batch_size": 128, "n_epochs": 8, "learning_rate": 1e-3, "gamma": 0.9,
           "gae_lambda": 0.9, "ent_coef": 0.001, "clip_range": 0.2}


STEPS_HELP = "our PPO's env steps instead of the preset's 150k: a quick check of the pipeline, not a result"


def scenario_arg(name: str) -> str:
    """One of the ablation scenarios in benchmarks/fidelity/scenarios as its path, or a shipped name."""
    path = SCENARIO_DIR / f"{name}.yaml"
    return str(path) if path.exists() else name


# --- training ---------------------------------------------------------------------------------------------------

def train_ours(scenario: str, seed: int, out: Path, steps: int | None = None) -> Path:
    """rlsuite's PPO preset on TrafficSingleShared-v0 with `scenario` (`steps`: instead of the preset's);
    the run folder, with its CPU seconds."""
    return train_ppo_preset(ENV_ID, {"scenario": scenario_arg(scenario)}, seed, out / "ours" / scenario,
                            "benchmarks/fidelity_traffic.py train-ours", steps)


def train_sb3(seed: int, budgets: list[float], out: Path) -> None:
    """SB3 PPO in sumo-rl until the largest budget of process CPU seconds, with a snapshot at each."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    setup_sumo()
    torch.set_num_threads(1)
    start = time.process_time()
    protocol = SumoProtocol()
    vec = VecNormalize(DummyVecEnv([lambda: AlternatingDemand(protocol, seed)]), norm_obs=False, norm_reward=True,
                       gamma=SB3_PPO["gamma"])
    model = PPO("MlpPolicy", vec, seed=seed, device="cpu", verbose=0, **SB3_PPO)
    model.learn(total_timesteps=10**9, callback=CpuBudgetSnapshots(budgets, out / "sb3" / f"seed{seed}", start))
    vec.close()
    print(f"sb3 seed {seed}: {model.num_timesteps} steps in {time.process_time() - start:.0f} CPU s", flush=True)


# --- evaluation in SUMO -----------------------------------------------------------------------------------------

Scores = dict[str, np.ndarray]  # metric -> (runs, demands) means over a run's evaluation episodes


def eval_seeds(episodes: int) -> list[int]:
    return [1000 + i for i in range(episodes)]


def _episodes(act_for: Any, episodes: int, workdir: Path, observation_class: type | None = None,
              fixed_ts: bool = False) -> list[dict[str, dict[str, float]]]:
    """Per evaluation seed, per demand, one episode's metrics; `act_for(env)` gives the episode's actor."""
    protocol = SumoProtocol()
    out = []
    for seed in eval_seeds(episodes):
        out.append({route: run_episode(route, seed, protocol, act_for, workdir, observation_class, fixed_ts)
                    for route in ROUTES})
    return out


def _matrix(per_run: list[list[dict[str, dict[str, float]]]], metric: str) -> np.ndarray:
    """(runs, demands): each run's mean of `metric` over its episodes, per demand."""
    return np.array([[np.mean([ep[route][metric] for ep in run]) for route in ROUTES] for run in per_run])


def ours_actor(policy: Any) -> Any:
    """Our policy acting in sumo-rl: our phase -> sumo-rl's green phase through the adapter's map."""
    state = {"start": True}

    def act(obs: np.ndarray, env: Any) -> int:
        phase = int(np.asarray(policy.act(obs[None], np.array([state["start"]]), deterministic=True)).reshape(-1)[0])
        state["start"] = False
        imap = env.traffic_signals[env.ts_ids[0]].observation_fn.imap
        return imap.phase_to_sumo[phase]

    return act


def controller_rows(episodes: int, workdir: Path) -> dict[str, Scores]:
    """fixed-time (the net's program) and our max-pressure through the adapter: runs = evaluation seeds."""
    from rlsuite.agents.registry import make_baseline
    from rlsuite.envs import make_env
    from rlsuite.envs.traffic import load_network

    rows: dict[str, Scores] = {}
    fixed = _episodes(None, episodes, workdir, fixed_ts=True)
    rows["fixed-time (net's program)"] = {m: _matrix([[ep] for ep in fixed], m) for m in ("waiting_time", "return")}
    scenario = "single_sumo"  # the net's lanes and demand: Webster's plan and equal saturation flows
    obs_class = rlsuite_observation_class(load_network(scenario), np.zeros(0))
    for name, label in (("fixed-time", "fixed-time (rlsuite Webster, via adapter)"),
                        ("max-pressure", "max-pressure (rlsuite, via adapter)")):
        controller = make_baseline(name, make_env("rlsuite/TrafficSingle-v0", scenario=scenario))
        eps = _episodes(lambda controller=controller: ours_actor(controller), episodes, workdir, obs_class)
        rows[label] = {m: _matrix([[ep] for ep in eps], m) for m in ("waiting_time", "return")}
    return rows


def ours_rows(out: Path, scenario: str, episodes: int, workdir: Path) -> tuple[Scores, list[float]] | None:
    """Our PPO runs trained on `scenario`, acting in SUMO: runs = training seeds; and their CPU seconds."""
    from rlsuite.agents.registry import load_policy
    from rlsuite.envs.traffic import TrafficGridVectorEnv, load_network

    runs = sorted(p for p in (out / "ours" / scenario).glob("*") if (p / "cpu_seconds.json").exists())
    if not runs:
        return None
    path = scenario_arg(scenario)
    features = TrafficGridVectorEnv(1, path).agent_features[0]  # the shared policy's id and position
    obs_class = rlsuite_observation_class(load_network(path), features)
    per_run, cpu = [], []
    for run in runs:
        policy = load_policy(run, "last").policy
        per_run.append(_episodes(lambda policy=policy: ours_actor(policy), episodes, workdir, obs_class))
        cpu.append(json.loads((run / "cpu_seconds.json").read_text())["cpu_s"])
    return {m: _matrix(per_run, m) for m in ("waiting_time", "return")}, cpu


def sb3_rows(out: Path, budget_s: float, episodes: int,
             workdir: Path) -> tuple[Scores, list[float], list[int]] | None:
    """SB3 PPO snapshots nearest `budget_s` CPU seconds: runs = training seeds; their CPU
    seconds and steps."""
    from fidelity.sumo_adapter import make_sumo_env

    seeds = sorted((out / "sb3").glob("seed*"))
    per_run, cpu, steps = [], [], []
    env = make_sumo_env(ROUTES[0], SumoProtocol())
    spaces = env.observation_space, env.action_space
    env.close()
    for folder in seeds:
        snaps = sorted((float(p.stem.removeprefix("cpu_")), p.with_suffix("")) for p in folder.glob("cpu_*.json"))
        if not snaps or snaps[-1][0] < budget_s - 15.0:  # not trained that far (snapshots every 15 CPU s)
            continue
        stem = min(snaps, key=lambda s: abs(s[0] - budget_s))[1]  # the snapshot nearest the budget
        policy, meta = load_sb3_actor(stem, *spaces, policy_kwargs={})
        per_run.append(_episodes(lambda policy=policy: (lambda obs, env: greedy(policy, obs)), episodes, workdir))
        cpu.append(meta["cpu_s"])
        steps.append(meta["steps"])
    if not per_run:
        return None
    return {m: _matrix(per_run, m) for m in ("waiting_time", "return")}, cpu, steps


def _cell(matrix: np.ndarray) -> str:
    """IQM [95% CI] of a (runs, demands) matrix, stratified bootstrap over runs within each demand."""
    from rlsuite.evaluation import stats

    point, low, high = stats.stratified_bootstrap_ci(matrix, stats.iqm, reps=2000, seed=0)
    return f"{point:.1f} [{low:.1f}, {high:.1f}]"


Row = dict[str, tuple[Scores, str]]  # row name -> (scores, what its training cost)


def row_keys(scenarios: list[str], multiples: list[float]) -> list[str]:
    """The table's rows, in order, by key: `controllers`, `ours:<scenario>`, `sb3:<multiple>`."""
    return ["controllers", *(f"ours:{s}" for s in scenarios), *(f"sb3:{k:g}" for k in multiples)]


def our_budget(out: Path, scenario: str) -> float:
    """Mean CPU seconds of our training runs on `scenario`: 1x of the SB3 budgets."""
    cpu = [json.loads(p.read_text())["cpu_s"] for p in (out / "ours" / scenario).glob("*/cpu_seconds.json")]
    if not cpu:
        raise SystemExit(f"No runs of ours on scenario {scenario} under {out}/ours to set the CPU budget from: "
                         f"run train-ours first.")
    return float(np.mean(cpu))


def evaluate_row(key: str, out: Path, episodes: int, budget_scenario: str) -> Row:
    """Evaluate one row key in SUMO; {} when it has nothing to evaluate yet."""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if key == "controllers":
            return {name: (scores, f"- ({episodes} SUMO seeds)") for name, scores in controller_rows(episodes, workdir).items()}
        kind, _, arg = key.partition(":")
        if kind == "ours":
            found = ours_rows(out, arg, episodes, workdir)
            name = f"ppo rlsuite, scenario {arg}"
        else:
            sb3 = sb3_rows(out, float(arg) * our_budget(out, budget_scenario), episodes, workdir)
            if sb3 is None:
                return {}
            scores, cpu, steps = sb3
            return {f"sb3-ppo sumo-rl, {arg}x CPU": (scores, f"{np.mean(cpu):.0f} CPU s, {np.mean(steps):.0f} steps "
                                                             f"({len(cpu)} seeds)")}
    if found is None:
        return {}
    scores, cpu = found
    return {name: (scores, f"{np.mean(cpu):.0f} CPU s ({len(cpu)} seeds)")}


def table(out: Path, episodes: int, scenarios: list[str], multiples: list[float], only: list[str] | None) -> None:
    """Evaluate the rows not yet evaluated (or just `only`), caching each under out/eval/, then print the
    Markdown table of every cached row (and write it as JSON beside the runs)."""
    setup_sumo()
    torch.set_num_threads(1)
    keys = row_keys(scenarios, multiples)
    cache_rows(out, episodes, only or keys, lambda key: evaluate_row(key, out, episodes, scenarios[0]))
    if only:
        return
    print(f"\nSUMO (libsumo), sumo-rl 2way-single-intersection, demands {', '.join(ROUTES)}, 1800 s episodes, "
          f"{episodes} SUMO seeds per demand; IQM [95% CI]")
    print("\n| policy | training | mean waiting time per vehicle (s) | sumo-rl return |")
    print("| --- | --- | ---: | ---: |")
    record: dict[str, Any] = {}
    for key in keys:
        path = row_path(out, key, episodes)
        for name, row in (json.loads(path.read_text()) if path.exists() else {}).items():
            scores = {m: np.asarray(row[m]) for m in ("waiting_time", "return")}
            print(f"| {name} | {row['training']} | {_cell(scores['waiting_time'])} | {_cell(scores['return'])} |")
            record[name] = row
    (out / "table.json").write_text(json.dumps({"episodes": episodes, "routes": list(ROUTES), "rows": record}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train-ours")
    p.add_argument("--scenario", choices=SCENARIOS, default="single")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=None, help=STEPS_HELP)
    p = sub.add_parser("train-sb3")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budgets", type=float, nargs="+", required=True, help="process CPU seconds of each snapshot")
    p.add_argument("--out", type=Path, required=True)
    for name in ("table", "all"):
        p = sub.add_parser(name)
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--episodes", type=int, default=5, help="SUMO seeds per demand")
        p.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS),
                       help="scenarios our PPO trains on: the first sets the CPU budget")
        p.add_argument("--multiples", type=float, nargs="+", default=[1.0, 10.0], help="SB3 budgets, x ours")
        p.add_argument("--rows", nargs="+", default=None,
                       help="evaluate only these row keys (controllers, ours:<scenario>, sb3:<multiple>) and exit; "
                            "separate processes can share the work, a last `table` prints everything")
        if name == "all":
            p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
            p.add_argument("--steps", type=int, default=None, help=STEPS_HELP)
    args = parser.parse_args()
    missing = [m for m in ("sumo_rl", "sumo", "libsumo") if importlib.util.find_spec(m) is None]
    if missing:
        parser.exit(2, f"error: {', '.join(missing)} not installed; the peers come with the bench extra: "
                       f"pip install -e \".[bench]\"\n")
    if args.command == "all":
        for scenario in args.scenarios:
            for seed in args.seeds:
                train_ours(scenario, seed, args.out, args.steps)
        cpu = our_budget(args.out, args.scenarios[0])
        for seed in args.seeds:
            train_sb3(seed, [math.ceil(k * cpu) for k in args.multiples], args.out)
    if args.command in ("table", "all"):
        table(args.out, args.episodes, args.scenarios, args.multiples, getattr(args, "rows", None))
    elif args.command == "train-ours":
        train_ours(args.scenario, args.seed, args.out, args.steps)
    elif args.command == "train-sb3":
        train_sb3(args.seed, args.budgets, args.out)


if __name__ == "__main__":
    main()
