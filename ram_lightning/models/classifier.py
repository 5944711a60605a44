"""AttentionClassifier: a recurrent hard-attention image classifier trained by any estimator.

    ram fit --config configs/quickstart.yaml

One ``model_step`` serves training, validation and testing. In training, K = the
estimator's ``num_samples`` glimpse sequences are drawn per image and their per-sample terms
go to the estimator; in evaluation, M = ``eval_samples`` sequences are drawn from the prior
and two errors are logged: ``{split}/error`` (the first sample alone) and
``{split}/error_avg{M}`` (class probabilities averaged over the M samples).

Estimators that sample from the proposal (``wake_sleep``, ``wake_sleep_cv``) get an inference
network q(a | y, I) that reads a label embedding; it is trained by the estimator's wake (and
optionally sleep) updates, optionally at its own learning rate, and never used in evaluation.
In training, ``train/error`` then scores glimpses chosen by q, which sees the label.

Training stops with a ``NonFiniteError`` naming the step, the estimator and the quantity at
the first non-finite loss, estimator metric or gradient (before the optimizer step, so no
checkpoint is written from that state), and no checkpoint with non-finite weights is written.
Under DDP every process draws its own attention samples (``ram_lightning.models.streams``).
"""
from __future__ import annotations

import inspect
import re
import textwrap
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torchmetrics import MeanMetric

from estimators import Estimator, SampleTerms
from ram_lightning.core import AttentionCore, InferenceNetwork, Rollout
from ram_lightning.core.rollout import DetachPoint
from ram_lightning.core.precision import Float32Linear
from ram_lightning.errors import UserError
from ram_lightning.models.compiled_step import CompileOption
from ram_lightning.models.module import EstimatorModule
from ram_lightning.models.optimizers import default_optimizer

SPLITS = ("train", "val", "test")
# The AttentionCore's arguments, which the classifier takes as its own and hands on by keyword.
CORE_ARGUMENTS = tuple(inspect.signature(AttentionCore).parameters)


def core_arguments_doc(skip: Sequence[str] = ()) -> str:
    """The "Args:" entries of ``AttentionCore``'s docstring (their one written place), indented for
    a class docstring, leaving out ``skip``."""
    entries = textwrap.dedent(inspect.cleandoc(AttentionCore.__doc__).split("Args:\n", 1)[1])
    blocks = re.split(r"\n(?=\S)", entries)  # one block per argument: "name: text" and its indented lines
    return "\n".join(textwrap.indent(block, " " * 8) for block in blocks if block.split(":", 1)[0] not in skip)


