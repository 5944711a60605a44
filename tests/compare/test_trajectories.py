"""Diagnostics over training from metrics.csv rows: probe points, variance reductions, scale use."""
import json

import pytest

from ram_lightning.compare.tables import write_report
from ram_lightning.compare.trajectories import (probe_points, read_metrics, scale_use_over_training, series,
                                                three_points, variance_reduction)


def probe_rows(variances, snrs=None, group="policy"):
    """metrics.csv rows as Lightning writes them for a probe at the given {update: value}: at
    step update - 1, then repeated unchanged in the next training row (step update + 9)."""
    rows = []
    for update, value in variances.items():
        probe = {f"grad_var/{group}": str(value), f"grad_snr/{group}": str((snrs or {}).get(update, 1.0))}
        rows.append({"step": str(update - 1), **probe, "train/loss": "1.0"})
        rows.append({"step": str(update - 1), "val/error": "0.5"})
        rows.append({"step": str(update + 9), **probe, "train/loss": "0.9"})
    return rows


def result(label, seed):
    return {"label": label, "seed": seed, "updates": 1500, "test_error": 0.1, "curve": [{"update": 1500, "seconds": 1.0, "val_error": 0.1}]}


def test_three_points_are_the_first_the_nearest_the_middle_and_the_last():
    assert three_points([250, 500, 750, 1000, 1250, 1500]) == {"early": 250, "middle": 750, "end": 1500}
    assert three_points([1500, 250, 1000]) == {"early": 250, "middle": 1000, "end": 1500}
    assert three_points([]) == {}


def test_probe_points_are_those_every_run_has():
    metrics = {("a", 0): probe_rows({250: 3, 500: 2, 750: 1}), ("a", 1): probe_rows({250: 3, 500: 2})}
    assert probe_points(metrics, "policy") == {"early": 250, "middle": 250, "end": 500}
    assert probe_points(metrics, "bottom_lstm") == {}


def test_variance_reduction_is_per_seed_and_its_verdict_follows_the_two_standard_error_rule():
    reference = {0: {250: 10.0, 500: 8.0, 750: 4.0}, 1: {250: 20.0, 500: 8.0, 750: 4.0}, 2: {250: 10.0, 500: 8.0, 750: 4.0}}
    treated = {0: {250: 6.0, 500: 4.0, 750: 4.4}, 1: {250: 12.0, 500: 4.4, 750: 3.6}, 2: {250: 5.0, 500: 3.6, 750: 4.0}}
    metrics = {("ws", s): probe_rows(v, {u: 2.0 for u in v}) for s, v in reference.items()}
    metrics.update({("cv", s): probe_rows(v, {u: 3.0 for u in v}) for s, v in treated.items()})
    results = [result("ws", s) for s in range(3)] + [result("cv", s) for s in range(3)]
    rows = variance_reduction(results, metrics, "policy", "ws", "cv")
    assert [(r["point"], r["update"]) for r in rows] == [("early", 250), ("middle", 500), ("end", 750)]
    assert rows[0]["reduction"] == pytest.approx([40.0, 40.0, 50.0])
    assert rows[1]["reduction"] == pytest.approx([50.0, 45.0, 55.0])
    assert rows[2]["reduction"] == pytest.approx([-10.0, 10.0, 0.0])
    assert rows[0]["snr_ratio"] == pytest.approx([1.5, 1.5, 1.5])
    assert rows[1]["verdict"].startswith("cv ahead of ws by")  # log10 variances lower, beyond 2 standard errors
    assert "not separable" in rows[2]["verdict"]  # the negative control: the same variances up to noise


def test_scale_use_over_training_gives_the_mean_over_seeds_and_the_largest_share_per_seed(tmp_path):
    def run(shares):  # {update: [share per scale]}
        return [{"step": str(u - 1), **{f"val/scale_use/{s}": str(v) for s, v in enumerate(values)}} for u, values in shares.items()]

    metrics = {("a", 0): run({250: [0.2, 0.3, 0.5], 500: [0.0, 0.0, 1.0]}), ("a", 1): run({250: [0.4, 0.3, 0.3], 500: [0.1, 0.1, 0.8]})}
    text = scale_use_over_training([result("a", 0), result("a", 1)], metrics)
    assert "| 250 | 0.30 ± 0.14 | 0.30 ± 0.00 | 0.40 ± 0.14 |" in text
    assert "Largest single-scale share at update 500, per seed: 1.00, 0.80" in text
    assert scale_use_over_training([result("a", 0)], {("a", 0): probe_rows({250: 1.0})}) is None


def test_the_report_writes_the_trajectories_where_the_runs_logged_them(tmp_path):
    folder = tmp_path / "a" / "seed_0" / "version_0"
    folder.mkdir(parents=True)
    (folder / "metrics.csv").write_text("step,grad_var/policy,grad_snr/policy,val/scale_use/0,val/scale_use/1\n"
                                        "249,4.0,0.5,,\n249,,,0.25,0.75\n299,4.0,0.5,,\n499,2.0,0.25,,\n499,,,0.5,0.5\n")
    rows = read_metrics(tmp_path / "a" / "seed_0")
    assert series(rows, "grad_var/policy") == {250: 4.0, 500: 2.0} and series(rows, "val/scale_use/1") == {250: 0.75, 500: 0.5}
    results = [dict(result("a", 0), curve=[{"update": 500, "seconds": 1.0, "val_error": 0.5}])]
    text = write_report(results, tmp_path, "ram compare ...", [0.2], "t", {("a", 0): rows})
    assert "Gradient variance / SNR of `policy` over training" in text and "| 500 | 0.50 ± 0.00 | 0.50 ± 0.00 |" in text
    assert json.loads((tmp_path / "trajectories.json").read_text())["groups"] == {"policy": {"early": 250, "middle": 250, "end": 500}}
    (tmp_path / "trajectories.json").unlink()
    write_report(results, tmp_path, "ram compare ...", [0.2], "t")  # no metrics: no trajectory sections
    assert not (tmp_path / "trajectories.json").exists()
