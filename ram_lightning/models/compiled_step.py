"""The training step compiled whole by ``torch.compile``: the model option ``compile``.

    model:
      init_args:
        compile: true                          # or auto, or {mode: max-autotune}, {mode: reduce-overhead} (CUDA graphs)

What is compiled is the model's training forward (``EstimatorModule.training_forward``): the
rollout or decoder, the heads, ``SampleTerms`` and the estimator's surrogate, captured as one
graph (``fullgraph=True``: a graph break is an error, not a silent slowdown) with static shapes
(``dynamic=False``: a last, smaller batch gets its own graph). Backward runs through the
compiled graph's own backward. Nothing in the step synchronises with the host: the checks that
need it (non-finite terms, loss and gradients) run after it, on the flags the step returns.

Random draws in the compiled step come from torch's global stream through the same kernels as in
eager mode (``fallback_random``), so a compiled run follows the random path of an eager run of the
same seed (up to floating-point rounding). The state dict is untouched: checkpoints of compiled
and eager runs load into either.

``compile: true`` where torch cannot compile (no C++ compiler for the CPU backend, a backend
failure) stops with one line naming the cause; ``compile: auto`` says the same in one line and
trains eagerly.
"""
from __future__ import annotations

import re
import time
from typing import Any, Callable, Dict, Optional, Union

import torch

from ram_lightning.errors import UserError

CompileOption = Union[bool, str, Dict[str, Any]]
# What torch.compile may be given from the config (fullgraph is always on).
KEYS = ("mode", "backend", "dynamic", "options")
MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


# inductor's options unless the config gives its own: the graph's wrapper code in C++, not Python
# (with ~150 GEMM calls a step, the Python wrapper cost ~8 ms of a 75 ms bf16 step at K=5 on a 2-core
# Xeon with AMX; measured with benchmarks.throughput's sizes)
INDUCTOR_OPTIONS = {"cpp_wrapper": True}


def compile_settings(value: CompileOption) -> Optional[Dict[str, Any]]:
    """The ``torch.compile`` keyword arguments a ``compile`` option asks for, with ``auto`` under
    the key ``"auto"``; None for ``false``.

    Raises:
        UserError: a value other than true, false, auto or a mapping of ``KEYS``.
    """
    if value is False or value is None:
        return None
    if value is True or value == "auto":
        return {"fullgraph": True, "dynamic": False, "options": dict(INDUCTOR_OPTIONS), "auto": value == "auto"}
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(KEYS) - {"auto"})
        if unknown:
            raise UserError(f"model.compile: unknown key(s) {', '.join(unknown)}; accepted: {', '.join(KEYS)}, auto")
        if value.get("mode") not in MODES:
            raise UserError(f"model.compile.mode: {value['mode']!r} is not one of {', '.join(str(m) for m in MODES[1:])}")
        settings = {"fullgraph": True, "dynamic": False, "auto": bool(value.get("auto", False)),
                    **{k: v for k, v in value.items() if k != "auto"}}
        if value.get("mode") is None:  # torch.compile takes a mode or options, not both
            settings["options"] = {**INDUCTOR_OPTIONS, **(value.get("options") or {})}
        return settings
    raise UserError(f"model.compile: expected true, false, auto or a mapping such as {{mode: reduce-overhead}}, got {value!r}")


def compiler_problem(device: torch.device, backend: Optional[str]) -> Optional[str]:
    """Why the default backend cannot compile for ``device`` here (CPU: no C++ compiler), or None."""
    if (backend or "inductor") != "inductor" or device.type != "cpu":
        return None
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        get_cpp_compiler()
    except Exception as error:  # torch's InvalidCxxCompiler, or a private API that moved
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return f"torch's CPU compiler backend needs a C++ compiler (g++ or $CXX): {first}"
    return None


class CompiledStep:
    """``fn`` compiled on its first call; see the module docstring. ``finish_first_step()``, called
    after the first optimizer step (whose backward compiles the backward graph), says once how
    long the compilation took.

    Args:
        fn: the training forward to compile (a bound method).
        settings: from :func:`compile_settings`.
        announce: prints one line (the ``ram`` CLI's rank-0 stderr).
    """

    def __init__(self, fn: Callable, settings: Dict[str, Any], announce: Callable[[str], None] = print) -> None:
        import torch._inductor.config as inductor_config

        inductor_config.fallback_random = True  # the same random kernels, so the same draws, as eager
        self.eager = fn
        self.auto = settings.get("auto", False)
        options = {k: v for k, v in settings.items() if k != "auto"}
        self.backend = options.get("backend")
        self.compiled: Optional[Callable] = torch.compile(fn, **options)
        self.announce = announce
        self.first = True
        self.started: Optional[float] = None

    def _fail(self, cause: str) -> None:
        if not self.auto:
            raise UserError(f"model.compile: cannot compile the training step ({cause}); set compile: false, or "
                            f"compile: auto to train eagerly where it cannot")
        self.announce(f"Compile: not compiling the training step ({cause}); training eagerly (compile: auto)")
        self.compiled = None

    def __call__(self, *args: Any) -> Any:
        if self.compiled is None:
            return self.eager(*args)
        if not self.first:
            return self.compiled(*args)
        device = next((a.device for a in _tensors(args)), torch.device("cpu"))
        problem = compiler_problem(device, self.backend)
        if problem is not None:
            self._fail(problem)
            return self.eager(*args)
        self.started = time.perf_counter()
        try:
            result = self.compiled(*args)
        except torch._dynamo.exc.BackendCompilerFailed as error:
            self._fail(f"{type(error.inner_exception).__name__}: {first_line(error.inner_exception)}")
            return self.eager(*args)
        except (torch._dynamo.exc.Unsupported, torch._dynamo.exc.UserError) as error:  # e.g. a plug-in's .item()
            self._fail(f"it does not trace as one graph: {first_line(error)}, at {last_user_frame(error)}")
            return self.eager(*args)
        self.first = False
        return result

    def finish_first_step(self) -> None:
        """Say how long the first compiled step took (compiling forward and backward), once."""
        if self.started is not None:
            self.announce(f"Compiled the training step in {time.perf_counter() - self.started:.1f} s")
            self.started = None


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def last_user_frame(error: BaseException) -> str:
    """``file:line`` of the innermost frame dynamo names under "from user code" (where the step stopped tracing)."""
    frames = re.findall(r'File "([^"]+)", line (\d+)', str(error))
    return f"{frames[-1][0]}:{frames[-1][1]}" if frames else "an unknown place"


def _tensors(value: Any):
    if torch.is_tensor(value):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
