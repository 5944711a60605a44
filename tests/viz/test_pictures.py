"""AttentionPictures: the one picture callback of the shared defaults draws what the model is."""
import pytorch_lightning as pl

from ram_lightning.viz.captions import CaptionAttentionPictures
from ram_lightning.viz.glimpses import GlimpsePictures
from ram_lightning.viz.pictures import AttentionPictures


class _Captioner(pl.LightningModule):
    def decode(self, images):  # what makes a model a captioner for the pictures
        raise NotImplementedError


def test_a_captioner_gets_caption_pictures_and_a_classifier_glimpse_pictures():
    pictures = AttentionPictures()
    pictures.setup(None, _Captioner(), "fit")
    assert type(pictures.drawer) is CaptionAttentionPictures and pictures.drawer.num_images == 4
    pictures = AttentionPictures(num_images=2, every_n_epochs=3)
    pictures.setup(None, pl.LightningModule(), "fit")
    assert type(pictures.drawer) is GlimpsePictures
    assert (pictures.drawer.num_images, pictures.drawer.every_n_epochs) == (2, 3)
    assert pictures.last_path is None
