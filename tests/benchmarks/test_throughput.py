"""The throughput benchmark's steps and report (its timings are figures, not test results)."""
import torch

from benchmarks.step_costs import GemmRecorder
from benchmarks.throughput_report import ratio_lines
from benchmarks.training_steps import PRECISIONS, captioner_step, classifier_step, step_variants, time_interleaved

CPU = torch.device("cpu")


def test_both_precisions_train_and_bf16_mixed_multiplies_in_bf16():
    for make in (lambda p: classifier_step(2, 4, CPU, p), lambda p: captioner_step(2, 2, CPU, p)):
        dtypes = {}
        for precision in PRECISIONS:
            model, _, _, step = make(precision)
            before = [p.detach().clone() for p in model.parameters()]
            recorder = GemmRecorder()
            with recorder:
                loss = step()
            assert torch.isfinite(loss) and loss.dtype == torch.float32
            assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters())), "the optimizer stepped"
            assert all(p.dtype == torch.float32 for p in model.parameters()), "master weights stay fp32"
            dtypes[precision] = [layout[0][2] for layout in recorder.calls]
        assert set(dtypes["32-true"]) == {torch.float32}
        # most products run in bf16; the fp32 ones are the distribution heads (Float32Linear)
        assert sum(d == torch.bfloat16 for d in dtypes["bf16-mixed"]) > 0.6 * len(dtypes["bf16-mixed"])


def test_interleaved_timing_and_ratio_lines():
    calls = []
    times = time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, CPU, warmup=1, repeats=3)
    assert calls == ["a", "b"] * 4 and all(len(v) == 3 for v in times.values())
    results = [{"K": 5, "step_ms": {"32-true": 300.0, "bf16-mixed": 100.0}}]
    captioner = {"B": 32, "K": 5, "step_ms": {"32-true": 50.0, "bf16-mixed": 40.0}}
    assert ratio_lines(results, captioner) == [
        "bf16-mixed vs 32-bit step, K=5: 3.00x",
        "bf16-mixed vs 32-bit captioner step, B=32 K=5: 1.25x (50.0 ms -> 40.0 ms)",
    ]
    results[0]["step_ms"].update({"compiled 32-true": 200.0, "compiled bf16-mixed": 75.0})
    captioner["step_ms"]["compiled bf16-mixed"] = 25.0
    assert ratio_lines(results, captioner) == [  # the exact words
        "bf16-mixed vs 32-bit step, K=5: 3.00x",
        "compiled 32-true vs eager 32-true step, K=5: 1.50x",
        "compiled bf16-mixed vs eager 32-true step, K=5: 4.00x",
        "bf16-mixed vs 32-bit captioner step, B=32 K=5: 1.25x (50.0 ms -> 40.0 ms); "
        "compiled bf16-mixed vs eager 32-true captioner step: 2.00x",
    ]


def test_the_step_variants_are_eager_then_compiled_and_cuda_graphed_only_on_cuda():
    assert list(step_variants(CPU, compiled=False)) == ["32-true", "bf16-mixed"]
    assert step_variants(CPU, compiled=True)["compiled bf16-mixed"] == ("bf16-mixed", True)
    assert step_variants(torch.device("cuda"), compiled=True)["CUDA-graphed 32-true"] == ("32-true", {"mode": "reduce-overhead"})
