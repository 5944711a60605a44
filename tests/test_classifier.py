"""AttentionClassifier: gradient paths, configurable shapes, bad labels, every estimator."""
import pytest
import torch

from estimators import available_estimators, get_estimator
from ram_lightning.classifier import AttentionClassifier
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
