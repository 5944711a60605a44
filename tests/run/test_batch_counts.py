"""An integer batch limit is a count of batches, a number with a decimal point a fraction
(ram_lightning/run/batch_counts.py), in a config file and on the command line alike."""
from typing import Optional, Union

import pytest
import yaml

from ram_lightning.run.batch_counts import int_before_float
from ram_lightning.run.cli import main
from tests.tiny_run import ROOT, load_checkpoint

OPTIONS = ("limit_train_batches", "limit_val_batches", "limit_test_batches", "limit_predict_batches",
           "overfit_batches", "val_check_interval")


def test_int_is_tried_before_float_in_a_union():
    assert int_before_float(Optional[Union[float, int]]).__args__ == (int, float, type(None))
    assert int_before_float(Union[int, float]) is Union[int, float]
    assert int_before_float(Optional[int]) is Optional[int]
    assert int_before_float(float) is float


@pytest.mark.parametrize("where", ["yaml", "command line"])
@pytest.mark.parametrize("value, kind", [("1", int), ("1.0", float), ("0.5", float), ("3", int)])
def test_an_integer_is_a_count_and_a_decimal_a_fraction(where, value, kind, tmp_path, monkeypatch, capsys, tiny_config,
                                                         write_config):
    config = tiny_config(tmp_path)
    args = []
    for option in OPTIONS:
        if where == "yaml":
            config["trainer"][option] = yaml.safe_load(value)
        else:
            args += [f"--trainer.{option}", value]
    monkeypatch.chdir(ROOT)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(write_config(tmp_path, config)), *args, "--print_config"])
    captured = capsys.readouterr()
    assert exit_info.value.code in (0, None), captured.err
    trainer = yaml.safe_load(captured.out)["trainer"]
    assert {option: (trainer[option], type(trainer[option])) for option in OPTIONS} == {
        option: (yaml.safe_load(value), kind) for option in OPTIONS}


@pytest.mark.slow
@pytest.mark.parametrize("where", ["yaml", "command line"])
def test_limit_train_batches_1_trains_one_batch_per_epoch(where, tmp_path, monkeypatch, tiny_config, write_config, read_metrics):
    config = tiny_config(tmp_path)
    config["trainer"]["max_epochs"] = 2  # 96 images in batches of 32: 3 batches an epoch without a limit
    limits = {"limit_train_batches": 1, "limit_val_batches": 1}
    args = []
    for option, value in limits.items():
        if where == "yaml":
            config["trainer"][option] = value
        else:
            args += [f"--trainer.{option}", str(value)]
    monkeypatch.chdir(ROOT)
    main(["fit", "--config", str(write_config(tmp_path, config)), *args, "--test_after_fit", "false"])
    steps = [(row["epoch"], row["step"]) for row in read_metrics(tmp_path).rows if "train/loss" in row]
    assert steps == [(0, 0), (1, 1)]  # log_every_n_steps 1: one row per training step
    (first,) = tmp_path.glob("tiny/version_*/checkpoints/epoch=0-*.ckpt")
    val_batches = load_checkpoint(first)["loops"]["fit_loop"]["epoch_loop.val_loop.batch_progress"]["total"]["completed"]
    assert val_batches == 1  # 64 validation images: 2 batches without the limit
