"""The training step compiles whole (no graph break, no host synchronisation) for every estimator
and both models; compiled and eager steps on the same draws give the same terms and gradients;
the ``compile`` option's values and failures are one line each."""
import pytest
import torch

from estimators import available_estimators, get_estimator
from ram_lightning import AttentionClassifier
from ram_lightning.models.captioner import SPECIAL_TOKENS, AttentionCaptioner
from ram_lightning.models.compiled_step import compile_settings, compiler_problem
from ram_lightning.errors import UserError

SMALL = dict(image_shape=(1, 24, 24), glimpse_size=4, num_patches=2, num_glimpses=3, hidden_size=16, glimpse_hidden=8,
             glimpse_features=16, context_size=6)
# The options that put a data-dependent step in an estimator or a model (buffers updated on the
# first batch, scale actions, a learned std, epsilon-uniform scales, a 0/1 reward, sleep updates).
ESTIMATOR_OPTIONS = {"reinforce": [{}, {"baseline": "moving_average", "reward": "correct", "entropy_weight": 0.1}],
                     "wake_sleep": [{}, {"sleep_fraction": 0.5}],
                     "wake_sleep_cv": [{}, {"prior_coefficient": "online"}]}
MODEL_OPTIONS = [{}, {"scales": [0.5, 1.0, 2.0], "learn_std": True, "scale_epsilon": 0.1, "detach_policy_input": True}]


def classifier_batch(batch_size=4):
    torch.manual_seed(0)
    return torch.rand(batch_size, 1, 24, 24), torch.randint(0, 10, (batch_size,))


def captioner_and_batch(estimator, batch_size=3):
    torch.manual_seed(0)
    vocabulary = list(SPECIAL_TOKENS) + ["a", "b", "c"]
    model = AttentionCaptioner(vocabulary=vocabulary, image_shape=(3, 16, 16), encoder_channels=(4, 8), embedding_size=8,
                               hidden_size=8, attention_size=8, inference_embedding=8, inference_hidden=8, estimator=estimator)
    captions = torch.tensor([[1, 4, 5, 2, 0], [1, 6, 2, 0, 0], [1, 4, 4, 6, 2]])
    return model.train(), {"images": torch.rand(batch_size, 3, 16, 16), "captions": captions, "lengths": torch.tensor([4, 3, 5])}


def estimator_cases():
    for name in available_estimators():
        for options in ESTIMATOR_OPTIONS.get(name, [{}]):
            yield pytest.param(name, options, id=f"{name}{options or ''}")


def graph_breaks(forward, *args):
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(forward)(*args)
    torch._dynamo.reset()
    return explanation.graph_count, explanation.graph_break_count, [str(r.reason)[:200] for r in explanation.break_reasons]


@pytest.mark.parametrize("model_options", MODEL_OPTIONS, ids=["plain", "scales+learned std"])
@pytest.mark.parametrize("name, options", estimator_cases())
def test_the_classifier_step_is_one_graph_for_every_estimator(name, options, model_options):
    model = AttentionClassifier(**SMALL, **model_options, estimator=get_estimator(name, num_samples=2, **options)).train()
    assert graph_breaks(model._training_forward, classifier_batch()) == (1, 0, [])


def test_a_cut_at_the_top_lstm_input_keeps_the_classifier_step_one_graph():
    model = AttentionClassifier(**SMALL, detach_policy_input="top_input", estimator=get_estimator("reinforce", num_samples=2)).train()
    assert graph_breaks(model._training_forward, classifier_batch()) == (1, 0, [])


@pytest.mark.parametrize("name", [n for n in available_estimators() if not get_estimator(n).reparameterize_locations])
def test_the_captioner_step_is_one_graph_for_every_estimator(name):  # (its attention has no location to reparameterise)
    model, batch = captioner_and_batch(get_estimator(name, num_samples=2))
    assert graph_breaks(model._training_forward, batch) == (1, 0, [])


def test_the_step_is_one_graph_under_bf16_autocast():
    from ram_lightning.core import precision

    model = AttentionClassifier(**SMALL, estimator=get_estimator("wake_sleep_cv", num_samples=2)).train()
    captioner, batch = captioner_and_batch(get_estimator("wake_sleep_cv", num_samples=2))
    precision.cpu_has_bf16_lstm.cache_clear()  # the caption encoder's probe runs inside the trace
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert graph_breaks(model._training_forward, classifier_batch()) == (1, 0, [])
        assert graph_breaks(captioner._training_forward, batch) == (1, 0, [])


