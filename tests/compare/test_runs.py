"""A run's folder and command line: the shared options, then its estimator, seed and folder."""
import json
import os
import time

from ram_lightning.compare.runs import launch_order, newest_last_checkpoint, pace_line, plan_runs
from ram_lightning.compare.variants import parse_variant


def test_each_run_is_the_shared_command_with_its_estimator_seed_and_folder(tmp_path):
    runs = plan_runs(tmp_path, ["--config", "c.yaml", "--trainer.max_steps", "9"],
                     [parse_variant("reinforce"), parse_variant("wake_sleep_cv:prior_coefficient=0")], [0, 1], 5, "ts",
                     {"trainer.precision": "32-true"})
    assert [(r.label, r.seed) for r in runs] == [("reinforce", 0), ("reinforce", 1),
                                                   ("wake_sleep_cv:prior_coefficient=0", 0), ("wake_sleep_cv:prior_coefficient=0", 1)]
    run = runs[3]
    assert run.fit_args[:6] == ["--config", "c.yaml", "--trainer.max_steps", "9", "--trainer.precision", "32-true"]
    spec = json.loads(run.fit_args[run.fit_args.index("--model.init_args.estimator") + 1])
    assert spec["init_args"] == {"prior_coefficient": 0, "num_samples": 5}
    assert run.fit_args[run.fit_args.index("--seed_everything") + 1] == "1"
    folder = run.fit_args[run.fit_args.index("--trainer.default_root_dir") + 1]
    assert folder == str(tmp_path / "wake_sleep_cv_prior_coefficient=0" / "seed_1")
    assert run.env == {"WANDB_RUN_GROUP": "ts", "WANDB_JOB_TYPE": "wake_sleep_cv:prior_coefficient=0"}
    line = run.command_line()
    assert line.startswith("WANDB_JOB_TYPE=wake_sleep_cv:prior_coefficient=0 WANDB_RUN_GROUP=ts ram fit --config c.yaml")


def test_a_precision_the_user_gave_is_not_pinned_twice(tmp_path):
    (run,) = plan_runs(tmp_path, ["--trainer.precision", "bf16-mixed"], [parse_variant("reinforce")], [0], None, "g",
                       {"trainer.precision": "bf16-mixed"})
    assert run.fit_args.count("--trainer.precision") == 1


def test_a_run_resumes_from_its_newest_last_checkpoint(tmp_path):
    (run,) = plan_runs(tmp_path, [], [parse_variant("reinforce")], [0], None, "g", {})
    assert newest_last_checkpoint(run) is None
    for version in (0, 1):
        path = run.path / f"version_{version}" / "checkpoints" / "last.ckpt"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
        os.utime(path, (time.time() + version, time.time() + version))
    assert newest_last_checkpoint(run) == run.path / "version_1" / "checkpoints" / "last.ckpt"


def test_runs_launch_seed_by_seed_so_a_stopped_comparison_stays_balanced(tmp_path):
    variants = [parse_variant(name) for name in ("reinforce", "vimco", "wake_sleep")]
    runs = plan_runs(tmp_path, [], variants, [0, 1], None, "g", {})
    assert [(r.label, r.seed) for r in launch_order(runs)] == [
        ("reinforce", 0), ("vimco", 0), ("wake_sleep", 0), ("reinforce", 1), ("vimco", 1), ("wake_sleep", 1)]


def test_the_pace_line_says_how_long_the_runs_left_take_at_the_pace_so_far():
    assert pace_line(4, 12, 25 * 60, jobs=2) == "4 of 12 ended in 25 min; about 50 min to go at this pace"
    assert pace_line(1, 12, 10 * 60, jobs=4) == "1 of 12 ended in 10 min"  # the first ends of 4 at a time say nothing yet
    assert pace_line(12, 12, 100 * 60, jobs=2) == "12 of 12 ended in 100 min"
