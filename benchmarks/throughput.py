"""Throughput benchmark of the attention model: training step in 32-bit and bf16-mixed, glimpse
sensor, FLOP/s, memory, and the captioner's step.

Run from the repository root (about 3 minutes on 2 idle CPU cores, plus a minute or two to
compile each of the six compiled steps)::

    python -m benchmarks.throughput
    python -m benchmarks.throughput --steps-only               # the step timings and ratio lines only
    python -m benchmarks.throughput --device cuda --repeats 30 --json throughput.json   # + CUDA-graphed steps
    python -m benchmarks.throughput --samples 5 --profile      # + torch.profiler top ops of each precision

Options: ``--device cpu|cuda``, ``--repeats N`` (timed rounds, default 15), ``--warmup N``
(default 2), ``--batch-size B`` (default 128), ``--samples K [K ...]`` (default 1 5),
``--threads N`` (``torch.set_num_threads``), ``--json PATH``, ``--profile``, ``--no-passive``
(skip the second timing under ``OMP_WAIT_POLICY=PASSIVE``), ``--steps-only`` (only the step
timings; what the PASSIVE subprocess runs, eagerly), ``--no-compile`` (eager steps only).

Setting: the ``AttentionClassifier`` defaults (``benchmarks.training_steps``) -- B = 128
single-channel 60 x 60 images, N = 6 glimpses, a 12 x 12 retina with 3 patches, LSTM hidden
size 256, 10 classes, ``reinforce`` with its learned baseline -- for each K. Printed:

1. Training step (``benchmarks.training_steps``: the model's training forward + backward +
   Adam step), 32-bit and bf16-mixed, eager and compiled (the model option ``compile``), timed
   interleaved in the same process (medians), and the lines ``bf16-mixed vs 32-bit step, K=k:
   N.NNx``, ``compiled 32-true vs eager 32-true step, K=k: N.NNx`` and ``compiled bf16-mixed vs
   eager 32-true step, K=k: N.NNx``, with each compiled step's compile time (its first call). The main figures are in the environment the
   benchmark was started in (OpenMP's default spin-waiting unless OMP_WAIT_POLICY is set); the
   same steps are then timed in a subprocess with ``OMP_WAIT_POLICY=PASSIVE``, which is slower
   on an idle machine and faster when another process competes for the cores.
2. Sensor throughput, glimpses per second for B*K rows, of ``GlimpseSensor`` and of the peer
   approach of popular RAM implementations (``benchmarks.sensor_peer``: a Python loop over rows
   that crops and pools each patch; and a variant that pads once and pools per size), after
   checking that both return the same patches at pixel-aligned locations.
3. Arithmetic efficiency per precision: the FLOPs of the step's matrix products (forward and
   backward, by ``FlopCounterMode``; the analytic 3 x forward count as a cross-check) over the
   step time, against plain ``torch.matmul`` replaying exactly the step's recorded GEMMs (same
   shapes, strides and dtype, so bf16 GEMMs for bf16-mixed) -- the rate the matrix units give.
4. Peak memory of one step per precision (CUDA: allocator statistics; CPU: live tensor
   storages tracked op by op, ``benchmarks.step_costs``).
5. The captioner's step (configs/flickr8k.yaml sizes on precomputed 7x7x1280
   features, wake_sleep_cv, B = 32, K = 5), 32-bit and bf16-mixed interleaved.
CPU timings mean something only on an otherwise idle machine: the script prints the load average.
On a CPU without a native bf16 matrix unit (``ram_lightning.run.precision_choice.cpu_bf16_unit``; e.g.
x86 without AVX512-BF16/AMX) bf16 products are emulated and a bf16 step takes seconds (the
captioner's two minutes): the benchmark says so, caps the rounds at ``EMULATED_BF16_REPEATS``
(warm-up 1), times the captioner once per precision without warm-up, and skips the PASSIVE run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

_PROCESS_START = time.perf_counter()
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from benchmarks.sensor_peer import check_sensor_matches_peer, peer_batched_pool_glimpses, peer_loop_glimpses  # noqa: E402
from benchmarks.step_costs import (  # noqa: E402
    GemmRecorder,
    synchronize,
    analytic_forward_flops,
    gemm_replay,
    peak_step_memory,
    profiler_peak_cpu_memory,
    resident_bytes,
)
from benchmarks.throughput_report import compile_line, format_report, ratio_lines  # noqa: E402
from benchmarks.training_steps import (  # noqa: E402
    CLASSIFIER,
    PRECISIONS,
    SEED,
    autocast,
    captioner_step,
    classifier_step,
    step_variants,
    time_interleaved,
)
from ram_lightning.core import GlimpseSensor, image_pyramid  # noqa: E402
from ram_lightning.run.precision_choice import cpu_bf16_unit  # noqa: E402

SENSOR_REPEAT_FACTOR = 4
EMULATED_BF16_REPEATS = 5
CAPTION_BATCH, CAPTION_SAMPLES = 32, 5


def median_ms(times: Sequence[float]) -> float:
    return 1e3 * statistics.median(times)


def first_calls(steps: Dict[str, Callable[[], object]], device: torch.device) -> Dict[str, float]:
    """Seconds of the first call of each compiled step (compiling its forward and backward graphs)."""
    seconds = {}
    for name, step in steps.items():
        if name.startswith(("compiled", "CUDA-graphed")):
            synchronize(device)
            start = time.perf_counter()
            step()
            synchronize(device)
            seconds[name] = time.perf_counter() - start
    return seconds


def time_steps(num_samples: int, args: argparse.Namespace, device: torch.device) -> Tuple[Dict[str, List[float]], Dict[str, float]]:
    """Every variant's classifier step for K = ``num_samples``, interleaved: ({variant: [s, ...]},
    {compiled variant: seconds of its first call})."""
    steps = {name: classifier_step(num_samples, args.batch_size, device, precision, compile)[3]
             for name, (precision, compile) in step_variants(device, args.compile).items()}
    compile_s = first_calls(steps, device)
    return time_interleaved(steps, device, args.warmup, args.repeats), compile_s


def time_captioner(args: argparse.Namespace, device: torch.device) -> Tuple[Dict[str, List[float]], Dict[str, float]]:
    steps = {name: captioner_step(CAPTION_SAMPLES, CAPTION_BATCH, device, precision, compile)[3]
             for name, (precision, compile) in step_variants(device, args.compile).items()}
    compile_s = first_calls(steps, device)
    if args.emulated_bf16:
        return time_interleaved(steps, device, 0, 1), compile_s
    return time_interleaved(steps, device, args.warmup, max(3, args.repeats // 3)), compile_s


def step_costs(num_samples: int, precision: str, args: argparse.Namespace, device: torch.device) -> Dict[str, object]:
    """FLOPs, GEMM replay and peak memory of one step in ``precision``."""
    model, optimizer, batch, step = classifier_step(num_samples, args.batch_size, device, precision)
    step()  # Adam state exists from here on, as in training
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    images, targets = batch
    with autocast(precision, device):
        forward = analytic_forward_flops(model, lambda: model.training_forward((images, targets))[0].loss)
    recorder = GemmRecorder()
    with recorder:
        step()
    replay, replay_flops = gemm_replay(recorder.calls, device)
    replay_s = statistics.median(time_interleaved({"replay": replay}, device, 1, args.repeats)["replay"])
    peak, measure = peak_step_memory(step, device)
    result = dict(
        flops=counter.get_total_flops(),
        flops_by_op={str(op).replace("aten.", ""): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()},
        flops_analytic_3x_forward=3 * forward, gemm_calls=len(recorder.calls), gemm_flops=replay_flops,
        gemm_replay_s=replay_s, gemm_flop_per_s=replay_flops / replay_s,
        gemm_dtypes=sorted({str(layout[0][2]).replace("torch.", "") for layout in recorder.calls}),
        memory_peak_bytes=peak, memory_resident_bytes=resident_bytes(model, optimizer, batch), memory_measure=measure,
        memory_profiler_peak_bytes=profiler_peak_cpu_memory(step) if device.type == "cpu" else None,
    )
    if args.profile and num_samples == max(args.samples):
        result["profile"] = profile_step(step, device)
    return result


def sensor_figures(num_samples: int, args: argparse.Namespace, device: torch.device) -> Dict[str, object]:
    g, patches, shape = CLASSIFIER["glimpse_size"], CLASSIFIER["num_patches"], CLASSIFIER["image_shape"]
    rows = args.batch_size * num_samples
    sensor = GlimpseSensor(g, patches).to(device)
    check = check_sensor_matches_peer(sensor, args.batch_size, num_samples, shape, device)
    torch.manual_seed(SEED)
    images = torch.rand(args.batch_size, *shape, device=device)
    locations = torch.rand(args.batch_size, num_samples, 2, device=device) * 2 - 1
    repeats = SENSOR_REPEAT_FACTOR * args.repeats
    with torch.no_grad():
        times = time_interleaved({
            "ours": lambda: sensor(images, locations),
            "pyramid": lambda: image_pyramid(images, patches),
            "peer": lambda: peer_loop_glimpses(images, locations, g, patches),
            "batched": lambda: peer_batched_pool_glimpses(images, locations, g, patches),
        }, device, 1, repeats)
    ours, pyramid, peer, batched = (statistics.median(times[k]) for k in ("ours", "pyramid", "peer", "batched"))
    in_rollout = ours - pyramid + pyramid / CLASSIFIER["num_glimpses"]  # a rollout builds the pyramid once per N glimpses
    return dict(rows=rows, sensor_check_max_abs_diff=check, sensor_s=ours, sensor_pyramid_s=pyramid, sensor_glimpses_per_s=rows / ours,
                peer_loop_glimpses_per_s=rows / peer, peer_batched_glimpses_per_s=rows / batched,
                sensor_speedup_vs_peer_loop=peer / ours, sensor_speedup_vs_peer_batched=batched / ours,
                sensor_in_rollout_speedup_vs_peer_loop=peer / in_rollout)


def profile_step(step, device: torch.device, row_limit: int = 15) -> str:
    """torch.profiler table of one step, sorted by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=row_limit)


