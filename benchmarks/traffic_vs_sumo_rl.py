"""Our traffic simulator vs sumo-rl on SUMO (libsumo), single intersection, one process run.

sumo-rl runs its `nets/2way-single-intersection` scenario (vhvh routes, delta_time 5 s, single agent)
through libsumo, the fast in-process binding (TraCI over a socket is ~20x slower; libsumo allows one
simulation per process, sumo-rl #47). Ours runs `rlsuite/TrafficSingle-v0` (one four-leg intersection,
delta_time 5 s) as a single env and natively vectorised with 256 and 1024 envs. Blocks alternate
(sumo, ours x3, sumo, ...) so machine load hits both alike; the script prints decisions per CPU second
of this process (libsumo runs inside it; robust on a shared machine), simulated seconds per CPU second,
decisions per wall second, and the ratios to sumo-rl. Random actions everywhere.

Run: `python benchmarks/traffic_vs_sumo_rl.py [--repeats 3] [--decisions 400] [--scenarios single single_sumo]`
(needs the `bench` extra: sumo-rl, eclipse-sumo, libsumo; SUMO_HOME is set here from the installed `sumo`
package). `--scenarios` runs our env on each named scenario (`single_sumo`: sumo-rl's own intersection).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def _sumo_env(num_seconds: int):  # noqa: ANN202
    import sumo

    os.environ.setdefault("SUMO_HOME", os.path.dirname(sumo.__file__))
    os.environ["LIBSUMO_AS_TRACI"] = "1"  # must be set before sumo_rl imports traci
    import sumo_rl

    nets = os.path.join(os.path.dirname(sumo_rl.__file__), "nets", "2way-single-intersection")
    return sumo_rl.SumoEnvironment(
        net_file=os.path.join(nets, "single-intersection.net.xml"),
        route_file=os.path.join(nets, "single-intersection-vhvh.rou.xml"),
        single_agent=True, use_gui=False, num_seconds=num_seconds, delta_time=5, sumo_warnings=False,
    )


class _Clock:
    """CPU and wall seconds of a block."""

    def __enter__(self) -> _Clock:
        self.cpu, self.wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu, self.wall = time.process_time() - self.cpu, time.perf_counter() - self.wall


def bench_sumo(env, decisions: int) -> tuple[float, float]:  # noqa: ANN001
    """Decisions per CPU second and per wall second of sumo-rl over `decisions` random actions."""
    env.reset()
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(decisions)]
    with _Clock() as clock:
        for a in actions:
            _, _, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                env.reset()
    return decisions / clock.cpu, decisions / clock.wall


def bench_ours(num_envs: int, decisions: int, scenario: str) -> tuple[float, float]:
    """Decisions per CPU and per wall second (summed over envs) of our single env (num_envs=0) or vector env."""
    import gymnasium as gym

    import rlsuite.envs  # noqa: F401

    rng = np.random.default_rng(0)
    if num_envs == 0:
        env = gym.make("rlsuite/TrafficSingle-v0", scenario=scenario).unwrapped
        env.reset(seed=0)
        actions = rng.integers(0, 4, size=(decisions, 1))
        with _Clock() as clock:
            for a in actions:
                _, _, _, truncated, _ = env.step(a)
                if truncated:
                    env.reset()
        return decisions / clock.cpu, decisions / clock.wall
    vec = gym.make_vec("rlsuite/TrafficSingle-v0", num_envs=num_envs, vectorization_mode="vector_entry_point",
                       scenario=scenario)
    vec.reset(seed=0)
    steps = max(5, decisions // 20)
    actions = rng.integers(0, 4, size=(steps, num_envs, 1))
    with _Clock() as clock:
        for a in actions:
            vec.step(a)
    return steps * num_envs / clock.cpu, steps * num_envs / clock.wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--decisions", type=int, default=400, help="decisions per sumo-rl / single-env block")
    parser.add_argument("--scenarios", nargs="+", default=["single"], help="scenarios our env runs (shipped names)")
    args = parser.parse_args()
    sumo_env = _sumo_env(num_seconds=100_000)
    results: dict[str, list[tuple[float, float]]] = {"sumo-rl (libsumo)": []}
    for r in range(args.repeats):
        results["sumo-rl (libsumo)"].append(bench_sumo(sumo_env, args.decisions))
        for scenario in args.scenarios:
            suffix = "" if args.scenarios == ["single"] else f" ({scenario})"
            for num_envs, label in ((0, "single"), (256, "vec 256"), (1024, "vec 1024")):
                results.setdefault(f"ours {label}{suffix}", []).append(bench_ours(num_envs, args.decisions, scenario))
        print(f"repeat {r} (decisions per CPU s): " + ", ".join(f"{k} {v[-1][0]:,.0f}" for k, v in results.items()),
              flush=True)
    sumo_env.close()
    base = np.median(np.array(results["sumo-rl (libsumo)"]), axis=0)  # (cpu, wall)
    print("\n| simulator | decisions / CPU s | simulated s / CPU s | ratio (CPU) | decisions / wall s | ratio (wall) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, values in results.items():
        cpu, wall = np.median(np.array(values), axis=0)
        print(f"| {name} | {cpu:,.0f} | {5 * cpu:,.0f} | {cpu / base[0]:.1f}x | {wall:,.0f} | {wall / base[1]:.1f}x |")


if __name__ == "__main__":
    main()
