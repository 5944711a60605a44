"""AttentionClassifier: gradient paths, configurable shapes, bad labels, every estimator."""
import pytest
import torch

from estimators import available_estimators, get_estimator
from ram_lightning.models.classifier import AttentionClassifier
from ram_lightning.errors import UserError
from tests.core.test_rollout import SMALL


def policy_grad_norm(module) -> float:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    return sum(g.abs().sum().item() for g in grads)


def test_location_network_gets_gradient_from_the_estimator_not_from_the_classification_loss():
    torch.manual_seed(0)
    model = AttentionClassifier(num_classes=5, **SMALL, estimator="reinforce")
    images, targets = torch.rand(6, 1, 24, 20), torch.randint(0, 5, (6,))
    terms, _, _ = model.sample_terms(images, targets, num_samples=2)
    terms.log_likelihood.sum().backward(retain_graph=True)  # the classification loss alone
    assert policy_grad_norm(model.core.policy) == 0.0
    assert policy_grad_norm(model.head) > 0 and policy_grad_norm(model.core.recurrent) > 0
    model.zero_grad()
    model.estimator(terms).loss.backward()  # the estimator's surrogate
    assert policy_grad_norm(model.core.policy) > 0


def test_nothing_is_hard_coded_to_mnist():
    model = AttentionClassifier(image_shape=(3, 32, 48), num_classes=17, glimpse_size=6, num_patches=4, num_glimpses=2,
                                hidden_size=12, glimpse_hidden=8, glimpse_features=8, context_size=8)
    probabilities = model(torch.rand(2, 3, 32, 48), num_samples=3)
    assert probabilities.shape == (2, 17)
    torch.testing.assert_close(probabilities.sum(-1), torch.ones(2))


def test_labels_out_of_range_are_a_clear_error():
    model = AttentionClassifier(num_classes=5, **SMALL)
    with pytest.raises(UserError, match=r"label 7 out of range: model.num_classes=5"):
        model.check_batch(torch.rand(2, 1, 24, 20), torch.tensor([1, 7]))
    with pytest.raises(UserError, match="integer labels"):
        model.check_batch(torch.rand(2, 1, 24, 20), torch.tensor([1.0, 2.0]))


def test_a_training_step_with_every_registered_estimator_gives_a_finite_loss():
    for name in available_estimators():
        model = AttentionClassifier(num_classes=5, **SMALL, estimator=get_estimator(name, num_samples=2))
        loss = model.training_step((torch.rand(4, 1, 24, 20), torch.randint(0, 5, (4,))), 0)
        assert torch.isfinite(loss), name


def test_detached_policy_input_keeps_the_score_function_out_of_the_shared_layers():
    torch.manual_seed(0)
    model = AttentionClassifier(num_classes=5, **SMALL, detach_policy_input=True)
    terms, _, _ = model.sample_terms(torch.rand(4, 1, 24, 20), torch.randint(0, 5, (4,)), num_samples=2)
    terms.log_prior.sum().backward()
    assert policy_grad_norm(model.core.policy) > 0
    assert policy_grad_norm(model.core.recurrent) == 0.0 and policy_grad_norm(model.core.glimpse) == 0.0


def wake_sleep_model(**kwargs):
    torch.manual_seed(0)
    return AttentionClassifier(num_classes=5, **SMALL, inference_hidden=12, label_embedding_size=4, **kwargs)


def test_proposal_estimators_sample_from_q_and_q_gets_only_the_q_update():
    model = wake_sleep_model(estimator=get_estimator("wake_sleep", num_samples=3))
    assert model.inference is not None
    images, targets = torch.rand(4, 1, 24, 20), torch.randint(0, 5, (4,))
    terms, _, _ = model.sample_terms(images, targets, 3, train=True)
    assert terms.log_proposal is not None and terms.log_proposal.shape == (4, 3)
    terms.log_proposal.sum().backward()  # q's density reaches q's parameters, never theta
    assert policy_grad_norm(model.inference) > 0 and policy_grad_norm(model.label_embedding) > 0
    assert policy_grad_norm(model.core) == 0.0 and policy_grad_norm(model.head) == 0.0


def test_reinforce_builds_no_inference_network():
    assert AttentionClassifier(num_classes=5, **SMALL).inference is None


