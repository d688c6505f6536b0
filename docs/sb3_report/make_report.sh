#!/usr/bin/env bash
# Our PPO and sb3-ppo on CartPole-v1, 3 seeds each, through the CLI only: train, evaluate into one
# results database (20 fixed seeds, median episode recorded), then the report.
# Run from the repository root: bash docs/sb3_report/make_report.sh [WORK_DIR]
set -euo pipefail
WORK=${1:-$(mktemp -d)}
OUT=docs/sb3_report
for agent in ppo sb3-ppo; do
  for seed in 0 1 2; do
    run="$WORK/runs/$agent-CartPole-v1-s$seed"
    rlsuite train --agent "$agent" --env CartPole-v1 --seed "$seed" --run-dir "$run" --no-progress --set tensorboard=false
    rlsuite evaluate "$run" --db "$WORK/results.db" --episodes 20 --video-dir "$WORK/videos"
  done
done
rlsuite report --db "$WORK/results.db" --out "$OUT"
