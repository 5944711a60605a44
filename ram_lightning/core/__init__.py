"""The shared attention core: pure ``nn.Module``s, no Lightning."""
from .glimpse import GlimpseNetwork, GlimpseSensor, image_pyramid
from .inference import InferenceNetwork
from .policy import AttentionAction, AttentionDistribution, AttentionHead
from .recurrent import ContextNetwork, PredictionNetwork
from .rollout import AttentionCore, Rollout

__all__ = [
    "AttentionAction",
    "AttentionCore",
    "AttentionDistribution",
    "AttentionHead",
    "ContextNetwork",
    "GlimpseNetwork",
    "GlimpseSensor",
    "InferenceNetwork",
    "PredictionNetwork",
    "Rollout",
    "image_pyramid",
]
