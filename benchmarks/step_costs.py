"""What one training step costs besides time: FLOPs (counted and analytic), the same GEMMs
replayed with plain ``torch.matmul``, and peak memory (see ``benchmarks/throughput.py``)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

aten = torch.ops.aten


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def resident_bytes(model: nn.Module, optimizer: torch.optim.Optimizer, batch: Sequence[Tensor]) -> int:
    """Bytes of the parameters, buffers, optimizer state and batch (what lives between steps)."""
    tensors = list(model.parameters()) + list(model.buffers()) + list(batch)
    for state in optimizer.state.values():
        tensors.extend(v for v in state.values() if torch.is_tensor(v))
    seen, total = set(), 0
    for tensor in tensors:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total += storage.nbytes()
    return total


# ----------------------------------------------------------------------------- FLOPs
def analytic_forward_flops(model: nn.Module, step_forward: Callable[[], object]) -> int:
    """2*M*N*K of every Linear, LSTMCell (input and hidden gate matmuls) and Conv2d in one forward."""
    total = [0]

    def hook(module: nn.Module, inputs, output) -> None:
        x = inputs[0]
        if isinstance(module, nn.Linear):
            total[0] += 2 * (x.numel() // module.in_features) * module.in_features * module.out_features
        elif isinstance(module, nn.LSTMCell):
            rows = x.shape[0] if x.dim() == 2 else 1
            total[0] += 2 * rows * (module.input_size + module.hidden_size) * 4 * module.hidden_size
        elif isinstance(module, nn.Conv2d):
            kernel = module.kernel_size[0] * module.kernel_size[1]
            total[0] += 2 * output.numel() * (module.in_channels // module.groups) * kernel

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Linear, nn.LSTMCell, nn.Conv2d))]
    try:
        with torch.no_grad():
            step_forward()
    finally:
        for handle in handles:
            handle.remove()
    return total[0]


Layout = Tuple[Tuple[int, ...], Tuple[int, ...], torch.dtype]


class GemmRecorder(TorchDispatchMode):
    """Records the operand layouts (shape, stride, dtype) of every mm / addmm / bmm dispatched."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: List[Tuple[Layout, Layout]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        operands = None
        if func is aten.mm.default or func is aten.bmm.default:
            operands = args[0], args[1]
        elif func is aten.addmm.default:
            operands = args[1], args[2]
        if operands is not None:
            self.calls.append(tuple((tuple(t.shape), tuple(t.stride()), t.dtype) for t in operands))
        return func(*args, **kwargs)


def gemm_flops(a_shape: Sequence[int], b_shape: Sequence[int]) -> int:
    batch = a_shape[0] if len(a_shape) == 3 else 1
    return 2 * batch * a_shape[-2] * a_shape[-1] * b_shape[-1]


def gemm_replay(calls: List[Tuple[Layout, Layout]], device: torch.device) -> Tuple[Callable[[], None], int]:
    """A function running ``torch.matmul`` on random operands of the recorded layouts, and its FLOPs."""
    cache: Dict[Layout, Tensor] = {}

    def operand(layout: Layout) -> Tensor:
        if layout not in cache:
            shape, stride, dtype = layout
            cache[layout] = torch.empty_strided(shape, stride, dtype=dtype, device=device).uniform_(-1, 1)
        return cache[layout]

    pairs = [(operand(a), operand(b)) for a, b in calls]
    flops = sum(gemm_flops(a.shape, b.shape) for a, b in pairs)

    def replay() -> None:
        for a, b in pairs:
            torch.matmul(a, b)

    return replay, flops


# ----------------------------------------------------------------------------- memory
class LiveStorageBytes(TorchDispatchMode):
    """Peak total bytes of tensor storages allocated while active and still alive.

    After every dispatched op, storages that died are dropped, and each output whose storage
    is new (not an input's: views and in-place results are not allocations) is added.
    """

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device_type = device.type
        self.live: Dict[int, Tuple[StorageWeakRef, int]] = {}
        self.current = 0
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        for key in [key for key, (ref, _) in self.live.items() if ref.expired()]:
            self.current -= self.live.pop(key)[1]
        inputs = {t.untyped_storage()._cdata for t in tree_flatten((args, kwargs))[0] if self._tracked(t)}
        for tensor in tree_flatten(out)[0]:
            if not self._tracked(tensor):
                continue
            storage = tensor.untyped_storage()
            if storage._cdata in inputs or storage._cdata in self.live:
                continue
            self.live[storage._cdata] = (StorageWeakRef(storage), storage.nbytes())
            self.current += storage.nbytes()
        self.peak = max(self.peak, self.current)
        return out

    def _tracked(self, value) -> bool:
        return isinstance(value, Tensor) and value.layout == torch.strided and value.device.type == self.device_type


def peak_step_memory(step: Callable[[], object], device: torch.device) -> Tuple[int, str]:
    """(peak bytes above the pre-step level, description of the measure)."""
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before, "torch.cuda.max_memory_allocated - memory_allocated before"
    tracker = LiveStorageBytes(device)
    with tracker:
        step()
    return tracker.peak, "peak live tensor storage bytes allocated in the step (TorchDispatchMode tracking)"


def profiler_peak_cpu_memory(step: Callable[[], object]) -> Optional[int]:
    """Cross-check on CPU: max 'Total Allocated' of the profiler's allocator events in one step.

    ``profile_memory=True`` makes the CPU allocator report every allocation and free made
    while profiling, with the running net total; None if the trace has no such events.
    """
    import tempfile

    from torch.profiler import ProfilerActivity, profile

    try:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            step()
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "trace.json"
            prof.export_chrome_trace(str(path))
            events = json.loads(path.read_text()).get("traceEvents", [])
        totals = [
            e["args"]["Total Allocated"]
            for e in events
            if e.get("name") == "[memory]" and "Total Allocated" in e.get("args", {}) and e["args"].get("Device Type", 0) == 0
        ]
        return max(totals) if totals else None
    except Exception:  # the trace format is not a stable API: the cross-check is optional
        return None
