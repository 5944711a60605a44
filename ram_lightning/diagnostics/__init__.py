"""Diagnostics: the gradient variance / SNR probe and what the policy and q do.

    trainer:
      callbacks:
        - class_path: ram_lightning.diagnostics.GradientVarianceProbe
          init_args: {every_n_steps: 200, num_draws: 8}

``gradient_variance`` (the estimators of variance and signal from D draws), ``probe`` (the
callback and ``gradient_summaries``), ``attention`` (KL(q || p) per glimpse, whether q uses the
label, the histogram of chosen scales), ``run_summary`` (a run's curve, final diagnostics and
test errors in ``summary.json``, for ``ram compare``).
"""
from .attention import kl_proposal_prior_per_glimpse, label_use, scale_histogram
from .gradient_variance import gradient_draws, gradient_variance
from .probe import GradientVarianceProbe, gradient_summaries, probe_gradient_variance
from .run_summary import RunSummary

__all__ = [
    "GradientVarianceProbe",
    "gradient_draws",
    "gradient_summaries",
    "gradient_variance",
    "kl_proposal_prior_per_glimpse",
    "label_use",
    "probe_gradient_variance",
    "RunSummary",
    "scale_histogram",
]
