"""Alias kept for old configs (``ram_lightning.callbacks.GradientVarianceProbe``): the probe lives in
:mod:`ram_lightning.diagnostics.probe` (``ram_lightning.diagnostics.GradientVarianceProbe``)."""
from ram_lightning.diagnostics.probe import GradientVarianceProbe

__all__ = ["GradientVarianceProbe"]