def test_sleep_terms_are_q_scores_of_dreamed_sequences_and_train_q_only():
    model = wake_sleep_model(estimator=get_estimator("wake_sleep", num_samples=2, sleep_fraction=0.5))
    assert model.estimator.sleep_samples == 2
    images, targets = torch.rand(4, 1, 24, 20), torch.randint(0, 5, (4,))
    terms, _, _ = model.sample_terms(images, targets, 2, train=True)
    assert terms.sleep_log_proposal.shape == (4, 2) and torch.isfinite(terms.sleep_log_proposal).all()
    terms.sleep_log_proposal.sum().backward()
    assert policy_grad_norm(model.inference) > 0 and policy_grad_norm(model.core) == 0.0


def test_evaluation_never_touches_q():
    model = wake_sleep_model(estimator=get_estimator("wake_sleep_cv", num_samples=2)).eval()
    images = torch.rand(4, 1, 24, 20)

    def evaluate():
        torch.manual_seed(5)
        with torch.no_grad():
            return model(images, num_samples=3), model.sample_terms(images, torch.zeros(4, dtype=torch.long), 3)[1]

    before = evaluate()
    with torch.no_grad():  # scramble q entirely
        for p in list(model.inference.parameters()) + list(model.label_embedding.parameters()):
            p.copy_(torch.randn_like(p) * 10)
    after = evaluate()
    torch.testing.assert_close(before, after, rtol=0, atol=0)


def test_q_can_have_its_own_learning_rate():
    model = wake_sleep_model(estimator="wake_sleep", inference_lr=3e-4)
    optimizer = model.configure_optimizers()
    assert [group["lr"] for group in optimizer.param_groups] == [1e-3, 3e-4]
    q_params = {id(p) for p in model.gradient_groups()["inference"]}
    assert {id(p) for p in optimizer.param_groups[1]["params"]} == q_params
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))


def test_q_can_have_a_location_std_of_its_own():
    fixed = wake_sleep_model(estimator="wake_sleep", inference_location_std=0.3)
    assert fixed.inference.head.location_std == 0.3 and not fixed.inference.head.learn_std
    assert fixed.core.policy.location_std != 0.3
    learned = wake_sleep_model(estimator="wake_sleep", inference_location_std=0.2, inference_learn_std=True)
    assert learned.inference.head.learn_std and not learned.core.policy.learn_std
    state = torch.zeros(2, learned.core.hidden_size)
    distribution = learned.inference(state, learned.label_embedding(torch.tensor([0, 1])))
    torch.testing.assert_close(distribution.std, torch.full((2, 2), 0.2))


def pathwise_model(**kwargs):
    torch.manual_seed(0)
    return AttentionClassifier(num_classes=5, **SMALL, estimator=get_estimator("pathwise", num_samples=2), **kwargs).double()


def smooth_batch():
    ys, xs = torch.meshgrid(torch.arange(24.0), torch.arange(20.0), indexing="ij")
    images = torch.stack([torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / 30.0) for cy, cx in ((6, 5), (12, 14), (18, 8))])
    return images[:, None].double(), torch.tensor([1, 3, 0])


def directional_derivatives(model, group):
    """Along a random direction in the parameters of ``group``: (the pathwise surrogate's autograd
    gradient, the central difference of -mean_k l_k at fixed noise, the sample path's derivative)."""
    images, targets = smooth_batch()

    def terms():
        return model.sample_terms(images, targets, 2, train=True, generator=torch.Generator().manual_seed(3))[0]

    def loss():
        return -terms().log_likelihood.mean()

    params = model.gradient_groups()[group]
    direction = [torch.randn_like(p) for p in params]
    grads = torch.autograd.grad(model.estimator(terms()).loss, params, allow_unused=True)
    analytic = sum(float((g * d).sum()) for g, d in zip(grads, direction) if g is not None)
    step = 1e-6
    with torch.no_grad():
        values = []
        for sign in (1, -1):
            for p, d in zip(params, direction):
                p.add_(sign * step * d)
            values.append(float(loss()))
            for p, d in zip(params, direction):
                p.sub_(sign * step * d)
    return analytic, (values[0] - values[1]) / (2 * step)


@pytest.mark.parametrize("group", ["policy", "top_lstm", "context", "bottom_lstm", "glimpse", "head"])
def test_the_pathwise_gradient_is_the_derivative_of_the_sample_path(group):
    """Without scales, the pathwise surrogate's gradient must be the derivative of -mean l along the
    sample path (fixed noise), for every parameter group; the policy, the top LSTM
    and the context network reach l only through the sampled locations (sensor, glimpse network,
    later states), so a blocked location gradient would show as a zero here."""
    torch.manual_seed(1)
    analytic, numeric = directional_derivatives(pathwise_model(), group)
    assert abs(numeric) > 1e-5, group
    assert abs(analytic - numeric) < 1e-5 * abs(numeric) + 1e-9, (group, analytic, numeric)


