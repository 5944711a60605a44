"""EstimatorModule: what every LightningModule trained by an estimator plug-in shares.

Subclasses (``AttentionClassifier``, ``AttentionCaptioner``) take their estimator with
``use_estimator`` (its sampling plan read once), build their networks and the heads the plan asks
for with ``build_estimator_heads``, build ``SampleTerms`` with ``sample_terms_from`` (all three in
``ram_lightning.models.estimator_inputs``), and implement the same three methods:

    training_terms(batch, generator=None) -> (SampleTerms [B, K], extra)   the estimator's input
    model_step(batch, split) -> loss or None     one step of "train", "val" or "test"
    gradient_groups() -> {group: [parameters]}   "policy", "inference" (q), ... for the probe and q's lr

The steps are alike: ``training_step``, ``validation_step`` and ``test_step`` here call
``model_step``, whose training branch calls ``training_forward`` (compiled when ``compile`` is on)
and ``log_estimator_output``. This base class gives them, besides:

- the random streams (``ram_lightning.models.streams.EvaluationStreams``): one per DDP process for
  training, private ones for evaluation and the gradient probe;
- the divergence checks (``ram_lightning.models.divergence.DivergenceChecks``): a non-finite term,
  loss, metric or gradient stops training with one line, and no non-finite checkpoint is written;
- the optimizers (``ram_lightning.models.optimizers``), with q's parameters in their own group when
  ``inference_lr`` is set;
- ``load_from_checkpoint`` always weights-only (``ram_lightning.models.checkpoint_reading``).
"""
from __future__ import annotations

import os
import sys
from typing import Any, Dict, List, Optional, Tuple

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from estimators import EstimatorOutput, SampleTerms
from estimators.base import call_without_host_sync
from estimators.registry import import_class
from ram_lightning.core.precision import full_precision
from ram_lightning.errors import UserError
from ram_lightning.models.checkpoint_reading import CheckpointError, load_checkpoint_file
from ram_lightning.models.compiled_step import CompiledStep, CompileOption, compile_settings
from ram_lightning.models.divergence import DivergenceChecks
from ram_lightning.models.estimator_inputs import EstimatorInputs
from ram_lightning.models.optimizers import configure_optimizers, default_optimizer
from ram_lightning.models.streams import EvaluationStreams

__all__ = ["EstimatorModule", "default_optimizer"]


