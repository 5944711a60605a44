"""ram-lightning: stochastic hard-attention networks with interchangeable gradient estimators.

    ram_lightning/
      core/          pure nn.Modules: sensor, glimpse network, policy, recurrent core, rollout, decoders, encoders
      models/        the LightningModules (AttentionClassifier, AttentionCaptioner) and what they share
      diagnostics/   gradient variance / SNR probe, diagnostics of the policy and of q
      viz/           glimpse and caption-attention pictures
      run/           the ``ram`` command: CLI, run defaults and records, checkpoints, signals, W&B
      errors.py, seeds.py   leaves every package may import

Imports run downwards only: run -> viz, diagnostics -> models -> core -> errors, seeds (and the
estimators' contract). ``ram_lightning.errors`` has no heavy imports, so ``estimators`` and
``datamodules`` can use it; the models are imported lazily on first access, so that
``ram_lightning.AttentionClassifier`` and ``ram_lightning.AttentionCaptioner`` work as short class
paths in configs. Modules at this level other than the leaves (``cli``, ``classifier``,
``captioner``, ``callbacks``, ``pictures``, ``tracking``) are aliases kept for old configs,
commands and checkpoints.
"""
from .errors import DataError, UserError

__all__ = ["AttentionCaptioner", "AttentionClassifier", "DataError", "UserError"]
__version__ = "0.1.0"

_MODELS = ("AttentionClassifier", "AttentionCaptioner")


def __getattr__(name: str):
    if name in _MODELS:
        from . import models

        return getattr(models, name)
    raise AttributeError(f"module 'ram_lightning' has no attribute {name!r}")
