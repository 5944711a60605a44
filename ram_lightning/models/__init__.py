"""The LightningModules and what they share.

    module.EstimatorModule       the base: training step through the estimator, evaluation streams,
                                 divergence checks, optimizers, safe loading
    sampling_plan.SamplingPlan   what the estimator asks of the model, read once
    estimator_inputs             the heads the plan asks for and the one SampleTerms constructor
    classifier, captioner        AttentionClassifier, AttentionCaptioner
    compiled_step, bleu          the compiled training step; coco-caption corpus BLEU
"""
from .captioner import AttentionCaptioner
from .classifier import AttentionClassifier
from .module import EstimatorModule

__all__ = ["AttentionCaptioner", "AttentionClassifier", "EstimatorModule"]
