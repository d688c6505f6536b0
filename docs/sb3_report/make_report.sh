#!/usr/bin/env bash
# Our PPO and sb3-ppo on CartPole-v1, 3 seeds each, through the CLI only: train (JOBS runs at a time),
# evaluate every run into one results database (20 fixed seeds, median episode recorded as MP4), report.
# Run from the repository root: bash docs/sb3_report/make_report.sh [WORK_DIR]   (JOBS=3 by default)
set -euo pipefail
WORK=${1:-$(mktemp -d)}
OUT=docs/sb3_report
RUNS=()
for agent in ppo sb3-ppo; do for seed in 0 1 2; do RUNS+=("$agent $seed"); done; done
train_one() {
  set -- $1
  run="$WORK/runs/$1-CartPole-v1-s$2"
  [ -f "$run/manifest.json" ] && return 0  # already trained (or training) in this work dir
  rlsuite train --agent "$1" --env CartPole-v1 --seed "$2" --run-dir "$run" --no-progress --set tensorboard=false
}
export -f train_one; export WORK
printf '%s\n' "${RUNS[@]}" | xargs -P "${JOBS:-3}" -I{} bash -c 'train_one "{}"'
for entry in "${RUNS[@]}"; do
  set -- $entry
  run="$WORK/runs/$1-CartPole-v1-s$2"
  until grep -q '"status": "finished"' "$run/manifest.json"; do sleep 10; done
  rlsuite evaluate "$run" --db "$WORK/results.db" --episodes 20 --video-dir "$WORK/videos"
done
rlsuite report --db "$WORK/results.db" --out "$OUT"
