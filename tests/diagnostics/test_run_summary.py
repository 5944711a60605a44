"""RunSummary: the curve survives a resume (kept in checkpoints), is taken at the end of fitting
(testing the best checkpoint afterwards restores older state), and bad settings are refused."""
from types import SimpleNamespace

import pytest
import torch

from ram_lightning.diagnostics.run_summary import RunSummary


def trainer_at(step, error, sanity=False):
    return SimpleNamespace(global_step=step, sanity_checking=sanity, callback_metrics={"val/error": torch.tensor(error)})


def test_the_curve_and_training_time_are_kept_in_checkpoints():
    summary = RunSummary()
    summary.train_seconds = 12.5
    summary.on_validation_end(trainer_at(0, 0.9, sanity=True), None)  # the sanity check is not a point
    summary.on_validation_end(trainer_at(300, 0.5), None)
    summary.on_validation_end(trainer_at(300, 0.4), None)  # the same update again: replaced, not doubled
    resumed = RunSummary()
    resumed.load_state_dict(summary.state_dict())
    assert resumed.curve == [{"update": 300, "seconds": 12.5, "val_error": pytest.approx(0.4)}]
    assert resumed.train_seconds == 12.5


@pytest.mark.parametrize("kwargs", [{"probe_draws": 1}, {"scale_batches": 0}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError, match="RunSummary"):
        RunSummary(**kwargs)
