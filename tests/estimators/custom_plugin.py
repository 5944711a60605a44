"""An estimator plug-in defined outside the package, as a user's own module would be."""
from estimators import Estimator, EstimatorOutput, register, reinforce_surrogate


@register("test_plain_score_function")
class PlainScoreFunction(Estimator):
    """REINFORCE without any baseline, scaled by ``weight``; records that it ran."""

    calls = 0

    def __init__(self, num_samples: int = 1, weight: float = 1.0) -> None:
        super().__init__(num_samples)
        self.weight = weight

    def forward(self, terms):
        type(self).calls += 1
        loss, metrics = reinforce_surrogate(terms, terms.log_likelihood, None)
        metrics["plugin_weight"] = terms.log_likelihood.new_tensor(self.weight)
        return EstimatorOutput(self.weight * loss, metrics)
