"""An attention problem small enough to enumerate: N = 2 glimpses over L = 4 discrete locations.

The policy p(a1) p(a2 | a1), the likelihood p(y | a1, a2) and an optional proposal
q(a1 | y) q(a2 | a1, y) are tables of logits, so every expectation over the 16 attention
sequences is an exact sum, and any estimator's gradient can be compared with the truth.

To measure an estimator's per-draw gradients in one backward pass, the parameters are
replicated once per draw (``replicate``): row r of the batch reads copy r, so the gradient
on copy r is the gradient of draw r alone (times 1/R, from the batch mean).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional

import torch
from torch import Tensor

from estimators import Estimator, SampleTerms

NUM_LOCATIONS = 4
NUM_CLASSES = 3


@dataclass
class ToyParameters:
    """Logit tables; a leading draw dimension R is present after ``replicate``."""

    prior_first: Tensor  # [..., L]
    prior_second: Tensor  # [..., L, L]
    likelihood: Tensor  # [..., L, L, C]
    proposal_first: Tensor  # [..., L]
    proposal_second: Tensor  # [..., L, L]

    def model_names(self):
        return ("prior_first", "prior_second", "likelihood")

    def tensors(self) -> Dict[str, Tensor]:
        return dict(self.__dict__)


def make_parameters(seed: int = 0, scale: float = 1.5) -> ToyParameters:
    generator = torch.Generator().manual_seed(seed)
    draw = lambda *shape: (scale * torch.randn(*shape, generator=generator, dtype=torch.float64))
    L, C = NUM_LOCATIONS, NUM_CLASSES
    return ToyParameters(draw(L), draw(L, L), draw(L, L, C), draw(L), draw(L, L))


def log_joint_tables(params: ToyParameters, target: int) -> Dict[str, Tensor]:
    """Exact tables over all sequences [L, L] (no draw dimension): log p(a), log p(y|a), log q(a|y)."""
    log_prior = params.prior_first.log_softmax(-1)[:, None] + params.prior_second.log_softmax(-1)
    log_likelihood = params.likelihood.log_softmax(-1)[..., target]
    log_proposal = params.proposal_first.log_softmax(-1)[:, None] + params.proposal_second.log_softmax(-1)
    return {"log_prior": log_prior, "log_likelihood": log_likelihood, "log_proposal": log_proposal}


def exact_objectives(params: ToyParameters, target: int) -> Dict[str, Tensor]:
    """F = E_p[log p(y|a)], log p(y) and the posterior p(a|y) [L, L]."""
    t = log_joint_tables(params, target)
    log_joint = t["log_prior"] + t["log_likelihood"]
    log_marginal = log_joint.logsumexp(dim=(0, 1))
    return {
        "variational_bound": (t["log_prior"].exp() * t["log_likelihood"]).sum(),
        "log_marginal": log_marginal,
        "posterior": (log_joint - log_marginal).exp(),
        "kl_posterior_proposal": ((log_joint - log_marginal).exp() * (log_joint - log_marginal - t["log_proposal"])).sum(),
    }


def exact_gradient(params: ToyParameters, target: int, objective: str) -> Dict[str, Tensor]:
    """d objective / d each parameter table (no draw dimension)."""
    leaves = {name: value.detach().clone().requires_grad_(True) for name, value in params.tensors().items()}
    value = exact_objectives(ToyParameters(**leaves), target)[objective]
    grads = torch.autograd.grad(value, list(leaves.values()), allow_unused=True)
    return {name: (g if g is not None else torch.zeros_like(leaves[name])) for name, g in zip(leaves, grads)}


def replicate(params: ToyParameters, draws: int) -> ToyParameters:
    """Leaf copies [R, ...] of every table, requiring grad."""
    return ToyParameters(**{
        name: value.detach()[None].repeat(draws, *([1] * value.dim())).requires_grad_(True)
        for name, value in params.tensors().items()
    })


def _sample(first_logits: Tensor, second_logits: Tensor, num_samples: int, generator: torch.Generator):
    """first [R, L], second [R, L, L] -> a1, a2 [R, K]."""
    R = first_logits.shape[0]
    a1 = torch.multinomial(first_logits.softmax(-1), num_samples, replacement=True, generator=generator)
    rows = second_logits[torch.arange(R)[:, None], a1]  # [R, K, L]
    a2 = torch.multinomial(rows.reshape(-1, NUM_LOCATIONS).softmax(-1), 1, generator=generator).view(R, num_samples)
    return a1, a2


def sample_terms(
    params: ToyParameters,
    target: int,
    num_samples: int,
    sample_from: str,
    generator: torch.Generator,
    baseline: Optional[Tensor] = None,
) -> SampleTerms:
    """One draw of K samples per row, for replicated ``params`` [R, ...] -> SampleTerms [R, K]."""
    with torch.no_grad():
        if sample_from == "prior":
            a1, a2 = _sample(params.prior_first, params.prior_second, num_samples, generator)
        else:
            a1, a2 = _sample(params.proposal_first, params.proposal_second, num_samples, generator)
    rows = torch.arange(a1.shape[0])[:, None]

    def score(first: Tensor, second: Tensor) -> Tensor:
        return first.log_softmax(-1)[rows, a1] + second.log_softmax(-1)[rows, a1, a2]

    log_likelihood = params.likelihood.log_softmax(-1)[rows, a1, a2, target]
    log_prior = score(params.prior_first, params.prior_second)
    log_proposal = score(params.proposal_first, params.proposal_second) if sample_from == "proposal" else None
    if baseline is not None:
        baseline = baseline.expand_as(log_likelihood)
    return SampleTerms(log_likelihood, log_prior, log_proposal, baseline)


def per_draw_gradients(
    estimator: Estimator,
    params: ToyParameters,
    target: int,
    draws: int,
    seed: int,
    baseline: Optional[Tensor] = None,
    terms_hook: Optional[Callable[[SampleTerms], SampleTerms]] = None,
) -> Dict[str, Tensor]:
    """Gradient estimates (minus the gradient of the estimator's loss) of ``draws`` independent draws: name -> [R, ...]."""
    generator = torch.Generator().manual_seed(seed)
    copies = replicate(params, draws)
    terms = sample_terms(copies, target, estimator.num_samples, estimator.sample_from, generator, baseline)
    if terms_hook is not None:
        terms = terms_hook(terms)
    loss = estimator(terms).loss
    tensors = copies.tensors()
    grads = torch.autograd.grad(loss, list(tensors.values()), allow_unused=True)
    return {name: (-draws * g if g is not None else torch.zeros_like(tensors[name])) for name, g in zip(tensors, grads)}


def z_scores(estimates: Dict[str, Tensor], exact: Dict[str, Tensor], names) -> Tensor:
    """|mean - exact| / standard error for every component of the named tables, flattened."""
    scores = []
    for name in names:
        draws = estimates[name]
        mean = draws.mean(0)
        stderr = draws.std(0) / draws.shape[0] ** 0.5
        scores.append(((mean - exact[name]).abs() / (stderr + 1e-12)).flatten())
    return torch.cat(scores)
