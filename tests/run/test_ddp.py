"""Data-parallel training: samplers, random streams and metric reduction.

Fast tests check the pieces in one process (the data every rank builds, DistributedSampler
shares and padding, per-rank random streams); the slow ones run 2 CPU processes (gloo).
"""
import subprocess

import pytest
import pytorch_lightning as pl
import torch
import yaml
from torch.utils.data.distributed import DistributedSampler

from datamodules import TranslatedMNIST
from ram_lightning.run.cli import build_cli, main
from ram_lightning.models.streams import rank_seed, seed_rank_stream
from ram_lightning.run.rank_seeds import RankSeeds
from tests.tiny_run import RAM, ROOT, subprocess_env

DDP = ["--config", "configs/trainer/ddp.yaml", "--trainer.accelerator", "cpu", "--trainer.devices", "2"]


def tiny_data(**kwargs) -> TranslatedMNIST:
    return TranslatedMNIST(source="rendered", canvas_size=36, train_size=96, val_size=64, test_size=64, **kwargs)


def test_every_rank_builds_the_same_validation_and_test_images_and_scores_a_disjoint_share():
    ranks = [tiny_data(), tiny_data()]  # what two processes build from one config
    for split in ("val", "test"):
        first, second = (dm.dataset(split) for dm in ranks)
        assert all(torch.equal(first[i][0], second[i][0]) for i in range(len(first)))
        shares = [list(DistributedSampler(first, num_replicas=2, rank=r, shuffle=False)) for r in (0, 1)]
        assert sorted(shares[0] + shares[1]) == list(range(len(first)))  # 64 = 2 x 32: each once


def test_an_uneven_set_is_padded_with_repeated_samples():
    shares = [list(DistributedSampler(range(63), num_replicas=2, rank=r, shuffle=False)) for r in (0, 1)]
    assert len(shares[0]) == len(shares[1]) == 32 and (shares[0] + shares[1]).count(0) == 2


def test_ranks_draw_different_training_images_and_samples_from_their_own_streams(monkeypatch):
    monkeypatch.setenv("PL_GLOBAL_SEED", "1")  # what seed_everything(1) sets in every process
    train = tiny_data().dataset("train")
    draws = {}
    with torch.random.fork_rng():
        for rank in (0, 1, 1):
            seed_rank_stream(rank, world_size=2)
            draws.setdefault(rank, []).append((train[0][0], torch.rand(3)))
        torch.manual_seed(5)
        expected = torch.rand(3)
        torch.manual_seed(5)
        seed_rank_stream(0, world_size=1)  # one process: its stream is left alone
        assert torch.equal(torch.rand(3), expected)
    (image0, noise0), = draws[0]
    (image1, noise1), (image1_again, noise1_again) = draws[1]
    assert not torch.equal(image0, image1) and not torch.equal(noise0, noise1)  # same digit, other placement
    assert torch.equal(image1, image1_again) and torch.equal(noise1, noise1_again)  # reproducible per rank
    assert len({rank_seed(1, r) for r in range(8)} | {rank_seed(2, 0)}) == 9


