"""Mixed precision: which parts of the model may run in bf16 and which must stay in fp32.

Under ``--trainer.precision bf16-mixed`` Lightning runs the training step inside
``torch.autocast``: matrix products, convolutions and the LSTM cells then run in bf16 (8
significant bits, about 3 decimal digits). That is plenty for features, but not for the
quantities the gradient estimators are built from: a log-density summed over glimpses, an
importance weight exp(log p - log q) or a softmax over samples computed in bf16 carries
errors of order 0.01-0.1 nats, which the weights turn into errors of percents. So:

- the small heads that parameterise a distribution (the glimpse policy and q, the class head,
  the learned baseline, the captioner's attention scorer) are ``Float32Linear``: they upcast
  their (bf16) input and compute in fp32 whatever autocast says, and every density computed
  from their outputs is fp32;
- large output layers (the captioner's vocabulary) multiply in bf16 and the model upcasts the
  logits (``float32``) before the log-softmax;
- the estimators run with autocast switched off (``full_precision``) on fp32 ``SampleTerms``;
- a sequence LSTM (``nn.LSTM``, the captioner's caption encoder) runs in bf16 only where the
  backend has a bf16 kernel for it (``sequence_rnn_precision``): oneDNN has none on CPUs
  without AVX-512 (it fails there with "could not create a primitive descriptor"), so on
  those it runs in fp32.

The parameters stay fp32 (autocast casts a bf16 copy of each weight once per step for the
products), so the optimizer updates fp32 master weights.
"""
from __future__ import annotations

import contextlib
import functools
from typing import ContextManager

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def full_precision(device_type: str = "cpu") -> ContextManager:
    """A context in which autocast is off for ``device_type`` (what runs inside computes in the dtype
    of its inputs)."""
    if device_type not in ("cpu", "cuda", "xpu", "mps", "hpu"):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, enabled=False)


def float32(tensor: Tensor) -> Tensor:
    """``tensor`` as fp32 if it is a lower-precision float (bf16, fp16); other tensors unchanged."""
    if tensor.is_floating_point() and tensor.dtype != torch.float64 and tensor.dtype != torch.float32:
        return tensor.float()
    return tensor


class Float32Linear(nn.Linear):
    """``nn.Linear`` that computes in fp32 also under autocast: input [..., in] (any float dtype) ->
    fp32 output [..., out]. For the small heads whose outputs parameterise a distribution; the
    state-dict keys are those of ``nn.Linear``. An fp64 layer computes in fp64."""

    def forward(self, input: Tensor) -> Tensor:
        with full_precision(input.device.type):
            weight, bias = float32(self.weight), None if self.bias is None else float32(self.bias)
            return F.linear(float32(input).to(weight.dtype), weight, bias)


@functools.lru_cache(maxsize=None)
def cpu_has_bf16_lstm() -> bool:
    """Whether this CPU's ``nn.LSTM`` kernel (oneDNN) runs in bf16, found by running a 1-unit LSTM
    under bf16 autocast once (oneDNN refuses to build a bf16 LSTM on x86 CPUs without AVX-512)."""
    lstm = nn.LSTM(1, 1)
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            lstm(torch.zeros(1, 1, 1))
    except RuntimeError:
        return False
    return True


@torch.compiler.assume_constant_result
def _cpu_has_bf16_lstm_constant() -> bool:
    """``cpu_has_bf16_lstm()``, which a compiled step asks at trace time and keeps as a constant
    (tracing the probe itself would put its throw-away LSTM into the graph)."""
    return cpu_has_bf16_lstm()


def sequence_rnn_precision(device: torch.device) -> ContextManager:
    """The context to run a sequence RNN (``nn.LSTM``) on ``device`` in: autocast off on a CPU whose
    LSTM kernel has no bf16 path (its fp32 inputs and weights then compute in fp32), else nothing."""
    if device.type == "cpu" and torch.is_autocast_enabled("cpu") and not _cpu_has_bf16_lstm_constant():
        return full_precision("cpu")
    return contextlib.nullcontext()
