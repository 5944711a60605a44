"""Estimator tests run on the enumerable toy problem: tiny tensors, many draws."""
import pytest

from tests.estimators.toy_problem import one_intra_op_thread


@pytest.fixture(autouse=True, scope="package")
def _one_intra_op_thread():
    """Threads only add synchronisation on these tiny tensors (about 40x slower per op on a busy machine)."""
    with one_intra_op_thread():
        yield
