"""Each user mistake that used to end in a traceback is one line ``ram: error: ...``, exit status 2."""
import errno
import warnings

import pytest

from ram_lightning.run.cli import main
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
    config = ROOT / "configs" / "captions_synthetic.yaml"
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


def test_a_config_that_is_not_utf8_names_the_file_and_the_byte(tmp_path, capsys):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("trainer:\n  max_epochs: 1  # r\u00e9sum\u00e9\n".encode("latin-1"))  # é is byte 29 in Latin-1
    assert one_line_error(capsys, ["fit", "--config", str(bad)]) == (
        f"ram: error: config file {bad}: not UTF-8 text (byte 0xe9 at offset 29, line 2: invalid continuation byte); "
        f"save it as UTF-8")


@pytest.mark.parametrize("content, holds", [("- model: {}\n- data: {}\n", "is a YAML list"), ("", "is empty"),
                                            ("# only a comment\n", "is empty"), ("quickstart\n", "is a single str value")])
def test_a_config_that_is_not_a_mapping_names_the_file(content, holds, tmp_path, capsys):
    bad = tmp_path / "c.yaml"
    bad.write_text(content)
    assert one_line_error(capsys, ["fit", "--config", str(bad)]) == (
        f"ram: error: config file {bad}: {holds}; expected a mapping of options (model:, data:, trainer:, ...)")


@pytest.mark.parametrize("option, value, message", [
    ("--trainer.max_steps", "-5",
     "ram: error: trainer.max_steps=-5: `max_steps` must be a non-negative integer or -1 (infinite steps). You passed in -5."),
    ("--trainer.num_nodes", "0", "ram: error: trainer.num_nodes=0: `num_nodes` must be a positive integer, but got 0."),
    ("--trainer.accelerator", "gpuu", "ram: error: trainer.accelerator='gpuu': You selected an invalid accelerator name: "),
    ("--trainer.gradient_clip_algorithm", "l2", "ram: error: trainer.gradient_clip_algorithm='l2': `gradient_clip_algorithm` l2 "
                                                "is invalid. Allowed algorithms: ['value', 'norm']."),
])
def test_an_option_the_trainer_refuses_is_one_line_naming_it(option, value, message, config, capsys):
    line = one_line_error(capsys, ["fit", "--config", str(config), option, value, "--test_after_fit", "false"])
    assert line.startswith(message)


@pytest.mark.parametrize("option, value, line", [
    ("--model.init_args.estimator.class_path", "nope.Nope",
     "model.init_args.estimator.class_path: cannot import 'nope.Nope' (No module named 'nope'); expected str or a subclass of Estimator"),
    ("--data.class_path", "nope.Nope",
     "data.class_path: cannot import 'nope.Nope' (No module named 'nope'); expected a subclass of LightningDataModule"),
    ("--model", "nope.Nope",
     "model.class_path: cannot import 'nope.Nope' (No module named 'nope'); expected a subclass of LightningModule"),
    ("--model", "ram_lightning.NoSuch", "model.class_path: cannot import 'ram_lightning.NoSuch' "
                                        "(module 'ram_lightning' has no attribute 'NoSuch'); expected a subclass of LightningModule"),
    ("--trainer.max_epochs", "abc", "trainer.max_epochs: expected int, got 'abc'"),
    ("--model.init_args.hidden_size", "x", "model.init_args.hidden_size: expected int, got 'x'"),
    ("--data.init_args.batch_size", "1.5", "data.init_args.batch_size: expected int, got '1.5'"),
    ("--model.init_args.scales", "abc", "model.init_args.scales: expected Sequence[float], got 'abc'"),
    ("--model.init_args.num_glimpse", "3", "model.init_args.num_glimpse: not an option of ram_lightning.AttentionClassifier"),
    ("--trainer.precision", "99", "trainer.precision: expected one of 64, 32, 16, 'transformer-engine'"),
    ("--no_such_option", "1", "unrecognized arguments: --no_such_option 1"),
])
def test_a_wrong_class_path_or_type_is_one_line_naming_the_option(option, value, line, config, capsys):
    assert one_line_error(capsys, ["fit", "--config", str(config), option, value]).startswith(f"ram: error: {line}")
    assert "usage:" not in capsys.readouterr().err


def test_a_wrong_type_in_the_config_file_is_one_line_naming_the_option(tmp_path, tiny_config, write_config, capsys):
    config = tiny_config(tmp_path)
    config["model"]["init_args"]["hidden_size"] = "sixteen"
    line = one_line_error(capsys, ["fit", "--config", str(write_config(tmp_path, config))])
    assert line == "ram: error: model.init_args.hidden_size: expected int, got 'sixteen'"


@pytest.mark.parametrize("estimator, parts", [
    ("{class_path: estimators.Vimco, init_args: {num_samples: 0}}", ["ram: error: vimco: num_samples must be >= 2", "got 0"]),
    ("wake_sleep_cb", ["ram: error: unknown estimator 'wake_sleep_cb'; registered: ", "wake_sleep_cv; did you mean 'wake_sleep_cv'? "]),
])
def test_estimator_mistakes_say_what_is_expected(estimator, parts, config, capsys):
    line = one_line_error(capsys, ["fit", "--config", str(config), "--model.init_args.estimator", estimator, "--test_after_fit", "false"])
    assert line.startswith(parts[0]) and all(part in line for part in parts)


PLATEAU = "{class_path: torch.optim.lr_scheduler.ReduceLROnPlateau, init_args: {patience: 2}}"


def test_a_plateau_scheduler_with_validation_off_is_one_line_before_any_update(config, capsys):
    line = one_line_error(capsys, ["fit", "--config", str(config), "--model.init_args.lr_scheduler", PLATEAU,
                                   "--trainer.limit_val_batches", "0", "--test_after_fit", "false"])
    assert line.startswith("ram: error: model.lr_scheduler (torch.optim.lr_scheduler.ReduceLROnPlateau) watches val/error, "
                           "but trainer.limit_val_batches is 0")


def test_a_plateau_scheduler_survives_an_epoch_that_ends_before_the_first_validation(config, tmp_path, read_metrics):
    # 3 updates an epoch, validation every 5 updates: epoch 0 ends with no val/error to watch yet
    main(["fit", "--config", str(config), "--model.init_args.lr_scheduler", PLATEAU, "--trainer.max_epochs", "-1",
          "--trainer.max_steps", "6", "--trainer.val_check_interval", "5", "--trainer.check_val_every_n_epoch", "null",
          "--trainer.num_sanity_val_steps", "0", "--test_after_fit", "false"])
    metrics = read_metrics(tmp_path)
    assert metrics.last["step"] >= 5 and "val/error" in metrics.keys


def test_what_wandb_refuses_is_one_line_saying_what_to_check(config, tmp_path, monkeypatch, capsys):
    import wandb

    def refuse(*args, **kwargs):
        raise wandb.errors.AuthenticationError("API key verification failed. Make sure your API key is valid.")

    monkeypatch.setattr(wandb, "init", refuse)
    monkeypatch.setenv("WANDB_MODE", "offline")
    logger = ('{class_path: pytorch_lightning.loggers.WandbLogger, init_args: {project: ram-test, save_dir: "%s"}}'
              % (tmp_path / "wb"))
    line = one_line_error(capsys, ["fit", "--config", str(config), "--trainer.logger", logger, "--test_after_fit", "false"])
    assert line == ("ram: error: W&B: API key verification failed. Make sure your API key is valid. (AuthenticationError); "
                    "check WANDB_API_KEY (or `wandb login`), the logger's project and entity, or log offline with WANDB_MODE=offline")
