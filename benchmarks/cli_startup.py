"""Start-up time of the `rlsuite` command on its error paths and --help, against `import torch`.

Bad input is refused before torch, SB3 or the env families are imported (rlsuite/preflight.py), so an
error should cost about as much as `--help`, far less than importing torch. Each command runs as a
fresh process, as a user types it; the script prints the median wall time and CPU seconds (user +
system of the child) over `--repeats` runs, and checks every error path exits 2 without a traceback.

    python benchmarks/cli_startup.py --repeats 5 [--before /path/to/other/venv/bin/python]

`--before` times the same commands with another checkout's interpreter (e.g. main before this change),
interleaved run by run with ours so both see the same machine load.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

CASES: list[tuple[str, list[str], int]] = [
    ("rlsuite --help", ["--help"], 0),
    ("rlsuite train --help", ["train", "--help"], 0),
    ("train --env NoSuch-v0", ["train", "--env", "NoSuch-v0"], 2),
    ("train --agent ppx", ["train", "--agent", "ppx"], 2),
    ("train --set learning_rat=0.1", ["train", "--set", "learning_rat=0.1"], 2),
    ("train --set n_epochs=many", ["train", "--set", "n_epochs=many"], 2),
    ("train --agent dqn --set double=maybe", ["train", "--agent", "dqn", "--set", "double=maybe"], 2),
    ("train --steps 0", ["train", "--steps", "0"], 2),
    ("evaluate --agent random --env NoSuch-v0", ["evaluate", "--agent", "random", "--env", "NoSuch-v0"], 2),
    ("sweep --agents ppx --envs CartPole-v1 --seeds 0", ["sweep", "--agents", "ppx", "--envs", "CartPole-v1",
                                                         "--seeds", "0"], 2),
    ("record --agent random --env CartPole-v1 --out x.avi",
     ["record", "--agent", "random", "--env", "CartPole-v1", "--out", "x.avi"], 2),
]


def timed(argv: list[str], cwd: str) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, child CPU seconds, the finished process) of one fresh run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=dict(os.environ, COLUMNS="200"))
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, result


def _one_run(python: str, argv: list[str], code: int, cwd: str, name: str, ours: bool) -> tuple[float, float]:
    wall, cpu, result = timed([python, *argv], cwd)
    if ours and (result.returncode != code or "Traceback" in result.stderr):
        sys.exit(f"{name}: exit {result.returncode} (expected {code})\n{result.stderr}")
    if not ours and result.returncode != code:
        print(f"  (before: {name} exits {result.returncode}, not {code})")
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--before", help="another interpreter to time the same commands with (its own rlsuite)")
    args = parser.parse_args()
    cases = [(name, ["-m", "rlsuite.cli", *argv], code) for name, argv, code in CASES]
    cases.append(("python -c 'import torch' (reference)", ["-c", "import torch"], 0))
    pythons = [sys.executable] + ([args.before] if args.before else [])
    header = "  ".join(f"{label + ' wall s':>14} {label + ' CPU s':>13}" for label in (["ours", "before"][:len(pythons)]))
    with tempfile.TemporaryDirectory() as cwd:
        print(f"{'command (median of ' + str(args.repeats) + ')':<58} {header}")
        for name, argv, code in cases:
            samples: dict[str, list[tuple[float, float]]] = {p: [] for p in pythons}
            for _ in range(args.repeats):
                for python in pythons:  # interleaved: both see the same load
                    samples[python].append(_one_run(python, argv, code, cwd, name, python == sys.executable))
            cells = "  ".join(f"{statistics.median(w for w, _ in samples[p]):>14.2f} "
                              f"{statistics.median(c for _, c in samples[p]):>13.2f}" for p in pythons)
            print(f"{name:<58} {cells}", flush=True)


if __name__ == "__main__":
    main()
