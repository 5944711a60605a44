"""A non-finite loss, estimator metric or gradient stops training with one clear line, and the
last checkpoint on disk stays finite and loadable."""
import math

import pytest
import torch

from estimators import Estimator, EstimatorOutput, register, reinforce_surrogate
from ram_lightning import AttentionClassifier
from ram_lightning.run.cli import main
from ram_lightning.errors import NonFiniteError
from tests.tiny_run import ROOT, load_checkpoint

STEPS_PER_EPOCH = 3  # the tiny config's limit_train_batches



@register("test_goes_bad")
class GoesBad(Estimator):
    """REINFORCE without a baseline that turns non-finite after ``good_steps`` training calls.

    ``where``: "loss" (NaN loss), "metric" (an infinite ``reward`` metric, finite loss) or
    "gradient" (finite loss, NaN gradient: d/dx sqrt(0 * x) = 0 * inf).
    """

    def __init__(self, num_samples: int = 1, good_steps: int = 4, where: str = "loss") -> None:
        super().__init__(num_samples)
        self.good_steps, self.where, self.calls = good_steps, where, 0

    def forward(self, terms) -> EstimatorOutput:
        loss, metrics = reinforce_surrogate(terms, terms.log_likelihood, None)
        self.calls += self.training
        if self.calls > self.good_steps:
            if self.where == "loss":
                loss = loss * float("nan")
            elif self.where == "metric":
                metrics["reward"] = torch.tensor(float("inf"))
            else:
                loss = loss + torch.sqrt(0.0 * terms.log_likelihood).sum()
        return EstimatorOutput(loss, metrics)


@pytest.mark.slow
@pytest.mark.parametrize("where, what", [
    ("loss", "a non-finite train/loss (nan)"),
    ("metric", "a non-finite train/reward (inf)"),
    ("gradient", "a non-finite gradient of "),
])
def test_non_finite_training_stops_with_one_line_and_a_finite_checkpoint(where, what, tmp_path, monkeypatch, capsys,
                                                                         tiny_config, write_config):
    monkeypatch.chdir(ROOT)
    estimator = {"class_path": "tests.models.test_faults.GoesBad", "init_args": {"good_steps": 4, "where": where}}
    config = tiny_config(tmp_path, estimator)
    config["trainer"]["max_epochs"] = 3
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(write_config(tmp_path / "bad.yaml", config))])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("ram: error:")]
    assert line.startswith("ram: error: training stopped at step 4: estimator test_goes_bad produced " + what), line
    # The epoch-0 checkpoint (3 steps) is the last one; it loads and every tensor in it is finite.
    (last,) = tmp_path.glob("tiny/version_*/checkpoints/last.ckpt")
    checkpoint = load_checkpoint(last)
    assert checkpoint["global_step"] == STEPS_PER_EPOCH
    for name, value in checkpoint["state_dict"].items():
        assert not value.is_floating_point() or torch.isfinite(value).all(), name
    for state in checkpoint["optimizer_states"][0]["state"].values():
        assert all(torch.isfinite(v).all() for v in state.values() if torch.is_tensor(v))


def test_a_checkpoint_with_non_finite_weights_is_refused():
    model = AttentionClassifier((1, 24, 24), 10, glimpse_size=6, num_patches=1, num_glimpses=1, hidden_size=8,
                                glimpse_hidden=8, glimpse_features=8, context_size=6)
    model.on_save_checkpoint({"state_dict": model.state_dict()})  # finite: accepted
    with torch.no_grad():
        model.head.bias[3] = math.inf
    with pytest.raises(NonFiniteError, match=r"refusing to write a checkpoint at step 0: head\.bias is non-finite \(inf\)"):
        model.on_save_checkpoint({"state_dict": model.state_dict()})
