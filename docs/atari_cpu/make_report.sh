#!/usr/bin/env bash
# Pong on a CPU: evaluate the committed run's last checkpoint (10 whole games on the test seeds, the
# median game recorded) into one results database, write the report, and plot the learning curve over
# training CPU seconds and frames, beside the second run's and the Nature-CNN run's (more run folders may be passed to the plot, e.g. a PPO run).
# Run from the repository root: bash docs/atari_cpu/make_report.sh [WORK_DIR] [MORE_RUNS...]
set -euo pipefail
WORK=${1:-$(mktemp -d)}
shift || true
OUT=docs/atari_cpu
RUN=$OUT/dqn-pong-cpu
rlsuite evaluate "$RUN" --checkpoint last --episodes 10 --db "$WORK/results.db" --video-dir "$WORK/videos" --no-progress
rlsuite report --db "$WORK/results.db" --out "$OUT/report"
python benchmarks/atari_cpu.py curve "$RUN" "$OUT/dqn-pong-cpu-eps05" "$OUT/dqn-pong-cpu-nature" "$@" --out "$OUT/learning_curve.png"
