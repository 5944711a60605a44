"""Throughput benchmark of the attention model: training step, glimpse sensor, FLOP/s, memory.

Run from the repository root (the default takes about a minute on 2 idle CPU cores)::

    python benchmarks/throughput.py
    python benchmarks/throughput.py --device cuda --repeats 30 --json throughput.json
    python benchmarks/throughput.py --samples 5 --profile      # + torch.profiler top ops

Options: ``--device cpu|cuda`` (default cpu), ``--repeats N`` (timed repetitions, default 15),
``--warmup N`` (default 2), ``--batch-size B`` (default 128), ``--samples K [K ...]``
(default 1 5), ``--threads N`` (``torch.set_num_threads``), ``--json PATH`` (all numbers),
``--profile`` (``torch.profiler`` table of one step for the largest K, by self CPU time).
The script sets ``OMP_WAIT_POLICY=PASSIVE`` unless the variable is already set (see below
the imports why), prints the 1-minute load average and warns when other processes compete
for the CPUs: CPU timings are only meaningful on an otherwise idle machine.

Setting: the ``AttentionClassifier`` defaults -- B = 128 single-channel 60 x 60 images (uniform
noise; the cost of every operation is independent of the pixel values), N = 6 glimpses, a
12 x 12 retina with 3 patches, LSTM hidden size 256, 10 classes, the ``reinforce`` estimator
with its learned baseline -- for each K in ``--samples`` (default 1 and 5). Times are medians
over ``--repeats`` repetitions after warm-up (the sensor figures use 4x as many), with
``torch.cuda.synchronize`` around each repetition on GPU. What is printed:

1. Training throughput: images per second (B / step time) of one full optimizer step:
   ``model.sample_terms`` (context network + rollout of K glimpse sequences per image + class
   head + baseline), the estimator's surrogate ``loss``, ``backward()``, ``Adam.step()`` and
   ``zero_grad``. No Lightning Trainer and no ``model_step`` (whose ``self.log`` would warn
   outside a Trainer), so the figure is the model's cost without framework overhead.
2. Sensor throughput: glimpses per second extracted for B*K rows (one glimpse = the 3
   patches of one row) by ``GlimpseSensor`` (image pyramid + one ``grid_sample`` per level)
   and by the peer approach of popular RAM implementations: a Python loop over the rows that,
   for each patch size, rounds the location to integer pixel coordinates, zero-pads the
   image when the crop leaves it, slices the crop and ``avg_pool2d``-s it down to g x g.
   A second peer variant pads the whole batch once per patch size and pools all crops of a
   size in one call (the loop is then only over the slicing), the strongest plain loop.
   Before timing, the script asserts that the sensor and the peer loop return the same
   patches at pixel-aligned locations (where both compute the same area averages). The
   table also shows how much of one sensor call is spent building the image pyramid.
3. Arithmetic efficiency: the FLOPs of the matrix products of one training step (forward
   and backward), counted by ``torch.utils.flop_counter.FlopCounterMode`` around the whole
   step (it sees every mm/addmm/bmm/convolution and their backward ops, so layers whose
   input needs no gradient are not charged for one), divided by the measured step time.
   For reference, the analytic count from the module shapes (forward of every Linear,
   LSTMCell gate matmul and Conv2d as 2*M*N*K, backward as 2x forward) is printed too. The
   achieved rate is compared with what plain ``torch.matmul`` reaches on the same machine on
   exactly the GEMMs of the step: every mm/addmm/bmm the step dispatches is recorded (shapes,
   strides) and replayed with ``torch.matmul`` on random tensors -- same shapes, same total
   FLOPs -- and timed the same way. The ratio is achieved / replay rate.
4. Peak memory per training step, above what is resident before it (parameters, Adam state,
   the batch; gradients are freed by ``zero_grad(set_to_none=True)`` at the end of each
   step). CUDA: ``torch.cuda.max_memory_allocated`` (reset before the step) minus
   ``memory_allocated`` before it. CPU (where PyTorch keeps no allocator statistics): the
   peak total size of the tensor storages created during the step and still alive, tracked
   op by op with a ``TorchDispatchMode`` and storage weak references; it counts every tensor
   the step allocates (activations saved for backward, gradients, temporaries) but not
   scratch memory internal to a kernel (e.g. a BLAS workspace).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

_PROCESS_START = time.perf_counter()
# Waiting OpenMP threads sleep instead of spinning: with active spinning, every parallel op
# stalls for a scheduler time slice as soon as another process wants the CPU (measured on
# 2 shared cores: a K=5 step went from 0.6 s to 7 s). Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import Tensor, nn  # noqa: E402
from torch.multiprocessing.reductions import StorageWeakRef  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils._pytree import tree_flatten  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from estimators import Reinforce  # noqa: E402
from ram_lightning.classifier import AttentionClassifier  # noqa: E402
from ram_lightning.core import GlimpseSensor, image_pyramid  # noqa: E402

IMAGE_SHAPE = (1, 60, 60)
NUM_CLASSES = 10
GLIMPSE_SIZE = 12
NUM_PATCHES = 3
NUM_GLIMPSES = 6
HIDDEN_SIZE = 256
SEED = 0
SENSOR_REPEAT_FACTOR = 4
MIB = 2**20

aten = torch.ops.aten


# ----------------------------------------------------------------------------- timing
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_repeats(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> List[float]:
    """Seconds per call of ``fn`` for ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


