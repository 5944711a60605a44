"""The estimators stay exact when the model's layers run in bf16 under autocast.

The toy's logit tables pass through a bf16 layer (a matrix product under
``torch.autocast("cpu", bfloat16)``), and the log-densities are then computed as the models
compute them under bf16-mixed: logits upcast to fp32 before the log-softmax, the estimator run
with autocast off (``full_precision``). Each sequence's log-densities also carry a constant
offset, as the sums over many glimpses of a real model do (tens of nats): it cancels in
every estimator, in exact arithmetic. The per-draw gradients must then match the exact
gradients of the objectives at the bf16-rounded tables, and the same check, run on terms
computed in bf16 throughout, must fail (so it has the power to see a bf16 density).
"""
import math
from typing import Dict

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from estimators import Pathwise, Reinforce, Rloo, SampleTerms, Vimco, WakeSleep
from ram_lightning.core.precision import full_precision
from tests.estimators import continuous_toy
from tests.estimators.toy_problem import (
    NUM_LOCATIONS,
    ToyParameters,
    blended_proposal,
    exact_gradient,
    exact_multi_sample_gradient,
    log_joint_tables,
    make_parameters,
    replicate,
    z_scores,
)

THETA = ("prior_first", "prior_second", "likelihood")
TARGET = 1
OFFSET = -37.3  # log p(a) and log q(a) of a long glimpse sequence: |log density| of tens of nats
DRAWS = 20000


def bf16_layer(table: Tensor) -> Tensor:
    """A bf16 matrix product under autocast (identity weights): the table rounded to bf16, its
    gradient passed back through a bf16 product."""
    flat = table.float().reshape(-1, table.shape[-1])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = F.linear(flat, torch.eye(table.shape[-1]))
    assert out.dtype == torch.bfloat16
    return out.view(table.shape)


def terms_through_bf16(params: ToyParameters, num_samples: int, sample_from: str, generator: torch.Generator,
                       upcast: bool) -> SampleTerms:
    """SampleTerms [R, K] of replicated ``params`` whose logits come out of ``bf16_layer``; with
    ``upcast`` the log-softmax and the sums are fp32 (the models' rule), else bf16 throughout."""
    logits = {name: bf16_layer(table) for name, table in params.tensors().items()}
    if upcast:
        logits = {name: value.float() for name, value in logits.items()}
    with torch.no_grad():
        first = logits["proposal_first" if sample_from == "proposal" else "prior_first"].float()
        second = logits["proposal_second" if sample_from == "proposal" else "prior_second"].float()
        draws = first.shape[0]
        a1 = torch.multinomial(first.softmax(-1), num_samples, replacement=True, generator=generator)
        rows_of = second[torch.arange(draws)[:, None], a1].reshape(-1, NUM_LOCATIONS)
        a2 = torch.multinomial(rows_of.softmax(-1), 1, generator=generator).view(draws, num_samples)
    rows = torch.arange(draws)[:, None]

    def score(first: Tensor, second: Tensor) -> Tensor:
        return OFFSET + first.log_softmax(-1)[rows, a1] + second.log_softmax(-1)[rows, a1, a2]

    log_likelihood = logits["likelihood"].log_softmax(-1)[rows, a1, a2, TARGET]
    log_prior = score(logits["prior_first"], logits["prior_second"])
    log_proposal = score(logits["proposal_first"], logits["proposal_second"]) if sample_from == "proposal" else None
    return SampleTerms(log_likelihood, log_prior, log_proposal)


def per_draw(estimator, params: ToyParameters, seed: int, upcast: bool) -> Dict[str, Tensor]:
    """Gradient estimates of ``DRAWS`` independent draws (as ``toy_problem.per_draw_gradients``)."""
    copies = replicate(params, DRAWS)
    terms = terms_through_bf16(copies, estimator.num_samples, estimator.sample_from, torch.Generator().manual_seed(seed), upcast)
    if upcast:
        with full_precision("cpu"):
            loss = estimator(terms).loss
    else:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = estimator(terms).loss
    tensors = copies.tensors()
    grads = torch.autograd.grad(loss, list(tensors.values()), allow_unused=True)
    return {name: (-DRAWS * g if g is not None else torch.zeros_like(tensors[name])) for name, g in zip(tensors, grads)}


def rounded(params: ToyParameters) -> ToyParameters:
    """The tables as the bf16 layer delivers them (rounded to bf16), in fp64."""
    return ToyParameters(**{name: value.to(torch.bfloat16).double() for name, value in params.tensors().items()})


