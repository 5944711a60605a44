"""Lightning callbacks that watch training.

    trainer:
      callbacks:
        - class_path: ram_lightning.diagnostics.GradientVarianceProbe
          init_args: {every_n_steps: 200, num_draws: 8}
"""
from __future__ import annotations

import pytorch_lightning as pl
import torch

from ram_lightning.diagnostics.gradient_variance import gradient_draws, gradient_variance


class GradientVarianceProbe(pl.Callback):
    """Every N steps, the variance and signal-to-noise ratio of the gradient, per module group.

    Draws the module's training loss ``num_draws`` times on the current batch (fresh attention
    samples each time) and logs, per parameter group of ``pl_module.gradient_groups()``
    (policy, q, top and bottom LSTM, glimpse and context networks, head, baseline):
    ``grad_var/<group>`` (trace of the covariance of the gradient estimate),
    ``grad_signal/<group>`` (unbiased estimate of the squared norm of the expected gradient)
    and ``grad_snr/<group>`` (their ratio; see ``ram_lightning.diagnostics.gradient_variance.gradient_variance``).
    The probe draws from its own random stream (seeded from the run's seed and the step) and
    runs the estimator in eval mode (running averages are not updated): training follows the
    same path with or without it. It runs in the training step's precision context (autocast
    under ``bf16-mixed``), so it probes the gradient training uses.

    Args:
        every_n_steps: probe when ``trainer.global_step`` is a multiple of it.
        num_draws: D independent draws (>= 2).
    """

    def __init__(self, every_n_steps: int = 200, num_draws: int = 8) -> None:
        if every_n_steps < 1 or num_draws < 2:
            raise ValueError(f"GradientVarianceProbe: every_n_steps must be >= 1 and num_draws >= 2, got {every_n_steps}, {num_draws}")
        self.every_n_steps = every_n_steps
        self.num_draws = num_draws

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int) -> None:
        if trainer.global_step % self.every_n_steps != 0:
            return
        with trainer.precision_plugin.forward_context():
            metrics = probe_gradient_variance(pl_module, batch, self.num_draws)
        for name, value in metrics.items():
            pl_module.log(name, value, on_step=True, on_epoch=False, batch_size=1)


def gradient_summaries(pl_module: pl.LightningModule, batch, num_draws: int, generator=None) -> dict:
    """``{group: gradient_variance(...)}`` (variance, mean_sq_norm, signal, snr, relative) over
    ``num_draws`` draws of the training loss on one batch, for every non-empty module group.

    ``pl_module`` is an ``EstimatorModule`` (``estimator_output``, ``gradient_groups`` and
    ``private_stream``); ``generator`` defaults to its private "probe" stream. The estimator
    runs in eval mode (running averages untouched) and torch's global stream is restored.
    """
    device = pl_module.device
    generator = pl_module.private_stream("probe") if generator is None else generator
    groups = {name: params for name, params in pl_module.gradient_groups().items() if params}
    estimator_mode = pl_module.estimator.training
    pl_module.estimator.eval()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.enable_grad():
            draws = gradient_draws(lambda: pl_module.estimator_output(batch, generator=generator).loss, groups, num_draws)
    finally:
        pl_module.estimator.train(estimator_mode)
    return {group: gradient_variance(values) for group, values in draws.items()}


def probe_gradient_variance(pl_module: pl.LightningModule, batch, num_draws: int, generator=None) -> dict:
    """``{"grad_var/<group>", "grad_signal/<group>", "grad_snr/<group>"}`` on one batch (see the
    callback and ``gradient_summaries``)."""
    metrics = {}
    for group, summary in gradient_summaries(pl_module, batch, num_draws, generator).items():
        metrics[f"grad_var/{group}"] = summary["variance"]
        metrics[f"grad_signal/{group}"] = summary["signal"]
        metrics[f"grad_snr/{group}"] = summary["snr"]
    return metrics