# ----------------------------------------------------------------------------- training step
def make_training(num_samples: int, batch_size: int, device: torch.device):
    """(model, optimizer, step function) for K = ``num_samples`` on a fixed random batch."""
    torch.manual_seed(SEED)
    model = AttentionClassifier(
        image_shape=IMAGE_SHAPE,
        num_classes=NUM_CLASSES,
        glimpse_size=GLIMPSE_SIZE,
        num_patches=NUM_PATCHES,
        num_glimpses=NUM_GLIMPSES,
        hidden_size=HIDDEN_SIZE,
        estimator=Reinforce(num_samples=num_samples),
    ).to(device)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images = torch.rand(batch_size, *IMAGE_SHAPE, device=device)
    targets = torch.randint(0, NUM_CLASSES, (batch_size,), device=device)

    def step() -> Tensor:
        terms, _, _ = model.sample_terms(images, targets, num_samples)
        loss = model.estimator(terms).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    return model, optimizer, (images, targets), step


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
def analytic_forward_flops(model: AttentionClassifier, step_forward: Callable[[], object]) -> int:
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


# ----------------------------------------------------------------------------- sensor + peer
def pixel_centres(locations: Tensor, height: int, width: int) -> Tuple[List[int], List[int]]:
    """Glimpse centres as integer pixel boundaries (x, y), locations clamped to [-1, 1]."""
    locations = locations.reshape(-1, 2).clamp(-1, 1)
    xs = torch.round((locations[:, 0] + 1) * (width / 2)).long().tolist()
    ys = torch.round((locations[:, 1] + 1) * (height / 2)).long().tolist()
    return xs, ys


