"""The printed report of ``benchmarks/throughput.py`` (figures in, text out)."""
from __future__ import annotations

from typing import Dict, List, Optional

from benchmarks.training_steps import PRECISIONS

MIB = 2**20
FP32, BF16 = PRECISIONS


def _against_eager(ms: Dict[str, float], what: str) -> List[str]:
    """``<variant> vs eager 32-true <what>: N.NNx`` for every compiled or CUDA-graphed variant."""
    return [f"{name} vs eager {FP32} {what}: {ms[FP32] / ms[name]:.2f}x" for name in ms if name not in PRECISIONS]


def ratio_lines(results: List[Dict[str, object]], captioner: Dict[str, object]) -> List[str]:
    """``bf16-mixed vs 32-bit step, K=k: N.NNx`` and ``compiled ... vs eager 32-true step, K=k:
    N.NNx`` for every K, then the captioner's (last)."""
    lines = []
    for r in results:
        lines.append(f"bf16-mixed vs 32-bit step, K={r['K']}: {r['step_ms'][FP32] / r['step_ms'][BF16]:.2f}x")
        lines += _against_eager(r["step_ms"], f"step, K={r['K']}")
    ms = captioner["step_ms"]
    what = f"captioner step, B={captioner['B']} K={captioner['K']}"
    caption = [f"bf16-mixed vs 32-bit {what}: {ms[FP32] / ms[BF16]:.2f}x ({ms[FP32]:.1f} ms -> {ms[BF16]:.1f} ms)"]
    return lines + ["; ".join(caption + _against_eager(ms, "captioner step"))]


def compile_line(compile_s: Dict[str, float]) -> str:
    return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in compile_s.items())


def _step_table(results: List[Dict[str, object]], batch: int) -> List[str]:
    lines = [f"  {'K':>3} {'step':>22} {'step ms':>9} {'(min ms)':>9} {'images/s':>9}"]
    for r in results:
        for name, ms in r["step_ms"].items():
            fastest = 1e3 * min(r["step_s_all"][name])
            lines.append(f"  {r['K']:>3} {name:>22} {ms:>9.1f} {fastest:>9.1f} {1e3 * batch / ms:>9.1f}")
        if r.get("compile_s"):
            lines.append(f"      compile time (first call: forward and backward graphs): {compile_line(r['compile_s'])}")
    return lines


def precision_of(name: str) -> str:
    """The precision of a step variant's name (``compiled bf16-mixed`` -> ``bf16-mixed``)."""
    return name.rsplit(" ", 1)[-1]


def format_report(results: List[Dict[str, object]], captioner: Dict[str, object], passive: Optional[dict],
                  header: Dict[str, object]) -> str:
    lines = [
        "ram-lightning throughput benchmark",
        "  device {device} | torch {torch} | {threads} threads, OMP_WAIT_POLICY={omp_wait} | B={batch} | N={num_glimpses} glimpses | "
        "retina {glimpse_size}x{glimpse_size} x {num_patches} patches | hidden {hidden_size} | reinforce + learned baseline | "
        "median of {repeats} interleaved rounds (sensor: {sensor_repeats})".format(**header),
        "  bf16 matrix unit: {bf16_unit}".format(**header),
        "",
        "1. Training step (training forward: rollout + heads + estimator loss; backward; Adam step), eager and compiled, interleaved",
        *_step_table(results, header["batch"]),
        *("  " + line for line in ratio_lines(results, captioner)[:-1]),
    ]
    if passive is not None:
        lines.append("  with OMP_WAIT_POLICY=PASSIVE (a subprocess, eager steps): " + "; ".join(
            f"K={r['K']}: 32-bit {r['step_ms'][FP32]:.1f} ms, bf16-mixed {r['step_ms'][BF16]:.1f} ms "
            f"({r['step_ms'][FP32] / r['step_ms'][BF16]:.2f}x)" for r in passive["results"]))
    lines += [
        "",
        "2. Glimpse sensor, glimpses/s for B*K rows (1 glimpse = 3 patches of one row), fp32",
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
        f"  {'K':>3} {'step':>22} {'GFLOP':>7} {'analytic 3xfwd':>15} {'GFLOP/s step':>13} {'GEMMs':>6} {'GEMM dtypes':>18} "
        f"{'GFLOP/s matmul':>15} {'ratio':>7}",
    ]
    for r in results:
        for name, ms in r["step_ms"].items():
            c = r["costs"][precision_of(name)]  # a compiled step does the same products
            achieved = c["flops"] / (ms / 1e3)
            lines.append(
                f"  {r['K']:>3} {name:>22} {c['flops'] / 1e9:>7.2f} {c['flops_analytic_3x_forward'] / 1e9:>15.2f} "
                f"{achieved / 1e9:>13.1f} {c['gemm_calls']:>6} {'+'.join(c['gemm_dtypes']):>18} "
                f"{c['gemm_flop_per_s'] / 1e9:>15.1f} {100 * achieved / c['gemm_flop_per_s']:>6.1f}%")
    for r in results:
        matmul = {p: r["costs"][p]["gemm_flop_per_s"] for p in PRECISIONS}
        lines.append(f"  K={r['K']}: torch.matmul on the step's GEMMs, bf16 vs fp32: {matmul[BF16] / matmul[FP32]:.2f}x "
                     f"(the most a step made only of these products could gain)")
    lines += [
        "  GFLOP/s step = FlopCounterMode FLOPs (of the eager step: a compiled one does the same products) / median step",
        "  time; GFLOP/s matmul = plain torch.matmul replaying the eager step's recorded mm/addmm/bmm (same shapes, strides,",
        "  dtypes; same total FLOPs); ratio = step / matmul",
        "",
        "4. Peak memory of one training step, above the resident parameters + Adam state + batch",
        f"  {'K':>3} {'precision':>11} {'peak MiB':>9} {'resident MiB':>13}  measure",
    ]
    for r in results:
        for precision in PRECISIONS:
            c = r["costs"][precision]
            lines.append(f"  {r['K']:>3} {precision:>11} {c['memory_peak_bytes'] / MIB:>9.1f} "
                         f"{c['memory_resident_bytes'] / MIB:>13.1f}  {c['memory_measure']}")
    ms = captioner["step_ms"]
    lines += [
        "",
        f"5. Captioner step (configs/flickr8k.yaml sizes, precomputed 7x7x1280 features, B={captioner['B']}, K={captioner['K']})",
        "  " + ", ".join(f"{name} {value:.1f} ms" for name, value in ms.items()),
        "  " + ratio_lines(results, captioner)[-1],
    ]
    if captioner.get("compile_s"):
        lines.append(f"  compile time (first call): {compile_line(captioner['compile_s'])}")
    if passive is not None:
        pm = passive["captioner"]["step_ms"]
        lines.append(f"  with OMP_WAIT_POLICY=PASSIVE: 32-bit {pm[FP32]:.1f} ms, bf16-mixed {pm[BF16]:.1f} ms ({pm[FP32] / pm[BF16]:.2f}x)")
    for r in results:
        for precision in PRECISIONS:
            if "profile" in r["costs"][precision]:
                lines += ["", f"torch.profiler, one training step, K={r['K']}, {precision}, top ops by self CPU time:",
                          str(r["costs"][precision]["profile"])]
    return "\n".join(lines)
