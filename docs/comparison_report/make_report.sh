#!/usr/bin/env bash
# ppo, a2c and random on CartPole-v1 (3 seeds, 50k steps), then ppo with learning_rate=1e-05 into the same
# database: four configurations, each its own row, compared with the leader by IQM difference and probability
# of improvement. Run from the repository root: bash docs/comparison_report/make_report.sh [WORK_DIR]
set -euo pipefail
WORK=${1:-$(mktemp -d)}
export OMP_NUM_THREADS=1
rlsuite sweep --agents ppo,a2c,random --envs CartPole-v1 --seeds 0-2 --steps 50000 --workers 2 \
    --db "$WORK/results.db" --out "$WORK/sweep" --no-report --no-progress
rlsuite sweep --agents ppo --envs CartPole-v1 --seeds 0-2 --steps 50000 --set learning_rate=1e-05 --workers 2 \
    --db "$WORK/results.db" --out "$WORK/sweep" --no-report --no-progress
rlsuite report --db "$WORK/results.db" --out docs/comparison_report
