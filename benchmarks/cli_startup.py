"""Start-up time of the `rlsuite` command on its error paths and --help, against `import torch`.

Bad input is refused before torch, SB3 or the env families are imported (rlsuite/preflight.py), so an
error should cost about as much as `--help`, far less than importing torch. Each command runs as a
fresh process, as a user types it; the script prints the median wall time and CPU seconds (user +
system of the child) over `--repeats` runs, and checks every error path exits 2 without a traceback.

    python benchmarks/cli_startup.py --repeats 5
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cases = [(name, [sys.executable, "-m", "rlsuite.cli", *argv], code) for name, argv, code in CASES]
    cases.append(("python -c 'import torch' (reference)", [sys.executable, "-c", "import torch"], 0))
    with tempfile.TemporaryDirectory() as cwd:
        print(f"{'command':<58} {'wall s (median)':>16} {'CPU s (median)':>15}  exit")
        for name, argv, code in cases:
            walls, cpus = [], []
            for _ in range(args.repeats):
                wall, cpu, result = timed(argv, cwd)
                walls.append(wall)
                cpus.append(cpu)
                if result.returncode != code or "Traceback" in result.stderr:
                    sys.exit(f"{name}: exit {result.returncode} (expected {code})\n{result.stderr}")
            print(f"{name:<58} {statistics.median(walls):>16.2f} {statistics.median(cpus):>15.2f}  {code}")


if __name__ == "__main__":
    main()
