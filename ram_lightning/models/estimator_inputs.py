"""The model side of the estimator contract, in one place: the estimator and its sampling plan,
the heads the plan asks the model to build, and the one constructor of the estimator's input,
:class:`~estimators.SampleTerms`.

    plan (read once from the estimator)          head built by build_estimator_heads
    baseline (estimator.needs_baseline)          self.baseline: b(.) -> [B, 1], a learned baseline
    needs_inference (proposal or sleep samples)  self.inference: q(a | y, I), the inference network

    plan                                         how the model samples (SamplingPlan)
    from_proposal(train), num_samples            a^k ~ q in training for proposal estimators, K of them
    reparameterized(train)                       training locations a = mu + sigma * eps, differentiable
                                                 (models without location gradients refuse it)
    dreams(train)                                K' dreams of the model for q's sleep update

Both models (``AttentionClassifier``, ``AttentionCaptioner``) call :meth:`EstimatorInputs.use_estimator`
where they take their estimator, :meth:`EstimatorInputs.build_estimator_heads` once their networks
exist, and :meth:`EstimatorInputs.sample_terms_from` wherever they hand terms to the estimator; a new
term in ``SampleTerms`` is added to ``sample_terms_from`` (and passed by the models that can compute it).
"""
from __future__ import annotations

from typing import Callable, Optional, Union

from torch import Tensor, nn

from estimators import Estimator, SampleTerms, estimator_spec, get_estimator
from ram_lightning.core.precision import float32
from ram_lightning.errors import UserError
from ram_lightning.models.sampling_plan import SamplingPlan


class EstimatorInputs:
    """Mixin of :class:`~ram_lightning.models.module.EstimatorModule`: see the module docstring."""

    estimator: Estimator
    plan: SamplingPlan
    baseline: Optional[nn.Module]
    inference: Optional[nn.Module]

    def use_estimator(self, estimator: Union[str, Estimator]) -> None:
        """Set ``self.estimator`` (a registered name, a class path, a spec or an instance; resolved
        once, by ``estimators.get_estimator``), read its plan once (``self.plan``), and record it in
        the hyperparameters as class path + options (``estimators.estimator_spec``), so that
        ``load_from_checkpoint(path)`` alone rebuilds it. Call it after ``save_hyperparameters``.

        Checkpoints save ``hparams``; the loggers record ``hparams_initial``, which keeps the
        estimator out (``ram_lightning.run.wandb_run.WandbRunInfo`` records its repr).
        """
        self.estimator = get_estimator(estimator)
        self.plan = SamplingPlan.of(self.estimator)
        self.hparams["estimator"] = estimator_spec(self.estimator)

    def build_estimator_heads(self, baseline: Callable[[], nn.Module], inference: Callable[[], nn.Module],
                              supports_sleep: bool = True, location_gradients: bool = False) -> None:
        """Build the heads the plan asks for, always in this order, so that initial weights do not
        depend on the model: ``self.baseline = baseline()`` if the plan has a baseline, else None;
        then ``self.inference = inference()`` if it needs q (proposal or sleep samples), else None.

        ``location_gradients``: the model draws reparameterised locations when the plan says so
        (``plan.reparameterized``), and its sensor passes their gradient (default False, so that a
        model that cannot never trains a pathwise estimator with a silently zero gradient).

        Raises:
            UserError: the estimator asks for sleep updates of q and ``supports_sleep`` is False, or
                for reparameterised locations and ``location_gradients`` is False.
        """
        if self.plan.sleep_samples > 0 and not supports_sleep:
            raise UserError(f"{type(self).__name__}: sleep updates of q (sleep_fraction > 0) are not supported "
                            f"for this model; set sleep_fraction: 0")
        if self.plan.reparameterize_locations and not location_gradients:
            raise UserError(f"{type(self).__name__}: estimator {self.estimator.name} needs the gradient of the "
                            f"likelihood with respect to reparameterised glimpse locations, which this model cannot pass "
                            f"(its attention is a discrete choice); use a score-function estimator (rloo, reinforce, vimco) "
                            f"or wake_sleep(_cv)")
        self.baseline = baseline() if self.plan.baseline else None
        self.inference = inference() if self.plan.needs_inference else None

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
