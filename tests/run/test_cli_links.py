"""Building the CLI (its data -> model argument links) never sets up the DataModule."""
import json

import pytest

from ram_lightning.run.cli import build_cli
from tests.run.test_predict import CAPTION_DATA, CAPTION_MODEL
from tests.tiny_run import ROOT


@pytest.mark.parametrize("task", ["classification", "captions"])
def test_the_argument_links_leave_the_datamodule_unset_up(task, tmp_path, monkeypatch, tiny_config, write_config):
    monkeypatch.chdir(ROOT)
    config = tiny_config(tmp_path)
    if task == "captions":
        config["model"], config["data"] = CAPTION_MODEL, json.loads(json.dumps(CAPTION_DATA))
    cli = build_cli(["--config", str(write_config(tmp_path / "c.yaml", config))], run=False)
    assert cli.datamodule._datasets is None  # nothing read or built yet: setup() runs once, in the Trainer
    assert tuple(cli.model.hparams.image_shape) == cli.datamodule.image_shape  # the links were applied
    assert "Dataset" not in str(cli.datamodule)
