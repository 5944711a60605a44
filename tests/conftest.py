"""Shared pytest fixtures."""
import os
from pathlib import Path

import pytest
import torch

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
