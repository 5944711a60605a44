"""``ram compare`` end to end with the local launcher (real submitit jobs, a few steps each):
runs, report, W&B grouping, idempotence, refusal of another experiment, reproduction of one run
from its recorded command line, Ctrl-C and resumption, and one-line errors."""
import json
import shlex
import signal
import subprocess
import time

import pytest

from ram_lightning.compare.command import main
from tests.run.test_cli import ROOT
from tests.tiny_run import RAM, subprocess_env
from tests.wandb_records import read_offline_run

SMOKE = ["--config", str(ROOT / "configs" / "translated_scaled.yaml"), "--config", str(ROOT / "configs" / "lab" / "smoke.yaml")]


def compare(*args, cwd, check=True):
    env = dict(subprocess_env(), WANDB_MODE="offline")
    done = subprocess.run(RAM + ["compare", *SMOKE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def said(done):
    return [line for line in done.stderr.splitlines() if line.startswith(("ram compare:", "ram: error:"))]


@pytest.mark.slow
def test_variants_over_seeds_run_as_jobs_report_once_and_are_not_mixed_with_another_experiment(tmp_path):
    out = tmp_path / "qs"
    probe = '{"class_path": "ram_lightning.diagnostics.GradientVarianceProbe", "init_args": {"every_n_steps": 2, "num_draws": 2}}'
    args = ["--estimators", "reinforce", "wake_sleep_cv:prior_coefficient=0", "--seeds", "2", "--out", str(out),
            "--trainer.callbacks+", probe, "--trainer.log_every_n_steps", "1"]
    first = compare(*args, cwd=tmp_path)
    assert said(first)[0] == "ram compare: 0 of 4 runs done; starting 4"
    assert said(first)[-1] == f"ram compare: 4 of 4 runs done; report in {out}"
    ends = [line for line in said(first) if ": done (test error " in line]
    assert len(ends) == 4 and ends[0].endswith("min]") and ends[1].endswith(" to go at this pace]") and "[4 of 4 ended in " in ends[-1]
    results = json.loads((out / "results.json").read_text())
    labels = ("reinforce", "wake_sleep_cv:prior_coefficient=0")
    assert [(r["label"], r["seed"]) for r in results] == [(v, s) for v in labels for s in (0, 1)]
    for r in results:
        assert r["updates"] == 4 and [p["update"] for p in r["curve"]] == [2, 4] and 0 <= r["test_error"] <= 1
        assert {"policy", "bottom_lstm", "glimpse", "head"} <= set(r["gradients"]) and len(r["scale_histogram"]) == 3
        run = out / r["label"].replace(":", "_") / f"seed_{r['seed']}"
        for name in ("command.txt", "version_0/config.yaml", "version_0/metrics.csv", "version_0/checkpoints/last.ckpt"):
            assert (run / name).is_file(), name
    cv = [r for r in results if r["label"].startswith("wake_sleep_cv")]
    assert all(len(r["kl_q_p_per_glimpse"]) == 6 and r["options"] == {"prior_coefficient": 0} for r in cv)
    table = (out / "table.md").read_text()
    assert "reinforce vs wake_sleep_cv:prior_coefficient=0" in table or "ahead of" in table
    assert (out / "validation_error.png").stat().st_size > 0 and (out / "curves.csv").read_text().count("\n") == 9
    # diagnostics over training, read from the runs' metrics.csv: the probes at updates 2 and 4, scale use per validation
    assert "Gradient variance / SNR of `policy` over training" in table and "Scale choice over training" in table
    assert json.loads((out / "trajectories.json").read_text())["groups"]["bottom_lstm"] == {"early": 2, "middle": 2, "end": 4}

    # W&B: grouped by the comparison, the variant as job type, the seed in the config
    (wandb_run,) = (out / "reinforce" / "seed_1" / "wandb").glob("offline-run-*")
    record = read_offline_run(wandb_run)
    assert (record["run"].run_group, record["run"].job_type, record["config"]["seed"]) == ("qs", "reinforce", 1)

    # the same command again: nothing to run, nothing rewritten
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()}
    again = compare(*args, cwd=tmp_path)
    assert said(again)[0] == "ram compare: all 4 runs done; nothing to run"
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file() and p.name != "compare.json"} == \
        {k: v for k, v in stamps.items() if k != "compare.json"}

    # another experiment in the same folder: refused, naming the key
    other = compare(*args, "--trainer.max_steps", "6", cwd=tmp_path, check=False)
    assert other.returncode == 2 and said(other) == [
        f"ram: error: --out {out} holds runs of another experiment ({out / 'compare.json'}): trainer.max_steps differ; "
        "give another --out, or the same options as before"]

    # the report rebuilt from the runs
    (out / "table.md").unlink()
    compare("--out", str(out), "--report-only", cwd=tmp_path)
    assert (out / "table.md").read_text() == table.replace(table.splitlines()[0], (out / "table.md").read_text().splitlines()[0])
    compare("--out", str(out), "--report-only", "--variance-reference", "reinforce", cwd=tmp_path)
    reductions = json.loads((out / "trajectories.json").read_text())["reductions"]
    assert [r["seeds"] for r in reductions["policy: wake_sleep_cv:prior_coefficient=0 vs reinforce"]] == [[0, 1]] * 3
    assert "variance reduction of `wake_sleep_cv:prior_coefficient=0` vs `reinforce`" in (out / "table.md").read_text()

    # one run alone, from its recorded command line: the same figures
    words = shlex.split((out / "reinforce" / "seed_1" / "command.txt").read_text())
    env = dict(subprocess_env(), WANDB_MODE="disabled", **dict(w.split("=", 1) for w in words[:2]))
    assert words[2:4] == ["ram", "fit"]
    alone = subprocess.run(RAM + words[3:], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert alone.returncode == 0, alone.stderr[-2000:]
    summary = json.loads((out / "reinforce" / "seed_1" / "version_1" / "summary.json").read_text())
    original = results[1]
    assert (summary["curve"] and [p["val_error"] for p in summary["curve"]]) == [p["val_error"] for p in original["curve"]]
    assert summary["test_error"] == original["test_error"]


@pytest.mark.slow
def test_ctrl_c_stops_the_runs_with_their_checkpoints_and_the_same_command_resumes_them(tmp_path):
    out = tmp_path / "long"
    args = ["--estimators", "reinforce", "vimco", "--seeds", "1", "--out", str(out), "--trainer.max_steps", "600",
            "--trainer.val_check_interval", "300"]
    env = dict(subprocess_env(), WANDB_MODE="disabled")
    process = subprocess.Popen(RAM + ["compare", *SMOKE, *args], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    checkpoints = [out / name / "seed_0" / "version_0" / "checkpoints" / "last.ckpt" for name in ("reinforce", "vimco")]
    deadline = time.time() + 240
    while not all(path.is_file() for path in checkpoints) and process.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert process.poll() is None, "the runs ended before they could be interrupted"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 130, stderr[-3000:]
    last = [line for line in stderr.splitlines() if line.startswith("ram compare:")][-1]
    assert last.startswith("ram compare: stopped by SIGINT: 0 of 2 runs done, the others' checkpoints are saved; "
                           "resume with: ram compare ")
    assert all(path.is_file() for path in checkpoints)
    resumed = compare(*args, cwd=tmp_path)
    assert said(resumed)[0] == "ram compare: 0 of 2 runs done; resuming 2"
    assert said(resumed)[-1] == f"ram compare: 2 of 2 runs done; report in {out}"
    for name in ("reinforce", "vimco"):
        result = json.loads((out / name / "seed_0" / "result.json").read_text())
        assert result["updates"] == 600 and [p["update"] for p in result["curve"]] == [300, 600]
        assert not (out / name / "seed_0" / "version_1").exists()  # continued in its own folder


@pytest.mark.parametrize("args, message", [
    (["--estimators", "reinforce"], "the following arguments are required: --out"),
    (["--out", "x"], "--estimators: give at least one estimator"),
    (["--out", "x", "--estimators", "reinfroce"], "unknown estimator 'reinfroce'"),
    (["--out", "x", "--estimators", "reinforce", "reinforce"], "the same variant is given twice"),
    (["--out", "x", "--estimators", "reinforce", "--seeds", "0"], "--seeds and --jobs must be >= 1"),
    (["--out", "x", "--estimators", "reinforce", "--targets", "5"], "must be a fraction"),
    (["--out", "x", "--report-only"], "--out x: x/compare.json not found; no comparison has run in x"),
    (["--out", "x", "--estimators", "reinforce", "--slurm.partition"], "--slurm.partition: expected a value"),
    (["--out", "x", "--estimators", "reinforce", "--variance-reference", "vimco"], "'vimco' is not a variant of this comparison"),
    (["--out", "x", "--estimators", "reinforce", "--trainer.max_stepz", "3"], "--trainer.max_stepz"),
    (["--out", "x", "--estimators", "reinforce", "--seed_everything", "3"], "--seed_everything: `ram compare` sets it for each run"),
    (["--out", "x", "--estimators", "reinforce", "--model.init_args.estimator.init_args.num_samples", "3"], "use --estimators"),
])
def test_bad_input_is_one_line_and_exit_status_2(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main([*SMOKE, *args])
    assert stop.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
    assert line.startswith("ram: error: ") and message in line
    assert not (tmp_path / "x").exists()


def test_an_out_that_is_a_file_a_captioner_and_a_fixed_log_folder_are_refused(tmp_path, capsys, tiny_config, write_config):
    (tmp_path / "file").write_text("")
    captions = ["--config", str(ROOT / "configs" / "captions_synthetic.yaml")]
    tiny = write_config(tmp_path, tiny_config(tmp_path))  # its CSVLogger has a save_dir of its own
    for args, message in [
        ([*SMOKE, "--out", str(tmp_path / "file" / "sub"), "--estimators", "reinforce"], "is a file; expected a folder"),
        ([*captions, "--out", str(tmp_path / "c"), "--estimators", "reinforce"], "compares classifiers"),
        (["--config", str(tiny), "--out", str(tmp_path / "t"), "--estimators", "reinforce"], "gives each run its own folder"),
    ]:
        with pytest.raises(SystemExit) as stop:
            main(args)
        assert stop.value.code == 2
        assert message in capsys.readouterr().err.strip().splitlines()[-1]


A_RUN_WITHOUT_ITS_FIELDS = '{"fingerprint": {}, "variants": [], "seeds": 1, "command": "", "title": "", "runs": [{"label": "x"}]}'


@pytest.mark.parametrize("content", ['{"runs": [', "[]", '{"runs": []}', A_RUN_WITHOUT_ITS_FIELDS])
def test_a_damaged_comparison_record_is_one_line_for_a_rerun_and_a_report(content, tmp_path, capsys):
    out = tmp_path / "cmp"
    out.mkdir()
    (out / "compare.json").write_text(content)  # cut short (e.g. by a full disk before atomic writes) or hand-edited
    for extra in (["--estimators", "reinforce"], ["--report-only"]):
        with pytest.raises(SystemExit) as stop:
            main([*SMOKE, "--out", str(out), *extra])
        assert stop.value.code == 2
        line = capsys.readouterr().err.strip().splitlines()[-1]
        assert line.startswith(f"ram: error: --out {out}: {out / 'compare.json'} is not a comparison record"), line
    assert (out / "compare.json").read_text() == content  # left for the user to look at
