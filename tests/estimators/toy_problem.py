"""An attention problem small enough to enumerate: N = 2 glimpses over L = 4 discrete locations.

The policy p(a1) p(a2 | a1), the likelihood p(y | a1, a2) and an optional proposal
q(a1 | y) q(a2 | a1, y) are tables of logits, so every expectation over the 16 attention
sequences is an exact sum, and any estimator's gradient can be compared with the truth.

To measure an estimator's per-draw gradients in one backward pass, the parameters are
replicated once per draw (``replicate``): row r of the batch reads copy r, so the gradient
on copy r is the gradient of draw r alone (times 1/R, from the batch mean).
"""
from __future__ import annotations

import dataclasses
import math
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
    def draw(*shape):
        return scale * torch.randn(*shape, generator=generator, dtype=torch.float64)
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


def call_estimator(estimator: Estimator, terms: SampleTerms):
    """How the checks call an estimator: directly (tests/estimators/test_compiled.py replaces this
    with the compiled call the training step makes)."""
    return estimator(terms)


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
    loss = call_estimator(estimator, terms).loss
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


# --- proposals and the sleep update (wake-sleep estimators) ---------------------------------


def with_proposal(params: ToyParameters, log_joint: Tensor) -> ToyParameters:
    """A copy of ``params`` whose proposal q(a1) q(a2 | a1) equals the distribution of the
    (possibly unnormalised) log table ``log_joint`` [L, L]; the model tables are shared."""
    log_joint = log_joint.detach()
    tables = params.tensors()
    tables["proposal_first"] = log_joint.logsumexp(dim=1)  # log q(a1) up to a constant
    tables["proposal_second"] = log_joint.clone()  # log q(a2 | a1) up to a per-row constant
    return ToyParameters(**tables)


def posterior_proposal(params: ToyParameters, target: int) -> ToyParameters:
    """``params`` with q(a | y) equal to the exact posterior p(a | y) (no draw dimension)."""
    return with_proposal(params, exact_objectives(params, target)["posterior"].log())


def blended_proposal(params: ToyParameters, target: int, posterior_weight: float) -> ToyParameters:
    """``params`` with q = (1 - lambda) p(a) + lambda p(a | y): 0 is the prior, 1 the posterior."""
    prior = log_joint_tables(params, target)["log_prior"].exp()
    posterior = exact_objectives(params, target)["posterior"]
    return with_proposal(params, ((1 - posterior_weight) * prior + posterior_weight * posterior).log())


def sleep_log_proposal(params: ToyParameters, num_samples: int, generator: torch.Generator) -> Tensor:
    """log q(a' | y') [R, K'] for a' ~ p(a), y' ~ p(y | a'), for replicated ``params`` [R, ...].

    y' is drawn as the model would, but the toy q does not depend on y, so it is unused.
    """
    with torch.no_grad():
        a1, a2 = _sample(params.prior_first, params.prior_second, num_samples, generator)
        rows = torch.arange(a1.shape[0])[:, None]
        class_probs = params.likelihood.softmax(-1)[rows, a1, a2]  # [R, K', C]
        torch.multinomial(class_probs.reshape(-1, NUM_CLASSES), 1, generator=generator)  # y', unused
    rows = torch.arange(a1.shape[0])[:, None]
    return params.proposal_first.log_softmax(-1)[rows, a1] + params.proposal_second.log_softmax(-1)[rows, a1, a2]


def exact_sleep_gradient(params: ToyParameters) -> Dict[str, Tensor]:
    """d E_{p(a)}[log q(a)] / d each table (no draw dimension): the exact sleep-update gradient."""
    leaves = {name: value.detach().clone().requires_grad_(True) for name, value in params.tensors().items()}
    t = log_joint_tables(ToyParameters(**leaves), target=0)  # log p(a) and log q(a) do not depend on y
    value = (t["log_prior"].exp() * t["log_proposal"]).sum()
    grads = torch.autograd.grad(value, list(leaves.values()), allow_unused=True)
    return {name: (g if g is not None else torch.zeros_like(leaves[name])) for name, g in zip(leaves, grads)}


