"""The report's pure functions: mean ± sd, updates to a target, verdicts by twice the standard error."""
from ram_lightning.compare.report import averaged_test_error, mean_sd, updates_to_reach, verdict
from ram_lightning.compare.tables import seconds_per_update, settings_line


def test_verdicts_follow_twice_the_standard_error():
    assert mean_sd([1.0, 2.0, 3.0]) == (2.0, 1.0)
    # means 0.10 vs 0.20, sd 0.01 each over 3 seeds: the difference is 10 points, its standard error 0.82
    assert verdict("a", [0.09, 0.10, 0.11], "b", [0.19, 0.20, 0.21]) == "a ahead of b by 10.00 ± 0.82 points"
    assert verdict("b", [0.19, 0.20, 0.21], "a", [0.09, 0.10, 0.11]).startswith("a ahead of b by 10.00")
    assert "not separable at this budget" in verdict("a", [0.10, 0.20, 0.30], "b", [0.15, 0.25, 0.35])


def test_updates_to_reach_a_target():
    curve = [{"update": 100, "val_error": 0.5}, {"update": 200, "val_error": 0.19}, {"update": 300, "val_error": 0.25}]
    assert updates_to_reach(curve, 0.2) == 200 and updates_to_reach(curve, 0.1) is None


def test_seconds_per_update_precision_and_older_records():
    runs = [{"label": "a", "train_seconds": 10.0, "updates": 100, "precision": "bf16-mixed", "compiled": True},
            {"label": "a", "train_seconds": 30.0, "updates": 100, "precision": "bf16-mixed", "compiled": True},
            {"label": "a", "train_seconds": 20.0, "updates": 100, "precision": "bf16-mixed", "compiled": True}]
    assert seconds_per_update(runs) == {"a": 0.2}
    assert settings_line(runs) == "Precision: bf16-mixed; training step: compiled."
    assert averaged_test_error({"test_error_avg10": 0.1}) == 0.1 and averaged_test_error({"test_error_avg": 0.2}) == 0.2


def test_verdicts_on_the_averaged_error_leave_out_pairs_without_it():
    from ram_lightning.compare.report import verdicts

    runs = [{"label": "a", "test_error": e, "test_error_avg": e / 2} for e in (0.09, 0.10, 0.11)]
    runs += [{"label": "b", "test_error": e, "test_error_avg": e / 2} for e in (0.19, 0.20, 0.21)]
    runs += [{"label": "old", "test_error": e} for e in (0.19, 0.20, 0.21)]  # a record from before the averaged error
    assert verdicts(runs, averaged=True) == ["a ahead of b by 5.00 ± 0.41 points"]
    assert len(verdicts(runs)) == 3