class AttentionClassifier(EstimatorModule):
    __doc__ = f"""Recurrent attention model for classification (RAM / DRAM / WS-RAM).

    An ``AttentionCore`` (whose arguments it takes, documented there and below) with a class head
    on its bottom LSTM state, a learned baseline and an inference network q where the estimator
    asks for them. With ``pathwise``, ``detach_policy_input`` also cuts the reparameterised
    locations' path into the policy's mean at the same point (true: the head still gets it;
    ``top_input``: the head, top LSTM and context network; the exact gradient needs false).

    Args:
        image_shape: (C, H, W) of the images; linked from the DataModule by the ``ram`` CLI.
        num_classes: number of classes; linked from the DataModule by the ``ram`` CLI.
{core_arguments_doc(skip=("image_shape",))}
        estimator: a registered estimator name (its defaults) or an ``Estimator`` instance
            (``class_path`` + ``init_args`` in YAML).
        optimizer: optimizer factory over the module's parameters (default Adam, lr 1e-3).
        lr_scheduler: optional scheduler factory.
        eval_samples: M, glimpse sequences averaged at validation / test time.
        inference_hidden: hidden width of the inference network q (built only for estimators
            that sample from the proposal or use sleep updates).
        label_embedding_size: size of the label embedding q reads.
        inference_lr: learning rate of q's parameters (None: the optimizer's own).
        inference_location_std: q's own location std (fixed, or initial when learned); None:
            the policy's ``location_std``.
        inference_learn_std: whether q learns its std; None: as the policy (``learn_std``).
        compile: compile the training step with ``torch.compile`` (``ram_lightning.models.compiled_step``):
            false, true, auto (eager where torch cannot compile), or options such as
            ``{{mode: reduce-overhead}}``.
    """

    checkpoint_monitor = ("val/error", "min")  # what the best checkpoint monitors (read by ram_lightning/run/defaults.py)

    def __init__(
        self,
        image_shape: Sequence[int] = (1, 60, 60),
        num_classes: int = 10,
        glimpse_size: int = 12,
        num_patches: int = 3,
        num_glimpses: int = 6,
        scales: Optional[Sequence[float]] = None,
        hidden_size: int = 256,
        glimpse_hidden: int = 128,
        glimpse_features: int = 256,
        context_size: int = 12,
        location_std: float = 0.1,
        learn_std: bool = False,
        scale_epsilon: float = 0.0,
        detach_policy_input: DetachPoint = False,
        estimator: Union[str, Estimator] = "reinforce",
        optimizer: OptimizerCallable = default_optimizer,
        lr_scheduler: Optional[LRSchedulerCallable] = None,
        eval_samples: int = 10,
        inference_hidden: int = 256,
        label_embedding_size: int = 32,
        inference_lr: Optional[float] = None,
        inference_location_std: Optional[float] = None,
        inference_learn_std: Optional[bool] = None,
        compile: CompileOption = False,
    ) -> None:
        super().__init__(optimizer, lr_scheduler, inference_lr, monitor="val/error", compile=compile)
        self.save_hyperparameters(ignore=["estimator", "optimizer", "lr_scheduler"])
        self.use_estimator(estimator)
        if num_classes < 2:
            raise UserError(f"AttentionClassifier: num_classes must be >= 2, got {num_classes}")
        if eval_samples < 1:
            raise UserError(f"AttentionClassifier: eval_samples must be >= 1, got {eval_samples}")
        self.num_classes = num_classes
        self.eval_samples = eval_samples
        self.core = AttentionCore(**{name: self.hparams[name] for name in CORE_ARGUMENTS})
        self.head = Float32Linear(hidden_size, num_classes)  # class log-probabilities in fp32 under bf16 autocast
        self.label_embedding: Optional[nn.Embedding] = None  # what q reads of the label (built with q)

        def inference() -> InferenceNetwork:
            self.label_embedding = nn.Embedding(num_classes, label_embedding_size)
            q_std = location_std if inference_location_std is None else inference_location_std
            q_learn_std = learn_std if inference_learn_std is None else inference_learn_std
            if q_std <= 0:
                raise UserError(f"AttentionClassifier: inference_location_std must be > 0, got {q_std}")
            return InferenceNetwork(hidden_size, label_embedding_size, inference_hidden, self.core.num_scales, q_std, q_learn_std)

        # b(I) reads the context features (detached), so training it never moves the core.
        # location_gradients: the bilinear sensor passes them (tests/core/test_glimpse.py checks it by finite differences).
        self.build_estimator_heads(baseline=lambda: nn.Sequential(Float32Linear(hidden_size, 1)), inference=inference,
                                   location_gradients=True)
        # Error rates as means of 0/1 mistakes: torchmetrics sums them across DDP processes.
        # keys "{split}_error" (first sample) and "{split}_error_avg" (M-sample average)
        self.errors = nn.ModuleDict({f"{split}_error": MeanMetric() for split in SPLITS})
        self.errors.update({f"{split}_error_avg": MeanMetric() for split in SPLITS[1:]})

    # Given explicitly with --ckpt_path, these win over the checkpoint's (ram_lightning.run.checkpoint_hparams).
    CHECKPOINT_OVERRIDABLE = ("eval_samples", "compile")

    # ----------------------------------------------------------------- maths
    def check_batch(self, images: Tensor, targets: Tensor) -> None:
        """Raise a UserError for images of the wrong shape or labels out of range."""
        self.core.check_images(images)
        if targets.dim() != 1 or targets.shape[0] != images.shape[0] or targets.dtype not in (torch.int64, torch.int32):
            raise UserError(f"expected integer labels of shape [{images.shape[0]}], got {targets.dtype} {tuple(targets.shape)}")
        if targets.numel() and (targets.min() < 0 or targets.max() >= self.num_classes):
            bad = targets[(targets < 0) | (targets >= self.num_classes)][0].item()
            raise UserError(f"label {bad} out of range: model.num_classes={self.num_classes} expects labels in [0, {self.num_classes - 1}]")

    def sample_terms(
        self, images: Tensor, targets: Tensor, num_samples: int, train: bool = False,
        generator: Optional[torch.Generator] = None, proposal_targets: Optional[Tensor] = None,
    ) -> Tuple[SampleTerms, Tensor, Rollout]:
        """Roll out K sequences per image; returns the terms [B, K], log p(. | a, I) [B, K, C] and the rollout.

        With ``train`` the sequences come from the distribution the sampling plan asks for (q for
        proposal estimators) and sleep terms are added when it wants them; otherwise from p.
        ``generator`` is the random stream of the draws (None: torch's global one);
        ``proposal_targets`` [B] the labels q is shown (default ``targets``; shuffled labels
        test whether q uses them).
        """
        proposal = None
        if self.plan.from_proposal(train):
            shown = targets if proposal_targets is None else proposal_targets
            proposal = self.inference.proposal(self._label_features(shown, num_samples))
        rollout = self.core.rollout(images, num_samples, proposal, generator=generator, reparameterize=self.plan.reparameterized(train))
        log_probs = self.head(rollout.hidden).log_softmax(-1)  # [B, K, C]
        index = targets.long()[:, None, None].expand(-1, num_samples, 1)
        log_likelihood = log_probs.gather(-1, index).squeeze(-1)  # [B, K]
        correct = (log_probs.argmax(-1) == targets[:, None]).float()
        sleep = None
        if self.plan.dreams(train):
            sleep = self.sleep_log_proposal(images, self.plan.dreams(train), generator)
        terms = self.sample_terms_from(log_likelihood=log_likelihood, log_prior=rollout.log_prior, log_proposal=rollout.log_proposal,
                                       baseline_input=rollout.context, correct=correct, entropy=rollout.entropy,
                                       sleep_log_proposal=sleep)  # b(I) reads the context features [B, hidden]
        return terms, log_probs, rollout

    def _label_features(self, labels: Tensor, num_samples: int) -> Tensor:
        """labels [B] or [B, K] -> q's target features [B*K, E] (rows b*K + k)."""
        if labels.dim() == 1:
            labels = labels[:, None].expand(-1, num_samples)
        return self.label_embedding(labels.reshape(-1))

    def sleep_log_proposal(self, images: Tensor, num_samples: int, generator: Optional[torch.Generator] = None) -> Tensor:
        """log q(a' | y', I) [B, K'] for K' dreams a' ~ p(a | I), y' ~ p(y | a', I) (the sleep update's terms)."""
        with torch.no_grad():
            dream = self.core.rollout(images, num_samples, record_states=True, generator=generator)
            class_probs = self.head(dream.hidden).softmax(-1)  # [B, K', C]
            labels = torch.multinomial(class_probs.reshape(-1, self.num_classes), 1, True, generator=generator)
            labels = labels.view(images.shape[0], num_samples)  # [B, K']
        rows = images.shape[0] * num_samples
        scales = None if dream.scales is None else dream.scales.reshape(rows, -1)
        log_q = self.inference.log_prob(
            dream.top_states.reshape(rows, self.core.num_glimpses, -1), self._label_features(labels, num_samples),
            dream.locations.reshape(rows, -1, 2), scales,
        )
        return log_q.view(images.shape[0], num_samples)

    def training_terms(self, batch: Tuple[Tensor, Tensor], generator: Optional[torch.Generator] = None) -> Tuple[SampleTerms, Tensor]:
        """The training terms [B, K] of ``(images [B, C, H, W], targets [B])`` and log p(. | a, I) [B, K, C]
        of their K = ``plan.num_samples`` samples."""
        terms, log_probs, _ = self.sample_terms(*batch, self.plan.num_samples, train=True, generator=generator)
        return terms, log_probs

    def gradient_groups(self) -> Dict[str, List[nn.Parameter]]:
        """Every parameter, by module group (for gradient diagnostics and q's learning rate):
        ``policy`` (the glimpse policy heads), ``inference`` (q and its label embedding, if
        any), ``top_lstm``, ``bottom_lstm``, ``glimpse`` (glimpse network), ``context``
        (context network), ``head`` (classifier) and ``baseline`` (if any)."""
        groups = {
            "policy": list(self.core.policy.parameters()),
            "top_lstm": list(self.core.recurrent.top.parameters()),
            "bottom_lstm": list(self.core.recurrent.bottom.parameters()),
            "glimpse": list(self.core.glimpse.parameters()) + list(self.core.sensor.parameters()),
            "context": list(self.core.context.parameters()),
            "head": list(self.head.parameters()),
        }
        if self.inference is not None:
            groups["inference"] = list(self.inference.parameters()) + list(self.label_embedding.parameters())
        if self.baseline is not None:
            groups["baseline"] = list(self.baseline.parameters())
        return groups

    def forward(self, images: Tensor, num_samples: int = 1, generator: Optional[torch.Generator] = None) -> Tensor:
        """Class probabilities [B, C] averaged over ``num_samples`` glimpse sequences from the prior."""
        self.core.check_images(images)
        rollout = self.core.rollout(images, num_samples, generator=generator)
        return self.head(rollout.hidden).softmax(-1).mean(1)

    # ----------------------------------------------------------------- steps
    def model_step(self, batch: Tuple[Tensor, Tensor], split: str) -> Optional[Tensor]:
        """``batch``: images [B, C, H, W] and labels [B]. Logs ``{split}/error`` (one glimpse sequence);
        in evaluation also ``{split}/error_avg{M}`` and ``{split}/log_likelihood``."""
        images, targets = batch
        self.check_batch(images, targets)
        batch_size = images.shape[0]
        if split == "train":
            output, log_probs = self.training_forward((images, targets))
        else:
            terms, log_probs, rollout = self.sample_terms(images, targets, self.eval_samples, generator=self.eval_stream())
        error = self.errors[f"{split}_error"]
        error.update((log_probs[:, 0].argmax(-1) != targets).float())
        self.log(f"{split}/error", error, on_step=False, on_epoch=True, prog_bar=True, batch_size=batch_size)
        if split != "train":
            error_avg = self.errors[f"{split}_error_avg"]
            error_avg.update((log_probs.exp().mean(1).argmax(-1) != targets).float())
            self.log(f"{split}/error_avg{self.eval_samples}", error_avg, on_epoch=True, batch_size=batch_size)
            # sync_dist: the epoch value is the mean over every process's share of the set.
            self.log(f"{split}/log_likelihood", terms.log_likelihood.mean(), on_epoch=True, batch_size=batch_size, sync_dist=True)
            self.log_scale_use(rollout, split, batch_size)
            return None
        return self.log_estimator_output(output, batch_size)

    def log_scale_use(self, rollout: Rollout, split: str, batch_size: int) -> None:
        """``{split}/scale_use/<s>``: the fraction of the evaluation glimpses (every glimpse of the
        M sequences, scales [B, M, T]) that chose scale s, so the scale histogram is followed over
        training at no extra cost; nothing without scale choice."""
        if not self.core.num_scales or rollout.scales is None:
            return
        counts = torch.bincount(rollout.scales.flatten(), minlength=self.core.num_scales).float()
        for s, fraction in enumerate((counts / counts.sum().clamp_min(1)).tolist()):
            self.log(f"{split}/scale_use/{s}", fraction, on_epoch=True, batch_size=batch_size, sync_dist=True)

    def predict_step(self, batch, batch_idx: int) -> Dict[str, object]:
        """Batch-first predictions of a batch ``{"images": [B, C, H, W], "image": ids}`` (or bare
        images): ``prediction`` [B] and ``probabilities`` [B, C] from ``eval_samples`` glimpse
        sequences (as ``forward``); ``locations`` [B, N, 2] and ``scales`` [B, N] (scale factors,
        or None) of the first sequence. Written as JSON lines by ``JsonLinesWriter``."""
        ids = None
        if isinstance(batch, dict):
            images, ids = batch["images"], batch.get("image")
        else:
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
        self.core.check_images(images)
        if ids is None:
            ids = torch.arange(images.shape[0]) + batch_idx * images.shape[0]
        rollout = self.core.rollout(images, self.eval_samples, generator=self.eval_stream())
        probabilities = self.head(rollout.hidden).softmax(-1).mean(1)  # [B, C]
        scales = None if rollout.scales is None else self.core.scale_values[rollout.scales[:, 0]]  # [B, N]
        return {"image": ids, "prediction": probabilities.argmax(-1), "probabilities": probabilities,
                "locations": rollout.locations[:, 0], "scales": scales}
