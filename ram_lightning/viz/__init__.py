"""Pictures of where the models look: glimpses (classifiers) and attended cells (captioners).

``AttentionPictures`` (the callback of the shared defaults) picks one of the two for the model.
"""
from .captions import CaptionAttentionPictures
from .glimpses import GlimpsePictures
from .pictures import AttentionPictures

__all__ = ["AttentionPictures", "CaptionAttentionPictures", "GlimpsePictures"]