def importance_bound_gradient(params: ToyParameters, num_samples: int) -> Dict[str, Tensor]:
    """d/dtheta E_{q^K}[log (1/K) sum_k p(y, a^k) / q(a^k)], summed exactly over every K-tuple:
    the expectation of reweighted wake-sleep's model gradient at finite K."""
    leaves = {name: value.detach().clone().requires_grad_(True) for name, value in params.tensors().items()}
    t = log_joint_tables(ToyParameters(**leaves), TARGET)
    log_weight = (t["log_prior"] + t["log_likelihood"] - t["log_proposal"]).flatten()  # [16]
    log_q = t["log_proposal"].flatten().detach()
    tuples = torch.cartesian_prod(*[torch.arange(log_q.numel())] * num_samples).view(-1, num_samples)
    bound = (log_q[tuples].sum(1).exp() * (log_weight[tuples].logsumexp(1) - math.log(num_samples))).sum()
    grads = torch.autograd.grad(bound, [leaves[name] for name in THETA])
    return dict(zip(THETA, grads))


CASES = {
    "reinforce": (lambda: Reinforce(num_samples=1, baseline="none"), lambda p: exact_gradient(p, TARGET, "variational_bound")),
    "vimco": (lambda: Vimco(num_samples=2), lambda p: exact_multi_sample_gradient(p, TARGET, 2)),
    "rloo": (lambda: Rloo(num_samples=2), lambda p: exact_gradient(p, TARGET, "variational_bound")),
    "wake_sleep": (lambda: WakeSleep(num_samples=2), lambda p: importance_bound_gradient(p, 2)),
}


@pytest.fixture(scope="module")
def params() -> ToyParameters:
    return blended_proposal(make_parameters(seed=3), TARGET, 0.5)


@pytest.mark.parametrize("name", list(CASES))
def test_estimators_match_exact_gradients_with_bf16_layers(name, params):
    make, exact_of = CASES[name]
    exact = exact_of(rounded(params))
    estimates = per_draw(make(), params, seed=21, upcast=True)
    z = z_scores(estimates, exact, THETA)
    assert z.max() < 4.5, f"{name}: largest |mean - exact| / stderr = {z.max():.2f}"
    assert z_scores(estimates, {k: torch.zeros_like(v) for k, v in exact.items()}, THETA).max() > 10


def test_the_check_sees_densities_computed_in_bf16(params):
    """Importance weights from bf16 log-densities of tens of nats are wrong by percents: the same
    check fails for wake-sleep when the terms and the estimator stay in bf16."""
    exact = importance_bound_gradient(rounded(params), 2)
    estimates = per_draw(WakeSleep(num_samples=2), params, seed=21, upcast=False)
    assert z_scores(estimates, exact, THETA).max() > 6


def test_pathwise_matches_the_quadrature_gradient_with_bf16_layers():
    """The continuous toy's parameters through a bf16 layer, the locations drawn by ``rsample`` and
    every density computed in fp32 from them (the models' rule), the estimator with autocast off:
    the pathwise estimates match the quadrature gradient at the bf16-rounded parameters."""
    params = continuous_toy.make_parameters(seed=4)
    exact = continuous_toy.exact_gradient(continuous_toy.ContinuousParameters(
        **{name: value.to(torch.bfloat16).double() for name, value in params.tensors().items()}))
    copies = continuous_toy.replicate(params, DRAWS)
    through_bf16 = continuous_toy.ContinuousParameters(**{name: bf16_layer(value).float() for name, value in copies.tensors().items()})
    estimator = Pathwise(num_samples=2)
    terms = continuous_toy.sample_terms(through_bf16, 2, torch.Generator().manual_seed(21))
    assert terms.log_likelihood.dtype == torch.float32
    with full_precision("cpu"):
        loss = estimator(terms).loss
    tensors = copies.tensors()
    grads = torch.autograd.grad(loss, list(tensors.values()))
    estimates = {name: -DRAWS * g for name, g in zip(tensors, grads)}
    z = z_scores(estimates, exact, continuous_toy.NAMES)
    assert z.max() < 4.5, f"largest |mean - exact| / stderr = {z.max():.2f}"
    assert z_scores(estimates, {k: torch.zeros_like(v) for k, v in exact.items()}, continuous_toy.NAMES).max() > 10
