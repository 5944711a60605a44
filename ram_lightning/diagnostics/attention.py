"""Diagnostics of the attention policy and the inference network q, as pure functions of a model.

These answer questions a comparison of estimators raises: how far q is from the policy p
(KL(q || p) per glimpse), whether q uses the label at all (the K-sample bound with the true
labels shown to q against shuffled ones), and which glimpse scales the policy picks (a
collapse to one scale shows as one bar). Each draws from the ``generator`` it is given, so
calling them never moves the training random stream.
"""
from __future__ import annotations

import math
from typing import Dict, Iterable, Optional, Tuple

import torch
from torch import Tensor

from ram_lightning.models.classifier import AttentionClassifier


@torch.no_grad()
def kl_proposal_prior_per_glimpse(model: AttentionClassifier, images: Tensor, targets: Tensor, num_samples: int,
                                  generator: Optional[torch.Generator] = None) -> Tensor:
    """Monte Carlo KL(q || p) of each glimpse [N]: the mean over B and K of
    log q(a_n | y, a_<n, I) - log p(a_n | a_<n, I) for a ~ q (needs a proposal estimator).

    Args:
        images: [B, C, H, W]; targets: [B] labels shown to q.
    """
    _, _, rollout = model.sample_terms(images, targets, num_samples, train=True, generator=generator)
    if rollout.glimpse_log_proposal is None:
        raise ValueError("KL(q || p) needs an estimator that samples from the proposal q")
    return (rollout.glimpse_log_proposal - rollout.glimpse_log_prior).mean(dim=(0, 1))


def _log_marginal(model: AttentionClassifier, images: Tensor, targets: Tensor, shown: Tensor, num_samples: int,
                  generator: Optional[torch.Generator]) -> Tensor:
    terms, _, _ = model.sample_terms(images, targets, num_samples, train=True, generator=generator, proposal_targets=shown)
    log_weights = terms.log_likelihood + terms.log_prior - terms.log_proposal  # [B, K]
    return (log_weights.logsumexp(dim=1) - math.log(num_samples)).mean()


@torch.no_grad()
def label_use(model: AttentionClassifier, images: Tensor, targets: Tensor, num_samples: int,
              generator: Optional[torch.Generator] = None) -> Dict[str, float]:
    """Does q use the label? The K-sample bound on log p(y | I) (importance sampling from q)
    when q is shown the true labels, and when it is shown the same labels shuffled across the
    batch (p(y | a, I) always scores the true ones).

    Both bounds use the same random numbers (the generator is rewound between them), so a q
    that ignores the label gives exactly the same two values.

    Returns:
        ``log_marginal_true``, ``log_marginal_shuffled`` and ``gain`` (true - shuffled; near 0:
        q ignores the label; > 0: the label helps q find where the evidence is).
    """
    generator = torch.Generator(device=model.device).manual_seed(0) if generator is None else generator
    permutation = torch.randperm(targets.shape[0], generator=generator, device=generator.device).to(targets.device)
    state = generator.get_state()
    true = _log_marginal(model, images, targets, targets, num_samples, generator)
    generator.set_state(state)
    shuffled = _log_marginal(model, images, targets, targets[permutation], num_samples, generator)
    return {"log_marginal_true": float(true), "log_marginal_shuffled": float(shuffled), "gain": float(true - shuffled)}


@torch.no_grad()
def scale_histogram(model: AttentionClassifier, batches: Iterable[Tuple[Tensor, Tensor]],
                    generator: Optional[torch.Generator] = None) -> Optional[Tensor]:
    """Fraction of glimpses that chose each scale [S] over ``batches`` of (images, labels), one
    glimpse sequence per image from the policy in evaluation mode; None without scale choice."""
    if not model.core.num_scales:
        return None
    was_training = model.training
    model.eval()
    counts = torch.zeros(model.core.num_scales, dtype=torch.long)
    try:
        for images, _ in batches:
            rollout = model.core.rollout(images.to(model.device), 1, generator=generator)
            counts += torch.bincount(rollout.scales.flatten().cpu(), minlength=model.core.num_scales)
    finally:
        model.train(was_training)
    return counts.double() / counts.sum().clamp_min(1)
