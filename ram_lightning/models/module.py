"""EstimatorModule: what every LightningModule trained by an estimator plug-in shares.

Subclasses (``AttentionClassifier``, ``AttentionCaptioner``) build their networks, set
``self.estimator`` and its heads with ``build_estimator_heads``, build ``SampleTerms`` with
``sample_terms_from`` (both in ``ram_lightning.models.estimator_inputs``), and implement
``estimator_output(batch)`` and ``gradient_groups()``.
This base class gives them:

- ``log_estimator_output``: logs ``train/loss`` and ``train/<metric>`` after checking that
  they are finite (a ``NonFiniteError`` names the step, the estimator and the quantity;
  under DDP the processes agree first, so none is left waiting in the all-reduce);
- a gradient check before every optimizer step and a refusal to checkpoint non-finite state;
- a random stream per DDP process (``ram_lightning.models.streams``), and a private evaluation
  stream (``eval_stream``): validation, test and prediction draw their attention samples
  from a generator seeded from (run seed, rank, stage, global step), so training draws never
  depend on how often or how much one evaluates, and an evaluation at step N is the same
  whatever evaluations came before it;
- ``configure_optimizers`` with q's parameters in their own group when ``inference_lr`` is set.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Dict, List, Optional, Tuple

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from estimators import Estimator, EstimatorOutput, SampleTerms
from estimators.base import call_without_host_sync, check_finite_terms
from estimators.registry import estimator_name
from ram_lightning.models.compiled_step import CompiledStep, CompileOption, compile_settings
from estimators.spec import estimator_spec
from ram_lightning.models.streams import run_seed, seed_rank_stream, stream_seed
from ram_lightning.errors import NonFiniteError, UserError
from ram_lightning.core.precision import full_precision
from ram_lightning.models.estimator_inputs import EstimatorInputs
from ram_lightning.models.finite import first_non_finite


# Tags of the private random streams (one generator per evaluation stage, reseeded each epoch).
STREAMS = {"validate": 1, "test": 2, "predict": 3, "probe": 4}


def _factory_name(factory: Any) -> str:
    """The class an optimizer / scheduler factory builds (jsonargparse gives a functools.partial
    whose first class argument is it)."""
    args = getattr(factory, "args", ())
    target = next((a for a in args if isinstance(a, type)), None) or getattr(factory, "func", factory)
    return f"{getattr(target, '__module__', '')}.{getattr(target, '__qualname__', type(target).__qualname__)}".lstrip(".")


def default_optimizer(params) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=1e-3)


class EstimatorModule(EstimatorInputs, pl.LightningModule):
    """Base class; see the module docstring.

    Args:
        optimizer: optimizer factory over the parameters (or parameter groups).
        lr_scheduler: optional scheduler factory; plateau schedulers watch ``monitor``.
        inference_lr: learning rate of the inference network q (None: the optimizer's own).
        monitor: the metric a scheduler watches.
        compile: compile the training step (``ram_lightning.models.compiled_step``): false, true, auto,
            or ``torch.compile`` options such as ``{mode: reduce-overhead}``.
    """

    estimator: Estimator

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
    def estimator_output(self, batch: Any, generator: Optional[torch.Generator] = None) -> EstimatorOutput:
        """The estimator's output on one training batch (fresh attention samples each call,
        from ``generator``, or torch's global stream when None)."""
        raise NotImplementedError

    def gradient_groups(self) -> Dict[str, List[nn.Parameter]]:
        """Parameters by module group, e.g. ``{"policy": [...], "inference": [...], ...}``: the policy p
        and (if any) q under those two names (q's own learning rate uses "inference"), and any
        other groups worth watching in the gradient diagnostics."""
        raise NotImplementedError

    def save_estimator_spec(self) -> None:
        """Put ``self.estimator`` in the hyperparameters as class path + options (not the
        instance), so that ``load_from_checkpoint(path)`` alone rebuilds it."""
        # Checkpoints save ``hparams``; the loggers record ``hparams_initial``, which keeps the
        # estimator out (``tracking.WandbRunInfo`` records its repr).
        self.hparams["estimator"] = estimator_spec(self.estimator)

    # ----------------------------------------------------------------- random streams
    def private_stream(self, name: str) -> torch.Generator:
        """A new generator on this module's device for the stream ``name`` (a key of ``STREAMS``),
        seeded from (run seed, process rank, stream, global step); torch's global stream is untouched."""
        generator = torch.Generator(device=self.device)
        generator.manual_seed(stream_seed(run_seed(), self.global_rank, STREAMS[name], self.global_step))
        return generator

    def eval_stream(self) -> torch.Generator:
        """The generator evaluation draws from in the current validation / test / predict epoch."""
        if self._eval_stream is None or self._eval_stream.device != self.device:
            self._eval_stream = self.private_stream("validate")
        return self._eval_stream

    def on_validation_epoch_start(self) -> None:
        self._eval_stream = self.private_stream("validate")

    def on_test_epoch_start(self) -> None:
        self._eval_stream = self.private_stream("test")

    def on_predict_epoch_start(self) -> None:
        self._eval_stream = self.private_stream("predict")

    # ----------------------------------------------------------------- training output
    def training_terms(self, batch: Any) -> Tuple[SampleTerms, Any]:  # pragma: no cover - abstract
        """``(terms, extra)`` of a training batch: the SampleTerms the estimator gets (drawn from
        torch's global stream) and whatever else the model's training step logs (or None).
        Traceable by ``torch.compile`` as a whole: no host synchronisation, no data-dependent branch."""
        raise NotImplementedError

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

    def run_estimator(self, terms: SampleTerms) -> EstimatorOutput:
        """``self.estimator(terms)`` in fp32, checked (``check_terms``): for eager callers."""
        output, finite = self.estimate(terms)
        self.check_terms(terms, finite)
        return output

    def check_terms(self, terms: SampleTerms, finite: Tensor) -> None:
        """Raise the estimator's NonFiniteError if a term was not finite (one host synchronisation);
        under DDP the processes first agree whether any was, so that none is left waiting in the
        gradient all-reduce while another stops."""
        error: Optional[NonFiniteError] = None
        if not bool(finite):
            try:
                check_finite_terms(self.estimator, terms)
            except NonFiniteError as raised:
                error = raised
        if self._trainer is not None and self.trainer.world_size > 1:
            if self.trainer.strategy.reduce_boolean_decision(error is not None, all=False) and error is None:
                raise NonFiniteError(f"training stopped at step {self.global_step}: estimator "
                                     f"{estimator_name(self.estimator)} was given non-finite terms on another process")
        if error is not None:
            raise error

    def log_estimator_output(self, output: EstimatorOutput, batch_size: int) -> Tensor:
        """Check ``output`` is finite, log ``train/loss`` and ``train/<metric>``; returns the loss."""
        self.check_finite_output(output)
        self.log("train/loss", output.loss, prog_bar=True, batch_size=batch_size)
        for name, value in output.metrics.items():
            self.log(f"train/{name}", value, batch_size=batch_size)
        return output.loss

    # ----------------------------------------------------------------- divergence checks
    def _stop(self, what: str, value: float) -> NonFiniteError:
        return NonFiniteError(
            f"training stopped at step {self.global_step}: estimator {estimator_name(self.estimator)} produced "
            f"a non-finite {what} ({value}); no checkpoint was written from this state"
        )

    def check_finite_output(self, output: EstimatorOutput) -> None:
        """Raise NonFiniteError if the loss or an estimator metric is NaN or infinite.

        Under DDP the processes agree first (any process's bad value stops every process), so
        none is left waiting in the gradient all-reduce.
        """
        bad = first_non_finite([("train/loss", output.loss)] + [(f"train/{k}", v) for k, v in output.metrics.items()])
        anywhere = bad is not None
        if self._trainer is not None:
            anywhere = self.trainer.strategy.reduce_boolean_decision(anywhere, all=False)
        if bad is not None:
            raise self._stop(*bad)
        if anywhere:
            raise self._stop("loss or metric on another process", float("nan"))

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Raise NonFiniteError, naming the first parameter, if a gradient is NaN or infinite.

        Skipped under 16-bit mixed precision, whose gradient scaler expects occasional
        infinite gradients and skips those steps itself. Gradients are all-reduced already,
        so every DDP process decides alike.
        """
        if getattr(self.trainer.precision_plugin, "scaler", None) is not None:
            return
        bad = first_non_finite((name, p.grad) for name, p in self.named_parameters())
        if bad is not None:
            raise self._stop(f"gradient of {bad[0]}", bad[1])

    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        """Refuse to write a checkpoint whose weights or buffers (estimator state) are not finite."""
        bad = first_non_finite(checkpoint.get("state_dict", {}).items())
        if bad is not None:
            raise NonFiniteError(
                f"refusing to write a checkpoint at step {self.global_step}: {bad[0]} is non-finite ({bad[1]}) "
                f"(estimator {estimator_name(self.estimator)})"
            )

    # ----------------------------------------------------------------- hooks
    def setup(self, stage: str) -> None:
        """Under DDP, give each process its own random stream (see ``ram_lightning.models.streams``)."""
        if self._trainer is not None:
            seed_rank_stream(self.global_rank, self.trainer.world_size)

    def configure_optimizers(self) -> Any:
        params: Any = self.parameters()
        q_params = self.gradient_groups().get("inference", [])
        if self.inference_lr is not None and q_params:
            q_ids = {id(p) for p in q_params}
            params = [
                {"params": [p for p in self.parameters() if id(p) not in q_ids]},
                {"params": q_params, "lr": self.inference_lr},
            ]
        try:
            optimizer = self.optimizer_factory(params)
        except ValueError as error:  # torch.optim's checks: "Invalid learning rate: -0.001", ...
            raise UserError(f"model.optimizer ({_factory_name(self.optimizer_factory)}): {error}") from None
        if self.lr_scheduler_factory is None:
            return optimizer
        try:
            scheduler = self.lr_scheduler_factory(optimizer)
        except ValueError as error:
            raise UserError(f"model.lr_scheduler ({_factory_name(self.lr_scheduler_factory)}): {error}") from None
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor}}

    # ----------------------------------------------------------------- loading
    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, map_location=None, hparams_file=None, strict=None,
                             weights_only=None, **kwargs):
        """Lightning's ``load_from_checkpoint``, always with ``weights_only=True`` (URLs too:
        Lightning's default there would unpickle arbitrary code); an unsafe or unreadable file
        is a ``CheckpointError`` naming it."""
        from ram_lightning.run.checkpoint_io import CheckpointError, load_checkpoint_file

        if weights_only is False:
            raise CheckpointError(f"checkpoint {checkpoint_path}: loads with weights_only off are not allowed (they can run code)")
        if isinstance(checkpoint_path, (str, os.PathLike)):
            load_checkpoint_file(checkpoint_path)  # one clear error for a missing, unsafe or broken file
        return super().load_from_checkpoint(checkpoint_path, map_location, hparams_file, strict, weights_only=True, **kwargs)
