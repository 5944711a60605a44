"""The training precision a run uses when its config leaves ``trainer.precision`` null.

``ram_lightning/defaults.yaml`` sets ``trainer.precision: null``; ``fill_run_defaults`` then asks
:func:`choose_precision` and says in one line what it chose and why:

    bf16-mixed   the run's device multiplies bf16 natively: a CPU with AVX512-BF16 or AMX
                 (x86) or the BF16 extension (Arm), a CUDA GPU that supports bf16 (Ampere or later)
    32-true      elsewhere (bf16 would be emulated, slower than fp32)

A precision given in a config or on the command line (``--trainer.precision 32-true``) is never
changed; a bf16 one on a CPU without a native unit gets a warning line (``emulated_bf16_warning``).
Under ``bf16-mixed`` the products run in bf16 and the estimator maths in fp32
(``ram_lightning.core.precision``).
"""
from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Optional, Tuple

import torch

BF16 = "bf16-mixed"
FP32 = "32-true"


def cpu_bf16_unit() -> Optional[str]:
    """The name of this CPU's native bf16 matrix unit, or None if it has none (or it cannot tell)."""
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64", "i686", "x86"):
        checks = (("AMX", "_is_amx_tile_supported"), ("AVX512-BF16", "_is_avx512_bf16_supported"))
        for name, function in checks:
            try:
                if getattr(torch.cpu, function)():
                    return name
            except (AttributeError, RuntimeError):  # a torch without the probe: cannot tell
                continue
        return None
    if machine in ("arm64", "aarch64"):
        return "Arm BF16" if _arm_has_bf16() else None
    return None


def _arm_has_bf16() -> bool:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        return any(line.startswith("Features") and " bf16" in f" {line.split(':', 1)[-1]} " for line in cpuinfo.read_text().splitlines())
    try:  # macOS
        out = subprocess.run(["sysctl", "-n", "hw.optional.arm.FEAT_BF16"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() == "1"
    except (OSError, subprocess.SubprocessError):
        return False


def _uses_cuda(accelerator: object) -> bool:
    name = str(accelerator or "auto").lower()
    return name in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def choose_precision(accelerator: object = "auto") -> Tuple[str, str]:
    """``(precision, reason)`` for a run on ``accelerator`` (the Trainer's value: auto, cpu, gpu, cuda, ...)."""
    if _uses_cuda(accelerator):
        name = torch.cuda.get_device_name(0)
        if torch.cuda.is_bf16_supported():
            return BF16, f"the GPU ({name}) supports bf16"
        return FP32, f"the GPU ({name}) does not support bf16"
    if str(accelerator or "auto").lower() not in ("auto", "cpu"):
        return FP32, f"no bf16 choice is made for accelerator {accelerator!r}"
    unit = cpu_bf16_unit()
    if unit is not None:
        return BF16, f"this CPU multiplies bf16 natively ({unit})"
    return FP32, "this CPU has no native bf16 matrix unit (bf16 would be emulated, slower than fp32)"


def precision_line(precision: str, reason: str) -> str:
    """The line a run prints about its automatic choice."""
    return f"Precision: {precision}, chosen because {reason}; set trainer.precision to choose another"


def emulated_bf16_warning(precision: object, accelerator: object = "auto") -> Optional[str]:
    """The warning for an explicitly chosen bf16 precision on a CPU that would emulate it, else None."""
    if not str(precision).startswith("bf16") or _uses_cuda(accelerator):
        return None
    if str(accelerator or "auto").lower() not in ("auto", "cpu") or cpu_bf16_unit() is not None:
        return None
    return (f"ram: warning: trainer.precision {precision} on a CPU with no native bf16 matrix unit: its bf16 "
            "products are emulated and run many times slower than 32-true")
