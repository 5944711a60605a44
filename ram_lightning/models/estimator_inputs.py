"""The model side of the estimator contract, in one place: which heads an estimator's flags ask
the model to build, and the one constructor of its input, :class:`~estimators.SampleTerms`.

    estimator flag                              head built by build_estimator_heads
    needs_baseline                              self.baseline: b(.) -> [B, 1], a learned baseline
    sample_from == "proposal", sleep_samples    self.inference: q(a | y, I), the inference network

    estimator flag                              how the model samples (read by reparameterized_draws)
    reparameterize_locations                    training locations a = mu + sigma * eps, differentiable
                                                (models without location gradients refuse it)

Both models (``AttentionClassifier``, ``AttentionCaptioner``) call
:meth:`EstimatorInputs.build_estimator_heads` in ``__init__`` and
:meth:`EstimatorInputs.sample_terms_from` wherever they hand terms to the estimator; a new term in
``SampleTerms`` is added to ``sample_terms_from`` (and passed by the models that can compute it).
"""
from __future__ import annotations

from typing import Callable, Optional, Union

from torch import Tensor, nn

from estimators import Estimator, SampleTerms, get_estimator
from estimators.registry import estimator_name
from ram_lightning.core.precision import float32
from ram_lightning.errors import UserError


class EstimatorInputs:
    """Mixin of :class:`~ram_lightning.models.module.EstimatorModule`: see the module docstring."""

    estimator: Estimator
    baseline: Optional[nn.Module]
    inference: Optional[nn.Module]

    def build_estimator_heads(self, estimator: Union[str, Estimator], baseline: Callable[[], nn.Module],
                              inference: Callable[[], nn.Module], supports_sleep: bool = True,
                              location_gradients: bool = False) -> None:
        """Set ``self.estimator`` (a registered name, a class path or an instance, e.g. the one
        the model already made with ``get_estimator``) and build the
        heads its flags ask for, always in this order, so that initial weights do not depend on
        the model: ``self.baseline = baseline()`` if it ``needs_baseline``, else None; then
        ``self.inference = inference()`` if it samples from the proposal or asks for sleep
        samples, else None.

        ``location_gradients``: the model draws reparameterised locations when
        :meth:`reparameterized_draws` says so, and its sensor passes their gradient (default False,
        so that a model that cannot never trains a pathwise estimator with a silently zero gradient).

        Raises:
            UserError: the estimator asks for sleep updates of q and ``supports_sleep`` is False, or
                for reparameterised locations and ``location_gradients`` is False.
        """
        self.estimator = get_estimator(estimator)
        if self.estimator.sleep_samples > 0 and not supports_sleep:
            raise UserError(f"{type(self).__name__}: sleep updates of q (sleep_fraction > 0) are not supported "
                            f"for this model; set sleep_fraction: 0")
        if self.estimator.reparameterize_locations and not location_gradients:
            raise UserError(f"{type(self).__name__}: estimator {estimator_name(self.estimator)} needs the gradient of the "
                            f"likelihood with respect to reparameterised glimpse locations, which this model cannot pass "
                            f"(its attention is a discrete choice); use a score-function estimator (rloo, reinforce, vimco) "
                            f"or wake_sleep(_cv)")
        self.baseline = baseline() if self.estimator.needs_baseline else None
        wants_q = self.estimator.sample_from == "proposal" or self.estimator.sleep_samples > 0
        self.inference = inference() if wants_q else None

    def reparameterized_draws(self, train: bool) -> bool:
        """Whether a rollout draws its locations by reparameterisation (``rollout(reparameterize=...)``):
        in training (``train``: the draws the estimator gets) when the estimator asks for it."""
        return bool(train and self.estimator.reparameterize_locations)

    def sample_terms_from(
        self,
        *,
        log_likelihood: Tensor,
        log_prior: Tensor,
        log_proposal: Optional[Tensor] = None,
        baseline_input: Optional[Tensor] = None,
        correct: Optional[Tensor] = None,
        entropy: Optional[Tensor] = None,
        sleep_log_proposal: Optional[Tensor] = None,
    ) -> SampleTerms:
        """The one place the models build :class:`~estimators.SampleTerms` (by keyword).

        Args:
            log_likelihood: [B, K] log p(y | a^k, I).
            log_prior: [B, K] log p(a^k | I), summed over glimpses (or words).
            log_proposal: [B, K] log q(a^k | y, I), or None when sampling from the prior.
            baseline_input: [B, F] what the learned baseline reads (detached here, so training b
                never moves the model); used only when ``self.baseline`` exists.
            correct: [B, K] 1.0 where sample k is right (classifiers, for 0/1 rewards), or None.
            entropy: [B, K] the policy's entropy summed over glimpses, or None.
            sleep_log_proposal: [B, K'] log q of the model's own dreams (sleep update), or None.

        Lower-precision terms (bf16 under autocast) are upcast to fp32.
        """
        baseline = None
        if self.baseline is not None and baseline_input is not None:
            baseline = self.baseline(baseline_input.detach()).expand(-1, log_likelihood.shape[1])  # [B, K]
        terms = dict(log_likelihood=log_likelihood, log_prior=log_prior, log_proposal=log_proposal, baseline=baseline,
                     correct=correct, entropy=entropy, sleep_log_proposal=sleep_log_proposal)
        # Estimators compute in fp32 (ram_lightning.core.precision); the models' heads already give fp32.
        return SampleTerms(**{name: None if value is None else float32(value) for name, value in terms.items()})