def per_draw_gradients_with_sleep(
    estimator: Estimator, params: ToyParameters, target: int, draws: int, seed: int
) -> Dict[str, Tensor]:
    """As ``per_draw_gradients``, also filling ``sleep_log_proposal`` with
    ``estimator.sleep_samples`` model samples per row, as the attention module does."""
    generator = torch.Generator().manual_seed(seed)
    copies = replicate(params, draws)
    terms = sample_terms(copies, target, estimator.num_samples, estimator.sample_from, generator)
    terms = dataclasses.replace(terms, sleep_log_proposal=sleep_log_proposal(copies, estimator.sleep_samples, generator))
    loss = call_estimator(estimator, terms).loss
    tensors = copies.tensors()
    grads = torch.autograd.grad(loss, list(tensors.values()), allow_unused=True)
    return {name: (-draws * g if g is not None else torch.zeros_like(tensors[name])) for name, g in zip(tensors, grads)}


def mean_error(estimates: Dict[str, Tensor], exact: Dict[str, Tensor], names) -> Dict[str, float]:
    """Over the named tables: ``error`` = ||mean over draws - exact||, ``stderr`` = the norm of the
    per-component standard errors (what ``error`` would be on average with no bias), ``norm`` = ||exact||."""
    error = stderr = norm = 0.0
    for name in names:
        draws = estimates[name]
        error += float(((draws.mean(0) - exact[name]) ** 2).sum())
        stderr += float((draws.var(0) / draws.shape[0]).sum())
        norm += float((exact[name] ** 2).sum())
    return {"error": error ** 0.5, "stderr": stderr ** 0.5, "norm": norm ** 0.5}


def assert_consistent_in_k(small: Dict[str, Tensor], large: Dict[str, Tensor], exact: Dict[str, Tensor], names) -> None:
    """Per-draw estimates at a small K (e.g. 2) and a large K (e.g. 100) of a consistent but biased
    estimator: the small-K bias is resolved above the noise, the error shrinks more than 5x, and
    what is left at the large K beyond twice its noise level is < 2% of the exact gradient's norm."""
    small, large = mean_error(small, exact, names), mean_error(large, exact, names)
    assert small["error"] > 5 * small["stderr"], f"small-K bias not resolved above the noise: {small}"
    assert large["error"] < 0.2 * small["error"], f"large-K error {large} not < 1/5 of the small-K error {small}"
    assert large["error"] - 2 * large["stderr"] < 0.02 * large["norm"], f"large-K bias too big: {large}"


# --- the K-sample bound (VIMCO) -------------------------------------------------------------


def multi_sample_bound(params: ToyParameters, target: int, num_samples: int) -> Tensor:
    """E[logsumexp_k log p(y | a^k) - log K] over K independent a^k ~ p(a), summed exactly
    over every K-tuple of the 16 attention sequences (16^K terms; K <= 3 stays small)."""
    t = log_joint_tables(params, target)
    log_prior, log_likelihood = t["log_prior"].flatten(), t["log_likelihood"].flatten()  # [16]
    tuples = torch.cartesian_prod(*[torch.arange(log_prior.numel())] * num_samples).view(-1, num_samples)  # [16^K, K]
    log_probability = log_prior[tuples].sum(1)  # log prod_k p(a^k)
    bound = log_likelihood[tuples].logsumexp(1) - math.log(num_samples)
    return (log_probability.exp() * bound).sum()


def exact_multi_sample_gradient(params: ToyParameters, target: int, num_samples: int) -> Dict[str, Tensor]:
    """d E[K-sample bound] / d each parameter table (no draw dimension)."""
    leaves = {name: value.detach().clone().requires_grad_(True) for name, value in params.tensors().items()}
    value = multi_sample_bound(ToyParameters(**leaves), target, num_samples)
    grads = torch.autograd.grad(value, list(leaves.values()), allow_unused=True)
    return {name: (g if g is not None else torch.zeros_like(leaves[name])) for name, g in zip(leaves, grads)}
