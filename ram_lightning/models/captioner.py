"""AttentionCaptioner: Show-Attend-Tell hard-attention captioning trained by any estimator.

    ram fit --config configs/captions_synthetic.yaml [--config configs/captions_synthetic/reinforce.yaml]

A CNN turns the image into a grid of L feature vectors; an LSTM decoder attends to one grid
location per word. In training, K attention sequences per caption are drawn (from p, or from
the inference network q that reads the whole caption, as the estimator asks) and go to the
estimator as ``SampleTerms``: log p(y | a, I) summed over words, log p(a | I) and log q(a | y, I)
over steps, padding masked. So ``reinforce``, ``wake_sleep`` and ``wake_sleep_cv`` plug in
unchanged. Validation and test decode by beam search (greedy with ``beam_size: 1``), choosing
the most probable location at each word, and report corpus BLEU-1..4 (0-100, as
coco-caption). The vocabulary is a constructor argument, so every checkpoint carries the
vocabulary its decoder was trained with.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from estimators import Estimator, SampleTerms
from ram_lightning.core.caption_decoder import HardAttentionDecoder
from ram_lightning.core.caption_inference import CaptionInferenceNetwork
from ram_lightning.core.image_encoder import build_grid_encoder
from ram_lightning.core.precision import Float32Linear
from ram_lightning.errors import UserError
from ram_lightning.models.corpus_bleu import CorpusBLEU
from ram_lightning.models.compiled_step import CompileOption
from ram_lightning.models.module import EstimatorModule
from ram_lightning.models.optimizers import default_optimizer

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")


class AttentionCaptioner(EstimatorModule):
    """Hard-attention image captioner (Show-Attend-Tell hard attention; WS-RAM's second task).

    Args:
        vocabulary: the id -> token list, with ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>``
            (linked from the DataModule by the ``ram`` CLI).
        image_shape: (C, H, W) of the images (linked from the DataModule).
        encoder: ``"cnn"`` (a small CNN trained with the model) or ``"efficientnet_lite0"``
            (frozen ImageNet EfficientNet-Lite0; its features may come precomputed in the batch
            as ``features`` [B, L, D], see the DataModules' ``cache_features``).
        encoder_channels: the CNN's blocks (each halves the grid side; the last is D).
        embedding_size: size of the decoder's word embedding.
        hidden_size: the decoder LSTM's state size.
        attention_size: size of the decoder's attention scores' hidden layer.
        dropout: dropout on the word-prediction input.
        estimator: a registered estimator name or an ``Estimator`` instance.
        optimizer: optimizer factory over the module's parameters (default Adam, lr 1e-3).
        lr_scheduler: optional scheduler factory.
        beam_size: beam width for validation / test / predict decoding (1: greedy).
        max_length: most words decoded.
        inference_embedding: word-embedding size of q's caption encoder (built only for
            estimators that sample from the proposal).
        inference_hidden: state size of q's caption encoder.
        inference_lr: q's own learning rate (None: the optimizer's).
        compile: compile the training step with ``torch.compile`` (``ram_lightning.models.compiled_step``):
            false, true, auto, or options such as ``{mode: reduce-overhead}``.
    """

    checkpoint_monitor = ("val/bleu4", "max")  # what the best checkpoint monitors (read by ram_lightning/run/defaults.py)

    def __init__(
        self,
        vocabulary: Sequence[str] = SPECIAL_TOKENS,
        image_shape: Sequence[int] = (3, 64, 64),
        encoder: str = "cnn",
        encoder_channels: Sequence[int] = (32, 64, 128),
        embedding_size: int = 128,
        hidden_size: int = 256,
        attention_size: int = 128,
        dropout: float = 0.0,
        estimator: Union[str, Estimator] = "reinforce",
        optimizer: OptimizerCallable = default_optimizer,
        lr_scheduler: Optional[LRSchedulerCallable] = None,
        beam_size: int = 3,
        max_length: int = 20,
        inference_embedding: int = 128,
        inference_hidden: int = 128,
        inference_lr: Optional[float] = None,
        compile: CompileOption = False,
    ) -> None:
        super().__init__(optimizer, lr_scheduler, inference_lr, monitor="val/bleu4", compile=compile)
        self.save_hyperparameters(ignore=["estimator", "optimizer", "lr_scheduler"])
        self.use_estimator(estimator)
        self.vocabulary = list(vocabulary)
        missing = [token for token in SPECIAL_TOKENS if token not in self.vocabulary]
        if missing:
            raise UserError(f"AttentionCaptioner: vocabulary lacks the special tokens {missing} (expected all of {list(SPECIAL_TOKENS)})")
        self.pad_id, self.bos_id, self.eos_id = (self.vocabulary.index(t) for t in SPECIAL_TOKENS[:3])
        if beam_size < 1 or max_length < 1:
            raise UserError(f"AttentionCaptioner: beam_size and max_length must be >= 1, got {beam_size}, {max_length}")
        self.image_shape = tuple(image_shape)
        self.beam_size, self.max_length = beam_size, max_length
        self.encoder = build_grid_encoder(encoder, self.image_shape[0], encoder_channels)
        features = self.encoder.feature_size
        self.decoder = HardAttentionDecoder(len(self.vocabulary), features, embedding_size, hidden_size, attention_size, dropout)
        self.build_estimator_heads(
            supports_sleep=False, baseline=lambda: Float32Linear(features, 1),
            inference=lambda: CaptionInferenceNetwork(len(self.vocabulary), features, hidden_size, inference_embedding,
                                                      inference_hidden, attention_size),
        )
        self.bleu = nn.ModuleDict({split: CorpusBLEU() for split in ("val", "test")})

    # Given explicitly with --ckpt_path, these win over the checkpoint's (ram_lightning.run.checkpoint_hparams).
    CHECKPOINT_OVERRIDABLE = ("beam_size", "max_length", "compile")

    # ----------------------------------------------------------------- maths
    def check_batch(self, batch: Dict[str, Any]) -> None:
        """Raise a UserError for images (or features) of the wrong shape or captions with unknown ids."""
        captions = batch["captions"]
        if "features" in batch:
            features = batch["features"]
            if features.dim() != 3 or features.shape[-1] != self.encoder.feature_size:
                raise UserError(f"expected precomputed features [B, L, {self.encoder.feature_size}] (the encoder's size), "
                                f"got {tuple(features.shape)}")
            size = features.shape[0]
        else:
            images = batch["images"]
            if images.dim() != 4 or tuple(images.shape[1:]) != self.image_shape:
                raise UserError(f"expected images of shape [B, {', '.join(map(str, self.image_shape))}] (model.image_shape), "
                                f"got {tuple(images.shape)}")
            size = images.shape[0]
        if captions.dim() != 2 or captions.shape[0] != size or captions.dtype != torch.long:
            raise UserError(f"expected captions as long ids [B={size}, T], got {captions.dtype} {tuple(captions.shape)}")
        if captions.numel() and (captions.min() < 0 or captions.max() >= len(self.vocabulary)):
            raise UserError(f"caption id {int(captions.max())} out of range for a vocabulary of {len(self.vocabulary)} tokens")

    def sample_terms(self, batch: Dict[str, Any], num_samples: int, train: bool = False,
                     generator: Optional[torch.Generator] = None) -> SampleTerms:
        """K attention sequences per caption -> SampleTerms [B, K] (from q when the sampling plan asks for it in training)."""
        features = self.grid_features(batch)  # [B, L, D]
        proposal = None
        if self.plan.from_proposal(train):
            proposal = self.inference.proposal(features, batch["captions"], batch["lengths"], num_samples)
        rollout = self.decoder.teacher_forced(features, batch["captions"], self.pad_id, num_samples, proposal, generator)
        return self.sample_terms_from(log_likelihood=rollout.log_likelihood, log_prior=rollout.log_prior,
                                      log_proposal=rollout.log_proposal, baseline_input=rollout.summary, entropy=rollout.entropy)

    def grid_features(self, batch: Dict[str, Any]) -> Tensor:
        """[B, L, D]: the batch's precomputed ``features``, else the encoder on its ``images``."""
        return batch["features"] if "features" in batch else self.encoder(batch["images"])

    def training_terms(self, batch: Dict[str, Any], generator: Optional[torch.Generator] = None) -> Tuple[SampleTerms, None]:
        """The training terms [B, K] of a caption batch, K = ``plan.num_samples`` (nothing else to log)."""
        return self.sample_terms(batch, self.plan.num_samples, train=True, generator=generator), None

    def gradient_groups(self) -> Dict[str, List[nn.Parameter]]:
        """The attention policy p and, if any, q (for the gradient-variance probe)."""
        groups = {"policy": list(self.decoder.attention.parameters())}
        if self.inference is not None:
            groups["inference"] = list(self.inference.parameters())
        return groups

    def decode(self, images: Tensor, beam_size: Optional[int] = None, features: Optional[Tensor] = None) -> Dict[str, list]:
        """Captions for images [B, C, H, W] (or their precomputed ``features`` [B, L, D]):
        ``tokens`` (lists of words) and ``locations`` ((row, col) per word)."""
        features = self.encoder(images) if features is None else features
        ids, locations = self.decoder.beam_search(features, self.bos_id, self.eos_id, self.max_length, beam_size or self.beam_size)
        _, grid_width = self.encoder.grid_shape(*self.image_shape[1:])
        return {
            "tokens": [[self.vocabulary[i] for i in sentence] for sentence in ids],
            "locations": [[divmod(index, grid_width) for index in sentence] for sentence in locations],
        }

    # ----------------------------------------------------------------- steps
    def model_step(self, batch: Dict[str, Any], split: str) -> Optional[Tensor]:
        """``batch``: ``images`` [B, C, H, W] (or ``features`` [B, L, D]), ``captions`` [B, T], ``lengths``
        [B] and, in evaluation, ``references``. In training logs the estimator's output; in evaluation
        ``{split}/nll_per_word`` (one attention sequence) and the batch's BLEU statistics (beam search)."""
        self.check_batch(batch)
        size = batch["captions"].shape[0]
        if split == "train":
            output, _ = self.training_forward(batch)
            return self.log_estimator_output(output, size)
        terms = self.sample_terms(batch, 1, generator=self.eval_stream())
        words = (batch["captions"][:, 1:] != self.pad_id).sum().clamp_min(1)
        self.log(f"{split}/nll_per_word", -terms.log_likelihood.sum() / words, batch_size=size)
        self.bleu[split].update(self.decode(batch.get("images"), features=batch.get("features"))["tokens"], batch["references"])
        return None

    def _log_bleu(self, split: str) -> None:
        scores = self.bleu[split].compute()
        self.log_dict({f"{split}/{name}": value for name, value in scores.items()}, prog_bar=(split == "val"))
        self.bleu[split].reset()

    def on_validation_epoch_end(self) -> None:
        self._log_bleu("val")

    def on_test_epoch_end(self) -> None:
        self._log_bleu("test")

    def predict_step(self, batch, batch_idx: int) -> Dict[str, list]:
        """Batch-first predictions of a test batch (``image_ids``, images or ``features``), a
        folder batch ``{"images", "image": paths}`` or bare images [B, C, H, W]: ``image``,
        ``caption`` (words joined by spaces), ``tokens`` and ``attended_cells`` ((row, col) of
        the grid cell attended for each word). Written as JSON lines by ``JsonLinesWriter``."""
        if isinstance(batch, dict):
            decoded = self.decode(batch.get("images"), features=batch.get("features"))
            ids = batch.get("image_ids", batch.get("image"))
        else:
            decoded = self.decode(batch)
            ids = None
        size = len(decoded["tokens"])
        if ids is None:
            ids = list(range(batch_idx * size, (batch_idx + 1) * size))
        return {"image": ids, "caption": [" ".join(tokens) for tokens in decoded["tokens"]],
                "tokens": decoded["tokens"], "attended_cells": [[list(cell) for cell in cells] for cells in decoded["locations"]]}
