"""ram-lightning: stochastic hard-attention networks with interchangeable gradient estimators.

``ram_lightning.errors`` has no heavy imports, so ``estimators`` and ``datamodules`` can use it;
the Lightning modules are imported lazily on first access.
"""
from .errors import DataError, UserError

__all__ = ["AttentionClassifier", "DataError", "UserError"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "AttentionClassifier":
        from .classifier import AttentionClassifier

        return AttentionClassifier
    raise AttributeError(f"module 'ram_lightning' has no attribute {name!r}")