def step_results(model, batch, forward):
    """(terms, loss, gradients) of one training step of ``model`` drawn from seed 5."""
    torch.manual_seed(5)
    output, finite, terms, _ = forward(batch)
    output.loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return terms, output.loss.detach(), grads, bool(finite)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["reinforce", "wake_sleep_cv"])
def test_compiled_and_eager_steps_on_the_same_draws_agree(name):
    """Inductor's code against eager: the same SampleTerms, loss and gradients to 1e-5 (fp32)."""
    if compiler_problem(torch.device("cpu"), None):
        pytest.skip(compiler_problem(torch.device("cpu"), None))
    torch.manual_seed(0)
    model = AttentionClassifier(**SMALL, scales=[1.0, 2.0], estimator=get_estimator(name, num_samples=3)).train()
    batch = classifier_batch(8)
    import torch._inductor.config as inductor_config

    torch._dynamo.reset()
    inductor_config.fallback_random = True  # as ram_lightning.models.compiled_step sets it
    eager = step_results(model, batch, model._training_forward)
    compiled = step_results(model, batch, torch.compile(model._training_forward, fullgraph=True, dynamic=False))
    torch._dynamo.reset()
    assert eager[3] and compiled[3]
    for field in ("log_likelihood", "log_prior", "log_proposal", "baseline"):
        if getattr(eager[0], field) is not None:
            torch.testing.assert_close(getattr(compiled[0], field), getattr(eager[0], field), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(compiled[1], eager[1], rtol=1e-5, atol=1e-5)
    assert compiled[2].keys() == eager[2].keys()
    for key in eager[2]:
        torch.testing.assert_close(compiled[2][key], eager[2][key], rtol=1e-5, atol=1e-6, msg=key)


def test_compile_settings_accept_the_documented_values_and_refuse_others_in_one_line():
    assert compile_settings(False) is None
    assert compile_settings(True) == {"fullgraph": True, "dynamic": False, "options": {"cpp_wrapper": True}, "auto": False}
    assert compile_settings({"options": {"cpp_wrapper": False}})["options"] == {"cpp_wrapper": False}
    assert compile_settings("auto")["auto"] is True
    assert compile_settings({"mode": "reduce-overhead"})["mode"] == "reduce-overhead"
    assert "options" not in compile_settings({"mode": "reduce-overhead"})  # torch.compile takes one of the two
    for bad, message in (({"mode": "fast"}, "model.compile.mode: 'fast' is not one of"),
                         ({"fullgraph": False}, "unknown key"), ("yes", "expected true, false, auto")):
        with pytest.raises(UserError, match=message):
            compile_settings(bad)


def test_without_a_cpp_compiler_true_stops_in_one_line_and_auto_trains_eagerly():
    import torch._inductor.config as inductor_config
    from ram_lightning.models.compiled_step import CompiledStep

    with inductor_config.patch({"cpp.cxx": ("/nonexistent/g++",)}):  # (pytest's monkeypatch would delete the key)
        assert "needs a C++ compiler" in compiler_problem(torch.device("cpu"), None)
        model = AttentionClassifier(**SMALL).train()
        with pytest.raises(UserError, match=r"model.compile: cannot compile the training step \(torch's CPU compiler backend "
                                            r"needs a C\+\+ compiler"):
            CompiledStep(model._training_forward, compile_settings(True))(classifier_batch())
        said = []
        step = CompiledStep(model._training_forward, compile_settings("auto"), announce=said.append)
        output = step(classifier_batch())[0]
        assert torch.isfinite(output.loss) and step.compiled is None
        assert said == [f"Compile: not compiling the training step ({compiler_problem(torch.device('cpu'), None)}); "
                        f"training eagerly (compile: auto)"]
    assert compiler_problem(torch.device("cpu"), None) is None


@pytest.mark.slow
def test_ram_fit_with_compile_trains_says_the_compile_time_once_and_its_checkpoint_loads_eagerly(tmp_path, tiny_config,
                                                                                                  write_config):
    import subprocess

    from tests.tiny_run import RAM, ROOT, load_checkpoint, subprocess_env

    if compiler_problem(torch.device("cpu"), None):
        pytest.skip(compiler_problem(torch.device("cpu"), None))
    config = tiny_config(tmp_path, "wake_sleep_cv")
    config["trainer"]["max_epochs"] = 2
    config["model"]["init_args"]["compile"] = True
    run = subprocess.run(RAM + ["fit", "--config", str(write_config(tmp_path, config))], cwd=ROOT, env=subprocess_env(),
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    said = [line for line in run.stderr.splitlines() if line.startswith("Compiled the training step in ")]
    assert len(said) == 1 and said[0].endswith(" s"), run.stderr[-3000:]
    assert "test/error" in run.stdout  # tested the best checkpoint at the end
    last = next(tmp_path.glob("tiny/version_*/checkpoints/last.ckpt"))
    checkpoint = load_checkpoint(last)
    assert not any("_orig_mod" in key for key in checkpoint["state_dict"])  # the module's own names
    eager = AttentionClassifier.load_from_checkpoint(last, compile=False)
    assert eager.compile_settings is None and eager.state_dict().keys() == checkpoint["state_dict"].keys()
    predict = subprocess.run(RAM + ["predict", "--config", str(tmp_path / "tiny.yaml"), "--ckpt_path", str(last)], cwd=ROOT,
                             env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert predict.returncode == 0 and predict.stdout.strip().splitlines()[-1].startswith("Predictions: "), predict.stderr[-2000:]


# Factory functions whose tensors land on the default device (the CPU) unless given one: inside a
# CUDA-graphed step each would be a CPU tensor created per step.
FACTORIES = {torch.zeros, torch.ones, torch.full, torch.empty, torch.arange, torch.tensor, torch.randn, torch.rand,
             torch.randint, torch.linspace, torch.eye, torch.as_tensor}


def captured_graph(forward, *args):
    """The FX graph dynamo captures of ``forward(*args)`` (fullgraph: one graph or an error)."""
    graphs = []

    def keep(graph_module, example_inputs):
        graphs.append(graph_module.graph)
        return graph_module.forward

    torch._dynamo.reset()
    torch.compile(forward, backend=keep, fullgraph=True, dynamic=False)(*args)
    torch._dynamo.reset()
    (graph,) = graphs
    return graph


@pytest.mark.parametrize("model_name", ["classifier", "captioner"])
@pytest.mark.parametrize("name", available_estimators())
def test_the_step_is_ready_for_cuda_graphs(model_name, name):
    """Checkable without a GPU: one graph (no host synchronisation: fullgraph refuses .item(),
    bool(tensor), nonzero), static shapes, and every tensor it creates placed on a device taken
    from its inputs."""
    estimator = get_estimator(name, num_samples=2)
    if model_name == "captioner":
        if estimator.reparameterize_locations:
            pytest.skip("the captioner's attention has no location to reparameterise")
        model, batch = captioner_and_batch(estimator)
    else:
        model, batch = AttentionClassifier(**SMALL, scales=[1.0, 2.0], estimator=estimator).train(), classifier_batch()
    graph = captured_graph(model._training_forward, batch)
    undeviced = [str(node) for node in graph.nodes if node.op == "call_function" and node.target in FACTORIES
                 and "device" not in node.kwargs]
    assert undeviced == []
    assert not any(node.op == "call_method" and node.target in ("cpu", "item", "tolist", "numpy") for node in graph.nodes)


def test_a_plugin_step_that_breaks_the_graph_is_one_line_naming_where(monkeypatch):
    from estimators import Reinforce
    from ram_lightning.models.compiled_step import CompiledStep

    class Syncing(Reinforce):
        def forward(self, terms):
            if terms.log_likelihood.mean().item() > 0:  # a host synchronisation inside the step
                raise AssertionError("never")
            return super().forward(terms)

    model = AttentionClassifier(**SMALL, estimator=Syncing(num_samples=2)).train()
    torch._dynamo.reset()
    with pytest.raises(UserError, match=r"model.compile: cannot compile the training step \(it does not trace as one graph: "
                                        r".+, at .*test_compiled_step.py:\d+\)"):
        CompiledStep(model._training_forward, compile_settings(True))(classifier_batch())
    said = []
    output = CompiledStep(model._training_forward, compile_settings("auto"), announce=said.append)(classifier_batch())[0]
    torch._dynamo.reset()
    assert torch.isfinite(output.loss) and len(said) == 1 and "training eagerly (compile: auto)" in said[0]
