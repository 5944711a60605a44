"""Training diagnostics as pure functions: the variance of a stochastic gradient estimate.

The paper's evidence that control variates work is the variance of the gradient of the policy
(and proposal) parameters, measured from several independent draws on the same batch.
"""
from __future__ import annotations

from typing import Callable, Dict, Sequence

import torch
from torch import Tensor, nn


def gradient_draws(loss_fn: Callable[[], Tensor], groups: Dict[str, Sequence[nn.Parameter]], num_draws: int) -> Dict[str, Tensor]:
    """Gradients of ``num_draws`` independent evaluations of a stochastic loss.

    Args:
        loss_fn: draws fresh samples and returns a scalar loss each call.
        groups: name -> parameters whose gradient is recorded.
        num_draws: D >= 2.

    Returns:
        name -> [D, P] flattened gradients (P parameters in the group; unused ones read 0).
    """
    if num_draws < 2:
        raise ValueError(f"num_draws must be >= 2 to estimate a variance, got {num_draws}")
    names = list(groups)
    params = [p for name in names for p in groups[name]]
    rows: Dict[str, list] = {name: [] for name in names}
    for _ in range(num_draws):
        grads = torch.autograd.grad(loss_fn(), params, allow_unused=True)
        flat = [torch.zeros_like(p).flatten() if g is None else g.detach().flatten() for p, g in zip(params, grads)]
        start = 0
        for name in names:
            count = len(groups[name])
            rows[name].append(torch.cat(flat[start:start + count]) if count else params[0].new_zeros(0))
            start += count
    return {name: torch.stack(values) for name, values in rows.items()}


def gradient_variance(draws: Tensor) -> Dict[str, Tensor]:
    """Summaries of D gradient draws [D, P].

    Returns:
        ``variance``: total variance, the trace of the covariance (sum over parameters of the
        unbiased variance across draws); ``mean_sq_norm``: squared norm of the mean gradient;
        ``signal``: an unbiased estimate of the squared norm of the expected gradient,
        mean_sq_norm - variance / D (can come out negative when noise dominates);
        ``snr``: signal-to-noise ratio, signal / variance (per draw: above 1, one draw points
        mostly where the expected gradient does); ``relative``: variance / mean_sq_norm.
    """
    count = draws.shape[0]
    variance = draws.var(0, unbiased=True).sum()
    mean_sq_norm = draws.mean(0).pow(2).sum()
    signal = mean_sq_norm - variance / count
    return {
        "variance": variance,
        "mean_sq_norm": mean_sq_norm,
        "signal": signal,
        "snr": signal / variance.clamp_min(1e-30),
        "relative": variance / mean_sq_norm.clamp_min(1e-30),
    }
