"""What one run of a comparison reports: ``summary.json`` in the run's log folder.

    trainer:
      callbacks+:
        - class_path: ram_lightning.diagnostics.RunSummary
          init_args: {probe_draws: 16}

``ram compare`` adds this callback to every run it launches (``ram_lightning.compare``); a
plain ``ram fit`` may use it too. It records, on the process of rank 0:

- ``curve``: ``[{"update", "seconds", "val_error"}]`` at every validation (``seconds``: the
  training time so far, validation excluded), kept in checkpoints so that a resumed run goes on;
- at the end of fitting, the final diagnostics on one validation batch: gradient variance,
  signal and SNR per module group (``probe_draws`` draws), for estimators that sample from q
  the KL(q || p) per glimpse and whether q uses the label, and the histogram of chosen scales
  over ``scale_batches`` validation batches. They draw from the model's private "probe"
  stream: the training random stream is untouched;
- after testing: ``test_error`` and ``test_error_avg<M>``, the precision, whether the training
  step was compiled, the updates made; then ``summary.json`` is written (atomically).

Classifiers only (the curve is ``val/error``).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytorch_lightning as pl

from ram_lightning.diagnostics.attention import kl_proposal_prior_per_glimpse, label_use, scale_histogram
from ram_lightning.diagnostics.probe import gradient_summaries

SUMMARY_FILE = "summary.json"


def write_text_atomically(path: Path, text: str) -> None:
    """``text`` at ``path``, never half-written (a temporary file beside it, then renamed)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(text)
    os.replace(partial, path)


def write_json_atomically(path: Path, value: Any) -> None:
    """``value`` as JSON at ``path``, never half-written."""
    write_text_atomically(path, json.dumps(value, indent=1))


class RunSummary(pl.Callback):
    """Writes ``<log_dir>/summary.json`` after ``ram fit``'s test (see the module docstring).

    Args:
        probe_draws: draws of the training loss for the final gradient variance (>= 2).
        scale_batches: validation batches for the final scale histogram.
    """

    def __init__(self, probe_draws: int = 16, scale_batches: int = 8) -> None:
        if probe_draws < 2 or scale_batches < 1:
            raise ValueError(f"RunSummary: probe_draws must be >= 2 and scale_batches >= 1, got {probe_draws}, {scale_batches}")
        self.probe_draws, self.scale_batches = probe_draws, scale_batches
        self.train_seconds = 0.0
        self.curve: List[dict] = []
        self.final: Dict[str, Any] = {}
        self._start: Optional[float] = None

    def state_dict(self) -> Dict[str, Any]:
        return {"train_seconds": self.train_seconds, "curve": list(self.curve)}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        self.train_seconds = float(state_dict.get("train_seconds", 0.0))
        self.curve = list(state_dict.get("curve", []))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._start is not None:
            self.train_seconds += time.perf_counter() - self._start
            self._start = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        error = trainer.callback_metrics.get("val/error")  # the epoch's value is there by now (not yet at epoch end)
        if trainer.sanity_checking or error is None:
            return
        point = {"update": int(trainer.global_step), "seconds": round(self.train_seconds, 3), "val_error": float(error)}
        self.curve = [p for p in self.curve if p["update"] != point["update"]] + [point]

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.interrupted or not trainer.is_global_zero:
            return
        ess, log_marginal = (trainer.callback_metrics.get(f"train/{k}") for k in ("ess", "log_marginal"))
        capped = bool(trainer.max_steps and trainer.max_steps > 0 and trainer.global_step < trainer.max_steps)
        # taken now: testing the best checkpoint afterwards restores this callback's state as it was then
        self.final = {"updates": int(trainer.global_step), "capped": capped, "train_seconds": round(self.train_seconds, 3),
                      "curve": list(self.curve),
                      "ess": None if ess is None else float(ess),
                      "log_marginal": None if log_marginal is None else float(log_marginal),
                      **final_diagnostics(trainer, pl_module, self.probe_draws, self.scale_batches)}

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or not self.final or trainer.log_dir is None:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
        samples = getattr(pl_module, "eval_samples", None)
        summary = {
            **self.final,
            "test_error": metrics.get("test/error"),
            "test_error_avg": metrics.get(f"test/error_avg{samples}"), "eval_samples": samples,
            "precision": str(trainer.precision),
            "compiled": bool(getattr(pl_module, "_compiled_step", None) is not None),
        }
        write_json_atomically(Path(trainer.log_dir) / SUMMARY_FILE, summary)


def final_diagnostics(trainer: pl.Trainer, pl_module: pl.LightningModule, probe_draws: int, scale_batches: int) -> dict:
    """Gradient summaries per module group on the first validation batch, q's KL to p and label
    use (estimators that sample from q), and the scale histogram; all from private streams."""
    loaders = trainer.val_dataloaders
    loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders
    if loader is None:
        return {}
    was_training = pl_module.training
    pl_module.train()
    batch = [t.to(pl_module.device) for t in next(iter(loader))]
    generator = pl_module.private_stream("probe")
    try:
        with trainer.precision_plugin.forward_context():
            summaries = gradient_summaries(pl_module, batch, probe_draws, generator)
            result: Dict[str, Any] = {"gradients": {g: {k: float(v) for k, v in s.items()} for g, s in summaries.items()}}
            plan = getattr(pl_module, "plan", None)
            if plan is not None and plan.source == "proposal":
                kl = kl_proposal_prior_per_glimpse(pl_module, *batch, plan.num_samples, generator)
                result["kl_q_p_per_glimpse"] = [float(v) for v in kl]
                result["label_use"] = label_use(pl_module, *batch, plan.num_samples, generator)
            batches = ([t.to(pl_module.device) for t in b] for _, b in zip(range(scale_batches), loader))
            histogram = scale_histogram(pl_module, batches, generator)
    finally:
        pl_module.train(was_training)
    result["scale_histogram"] = None if histogram is None else [float(v) for v in histogram]
    return result
