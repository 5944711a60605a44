"""One training run of the lab: a variant, a seed, a budget -> a JSON-ready result dict.

Every run uses the same architecture (the WS-RAM settings), data, optimizer and K; only the
estimator variant and the seed differ. The seed sets the initial weights, the training
images and the attention draws; the validation and test images are the same for every run
(fixed by the data's own seed). Evaluation and the final diagnostics draw from private
random streams, so they never change what training sees.
"""
from __future__ import annotations

import datetime
import time
from typing import Dict, List, Optional

import pytorch_lightning as pl
import torch

from benchmarks.lab.variants import Variant, make_estimator
from benchmarks.training_steps import autocast
from datamodules import TranslatedScaledMNIST
from ram_lightning.diagnostics.probe import gradient_summaries
from ram_lightning.models.classifier import AttentionClassifier
from ram_lightning.diagnostics.attention import kl_proposal_prior_per_glimpse, label_use, scale_histogram

# The WS-RAM architecture (12x12 retina, 3 patches, 3 scale actions, 6 glimpses).
MODEL = dict(glimpse_size=12, num_patches=3, num_glimpses=6, scales=[0.5, 1.0, 2.0], glimpse_hidden=128,
             glimpse_features=256, context_size=12, location_std=0.1, eval_samples=10)
DATA_SEED = 0  # fixes the validation split and the validation / test images for every run
PROBE_DRAWS = 16


class Recorder(pl.Callback):
    """Training wall-clock (validation excluded) and the validation curve."""

    def __init__(self, label: str, seed: int) -> None:
        self.label, self.seed = label, seed
        self.train_seconds = 0.0
        self.curve: List[dict] = []
        self.last_metrics: Dict[str, float] = {}
        self._start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.train_seconds += time.perf_counter() - self._start
        self.last_metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")}

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        error = float(trainer.callback_metrics["val/error"])
        self.curve.append({"update": trainer.global_step, "seconds": self.train_seconds, "val_error": error})
        print(f"  [{self.label} seed {self.seed}] update {trainer.global_step:6d}  {self.train_seconds:7.1f} s  "
              f"val/error {error:.4f}", flush=True)


def build_model(variant: Variant, budget: dict, model_args: dict, image_shape=(1, 60, 60), num_classes: int = 10) -> AttentionClassifier:
    """The architecture every variant is trained with; only the estimator differs."""
    settings = {**MODEL, "hidden_size": budget["hidden_size"], "compile": budget.get("compile", False), **model_args}
    learning_rate = budget["learning_rate"]
    return AttentionClassifier(
        image_shape=image_shape, num_classes=num_classes, **settings,
        estimator=make_estimator(variant, budget["num_samples"]),
        optimizer=lambda params: torch.optim.Adam(params, lr=learning_rate),
    )


def make_data(budget: dict, data_dir: Optional[str], source: str) -> TranslatedScaledMNIST:
    extra = {k: budget[k] for k in ("train_size", "test_size") if budget.get(k)}
    return TranslatedScaledMNIST(data_dir=data_dir, source=source, batch_size=budget["batch_size"], seed=DATA_SEED, **extra)


def time_updates(variants: List[Variant], budget: dict, model_args: dict, steps: int, seed: int = 0) -> Dict[str, float]:
    """Median seconds of one full update (sample, loss, backward, Adam) per variant on one fixed
    random batch on the CPU, in the budget's precision (compiled where the budget says so: the
    first two steps, which compile, are not timed), the variants interleaved step by step so
    that machine load hits all alike."""
    torch.manual_seed(seed)
    images = torch.rand(budget["batch_size"], 1, 60, 60)
    targets = torch.randint(0, 10, (budget["batch_size"],))
    runs = {}
    for variant in variants:
        model = build_model(variant, budget, model_args).train()
        model.configure_model()  # the compiled step, if the budget or the model arguments ask for it
        runs[variant.label] = (model, model.configure_optimizers())
    times: Dict[str, List[float]] = {label: [] for label in runs}
    for step in range(steps + 2):
        for label, (model, optimizer) in runs.items():
            start = time.perf_counter()
            with autocast(budget["precision"], torch.device("cpu")):
                loss = model.training_forward((images, targets))[0].loss  # the step training runs
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step >= 2:  # two warm-up steps
                times[label].append(time.perf_counter() - start)
    return {label: sorted(values)[len(values) // 2] for label, values in times.items()}


def final_diagnostics(model: AttentionClassifier, data: TranslatedScaledMNIST, budget: dict) -> dict:
    """Gradient variance / signal / SNR per module group on one validation batch, and for
    estimators that sample from q: KL(q || p) per glimpse and label use; the scale histogram."""
    model.train()
    batch = [t.to(model.device) for t in next(iter(data.val_dataloader()))]
    generator = model.private_stream("probe")
    summaries = gradient_summaries(model, batch, PROBE_DRAWS, generator)
    gradients = {name: {k: float(v) for k, v in summary.items()} for name, summary in summaries.items()}
    result: dict = {"gradients": gradients}
    if model.plan.source == "proposal":
        K = model.plan.num_samples
        result["kl_q_p_per_glimpse"] = [float(v) for v in kl_proposal_prior_per_glimpse(model, *batch, K, generator)]
        result["label_use"] = label_use(model, *batch, K, generator)
    val_batches = (b for _, b in zip(range(budget["val_size"] // budget["batch_size"]), data.val_dataloader()))
    histogram = scale_histogram(model, val_batches, generator)
    result["scale_histogram"] = None if histogram is None else [float(v) for v in histogram]
    return result


def run_one(variant: Variant, seed: int, budget: dict, model_args: dict, data_dir: Optional[str] = None,
            source: str = "mnist", accelerator: str = "auto", max_minutes: Optional[float] = None) -> dict:
    """Train ``variant`` from ``seed`` for the budget's updates (or until ``max_minutes`` of
    training), test on the test set, and measure the final diagnostics."""
    pl.seed_everything(seed, workers=True, verbose=False)
    data = make_data(budget, data_dir, source)
    data.prepare_data()
    data.setup("fit")
    model = build_model(variant, budget, model_args, data.image_shape, data.num_classes)
    recorder = Recorder(variant.label, seed)
    trainer = pl.Trainer(
        max_steps=budget["updates"], val_check_interval=budget["val_every"], check_val_every_n_epoch=None,
        limit_val_batches=max(1, budget["val_size"] // budget["batch_size"]), num_sanity_val_steps=0,
        max_time=None if max_minutes is None else datetime.timedelta(minutes=max_minutes),
        accelerator=accelerator, devices=1, precision=budget["precision"], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[recorder],
    )
    print(f"== {variant.label} seed {seed}: {budget['updates']} updates, B={budget['batch_size']}, "
          f"K={model.plan.num_samples}", flush=True)
    trainer.fit(model, datamodule=data)
    test = trainer.test(model, datamodule=data, verbose=False)[0]
    result = {
        "label": variant.label, "estimator": variant.estimator, "options": variant.options, "seed": seed,
        "model_args": model_args, "precision": budget["precision"],
        "updates": trainer.global_step, "capped": trainer.global_step < budget["updates"],
        "test_error": test["test/error"], "test_error_avg10": test[f"test/error_avg{model.eval_samples}"],
        "curve": recorder.curve, "train_seconds": recorder.train_seconds,
        "ess": recorder.last_metrics.get("train/ess"), "log_marginal": recorder.last_metrics.get("train/log_marginal"),
    }
    result.update(final_diagnostics(model, data, budget))
    return result