def peer_loop_glimpses(images: Tensor, locations: Tensor, glimpse_size: int, num_patches: int) -> Tensor:
    """Per-row crop loop of popular RAM implementations: [B, C, H, W], [B, K, 2] -> [B, K, P, C, g, g].

    For each row and each patch size g*2^p: integer crop bounds around the location, zero
    padding only when the crop leaves the image, a slice, and avg_pool2d down to g x g.
    """
    batch, channels, height, width = images.shape
    samples = locations.shape[1]
    xs, ys = pixel_centres(locations, height, width)
    rows = []
    for row in range(batch * samples):
        image = images[row // samples]
        patches = []
        for level in range(num_patches):
            factor = 2**level
            size = glimpse_size * factor
            half = size // 2
            left, top = xs[row] - half, ys[row] - half
            if left < 0 or top < 0 or left + size > width or top + size > height:
                crop = F.pad(image, (half, half, half, half))[:, top + half : top + half + size, left + half : left + half + size]
            else:
                crop = image[:, top : top + size, left : left + size]
            patches.append(F.avg_pool2d(crop, factor) if factor > 1 else crop)
        rows.append(torch.stack(patches))
    return torch.stack(rows).view(batch, samples, num_patches, channels, glimpse_size, glimpse_size)


def peer_batched_pool_glimpses(images: Tensor, locations: Tensor, glimpse_size: int, num_patches: int) -> Tensor:
    """Stronger peer: pad the batch once per patch size, loop only over slicing, pool per size."""
    batch, channels, height, width = images.shape
    samples = locations.shape[1]
    xs, ys = pixel_centres(locations, height, width)
    per_level = []
    for level in range(num_patches):
        factor = 2**level
        size = glimpse_size * factor
        half = size // 2
        padded = F.pad(images, (half, half, half, half))
        crops = torch.stack(
            [padded[row // samples, :, ys[row] : ys[row] + size, xs[row] : xs[row] + size] for row in range(batch * samples)]
        )  # [R, C, size, size]
        per_level.append(F.avg_pool2d(crops, factor) if factor > 1 else crops)
    return torch.stack(per_level, 1).view(batch, samples, num_patches, channels, glimpse_size, glimpse_size)


def aligned_locations(batch: int, samples: int, height: int, width: int, num_patches: int, device: torch.device) -> Tensor:
    """Random [B, K, 2] locations whose every patch lies on the pixel grid of its pyramid level.

    The centre must be a pixel boundary that is a multiple of 2^(P-1) (then patch p starts at
    a multiple of 2^p and each output pixel is exactly the mean of a 2^p x 2^p block).
    """
    step = 2 ** (num_patches - 1)
    cx = torch.randint(0, width // step + 1, (batch, samples), device=device) * step
    cy = torch.randint(0, height // step + 1, (batch, samples), device=device) * step
    return torch.stack([2 * cx / width - 1, 2 * cy / height - 1], dim=-1).float()


def check_sensor_matches_peer(sensor: GlimpseSensor, batch: int, samples: int, device: torch.device) -> float:
    """Assert sensor == peer loop (and its batched variant) at pixel-aligned locations; max abs diff."""
    images = torch.rand(batch, *IMAGE_SHAPE, device=device)
    locations = aligned_locations(batch, samples, IMAGE_SHAPE[1], IMAGE_SHAPE[2], NUM_PATCHES, device)
    with torch.no_grad():
        ours = sensor(images, locations)
        peer = peer_loop_glimpses(images, locations, GLIMPSE_SIZE, NUM_PATCHES)
        batched = peer_batched_pool_glimpses(images, locations, GLIMPSE_SIZE, NUM_PATCHES)
    torch.testing.assert_close(ours, peer, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(batched, peer, rtol=0, atol=1e-6)
    return (ours - peer).abs().max().item()


# ----------------------------------------------------------------------------- benchmark
def benchmark_samples(num_samples: int, args: argparse.Namespace, device: torch.device) -> Dict[str, object]:
    batch = args.batch_size
    rows = batch * num_samples
    result: Dict[str, object] = {"K": num_samples, "rows": rows}

    # 1. training step
    model, optimizer, batch_tensors, step = make_training(num_samples, batch, device)
    times = time_repeats(step, device, args.warmup, args.repeats)
    step_s = statistics.median(times)
    result.update(step_s=step_s, step_s_all=times, images_per_s=batch / step_s, sequences_per_s=rows / step_s)

    # 3. FLOPs (FlopCounterMode around a whole step), analytic cross-check, GEMM replay
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    flops = counter.get_total_flops()
    by_op = {str(op).replace("aten.", ""): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    images, targets = batch_tensors
    forward = analytic_forward_flops(  # the lambda runs in here, before the `del model` below
        model, lambda: model.estimator(model.sample_terms(images, targets, num_samples)[0]).loss)  # noqa: F821
    recorder = GemmRecorder()
    with recorder:
        step()
    replay, replay_flops = gemm_replay(recorder.calls, device)
    replay_times = time_repeats(replay, device, 1, args.repeats)
    replay_s = statistics.median(replay_times)
    del replay
    result.update(
        flops=flops,
        flops_by_op=by_op,
        flops_analytic_3x_forward=3 * forward,
        achieved_flop_per_s=flops / step_s,
        gemm_calls=len(recorder.calls),
        gemm_flops=replay_flops,
        gemm_replay_s=replay_s,
        gemm_flop_per_s=replay_flops / replay_s,
        efficiency=(flops / step_s) / (replay_flops / replay_s),
    )

    # 4. peak memory of one step
    resident = resident_bytes(model, optimizer, batch_tensors)
    peak, measure = peak_step_memory(step, device)
    cross_check = profiler_peak_cpu_memory(step) if device.type == "cpu" else None
    result.update(memory_peak_bytes=peak, memory_resident_bytes=resident, memory_measure=measure, memory_profiler_peak_bytes=cross_check)

    if args.profile and num_samples == max(args.samples):
        result["profile"] = profile_step(step, device)
    del model, optimizer, step

    # 2. sensor vs peer
    sensor = GlimpseSensor(GLIMPSE_SIZE, NUM_PATCHES).to(device)
    result["sensor_check_max_abs_diff"] = check_sensor_matches_peer(sensor, batch, num_samples, device)
    torch.manual_seed(SEED)
    images = torch.rand(batch, *IMAGE_SHAPE, device=device)
    locations = torch.rand(batch, num_samples, 2, device=device) * 2 - 1
    sensor_repeats = SENSOR_REPEAT_FACTOR * args.repeats
    with torch.no_grad():
        ours = statistics.median(time_repeats(lambda: sensor(images, locations), device, args.warmup, sensor_repeats))
        pyramid = statistics.median(time_repeats(lambda: image_pyramid(images, NUM_PATCHES), device, args.warmup, sensor_repeats))
        peer = statistics.median(
            time_repeats(lambda: peer_loop_glimpses(images, locations, GLIMPSE_SIZE, NUM_PATCHES), device, 1, sensor_repeats)
        )
        batched = statistics.median(
            time_repeats(lambda: peer_batched_pool_glimpses(images, locations, GLIMPSE_SIZE, NUM_PATCHES), device, 1, sensor_repeats)
        )
    result.update(
        sensor_s=ours,
        sensor_pyramid_s=pyramid,
        sensor_glimpses_per_s=rows / ours,
        peer_loop_s=peer,
        peer_loop_glimpses_per_s=rows / peer,
        peer_batched_s=batched,
        peer_batched_glimpses_per_s=rows / batched,
        sensor_speedup_vs_peer_loop=peer / ours,
        # In a rollout the pyramid is built once and read by all N glimpses.
        sensor_in_rollout_s=ours - pyramid + pyramid / NUM_GLIMPSES,
        sensor_in_rollout_speedup_vs_peer_loop=peer / (ours - pyramid + pyramid / NUM_GLIMPSES),
        sensor_speedup_vs_peer_batched=batched / ours,
    )
    return result


def profile_step(step: Callable[[], object], device: torch.device, row_limit: int = 15) -> str:
    """torch.profiler table of one step, sorted by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        step()
        synchronize(device)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=row_limit)


# ----------------------------------------------------------------------------- report
def format_report(results: List[Dict[str, object]], header: Dict[str, object]) -> str:
    lines = [
        "ram-lightning throughput benchmark",
        "  device {device} | torch {torch} | {threads} threads, OMP_WAIT_POLICY={omp_wait} | B={batch} | N={glimpses} glimpses | "
        "retina {g}x{g} x {patches} patches | images {image} | hidden {hidden} | reinforce + learned baseline | "
        "median of {repeats} (sensor: {sensor_repeats})".format(**header),
        "",
        "1. Training step (sample_terms + estimator loss + backward + Adam step)",
        f"  {'K':>3} {'step ms':>10} {'(min ms)':>9} {'images/s':>10} {'sequences/s':>12}",
    ]
    for r in results:
        lines.append(
            f"  {r['K']:>3} {1e3 * r['step_s']:>10.1f} {1e3 * min(r['step_s_all']):>9.1f} {r['images_per_s']:>10.1f} "
            f"{r['sequences_per_s']:>12.1f}"
        )
    lines += [
        "",
        "2. Glimpse sensor, glimpses/s for B*K rows (1 glimpse = 3 patches of one row)",
        f"  {'K':>3} {'rows':>6} {'sensor ms':>10} {'pyramid ms':>11} {'GlimpseSensor':>14} {'peer loop':>10} {'speed-up':>9} "
        f"{'peer batched-pool':>18} {'speed-up':>9} {'check |diff|':>13} {'in-rollout speed-up':>20}",
    ]
    for r in results:
        lines.append(
            f"  {r['K']:>3} {r['rows']:>6} {1e3 * r['sensor_s']:>10.2f} {1e3 * r['sensor_pyramid_s']:>11.2f} "
            f"{r['sensor_glimpses_per_s']:>14.0f} {r['peer_loop_glimpses_per_s']:>10.0f} "
            f"{r['sensor_speedup_vs_peer_loop']:>8.1f}x {r['peer_batched_glimpses_per_s']:>18.0f} "
            f"{r['sensor_speedup_vs_peer_batched']:>8.1f}x {r['sensor_check_max_abs_diff']:>13.1e} "
            f"{r['sensor_in_rollout_speedup_vs_peer_loop']:>19.1f}x"
        )
    lines += [
        "  sensor ms: one GlimpseSensor call; pyramid ms: the image_pyramid part of it (rebuilt on every call)",
        "  in-rollout speed-up: peer loop vs one glimpse as AttentionCore.rollout reads it (pyramid built once per N glimpses)",
        "  check: sensor == peer loop at pixel-aligned locations (assert_close, atol 1e-5); |diff| = max abs difference",
        "",
        "3. Arithmetic efficiency (matmul/conv FLOPs of one step by FlopCounterMode, forward + backward)",
        f"  {'K':>3} {'GFLOP':>8} {'analytic 3xfwd':>15} {'GFLOP/s step':>13} {'GEMMs':>6} {'GEMM GFLOP':>11} "
        f"{'GFLOP/s matmul':>15} {'ratio':>7}",
    ]
    for r in results:
        lines.append(
            f"  {r['K']:>3} {r['flops'] / 1e9:>8.2f} {r['flops_analytic_3x_forward'] / 1e9:>15.2f} "
            f"{r['achieved_flop_per_s'] / 1e9:>13.2f} {r['gemm_calls']:>6} {r['gemm_flops'] / 1e9:>11.2f} "
            f"{r['gemm_flop_per_s'] / 1e9:>15.2f} {100 * r['efficiency']:>6.1f}%"
        )
    lines.append("  by op (GFLOP): " + " | ".join(
        f"K={r['K']}: " + ", ".join(f"{op} {n / 1e9:.2f}" for op, n in r["flops_by_op"].items()) for r in results
    ))
    lines += [
        "  GFLOP/s step = FlopCounterMode FLOPs / median step time; GFLOP/s matmul = plain torch.matmul replaying the",
        "  step's recorded mm/addmm/bmm shapes (same total FLOPs as those ops); ratio = step / matmul",
        "",
        "4. Peak memory of one training step, above the resident parameters + Adam state + batch",
        f"  {'K':>3} {'peak MiB':>9} {'resident MiB':>13}  measure",
    ]
    for r in results:
        lines.append(
            f"  {r['K']:>3} {r['memory_peak_bytes'] / MIB:>9.1f} {r['memory_resident_bytes'] / MIB:>13.1f}  {r['memory_measure']}"
        )
    checks = [r for r in results if r.get("memory_profiler_peak_bytes") is not None]
    if checks:
        lines.append("  cross-check, torch.profiler(profile_memory=True) max net CPU bytes allocated in the step: " + ", ".join(
            f"K={r['K']}: {r['memory_profiler_peak_bytes'] / MIB:.1f} MiB" for r in checks
        ))
    for r in results:
        if "profile" in r:
            lines += ["", f"torch.profiler, one training step, K={r['K']}, top ops by self CPU time:", str(r["profile"])]
    return "\n".join(lines)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--repeats", type=int, default=15, help="timed repetitions (the sensor uses 4x as many)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed warm-up repetitions")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--samples", type=int, nargs="+", default=[1, 5], help="values of K")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's default)")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler top ops for the largest K")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0 or args.batch_size < 1 or min(args.samples) < 1 or (args.threads or 1) < 1:
        parser.error("--repeats, --batch-size, --samples and --threads must be >= 1, --warmup >= 0")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    return args


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, object]:
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    start = time.perf_counter()
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    results = [benchmark_samples(k, args, device) for k in args.samples]
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    header = dict(
        device=torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.processor() or platform.machine()})",
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        omp_wait=os.environ.get("OMP_WAIT_POLICY"),
        cpus=os.cpu_count(),
        load_average_before=load_before,
        load_average_after=load_after,
        batch=args.batch_size,
        glimpses=NUM_GLIMPSES,
        g=GLIMPSE_SIZE,
        patches=NUM_PATCHES,
        image="x".join(map(str, IMAGE_SHAPE)),
        hidden=HIDDEN_SIZE,
        repeats=args.repeats,
        sensor_repeats=SENSOR_REPEAT_FACTOR * args.repeats,
    )
    print(format_report(results, header))
    elapsed = time.perf_counter() - start
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    if load_before is not None:
        busy = max(load_before, load_after) > (os.cpu_count() or 1) + 0.5
        print(
            f"\n1-min load average {load_before:.2f} before / {load_after:.2f} after, {os.cpu_count()} CPUs"
            + ("  WARNING: other processes compete for the CPUs; CPU timings are inflated and noisy" if busy else "")
        )
    print(f"benchmark time {elapsed:.1f} s ({time.perf_counter() - _PROCESS_START:.1f} s with imports); "
          f"process peak RSS {max_rss:.0f} MiB (whole run, for context)")
    report = {"config": header, "results": results, "elapsed_s": elapsed}
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str))
        print(f"wrote {args.json}")
    return report


if __name__ == "__main__":
    main()
