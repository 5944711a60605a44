"""The training steps the throughput benchmark times, in either precision, eager or compiled,
and interleaved timing.

A step is one full optimizer step without a Lightning Trainer: ``model.training_forward`` (the
model's training forward: context network + rollout + heads + the estimator's surrogate, autocast
off inside the estimator; then the host check of the terms), ``backward()``, ``Adam.step()`` and
``zero_grad``. Under ``bf16-mixed`` the forward runs in ``torch.autocast(device, bfloat16)``
exactly as Lightning's ``bf16-mixed`` precision runs it (fp32 weights, bf16 products, fp32
gradients and optimizer). A compiled step is the same with the model option ``compile`` set
(``ram_lightning.models.compiled_step``): the training forward compiled whole, as ``ram fit`` runs it.
"""
from __future__ import annotations

import contextlib
import time
from typing import Callable, ContextManager, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from benchmarks.step_costs import synchronize
from estimators import Reinforce, WakeSleepCV
from ram_lightning.models.captioner import SPECIAL_TOKENS, AttentionCaptioner
from ram_lightning.models.classifier import AttentionClassifier
from ram_lightning.models.compiled_step import compile_settings

PRECISIONS = ("32-true", "bf16-mixed")
SEED = 0
# The classifier of the benchmark: the AttentionClassifier defaults on 60x60 single-channel images.
CLASSIFIER = dict(image_shape=(1, 60, 60), num_classes=10, glimpse_size=12, num_patches=3, num_glimpses=6, hidden_size=256)
# The captioner of configs/flickr8k.yaml on precomputed 7x7x1280 features, a
# Flickr8k-sized vocabulary and 16-word captions.
CAPTIONER = dict(embedding_size=256, hidden_size=512, attention_size=256, encoder="cnn", encoder_channels=(8, 1280))
CAPTION_VOCABULARY, CAPTION_WORDS, CAPTION_GRID = 2500, 16, (49, 1280)

Step = Callable[[], Tensor]


def step_variants(device: torch.device, compiled: bool) -> Dict[str, Tuple[str, Optional[object]]]:
    """The steps timed: name -> (precision, the ``compile`` option or None). Eager in both
    precisions; with ``compiled``, the compiled step in both (on CUDA also CUDA-graphed:
    ``{mode: reduce-overhead}``)."""
    variants: Dict[str, Tuple[str, Optional[object]]] = {p: (p, None) for p in PRECISIONS}
    if compiled:
        variants.update({f"compiled {p}": (p, True) for p in PRECISIONS})
        if device.type == "cuda":
            variants.update({f"CUDA-graphed {p}": (p, {"mode": "reduce-overhead"}) for p in PRECISIONS})
    return variants


def autocast(precision: str, device: torch.device) -> ContextManager:
    """The context Lightning's ``precision`` runs the forward in (``32-true``: none)."""
    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision != "32-true":
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return contextlib.nullcontext()


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, precision: str, device: torch.device,
          batch: object, compile: Optional[object]) -> Step:
    if compile is not None:  # as the model option does it in ram fit
        model.compile_settings = compile_settings(compile)
        model.configure_model()

    def step() -> Tensor:
        with autocast(precision, device):
            loss = model.training_forward(batch)[0].loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    return step


def classifier_step(num_samples: int, batch_size: int, device: torch.device, precision: str = "32-true",
                    compile: Optional[object] = None) -> Tuple[AttentionClassifier, torch.optim.Optimizer, Tuple[Tensor, Tensor], Step]:
    """(model, optimizer, batch, step) of the classifier with reinforce + learned baseline, K =
    ``num_samples``, on a fixed batch of uniform noise (costs do not depend on pixel values);
    ``compile``: the model option's value (None: eager)."""
    torch.manual_seed(SEED)
    model = AttentionClassifier(**CLASSIFIER, estimator=Reinforce(num_samples=num_samples)).to(device)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images = torch.rand(batch_size, *CLASSIFIER["image_shape"], device=device)
    targets = torch.randint(0, CLASSIFIER["num_classes"], (batch_size,), device=device)
    step = _step(model, optimizer, precision, device, (images, targets), compile)
    return model, optimizer, (images, targets), step


def captioner_step(num_samples: int, batch_size: int, device: torch.device, precision: str = "32-true",
                   compile: Optional[object] = None) -> Tuple[AttentionCaptioner, torch.optim.Optimizer, Dict[str, Tensor], Step]:
    """(model, optimizer, batch, step) of the captioner with wake_sleep_cv on precomputed grid
    features (``CAPTIONER``), K = ``num_samples``."""
    torch.manual_seed(SEED)
    vocabulary = list(SPECIAL_TOKENS) + [f"w{i}" for i in range(CAPTION_VOCABULARY - len(SPECIAL_TOKENS))]
    model = AttentionCaptioner(vocabulary=vocabulary, **CAPTIONER, estimator=WakeSleepCV(num_samples=num_samples)).to(device)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=4e-4)
    words = torch.randint(len(SPECIAL_TOKENS), CAPTION_VOCABULARY, (batch_size, CAPTION_WORDS), device=device)
    bos = torch.full((batch_size, 1), vocabulary.index("<bos>"), device=device)
    eos = torch.full((batch_size, 1), vocabulary.index("<eos>"), device=device)
    captions = torch.cat([bos, words, eos], 1)
    batch = {"features": torch.randn(batch_size, *CAPTION_GRID, device=device), "captions": captions,
             "lengths": torch.full((batch_size,), captions.shape[1], device=device)}
    step = _step(model, optimizer, precision, device, batch, compile)
    return model, optimizer, batch, step


def time_interleaved(steps: Dict[str, Callable[[], object]], device: torch.device, warmup: int, repeats: int) -> Dict[str, List[float]]:
    """Seconds per call of each function, calls interleaved round-robin (so that a change of load
    hits all alike), after ``warmup`` untimed rounds."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    times: Dict[str, List[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            synchronize(device)
            start = time.perf_counter()
            step()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return times
