"""Alias kept for old configs (``ram_lightning.pictures.AttentionPictures``): the pictures live in
:mod:`ram_lightning.viz` (``ram_lightning.viz.AttentionPictures``)."""
from ram_lightning.viz.pictures import AttentionPictures

__all__ = ["AttentionPictures"]
