"""Diagnostics of q and the policy: KL(q || p) per glimpse, label use, scale histograms."""
import torch

from estimators import get_estimator
from ram_lightning.models.classifier import AttentionClassifier
from ram_lightning.diagnostics.attention import kl_proposal_prior_per_glimpse, label_use, scale_histogram
from tests.core.test_rollout import SMALL


def model_with(estimator="wake_sleep", **kwargs):
    torch.manual_seed(0)
    return AttentionClassifier(num_classes=5, **SMALL, inference_hidden=12, label_embedding_size=4,
                               estimator=get_estimator(estimator, num_samples=3), **kwargs)


def batch(size=6):
    return torch.rand(size, 1, 24, 20), torch.arange(size) % 5


def test_kl_is_zero_when_q_equals_p_and_positive_otherwise():
    model = model_with()
    images, targets = batch()
    with torch.no_grad():  # q = p: both heads state-independent with the same mean
        for head in (model.core.policy, model.inference.head):
            head.location.weight.zero_()
            head.location.bias.fill_(0.2)
    kl = kl_proposal_prior_per_glimpse(model, images, targets, 4, torch.Generator().manual_seed(0))
    assert kl.shape == (SMALL["num_glimpses"],)
    torch.testing.assert_close(kl, torch.zeros_like(kl), atol=1e-5, rtol=0)
    with torch.no_grad():
        model.inference.head.location.bias.fill_(-0.3)  # q now looks elsewhere: KL = 0.5^2 / std^2 per glimpse
    kl = kl_proposal_prior_per_glimpse(model, images, targets, 200, torch.Generator().manual_seed(0))
    expected = 2 * 0.5 ** 2 / (2 * 0.1 ** 2)
    torch.testing.assert_close(kl, torch.full_like(kl, expected), rtol=0.1, atol=0)


def test_label_use_is_exactly_zero_for_a_q_that_ignores_the_label():
    model = model_with()
    images, targets = batch(40)
    with torch.no_grad():
        model.label_embedding.weight.zero_()  # q cannot tell labels apart
    blind = label_use(model, images, targets, 3, torch.Generator().manual_seed(1))
    assert blind["gain"] == 0.0
    assert set(blind) == {"log_marginal_true", "log_marginal_shuffled", "gain"}
    with torch.no_grad():  # q reads the label: each class sends q to a different place
        model.label_embedding.weight.copy_(3 * torch.randn_like(model.label_embedding.weight))
    reading = label_use(model, images, targets, 3, torch.Generator().manual_seed(1))
    assert reading["gain"] != 0.0


def test_scale_histogram_counts_every_glimpse_and_leaves_the_global_stream_alone():
    model = model_with("reinforce", scales=[0.5, 1.0, 2.0])
    with torch.no_grad():  # the policy always picks the widest scale
        model.core.policy.scale.weight.zero_()
        model.core.policy.scale.bias.copy_(torch.tensor([-30.0, -30.0, 30.0]))
    batches = [batch(), batch(3)]
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    histogram = scale_histogram(model, batches, torch.Generator().manual_seed(0))
    assert torch.equal(torch.rand(2), expected)
    torch.testing.assert_close(histogram, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    assert scale_histogram(model_with("reinforce"), [batch()]) is None
