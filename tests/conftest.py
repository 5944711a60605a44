"""Shared pytest fixtures: real MNIST, one torch thread, each test's environment undone, and for tests that run ``ram``: the one
tiny config (``tiny_config``), the one way to write a config (``write_config``) and the one
reader of what the CSV logger wrote (``read_metrics``)."""
import csv
import os
from pathlib import Path
from typing import Dict, List

import pytest
import torch
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
_MNIST_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _holds_mnist(folder: Path) -> bool:
    """True if ``folder`` has each of the four MNIST IDX files, gzipped or raw."""
    return all((folder / f"{n}.gz").is_file() or (folder / n).is_file() for n in _MNIST_NAMES)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """A folder with the real MNIST IDX files: $RAM_DATA_DIR, else ../shared/data/mnist."""
    env = os.environ.get("RAM_DATA_DIR")
    if env and _holds_mnist(Path(env)):
        return Path(env)
    shared = REPO_ROOT.parent / "shared" / "data" / "mnist"
    if shared.is_dir():
        return shared
    pytest.skip("real MNIST not found: set RAM_DATA_DIR to a folder with the four IDX files")


@pytest.fixture(autouse=True, scope="session")
def one_intra_op_thread():
    """Run torch on one thread in every test: the tensors are tiny, so extra threads only add
    synchronisation (on a busy machine, each op about 40x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def environment_restored():
    """Each test's changes to the environment end with it: an in-process ``ram compare`` job sets
    ``WANDB_RUN_GROUP`` / ``WANDB_JOB_TYPE`` and ``OMP_NUM_THREADS``, which would reach later tests."""
    saved = dict(os.environ)
    yield
    for name in set(os.environ) - set(saved):
        del os.environ[name]
    os.environ.update(saved)


# The tiny CLI config every `ram` test starts from (a few batches of 36x36 rendered digits).
TINY = """
seed_everything: 1
trainer:
  max_epochs: 1
  accelerator: cpu
  devices: 1
  limit_train_batches: 3
  limit_val_batches: 2
  limit_test_batches: 2
  enable_progress_bar: false
  enable_model_summary: false
  log_every_n_steps: 1
  default_root_dir: {root}
  logger:
    class_path: pytorch_lightning.loggers.CSVLogger
    init_args: {{save_dir: {root}, name: tiny}}
  callbacks:
    - class_path: pytorch_lightning.callbacks.ModelCheckpoint
      init_args: {{monitor: val/error, mode: min, save_last: true}}
model:
  class_path: ram_lightning.AttentionClassifier
  init_args:
    glimpse_size: 6
    num_patches: 2
    num_glimpses: 2
    hidden_size: 16
    glimpse_hidden: 16
    glimpse_features: 16
    context_size: 8
    eval_samples: 3
    estimator: reinforce
data:
  class_path: datamodules.TranslatedMNIST
  init_args:
    source: rendered
    canvas_size: 36
    train_size: 96
    val_size: 64
    test_size: 64
    batch_size: 32
"""


def _tiny_config(root: Path, estimator="reinforce") -> dict:
    """The tiny config as a dict, logging CSV under ``root/tiny``; ``estimator`` a name or a dict."""
    config = yaml.safe_load(TINY.format(root=root))
    config["model"]["init_args"]["estimator"] = estimator
    return config


def _write_config(path: Path, config: dict) -> Path:
    """``config`` as YAML at ``path`` (a folder: ``path/tiny.yaml``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class RunMetrics:
    """What the CSV logger wrote for the one run under ``root/tiny``: ``rows`` (every row, empty
    cells left out), ``keys`` (the header) and ``last`` (the last value of every metric)."""

    def __init__(self, root: Path) -> None:
        (metrics_file,) = Path(root).glob("tiny/version_*/metrics.csv")
        with open(metrics_file) as handle:
            reader = csv.DictReader(handle)
            self.rows: List[Dict[str, float]] = [
                {k: float(v) for k, v in row.items() if v not in ("", None)} for row in reader
            ]
            self.keys = set(reader.fieldnames or ())
        self.last: Dict[str, float] = {}
        for row in self.rows:
            self.last.update(row)


@pytest.fixture(scope="session")
def tiny_config():
    """``tiny_config(root, estimator="reinforce") -> dict``: the tiny config, to change and write."""
    return _tiny_config


@pytest.fixture(scope="session")
def write_config():
    """``write_config(path, config) -> Path``: writes a config dict as YAML."""
    return _write_config


@pytest.fixture(scope="session")
def read_metrics():
    """``read_metrics(root) -> RunMetrics``: the CSV metrics of the tiny run under ``root``."""
    return RunMetrics