class EstimatorModule(EstimatorInputs, EvaluationStreams, DivergenceChecks, pl.LightningModule):
    """Base class; see the module docstring.

    Args:
        optimizer: optimizer factory over the parameters (or parameter groups).
        lr_scheduler: optional scheduler factory; plateau schedulers watch ``monitor``.
        inference_lr: learning rate of the inference network q (None: the optimizer's own).
        monitor: the metric a scheduler watches.
        compile: compile the training step (``ram_lightning.models.compiled_step``): false, true, auto,
            or ``torch.compile`` options such as ``{mode: reduce-overhead}``.
    """

    def __init__(self, optimizer=default_optimizer, lr_scheduler=None, inference_lr: Optional[float] = None,
                 monitor: str = "val/error", compile: CompileOption = False) -> None:
        super().__init__()
        self.compile_settings = compile_settings(compile)
        self._compiled_step: Optional[CompiledStep] = None
        if inference_lr is not None and inference_lr <= 0:
            raise UserError(f"{type(self).__name__}: inference_lr must be > 0, got {inference_lr}")
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler
        self.inference_lr = inference_lr
        self.monitor = monitor
        self._eval_stream: Optional[torch.Generator] = None

    # ----------------------------------------------------------------- for subclasses
    def training_terms(self, batch: Any, generator: Optional[torch.Generator] = None) -> Tuple[SampleTerms, Any]:
        """``(terms, extra)`` of a training batch: the SampleTerms the estimator gets, drawn with the
        plan's K from ``generator`` (None: torch's global stream), and whatever else the model's
        training step logs (or None). Traceable by ``torch.compile`` as a whole: no host
        synchronisation, no data-dependent branch."""
        raise NotImplementedError  # pragma: no cover - abstract

    def model_step(self, batch: Any, split: str) -> Optional[Tensor]:
        """One step of ``split`` ("train", "val" or "test"): the training loss, or None in evaluation."""
        raise NotImplementedError  # pragma: no cover - abstract

    def gradient_groups(self) -> Dict[str, List[nn.Parameter]]:
        """Parameters by module group, e.g. ``{"policy": [...], "inference": [...], ...}``: the policy p
        and (if any) q under those two names (q's own learning rate uses "inference"), and any
        other groups worth watching in the gradient diagnostics."""
        raise NotImplementedError  # pragma: no cover - abstract

    # ----------------------------------------------------------------- steps
    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self.model_step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.model_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.model_step(batch, "test")

    # ----------------------------------------------------------------- the estimator's output
    def estimate(self, terms: SampleTerms) -> Tuple[EstimatorOutput, Tensor]:
        """``(self.estimator(terms), terms finite [] bool)`` with autocast off and no host
        synchronisation (buffers are kept where a term is not finite; ``check_terms`` raises)."""
        with full_precision(self.device.type):  # the estimator maths stays fp32 under bf16-mixed
            return call_without_host_sync(self.estimator, terms)

    def _training_forward(self, batch: Any) -> Tuple[EstimatorOutput, Tensor, SampleTerms, Any]:
        terms, extra = self.training_terms(batch)
        output, finite = self.estimate(terms)
        return output, finite, terms, extra

    def training_forward(self, batch: Any) -> Tuple[EstimatorOutput, Any]:
        """``(estimator output, extra)`` of a training batch, through the compiled step when
        ``compile`` is on; the host checks follow the step (``check_terms``)."""
        forward = self._compiled_step if self._compiled_step is not None else self._training_forward
        output, finite, terms, extra = forward(batch)
        self.check_terms(terms, finite)
        return output, extra

    def run_estimator(self, terms: SampleTerms) -> EstimatorOutput:
        """``self.estimator(terms)`` in fp32, checked (``check_terms``): for eager callers."""
        output, finite = self.estimate(terms)
        self.check_terms(terms, finite)
        return output

    def estimator_output(self, batch: Any, generator: Optional[torch.Generator] = None) -> EstimatorOutput:
        """The estimator's output on one training batch, eager (fresh attention samples each call,
        from ``generator``, or torch's global stream when None): what the gradient probe draws."""
        terms, _ = self.training_terms(batch, generator)
        return self.run_estimator(terms)

    def log_estimator_output(self, output: EstimatorOutput, batch_size: int) -> Tensor:
        """Check ``output`` is finite, log ``train/loss`` and ``train/<metric>``; returns the loss."""
        self.check_finite_output(output)
        self.log("train/loss", output.loss, prog_bar=True, batch_size=batch_size)
        for name, value in output.metrics.items():
            self.log(f"train/{name}", value, batch_size=batch_size)
        return output.loss

    # ----------------------------------------------------------------- the compiled step
    def configure_model(self) -> None:
        """Compile the training step if asked (lazily: on its first call)."""
        if self.compile_settings is not None and self._compiled_step is None:
            self._compiled_step = CompiledStep(self._training_forward, self.compile_settings, announce=self._say)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._compiled_step is not None:
            self._compiled_step.finish_first_step()

    def _say(self, line: str) -> None:
        if self.global_rank == 0:
            print(line, file=sys.stderr, flush=True)

    # ----------------------------------------------------------------- optimizers
    def configure_optimizers(self) -> Any:
        return configure_optimizers(list(self.parameters()), self.gradient_groups().get("inference", []), self.optimizer_factory,
                                    self.lr_scheduler_factory, self.inference_lr, self.monitor,
                                    validates=self._trainer is None or self._trainer.limit_val_batches != 0)

    # ----------------------------------------------------------------- loading
    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, map_location=None, hparams_file=None, strict=None,
                             weights_only=None, **kwargs):
        """Lightning's ``load_from_checkpoint``, always with ``weights_only=True`` (URLs too:
        Lightning's default there would unpickle arbitrary code); an unsafe or unreadable file
        is a ``CheckpointError`` naming it.

        The model class a checkpoint of the ``ram`` command names (``_class_path``, trusted: checked
        by ``load_checkpoint_file`` before any import) is imported first, since Lightning accepts only
        a class already imported: so that the paths older checkpoints name (``ram_lightning.classifier``,
        an alias module now) still load."""
        if weights_only is False:
            raise CheckpointError(f"checkpoint {checkpoint_path}: loads with weights_only off are not allowed (they can run code)")
        if isinstance(checkpoint_path, (str, os.PathLike)):
            checkpoint = load_checkpoint_file(checkpoint_path)  # one clear error for a missing, unsafe or broken file
            class_path = (checkpoint.get("hyper_parameters") or {}).get("_class_path")
            if isinstance(class_path, str):
                import_class(class_path, what="model")
        return super().load_from_checkpoint(checkpoint_path, map_location, hparams_file, strict, weights_only=True, **kwargs)
