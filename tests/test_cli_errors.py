"""Each user mistake that used to end in a traceback is one line ``ram: error: ...``, exit status 2."""
import errno
import warnings

import pytest

from ram_lightning.cli import main
from ram_lightning.core import AttentionCore
from tests.tiny_run import ROOT


def one_line_error(capsys, args) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ram: error:")]
    assert len(lines) == 1
    return lines[0]


@pytest.fixture
def config(tmp_path, monkeypatch, tiny_config, write_config):
    monkeypatch.chdir(ROOT)
    return write_config(tmp_path / "c.yaml", tiny_config(tmp_path))


@pytest.mark.parametrize("option, value, message", [
    ("--model.init_args.estimator", "{class_path: estimators.Reinforce, init_args: {num_samples: 0}}",
     "ram: error: Reinforce: num_samples must be an integer >= 1, got 0"),
    ("--model.init_args.estimator", "{class_path: estimators.Rloo, init_args: {num_samples: 1}}",
     "ram: error: rloo: num_samples must be >= 2"),
    ("--model.init_args.location_std", "0", "ram: error: AttentionCore: location_std must be > 0"),
    ("--model.init_args.optimizer", "{class_path: torch.optim.Adam, init_args: {lr: -0.1}}",
     "ram: error: model.optimizer (torch.optim.adam.Adam): Invalid learning rate: -0.1"),
])
def test_a_bad_model_option_is_one_line(option, value, message, config, capsys):
    assert one_line_error(capsys, ["fit", "--config", str(config), option, value, "--test_after_fit", "false"]).startswith(message)


def test_pathwise_for_a_model_without_location_gradients_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = ROOT / "configs" / "captions_synthetic_reinforce.yaml"
    line = one_line_error(capsys, ["fit", "--config", str(config), "--model.init_args.estimator", "pathwise"])
    assert line.startswith("ram: error: AttentionCaptioner: estimator pathwise needs the gradient of the likelihood "
                           "with respect to reparameterised glimpse locations")


def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer:\n  max_epochs: [1\n")
    assert one_line_error(capsys, ["fit", "--config", str(bad)]).startswith(f"ram: error: config file {bad}: invalid YAML at line 3")


@pytest.mark.parametrize("content, message", [(None, "no such file"), (b"not a checkpoint", "is not a PyTorch checkpoint")])
def test_a_missing_or_non_checkpoint_ckpt_path_is_one_line(content, message, config, tmp_path, capsys):
    path = tmp_path / "x.ckpt"
    if content is not None:
        path.write_bytes(content)
    line = one_line_error(capsys, ["test", "--config", str(config), "--ckpt_path", str(path)])
    assert str(path) in line and message in line


def test_an_unreadable_data_file_is_one_line(config, capsys, monkeypatch):
    def denied(*args, **kwargs):  # what opening a file without read permission raises (tests may run as root)
        raise PermissionError(errno.EACCES, "Permission denied", "/data/mnist/train-images-idx3-ubyte.gz")

    monkeypatch.setattr("datamodules.attention_mnist.load_mnist", denied)
    line = one_line_error(capsys, ["fit", "--config", str(config), "--data.init_args.source", "mnist",
                                   "--data.init_args.download", "false", "--test_after_fit", "false"])
    assert line.startswith("ram: error: /data/mnist/train-images-idx3-ubyte.gz: permission denied")


def test_a_glimpse_wider_than_the_canvas_is_a_warning():
    with pytest.warns(UserWarning, match=r"every glimpse is wider than the 20x20 image .* = 24 px"):
        AttentionCore(image_shape=(1, 20, 20), glimpse_size=12, num_patches=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        AttentionCore(image_shape=(1, 60, 60), glimpse_size=12, num_patches=3, scales=[0.5, 1.0, 2.0])  # the paper's: fine
