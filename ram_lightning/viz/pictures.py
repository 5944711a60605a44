"""One picture callback for any attention model, so that the shared defaults
(``ram_lightning/defaults.yaml``) need not know the task: :class:`AttentionPictures` draws
glimpse pictures (:class:`~ram_lightning.viz.glimpses.GlimpsePictures`) for classifiers
and caption-attention pictures
(:class:`~ram_lightning.viz.captions.CaptionAttentionPictures`) for models that caption
(those with a ``decode`` method)."""
from __future__ import annotations

from typing import Optional

import pytorch_lightning as pl

from ram_lightning.viz.captions import CaptionAttentionPictures
from ram_lightning.viz.glimpses import GlimpsePictures


class AttentionPictures(pl.Callback):
    """Glimpse pictures for classifiers, caption-attention pictures for captioners.

    Args:
        num_images: images in each picture; None: the drawing callback's default (8 glimpse
            images, 4 captioned images).
        every_n_epochs: draw when ``(epoch + 1) % every_n_epochs == 0``.
    """

    def __init__(self, num_images: Optional[int] = None, every_n_epochs: int = 1) -> None:
        self.num_images = num_images
        self.every_n_epochs = every_n_epochs
        self.drawer: Optional[pl.Callback] = None  # chosen in setup, from the model

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.drawer is None:
            kind = CaptionAttentionPictures if hasattr(pl_module, "decode") else GlimpsePictures
            given = {} if self.num_images is None else {"num_images": self.num_images}
            self.drawer = kind(every_n_epochs=self.every_n_epochs, **given)
        self.drawer.setup(trainer, pl_module, stage)

    @property
    def last_path(self) -> Optional[str]:
        """The last picture saved, or None."""
        return getattr(self.drawer, "last_path", None)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.drawer.on_validation_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.drawer.on_validation_epoch_end(trainer, pl_module)