def passive_timings(args: argparse.Namespace) -> Optional[dict]:
    """The step timings of a subprocess run with OMP_WAIT_POLICY=PASSIVE (None if it failed)."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "passive.json"
        command = [sys.executable, "-m", "benchmarks.throughput", "--steps-only", "--no-passive", "--no-compile", "--json", str(out),
                   "--device", args.device, "--repeats", str(args.repeats), "--warmup", str(args.warmup),
                   "--batch-size", str(args.batch_size), "--samples", *map(str, args.samples)]
        if args.threads is not None:
            command += ["--threads", str(args.threads)]
        env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
        done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0 or not out.exists():
            print(f"throughput: warning: the OMP_WAIT_POLICY=PASSIVE run failed:\n{done.stderr[-2000:]}", file=sys.stderr)
            return None
        return json.loads(out.read_text())


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds (the sensor uses 4x as many)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed warm-up rounds")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--samples", type=int, nargs="+", default=[1, 5], help="values of K")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's default)")
    parser.add_argument("--profile", action="store_true", help="torch.profiler top ops of one step for the largest K")
    parser.add_argument("--no-passive", action="store_true", help="skip the second timing with OMP_WAIT_POLICY=PASSIVE")
    parser.add_argument("--steps-only", action="store_true", help="only the training-step timings")
    parser.add_argument("--no-compile", dest="compile", action="store_false",
                        help="time the eager steps only (the compiled ones take a minute or two each to compile)")
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
    bf16_unit = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_bf16_unit()
    args.emulated_bf16 = bf16_unit is None
    if args.emulated_bf16 and not args.steps_only:
        print(f"throughput: this CPU has no native bf16 matrix unit (torch CPU capability "
              f"{torch.backends.cpu.get_cpu_capability()}): bf16 products are emulated; timing at most "
              f"{EMULATED_BF16_REPEATS} rounds (asked: {args.repeats}), the captioner once per precision, "
              f"no PASSIVE run", file=sys.stderr, flush=True)
    if args.emulated_bf16:
        args.repeats, args.warmup = min(args.repeats, EMULATED_BF16_REPEATS), min(args.warmup, 1)
    start = time.perf_counter()
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    results: List[Dict[str, object]] = []
    for k in args.samples:
        times, compile_s = time_steps(k, args, device)
        result: Dict[str, object] = {"K": k, "step_s_all": times, "step_ms": {p: median_ms(t) for p, t in times.items()},
                                     "compile_s": compile_s}
        print(f"throughput: K={k}: " + ", ".join(f"{name} {ms:.1f} ms" for name, ms in result["step_ms"].items())
              + (f"; compile {compile_line(compile_s)}" if compile_s else ""), file=sys.stderr, flush=True)
        if not args.steps_only:
            result["costs"] = {p: step_costs(k, p, args, device) for p in PRECISIONS}
            result.update(sensor_figures(k, args, device))
        results.append(result)
    caption_times, caption_compile_s = time_captioner(args, device)
    captioner = {"B": CAPTION_BATCH, "K": CAPTION_SAMPLES, "step_ms": {p: median_ms(t) for p, t in caption_times.items()},
                 "compile_s": caption_compile_s}
    report = {"results": results, "captioner": captioner}
    if args.steps_only:
        if args.json is not None:
            args.json.write_text(json.dumps(report))
        print("\n".join(ratio_lines(results, captioner)))
        return report
    passive = None if args.no_passive or args.emulated_bf16 else passive_timings(args)
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    header = dict(
        device=torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.processor() or platform.machine()})",
        bf16_unit=bf16_unit or f"none (torch CPU capability {torch.backends.cpu.get_cpu_capability()}: bf16 emulated)",
        torch=torch.__version__, threads=torch.get_num_threads(), omp_wait=os.environ.get("OMP_WAIT_POLICY", "<unset: spin>"),
        cpus=os.cpu_count(), load_average_before=load_before, load_average_after=load_after, batch=args.batch_size,
        repeats=args.repeats, sensor_repeats=SENSOR_REPEAT_FACTOR * args.repeats, **CLASSIFIER,
    )
    print(format_report(results, captioner, passive, header))
    elapsed = time.perf_counter() - start
    if load_before is not None:
        busy = max(load_before, load_after) > (os.cpu_count() or 1) + 0.5
        print(f"\n1-min load average {load_before:.2f} before / {load_after:.2f} after, {os.cpu_count()} CPUs"
              + ("  WARNING: other processes compete for the CPUs; CPU timings are inflated and noisy" if busy else ""))
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"benchmark time {elapsed:.1f} s ({time.perf_counter() - _PROCESS_START:.1f} s with imports); "
          f"process peak RSS {max_rss:.0f} MiB (whole run, for context)")
    report.update(config=header, passive=passive, elapsed_s=elapsed)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str))
        print(f"wrote {args.json}")
    return report


if __name__ == "__main__":
    main()
