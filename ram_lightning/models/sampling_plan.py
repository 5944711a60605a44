"""What an estimator asks of the model, read from it once: the sampling plan.

    plan = SamplingPlan.of(get_estimator("wake_sleep_cv", num_samples=5))
    plan.num_samples             # K = 5 attention sequences per example in training
    plan.from_proposal(True)     # True: training draws a^k ~ q(a | y, I)
    plan.needs_inference         # True: the model builds q
    plan.sleep_samples           # K' model samples for q's sleep update (0: none)

The models (``AttentionClassifier``, ``AttentionCaptioner``) build it once, when they take their
estimator (``EstimatorInputs.use_estimator``), and read the estimator's flags nowhere else: which
heads to build, which distribution to sample from, how many samples, whether locations are
reparameterised. The flags are fixed by the estimator's constructor (rule 1 of ``estimators.Estimator``).
"""
from __future__ import annotations

from dataclasses import dataclass

from estimators import Estimator


@dataclass(frozen=True)
class SamplingPlan:
    """The estimator's demands on the model.

    Attributes:
        num_samples: K, attention sequences drawn per example in training.
        source: ``"prior"`` (a^k ~ p(a | I)) or ``"proposal"`` (a^k ~ q(a | y, I)) in training.
        sleep_samples: K', the (a', y') pairs per example the model dreams for q's sleep update (0: none).
        baseline: whether the model builds a learned baseline b(I) and fills ``SampleTerms.baseline``.
        reparameterize_locations: whether training locations are drawn as a = mu + sigma * eps
            (so that the likelihood's gradient reaches the policy through them).
    """

    num_samples: int
    source: str
    sleep_samples: int
    baseline: bool
    reparameterize_locations: bool

    @classmethod
    def of(cls, estimator: Estimator) -> "SamplingPlan":
        """The plan of ``estimator`` (its flags read here, once)."""
        return cls(num_samples=int(estimator.num_samples), source=estimator.sample_from,
                   sleep_samples=int(estimator.sleep_samples), baseline=bool(estimator.needs_baseline),
                   reparameterize_locations=bool(estimator.reparameterize_locations))

    @property
    def needs_inference(self) -> bool:
        """Whether the model builds the inference network q (to sample from it, or for sleep updates)."""
        return self.source == "proposal" or self.sleep_samples > 0

    def from_proposal(self, train: bool) -> bool:
        """Whether a rollout samples from q: in training (``train``: the draws the estimator gets), for a proposal estimator."""
        return train and self.source == "proposal"

    def reparameterized(self, train: bool) -> bool:
        """Whether a rollout draws its locations by reparameterisation: in training, when the estimator asks for it."""
        return train and self.reparameterize_locations

    def dreams(self, train: bool) -> int:
        """K' model samples for the sleep update of q in a training rollout, else 0."""
        return self.sleep_samples if train else 0
