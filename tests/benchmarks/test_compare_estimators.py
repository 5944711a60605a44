"""The estimator lab end to end on the seconds-long smoke budget: seeds, variants, plug-ins,
the capped path, the report, and one-line errors for bad input."""
import json
import multiprocessing
import os
import signal
import threading
import time

import pytest

from benchmarks import compare_estimators
from benchmarks.compare_estimators import main
from benchmarks.lab.report import mean_sd, updates_to_reach, verdict
from tests.run.test_cli import ROOT

SMOKE = ["--budget", "smoke", "--source", "rendered"]


def run(tmp_path, *args):
    main(SMOKE + ["--out", str(tmp_path)] + list(args))
    return json.loads((tmp_path / "results.json").read_text()), (tmp_path / "table.md").read_text()


@pytest.mark.slow
def test_variants_over_seeds_give_per_seed_results_spreads_verdicts_and_a_plot(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    variants = ["reinforce", "wake_sleep_cv:prior_coefficient=0", "tests.estimators.custom_plugin.PlainScoreFunction"]
    results, table = run(tmp_path, "--estimators", *variants, "--seeds", "2", "--jobs", "2")
    assert [(r["label"], r["seed"]) for r in results] == [(v, s) for v in variants for s in (0, 1)]
    by_seed = {r["seed"]: r for r in results if r["label"] == "reinforce"}
    assert by_seed[0]["curve"] != by_seed[1]["curve"] or by_seed[0]["gradients"] != by_seed[1]["gradients"]
    for r in results:
        assert r["updates"] == 4 and not r["capped"] and [p["update"] for p in r["curve"]] == [2, 4]
        assert {"policy", "top_lstm", "bottom_lstm", "glimpse", "context", "head"} <= set(r["gradients"])
        assert len(r["scale_histogram"]) == 3 and abs(sum(r["scale_histogram"]) - 1) < 1e-9
    cv = [r for r in results if r["label"].startswith("wake_sleep_cv")]
    assert all(r["options"] == {"prior_coefficient": 0} and len(r["kl_q_p_per_glimpse"]) == 6 and "gain" in r["label_use"] for r in cv)
    assert table.count(" ± ") > 10 and "Verdicts" in table and len([l for l in table.splitlines() if l.startswith("- ")]) == 3
    assert (tmp_path / "validation_error.png").stat().st_size > 0
    assert (tmp_path / "curves.csv").read_text().count("\n") == 1 + 2 * len(results)


@pytest.mark.slow
def test_the_time_cap_stops_every_run_early_and_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    results, table = run(tmp_path, "--estimators", "vimco", "--seeds", "1", "--updates", "400", "--val-every", "2",
                         "--max-minutes", "0.02")
    (result,) = results
    assert result["capped"] and 1 <= result["updates"] < 400
    assert "Stopped by --max-minutes" in table


@pytest.mark.parametrize("args, message", [
    (["--estimators", "no_such_estimator"], "unknown estimator 'no_such_estimator'"),
    (["--seeds", "0"], "--seeds must be >= 1"),
    (["--updates", "4", "--val-every", "10"], "no validation point"),
    (["--targets", "10"], "must be a fraction"),
    (["--targets", "ten"], "must be a fraction"),
    (["--estimators", "vimco:num_samples=1"], "vimco: num_samples must be >= 2"),
    (["--estimators", "rloo:num_samples=1"], "rloo: num_samples must be >= 2"),
    (["--estimators", "reinforce:no_such_option=1"], "unexpected keyword"),
])
def test_bad_input_is_one_line_and_exit_status_2(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        main(SMOKE + ["--out", str(tmp_path)] + args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("compare_estimators: error: ") and message in err
    assert not (tmp_path / "results.json").exists()


def lab_lines(capsys) -> list:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("compare_estimators:")]


@pytest.mark.parametrize("where", ["file", "below a file"])
def test_an_out_that_is_a_file_is_one_line(where, tmp_path, capsys):
    afile = tmp_path / "results"
    afile.write_text("not a folder")
    out = afile if where == "file" else afile / "sub"
    with pytest.raises(SystemExit) as exit_info:
        main(SMOKE + ["--out", str(out)])
    assert exit_info.value.code == 2
    where_said = "" if where == "file" else f"{afile} "
    assert lab_lines(capsys) == [f"compare_estimators: error: --out {out}: {where_said}is a file; expected a folder "
                                 f"(created if missing) for results.json, curves.csv, table.md and the plot"]


def fake_runs(monkeypatch, interrupt_at: int, how: str) -> None:
    """Replace training by instant fake runs; Ctrl-C during run number ``interrupt_at`` (1-based)."""
    calls = []

    def run_one(variant, seed, *rest):
        calls.append(seed)
        if len(calls) == interrupt_at:
            if how == "signal":
                os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C
                time.sleep(5)  # the handler raises before this ends
            raise KeyboardInterrupt
        return {"label": variant.label, "seed": seed}

    monkeypatch.setattr(compare_estimators, "run_one", run_one)
    monkeypatch.setattr(compare_estimators, "time_updates", lambda *args, **kwargs: {})


@pytest.mark.parametrize("how", ["signal", "KeyboardInterrupt"])
def test_ctrl_c_says_what_was_kept_and_how_to_rerun(how, tmp_path, capsys, monkeypatch):
    fake_runs(monkeypatch, interrupt_at=2, how=how)
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN under nohup / a background job
    args = SMOKE + ["--out", str(tmp_path), "--estimators", "reinforce", "--seeds", "3"]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 130
    assert lab_lines(capsys) == [
        f"compare_estimators: stopped by Ctrl-C: 1 of 3 runs finished, their results are kept in {tmp_path / 'results.json'} "
        f"(no table or plot was written); rerun the suite from the start with: python -m benchmarks.compare_estimators "
        f"{' '.join(args)} (give another --out to keep these)"]
    assert json.loads((tmp_path / "results.json").read_text()) == [{"label": "reinforce", "seed": 0}]
    assert signal.getsignal(signal.SIGINT) is before  # restored


def test_ctrl_c_before_any_run_finished_says_nothing_was_written(tmp_path, capsys, monkeypatch):
    fake_runs(monkeypatch, interrupt_at=1, how="KeyboardInterrupt")
    with pytest.raises(SystemExit) as exit_info:
        main(SMOKE + ["--out", str(tmp_path), "--estimators", "reinforce"])
    assert exit_info.value.code == 130
    (line,) = lab_lines(capsys)
    assert line.startswith(f"compare_estimators: stopped by Ctrl-C before any of the 2 runs finished; nothing was written to {tmp_path}; "
                           f"rerun the suite from the start with: python -m benchmarks.compare_estimators ")
    assert not (tmp_path / "results.json").exists()


@pytest.mark.slow
def test_ctrl_c_stops_the_worker_processes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    results = tmp_path / "results.json"

    def interrupt_after_the_first_run():
        deadline = time.monotonic() + 120
        while not results.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_after_the_first_run, daemon=True).start()
    with pytest.raises(SystemExit) as exit_info:
        main(SMOKE + ["--out", str(tmp_path), "--estimators", "reinforce", "--seeds", "6", "--jobs", "2"])
    assert exit_info.value.code == 130
    (line,) = lab_lines(capsys)
    assert line.startswith("compare_estimators: stopped by Ctrl-C: ") and " of 6 runs finished" in line
    assert 1 <= len(json.loads(results.read_text())) < 6
    assert not multiprocessing.active_children()  # the workers were stopped, not left running
def test_rloo_and_pathwise_are_built_in_variants():
    from benchmarks.compare_estimators import BUILT_IN, parse_args

    assert {"rloo", "pathwise"} <= set(BUILT_IN) and parse_args([]).estimators == list(BUILT_IN)


def test_verdicts_follow_twice_the_standard_error():
    assert mean_sd([1.0, 2.0, 3.0]) == (2.0, 1.0)
    # means 0.10 vs 0.20, sd 0.01 each over 3 seeds: the difference is 10 points, its standard error 0.82
    assert verdict("a", [0.09, 0.10, 0.11], "b", [0.19, 0.20, 0.21]) == "a ahead of b by 10.00 ± 0.82 points"
    assert verdict("b", [0.19, 0.20, 0.21], "a", [0.09, 0.10, 0.11]).startswith("a ahead of b by 10.00")
    assert "not separable at this budget" in verdict("a", [0.10, 0.20, 0.30], "b", [0.15, 0.25, 0.35])


def test_updates_to_reach_a_target():
    curve = [{"update": 100, "val_error": 0.5}, {"update": 200, "val_error": 0.19}, {"update": 300, "val_error": 0.25}]
    assert updates_to_reach(curve, 0.2) == 200 and updates_to_reach(curve, 0.1) is None


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