def test_the_ddp_fragment_composes_with_a_task_config(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", "configs/translated_scaled.yaml", "--config", "configs/trainer/ddp.yaml", "--print_config"])
    assert exit_info.value.code in (0, None)
    trainer = yaml.safe_load(capsys.readouterr().out)["trainer"]
    assert (trainer["strategy"], trainer["devices"], trainer["num_nodes"]) == ("ddp", -1, 1)
    assert trainer["gradient_clip_val"] == 5.0  # the task's own trainer settings are kept


def test_the_ram_command_adds_per_rank_seeding_to_any_model(tmp_path, monkeypatch, tiny_config, write_config):
    monkeypatch.chdir(ROOT)
    cli = build_cli(["--config", str(write_config(tmp_path, tiny_config(tmp_path)))], run=False)
    assert any(isinstance(callback, RankSeeds) for callback in cli.trainer.callbacks)


class RecordStream(pl.Callback):
    """Writes a few draws of the process's random stream (without consuming it) to ``{prefix}{rank}.pt``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def on_train_start(self, trainer, pl_module) -> None:
        with torch.random.fork_rng():
            torch.save(torch.rand(4), f"{self.prefix}{trainer.global_rank}.pt")


def ddp_config(root, tiny_config, write_config):
    """The tiny config with sets that split evenly over 2 processes (64 val / 64 test images in
    batches of 16) and glimpses made deterministic (location_std 1e-6; ``ram validate
    --ckpt_path`` takes the model's arguments from the checkpoint, so it is set for training too)."""
    config = tiny_config(root)
    config["trainer"].update(limit_val_batches=1.0, limit_test_batches=1.0)
    config["trainer"]["callbacks"].append({"class_path": "tests.run.test_ddp.RecordStream", "init_args": {"prefix": str(root / "stream")}})
    config["model"]["init_args"]["location_std"] = 1e-6
    config["data"]["init_args"]["batch_size"] = 16
    return write_config(root / "ddp.yaml", config)


def ram_subprocess(args, timeout: float = 120.0) -> None:
    result = subprocess.run(RAM + args, cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def one_process_run(tmp_path_factory, tiny_config, write_config):
    """The tiny config trained and tested in one process: its folder."""
    root = tmp_path_factory.mktemp("one_process")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)
        main(["fit", "--config", str(ddp_config(root, tiny_config, write_config))])
    return root


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory, tiny_config, write_config):
    """The same trained and tested by ``ram fit`` on 2 CPU processes (DDP, gloo): its folder."""
    root = tmp_path_factory.mktemp("two_processes")
    ram_subprocess(["fit", "--config", str(ddp_config(root, tiny_config, write_config))] + DDP)
    return root


@pytest.mark.slow
def test_fit_on_two_processes_logs_the_same_metrics_and_ranks_draw_their_own_samples(one_process_run, two_process_run,
                                                                                     read_metrics):
    assert read_metrics(two_process_run).keys == read_metrics(one_process_run).keys
    assert list(two_process_run.glob("tiny/version_*/checkpoints/last.ckpt"))
    assert all(0.0 <= read_metrics(two_process_run).last[key] <= 1.0 for key in ("val/error", "test/error", "test/error_avg3"))
    assert not torch.equal(torch.load(two_process_run / "stream0.pt"), torch.load(two_process_run / "stream1.pt"))


@pytest.mark.slow
def test_validation_and_test_errors_over_two_processes_equal_one_process(two_process_run, tmp_path, monkeypatch, tiny_config,
                                                                        write_config, read_metrics):
    """The 2-process run's final weights scored again in one process. With deterministic
    glimpses a difference could only come from the samplers or the metric reduction; 64 images
    = 2 processes x 2 batches of 16, so nothing is padded."""
    monkeypatch.chdir(ROOT)
    (checkpoint,) = two_process_run.glob("tiny/version_*/checkpoints/last.ckpt")  # one epoch: = the tested weights
    two = read_metrics(two_process_run).last
    for split, command in (("val", "validate"), ("test", "test")):
        root = tmp_path / split
        root.mkdir()
        main([command, "--config", str(ddp_config(root, tiny_config, write_config)), "--ckpt_path", str(checkpoint)])
        one = read_metrics(root).last
        assert 0.0 < one[f"{split}/error"] < 1.0
        assert two[f"{split}/error"] == one[f"{split}/error"] and two[f"{split}/error_avg3"] == one[f"{split}/error_avg3"]
        assert two[f"{split}/log_likelihood"] == pytest.approx(one[f"{split}/log_likelihood"], rel=1e-5)


@pytest.mark.slow
def test_pathwise_with_a_scale_action_fits_on_two_processes(tmp_path, tiny_config, write_config, read_metrics):
    """Reparameterised locations and the scale's score term under DDP: every parameter gets a
    gradient on every process (no unused-parameter stall), the run ends with finite metrics."""
    config = tiny_config(tmp_path, {"class_path": "estimators.Pathwise", "init_args": {"num_samples": 2}})
    config["model"]["init_args"]["scales"] = [1.0, 2.0]
    ram_subprocess(["fit", "--config", str(write_config(tmp_path / "pathwise.yaml", config)), "--test_after_fit", "false"] + DDP)
    metrics = read_metrics(tmp_path).last
    assert torch.isfinite(torch.tensor(metrics["train/loss"])) and 0.0 <= metrics["val/error"] <= 1.0


@pytest.mark.slow
def test_a_compiled_step_trains_on_two_processes(tmp_path, tiny_config, write_config):
    """compile: true under DDP: each process compiles its step, gradients are all-reduced as usual,
    and the compile time is said once (by rank 0)."""
    from ram_lightning.models.compiled_step import compiler_problem

    if compiler_problem(torch.device("cpu"), None):
        pytest.skip(compiler_problem(torch.device("cpu"), None))
    result = subprocess.run(RAM + ["fit", "--config", str(ddp_config(tmp_path, tiny_config, write_config)),
                                   "--model.init_args.compile", "true"] + DDP,
                            cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("Compiled the training step in ") == 1
    assert list(tmp_path.glob("tiny/version_*/checkpoints/last.ckpt"))
