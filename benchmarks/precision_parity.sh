#!/usr/bin/env bash
# Learning parity of bf16-mixed against 32-bit (issue 10), one run after another:
#  1. the quickstart's settings (translated MNIST, reinforce): `ram fit` for 1,500 updates,
#     validated every 300 batches, seeds 0 and 1, each precision;
#  2. translated-and-scaled MNIST with wake_sleep_cv (the estimator lab's setting), 3 seeds,
#     1,200 updates: bf16-mixed here, 32-bit from `bash benchmarks/ablations.sh base_1200`.
# Then: python -m benchmarks.lab.precision_parity   (table + benchmarks/results/precision_parity.png)
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} WANDB_MODE=${WANDB_MODE:-disabled}
for seed in 0 1; do
  for precision in 32-true bf16-mixed; do
    ram fit --config configs/quickstart.yaml --trainer.max_steps 1500 --trainer.val_check_interval 300 \
      --seed_everything "$seed" --trainer.precision "$precision" --name "parity_quickstart_${precision}_s${seed}" \
      --trainer.enable_progress_bar false
  done
done
python -m benchmarks.compare_estimators --budget cpu --seeds 3 --updates 1200 --val-every 300 \
  --estimators wake_sleep_cv --precision bf16-mixed --out benchmarks/results/parity_wake_sleep_cv_bf16