def test_pathwise_with_a_detached_policy_input_truncates_the_path_at_the_policy_input():
    """detach_policy_input: true cuts every path into mu from the states: the policy head still gets
    the gradient through each mu_n (not through the states that earlier locations led to), and the
    top LSTM, which reaches l only through mu, gets none (the exact gradient needs false, the default)."""
    torch.manual_seed(1)
    model = pathwise_model(detach_policy_input=True)
    analytic, numeric = directional_derivatives(model, "policy")
    assert abs(analytic) > 1e-4 and abs(analytic - numeric) < 0.1 * abs(numeric)  # close, not exact: paths dropped
    analytic, numeric = directional_derivatives(model, "top_lstm")
    assert analytic == 0.0 and abs(numeric) > 1e-4


def test_pathwise_trains_the_scale_policy_by_its_score():
    torch.manual_seed(0)
    model = AttentionClassifier(num_classes=5, **SMALL, scales=[1.0, 2.0], estimator="pathwise")
    loss = model.training_step((torch.rand(4, 1, 24, 20), torch.randint(0, 5, (4,))), 0)
    loss.backward()
    assert policy_grad_norm(model.core.policy.scale) > 0 and policy_grad_norm(model.core.policy.location) > 0


def test_the_core_arguments_are_documented_once_and_handed_on_by_keyword():
    import inspect

    from ram_lightning.core import AttentionCore
    from ram_lightning.models.classifier import CORE_ARGUMENTS

    ours, core = inspect.signature(AttentionClassifier).parameters, inspect.signature(AttentionCore).parameters
    assert set(CORE_ARGUMENTS) == set(core) and set(CORE_ARGUMENTS) <= set(ours)
    assert all(ours[name].default == core[name].default for name in CORE_ARGUMENTS)
    for name in CORE_ARGUMENTS:  # each documented, from AttentionCore's docstring (image_shape: the linked one)
        assert f"\n        {name}: " in AttentionClassifier.__doc__
    assert "glimpse_size: g, side in pixels of each retina patch." in AttentionClassifier.__doc__
    model = AttentionClassifier(image_shape=(1, 24, 24), glimpse_size=5, num_patches=2, num_glimpses=3, hidden_size=16,
                                glimpse_hidden=8, glimpse_features=12, context_size=8, detach_policy_input=True)
    assert (model.core.sensor.glimpse_size, model.core.num_glimpses, model.core.hidden_size) == (5, 3, 16)
    assert model.core.detach_policy_input and model.core.image_shape == (1, 24, 24)


def test_evaluation_logs_the_share_of_glimpses_at_each_scale():
    """``{split}/scale_use/<s>``: every glimpse of every evaluation sequence counted once."""
    from types import SimpleNamespace

    logged = {}

    def capture(model):
        model.log = lambda name, value, **kwargs: logged.__setitem__(name, value)
        return model

    scaled = capture(AttentionClassifier(**SMALL, num_classes=3, scales=[0.5, 1.0, 2.0], estimator="reinforce"))
    scales = torch.tensor([[[0, 0, 2], [0, 2, 2]], [[0, 0, 0], [0, 0, 2]]])  # [B=2, M=2, T=3]: 8 at scale 0, 4 at scale 2
    scaled.log_scale_use(SimpleNamespace(scales=scales), "val", batch_size=2)
    assert logged == pytest.approx({"val/scale_use/0": 8 / 12, "val/scale_use/1": 0.0, "val/scale_use/2": 4 / 12})

    logged.clear()
    images = torch.rand(2, 1, 24, 20)
    scaled.model_step((images, torch.tensor([0, 2])), "test")  # the real evaluation path logs it too
    shares = [logged[f"test/scale_use/{s}"] for s in range(3)]
    assert sum(shares) == pytest.approx(1.0) and all(0 <= v <= 1 for v in shares)

    logged.clear()
    single = capture(AttentionClassifier(**SMALL, num_classes=3, estimator="reinforce"))  # no scale choice: nothing logged
    single.model_step((images, torch.tensor([0, 2])), "test")
    assert not [name for name in logged if "scale_use" in name]
