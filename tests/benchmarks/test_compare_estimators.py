"""The lab's old command is a thin alias of ``ram compare``; the contrast of runs at one update."""
import json

import pytest

from benchmarks.compare_estimators import BUILT_IN, ROOT, compare_args


def test_the_alias_translates_to_ram_compare_on_the_task_config_and_a_budget_config():
    args = compare_args(["--budget", "smoke", "--estimators", "reinforce", "rloo", "--seeds", "2", "--updates", "8",
                         "--model-args", "detach_policy_input=false", "compile=true", "--precision", "bf16-mixed",
                         "--model-args", "learn_std=true", "--trainer.max_time", "00:00:05:00"])
    configs = ROOT / "configs"
    assert args[:4] == ["--config", str(configs / "translated_scaled.yaml"), "--config", str(configs / "lab" / "smoke.yaml")]
    text = " ".join(args)
    for part in ("--estimators reinforce rloo", "--out benchmarks/results/compare_smoke", "--model.init_args.detach_policy_input false",
                 "--model.init_args.compile true", "--model.init_args.learn_std true", "--trainer.max_steps 8",
                 "--trainer.precision bf16-mixed", "--seeds 2", "--trainer.max_time 00:00:05:00"):
        assert part in text


def test_every_built_in_estimator_is_compared_by_default():
    assert {"rloo", "pathwise"} <= set(BUILT_IN)
    args = compare_args([])
    assert args[args.index("--estimators") + 1:args.index("--out")] == list(BUILT_IN)


def test_contrast_compares_runs_of_one_estimator_at_one_update(tmp_path):
    from benchmarks.lab.contrast import contrast

    def write(folder, label, model_args, errors):
        folder.mkdir()
        runs = [{"label": label, "estimator": label.split(":")[0], "seed": s, "model_args": model_args,
                 "curve": [{"update": 300, "val_error": 0.9}, {"update": 600, "val_error": e}]} for s, e in enumerate(errors)]
        (folder / "results.json").write_text(json.dumps(runs))

    write(tmp_path / "suite", "wake_sleep", {}, [0.50, 0.52, 0.48])
    write(tmp_path / "ablation", "wake_sleep", {"detach_policy_input": True}, [0.30, 0.31, 0.29])
    text = contrast([tmp_path / "suite", tmp_path / "ablation"], 600)
    assert "| wake_sleep (suite) | 3 | 50.00 ± 2.00% |" in text
    assert "wake_sleep [detach_policy_input=True] (ablation) ahead of wake_sleep (suite) by 20.00" in text
    with pytest.raises(SystemExit, match="did not validate at update 450"):
        contrast([tmp_path / "suite"], 450)
