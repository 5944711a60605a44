#!/usr/bin/env bash
# The ablations behind docs/lab.md's "why plain wake-sleep trails", in priority order,
# each 3 seeds at half the CPU budget (1,200 updates, validated every 300, so every ablation can
# be contrasted with the standard suite at update 1,200). One after another; pass names to run
# only some:  bash benchmarks/ablations.sh a_detach b_control_variates
# base_1200 reruns the standard suite's settings to update 1,200 for the estimators that the
# later ablations (a_detach_rest, c_wake_sleep_k20) are contrasted with, when the suite's own
# results folder is not at hand.
# Then: python -m benchmarks.lab.contrast --update 1200 benchmarks/results/compare_cpu benchmarks/results/ablation_*
set -euo pipefail
cd "$(dirname "$0")/.."
# detach_policy_input=false: the setting of the suite the ablations are contrasted with (the lab's default
# then; configs/translated_scaled.yaml, which the lab now reads, sets true); an ablation's own --model-args win.
short=(--budget cpu --seeds 3 --updates 1200 --val-every 300 --model-args detach_policy_input=false)
declare -A ablation=(
  [a_detach]="--estimators reinforce wake_sleep --model-args detach_policy_input=true"
  [b_control_variates]="--estimators wake_sleep_cv:prior_coefficient=0 wake_sleep_cv:proposal_coefficient=0"
  [d_sleep]="--estimators wake_sleep:sleep_fraction=0.5"
  [d_q_lr]="--estimators wake_sleep --model-args inference_lr=0.003"
  [d_q_learned_std]="--estimators wake_sleep --model-args inference_learn_std=true"
  [e_reward_correct]="--estimators reinforce:reward=correct"
  [f_no_exploration]="--estimators reinforce wake_sleep_cv --model-args learn_std=true scale_epsilon=0"
  [a_detach_rest]="--estimators wake_sleep_cv vimco --model-args detach_policy_input=true"
  [c_wake_sleep_k20]="--estimators wake_sleep:num_samples=20"
  [base_1200]="--estimators wake_sleep wake_sleep_cv vimco"
)
order=(a_detach b_control_variates d_q_learned_std d_sleep d_q_lr e_reward_correct f_no_exploration a_detach_rest c_wake_sleep_k20)
[ $# -gt 0 ] && order=("$@")
for name in "${order[@]}"; do
  [ -n "${ablation[$name]:-}" ] || { echo "ablations.sh: error: unknown ablation $name (known: ${!ablation[*]})" >&2; exit 2; }
  echo "== ablation $name: ${ablation[$name]}"
  # shellcheck disable=SC2086
  python -m benchmarks.compare_estimators "${short[@]}" ${ablation[$name]} --out "benchmarks/results/ablation_$name"
done
