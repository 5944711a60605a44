#!/usr/bin/env bash
# Learning parity of the compiled training step against eager (issue 19): the quickstart as the
# README runs it (`ram fit --config configs/quickstart.yaml`, 12 epochs, the precision chosen for
# this machine), seeds 0, 1, 2, eager and `--model.init_args.compile true`, one run after another
# (eager and compiled interleaved, so that machine load hits both alike). Each run's wall time
# (start and end) goes to runs/compile_parity_<kind>_s<seed>.time. Then:
#   python -m benchmarks.lab.compile_parity      # table + docs/results/compile_parity/records.json
set -euo pipefail
cd "$(dirname "$0")/.."
export WANDB_MODE=${WANDB_MODE:-disabled}
mkdir -p runs
for seed in ${SEEDS:-0 1 2}; do
  for kind in eager compiled; do
    extra=(--model.init_args.compile false)
    [ "$kind" = compiled ] && extra=(--model.init_args.compile true)
    name="compile_parity_${kind}_s${seed}"
    start=$(date +%s)
    ram fit --config configs/quickstart.yaml --seed_everything "$seed" --name "$name" \
      --trainer.enable_progress_bar false "${extra[@]}" > "runs/${name}.log" 2>&1
    echo "$start $(date +%s)" > "runs/${name}.time"   # start and end, in seconds
  done
done
