"""The estimator contract: per-sample terms in, a surrogate loss and metrics out.

An estimator sees, for each of B examples, K sampled attention sequences a^1..a^K and the
differentiable log-densities the model computed for them (``SampleTerms``). It returns a
scalar surrogate whose gradient is minus its gradient estimate, averaged over the batch.
Estimators are ``nn.Module``s only so that any state they keep (moving-average baselines,
control-variate coefficients) is saved in checkpoints; the maths lives in pure functions.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from ram_lightning.errors import NonFiniteError, UserError

SAMPLE_SOURCES = ("prior", "proposal")


@dataclass
class SampleTerms:
    """Per-sample terms of one batch; every tensor is [B, K].

    Attributes:
        log_likelihood: log p(y | a^k, I; theta), differentiable in theta.
        log_prior: log p(a^k | I; theta), summed over glimpses, differentiable in theta (for an
            estimator with ``reparameterize_locations``, only its scale part: see there).
        log_proposal: log q(a^k | y, I; eta) or None when sampling from the prior.
        baseline: a learned baseline b(I) (must not depend on a^k), or None.
        correct: 1.0 where sample k classifies example b correctly (for 0/1 rewards), or None.
        entropy: entropy of the policy summed over glimpses (for entropy bonuses), or None.
        sleep_log_proposal: [B, K'] log q(a' | y', I; eta) for K' pairs (a', y') drawn from the
            model, a' ~ p(a | I), y' ~ p(y | a', I) (the sleep update of q maximises it), or
            None. Only for estimators whose ``sleep_samples`` is > 0; K' may differ from K.
    """

    log_likelihood: Tensor
    log_prior: Tensor
    log_proposal: Optional[Tensor] = None
    baseline: Optional[Tensor] = None
    correct: Optional[Tensor] = None
    entropy: Optional[Tensor] = None
    sleep_log_proposal: Optional[Tensor] = None

    def __post_init__(self) -> None:
        shape = self.log_likelihood.shape
        if self.log_likelihood.dim() != 2:
            raise UserError(f"SampleTerms.log_likelihood must be [B, K], got shape {tuple(shape)}")
        for name in ("log_prior", "log_proposal", "baseline", "correct", "entropy"):
            value = getattr(self, name)
            if value is not None and value.shape != shape:
                raise UserError(
                    f"SampleTerms.{name} must have the shape of log_likelihood {tuple(shape)}, "
                    f"got {tuple(value.shape)}"
                )
        sleep = self.sleep_log_proposal
        if sleep is not None and (sleep.dim() != 2 or sleep.shape[0] != shape[0]):
            raise UserError(f"SampleTerms.sleep_log_proposal must be [B={shape[0]}, K'], got shape {tuple(sleep.shape)}")

    @property
    def num_samples(self) -> int:
        return self.log_likelihood.shape[1]

    def named_tensors(self) -> Dict[str, Tensor]:
        """The terms that are given, by field name."""
        return {name: getattr(self, name) for name in TERM_NAMES if getattr(self, name) is not None}


TERM_NAMES = ("log_likelihood", "log_prior", "log_proposal", "baseline", "correct", "entropy", "sleep_log_proposal")


def terms_finite(terms: SampleTerms) -> Tensor:
    """[] bool: whether every given term is finite (no host synchronisation)."""
    return torch.stack([torch.isfinite(value.detach()).all() for value in terms.named_tensors().values()]).all()


def call_without_host_sync(estimator: "Estimator", terms: SampleTerms) -> Tuple["EstimatorOutput", Tensor]:
    """``estimator(terms)`` and ``terms_finite(terms)`` with no host synchronisation (for a compiled
    step, where the pre-hook's check cannot run): any buffer the call changed is put back where a
    term was not finite, so the promise of the eager check holds; the caller raises on the flag."""
    finite = terms_finite(terms)
    before = [buffer.detach().clone() for buffer in estimator.buffers()]
    if torch.compiler.is_compiling():  # the pre-hook does not look when compiled
        output = estimator(terms)
    else:
        estimator._checked_after = True  # the caller checks ``finite``: the pre-hook must not raise first
        try:
            output = estimator(terms)
        finally:
            estimator._checked_after = False
    with torch.no_grad():
        for buffer, old in zip(estimator.buffers(), before):
            buffer.copy_(torch.where(finite, buffer, old))
    return output, finite


def non_finite_rows(terms: SampleTerms) -> Optional[Tuple[str, int, int]]:
    """``(term, rows affected, B)`` for the first term holding a NaN or infinity, else None.

    One device synchronisation when every term is finite.
    """
    named = terms.named_tensors()
    finite = torch.stack([torch.isfinite(value.detach()).all() for value in named.values()])
    if bool(finite.all()):
        return None
    name = list(named)[int((~finite).nonzero()[0, 0])]
    value = named[name].detach()
    rows = int((~torch.isfinite(value)).reshape(value.shape[0], -1).any(-1).sum())
    return name, rows, value.shape[0]


def _check_finite_terms(estimator: "Estimator", args: tuple) -> None:
    """Forward pre-hook of every estimator: refuse non-finite terms before ``forward`` can
    update a moving-average baseline or control-variate buffer. Compiled, it cannot look (a host
    synchronisation): ``call_without_host_sync`` guards the buffers and the step checks after."""
    terms = args[0] if args else None
    if isinstance(terms, SampleTerms) and not torch.compiler.is_compiling() and not estimator._checked_after:
        check_finite_terms(estimator, terms)


def check_finite_terms(estimator: "Estimator", terms: SampleTerms) -> None:
    """Raise NonFiniteError naming the first non-finite term and its rows (one host synchronisation)."""
    bad = non_finite_rows(terms)
    if bad is not None:
        name, rows, batch = bad
        raise NonFiniteError(
            f"estimator {estimator.name} was given a non-finite SampleTerms.{name} "
            f"in {rows} of {batch} rows (NaN or infinity); its buffers were not updated"
        )


@dataclass
class EstimatorOutput:
    """``loss``: scalar surrogate (backward gives minus the gradient estimate, mean over B);
    ``metrics``: detached scalars for logging."""

    loss: Tensor
    metrics: Dict[str, Tensor] = field(default_factory=dict)


class Estimator(nn.Module):
    """Base class of gradient-estimator plug-ins, and the rules every estimator follows.

    An estimator gets the per-sample terms of one batch (:class:`SampleTerms`, each [B, K], fp32)
    and returns :class:`EstimatorOutput`: a scalar surrogate ``loss`` whose gradient is minus its
    gradient estimate averaged over B, and detached scalar ``metrics`` (logged as ``train/<name>``).

    Rules for an author (the models, the checkpoints, the compiled step and the gradient probe
    rely on each of them):

    1. **What to sample from.** Set the class attribute ``sample_from``: ``"prior"`` (a^k ~ p(a | I))
       or ``"proposal"`` (a^k ~ q(a | y, I): the model builds an inference network q and fills
       ``SampleTerms.log_proposal``). The flags ``num_samples`` (K), ``needs_baseline`` (the model
       builds a learned baseline b(I) and fills ``SampleTerms.baseline``), ``sleep_samples`` (K' > 0:
       the model fills ``SampleTerms.sleep_log_proposal``) and ``reparameterize_locations`` (below)
       are read once, when the model is built (``ram_lightning.models.sampling_plan``): they must be
       fixed by the constructor's arguments and never change afterwards.
    2. **Constructor arguments are plain YAML values** (numbers, strings, booleans, None, lists and
       mappings of them, or nested estimators), each with a default where one makes sense: a
       checkpoint records the class path and every argument (``estimators.spec.estimator_spec``)
       and ``load_from_checkpoint`` rebuilds the estimator from them. Call
       ``super().__init__(num_samples)``; refuse a bad option with a ``UserError`` naming it.
    3. **State in buffers, updated only in training mode.** Keep what must survive a resume
       (moving averages, control-variate coefficients) in ``register_buffer`` (saved in
       checkpoints), and change it only when ``self.training`` is True, under ``torch.no_grad()``:
       the gradient probe (``ram_lightning.diagnostics.probe``) runs the estimator in eval mode many
       times on one batch and relies on it changing nothing.
    4. **No host synchronisation in ``forward``**: no ``.item()``, ``bool(tensor)``, ``if`` on a
       tensor's value or data-dependent shapes. The model's training step, estimator included, may
       be compiled whole as one graph (``compile: true``; a graph break is an error). Update buffers
       with ``torch.where`` on a flag buffer (e.g. "initialised yet"), not a Python branch. Non-finite
       terms need no check of yours: the base class refuses them before ``forward`` (eager) or puts
       the buffers back (compiled), and the model raises after the step.
    5. **Location gradients.** ``reparameterize_locations`` True asks the model to draw glimpse
       locations a = mu + sigma * eps, so that the gradient of ``log_likelihood`` reaches the policy
       through the locations; ``log_prior`` then carries the score of the discrete choices (scales)
       only. A model whose attention is a discrete choice (the captioner) refuses such an estimator.
    6. **The maths in a pure function** of ``SampleTerms`` (``reinforce_surrogate``, ...), the module
       a thin shell around it, checked against exact gradients on the enumerable toy problem
       (``tests/estimators/toy_problem.py``).
    7. **A name.** ``@register("my_estimator")`` makes it available by name and sets ``name`` (used in
       messages; an unregistered class is called by its class name). Another installed package
       joins through the entry-point group ``ram_lightning.estimators`` (see the README, "Writing
       one"); any importable class is also accepted by its dotted class path.

    Args:
        num_samples: K, the attention sequences drawn per example in training.
    """

    sample_from: str = "prior"
    name: str = "Estimator"  # the registered name (set by ``register``), else the class name
    _checked_after = False  # set while call_without_host_sync runs it (it checks the terms after)

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.name = cls.__qualname__  # until ``register`` names it

    def __new__(cls, *args, **kwargs):
        """Record the constructor's arguments (defaults filled in) as ``_init_args``, so that
        ``estimators.spec.estimator_spec`` can save the estimator as class path and options."""
        self = super().__new__(cls)
        try:
            bound = inspect.signature(cls.__init__).bind(None, *args, **kwargs)
            bound.apply_defaults()
        except TypeError:  # __init__ raises the error itself
            return self
        init_args = {}
        for index, (name, value) in enumerate(bound.arguments.items()):
            kind = inspect.signature(cls.__init__).parameters[name].kind
            if index == 0 or kind is inspect.Parameter.VAR_POSITIONAL:
                continue
            init_args.update(value if kind is inspect.Parameter.VAR_KEYWORD else {name: value})
        object.__setattr__(self, "_init_args", init_args)
        return self

    def __init__(self, num_samples: int = 1) -> None:
        super().__init__()
        if not isinstance(num_samples, int) or num_samples < 1:
            raise UserError(f"{type(self).__name__}: num_samples must be an integer >= 1, got {num_samples!r}")
        if self.sample_from not in SAMPLE_SOURCES:
            raise UserError(f"{type(self).__name__}.sample_from must be one of {SAMPLE_SOURCES}, got {self.sample_from!r}")
        self.num_samples = num_samples
        self.register_forward_pre_hook(_check_finite_terms)

    @property
    def needs_baseline(self) -> bool:
        return False

    @property
    def reparameterize_locations(self) -> bool:
        """Whether the model must draw glimpse locations by reparameterisation in training,
        a = mu + sigma * eps with eps ~ N(0, I), so that the gradient of log p(y | a, I) reaches the
        policy (and every layer before it) through the sampled locations. The locations'
        log-density then enters ``SampleTerms.log_prior`` without gradient (its value is
        unchanged): grad log_prior is the score of the discrete choices alone (the scales).
        A model whose attention cannot pass location gradients refuses such an estimator."""
        return False

    @property
    def sleep_samples(self) -> int:
        """K', the (a', y') pairs per example drawn from the model for a sleep update of q (0: none)."""
        return 0

    def forward(self, terms: SampleTerms) -> EstimatorOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"num_samples={self.num_samples}, sample_from={self.sample_from!r}"
