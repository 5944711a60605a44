"""Gradient-estimator plug-ins for stochastic hard attention.

    from estimators import SampleTerms, get_estimator
    est = get_estimator("reinforce", num_samples=5)
    out = est(SampleTerms(log_likelihood=l, log_prior=p, baseline=b))   # each [B, K]
    out.loss.backward()

The rules an estimator follows are in the docstring of :class:`Estimator` (``estimators/base.py``);
names and class paths are resolved in one place, :mod:`estimators.registry`. The built-ins below
register themselves (``@register``) as this package is imported; other packages join through the
entry-point group ``ram_lightning.estimators``.
"""
from .base import Estimator, EstimatorOutput, SampleTerms
from .registry import ENTRY_POINT_GROUP, available_estimators, build_estimator, estimator_class, get_estimator, register
from .spec import estimator_spec
from .pathwise import Pathwise, pathwise_surrogate
from .reinforce import Reinforce, reinforce_surrogate
from .rloo import Rloo, rloo_surrogate
from .vimco import Vimco, vimco_surrogate
from .wake_sleep import WakeSleep, wake_sleep_surrogate
from .wake_sleep_cv import WakeSleepCV, wake_sleep_cv_surrogate

__all__ = [
    "ENTRY_POINT_GROUP",
    "Estimator",
    "EstimatorOutput",
    "Pathwise",
    "Reinforce",
    "Rloo",
    "SampleTerms",
    "Vimco",
    "WakeSleep",
    "WakeSleepCV",
    "available_estimators",
    "build_estimator",
    "estimator_class",
    "estimator_spec",
    "get_estimator",
    "register",
    "pathwise_surrogate",
    "reinforce_surrogate",
    "rloo_surrogate",
    "vimco_surrogate",
    "wake_sleep_cv_surrogate",
    "wake_sleep_surrogate",
]
