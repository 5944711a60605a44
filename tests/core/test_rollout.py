"""The attention core: log-probabilities of the used actions, shapes, bad input."""
import pytest
import torch
from torch.distributions import Categorical, Normal

from ram_lightning.core import AttentionCore, AttentionDistribution
from ram_lightning.errors import UserError

SMALL = dict(image_shape=(1, 24, 20), glimpse_size=4, num_patches=2, num_glimpses=3, hidden_size=16,
             glimpse_hidden=8, glimpse_features=16, context_size=6)


def test_log_prior_scores_exactly_the_locations_the_sensor_used():
    torch.manual_seed(1)
    core = AttentionCore(**SMALL, scales=[0.5, 1.0, 2.0], location_std=0.3)
    with torch.no_grad():  # a state-independent policy, so the density is easy to recompute
        core.policy.location.weight.zero_()
        core.policy.location.bias.copy_(torch.tensor([0.4, -0.2]))
        core.policy.scale.weight.zero_()
        core.policy.scale.bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
    seen = []
    original = core.sensor.extract
    def extract(pyramid, size, locations, scales=None):
        seen.append((locations, scales))
        return original(pyramid, size, locations, scales)

    core.sensor.extract = extract
    images = torch.rand(4, 1, 24, 20)
    rollout = core.rollout(images, num_samples=3)
    used = torch.stack([loc for loc, _ in seen], dim=2)  # [B, K, N, 2]
    torch.testing.assert_close(used, rollout.locations)
    used_scales = torch.stack([s for _, s in seen], dim=2)  # [B, K, N] width factors
    torch.testing.assert_close(used_scales, core.scale_values[rollout.scales])
    location_density = Normal(torch.tanh(torch.tensor([0.4, -0.2])), 0.3).log_prob(rollout.locations).sum((-1, -2))
    scale_density = Categorical(logits=torch.tensor([0.0, 1.0, -1.0])).log_prob(rollout.scales).sum(-1)
    torch.testing.assert_close(rollout.log_prior, location_density + scale_density)


def test_epsilon_uniform_scales_are_the_distribution_scored_in_training_only():
    core = AttentionCore(**SMALL, scales=[1.0, 2.0], scale_epsilon=0.5)
    with torch.no_grad():
        core.policy.scale.weight.zero_()
        core.policy.scale.bias.copy_(torch.tensor([20.0, -20.0]))  # the policy alone picks scale 0
    core.train()
    rollout = core.rollout(torch.rand(64, 1, 24, 20), num_samples=4)
    assert (rollout.scales == 1).float().mean() > 0.15  # mixture: 25% scale 1
    core.eval()
    assert (core.rollout(torch.rand(64, 1, 24, 20), num_samples=4).scales == 1).sum() == 0


def test_rollout_shapes_fold_samples_into_the_batch():
    core = AttentionCore(**SMALL, learn_std=True)
    rollout = core.rollout(torch.rand(5, 1, 24, 20), num_samples=7)
    assert rollout.hidden.shape == (5, 7, 16)
    assert rollout.log_prior.shape == rollout.entropy.shape == (5, 7)
    assert rollout.locations.shape == (5, 7, 3, 2)
    assert rollout.scales is None and rollout.log_proposal is None
    assert rollout.context.shape == (5, 16)


def test_samples_of_one_image_follow_the_same_policy_and_differ():
    core = AttentionCore(**SMALL)
    rollout = core.rollout(torch.rand(2, 1, 24, 20), num_samples=5)
    assert not torch.allclose(rollout.locations[0, 0], rollout.locations[0, 1])


def test_proposal_samples_are_scored_by_both_densities():
    torch.manual_seed(3)
    core = AttentionCore(**SMALL)
    proposal_head = torch.nn.Linear(16, 2)
    def proposal(hidden, step):
        return AttentionDistribution(torch.tanh(proposal_head(hidden)), torch.full((hidden.shape[0], 2), 0.2))

    rollout = core.rollout(torch.rand(3, 1, 24, 20), num_samples=2, proposal=proposal)
    assert rollout.log_proposal.shape == (3, 2)
    assert not torch.allclose(rollout.log_proposal, rollout.log_prior)


@pytest.mark.parametrize("shape", [(2, 1, 24, 21), (2, 3, 24, 20), (24, 20)])
def test_wrong_image_shape_is_a_clear_error(shape):
    core = AttentionCore(**SMALL)
    with pytest.raises(UserError, match=r"expected images of shape \[B, 1, 24, 20\]"):
        core.rollout(torch.rand(*shape))


def test_reparameterised_draws_are_the_same_draws_with_the_locations_gradient():
    torch.manual_seed(4)
    core = AttentionCore(**SMALL, scales=[0.5, 1.0], learn_std=True)
    images = torch.rand(3, 1, 24, 20)
    plain = core.rollout(images, 2, generator=torch.Generator().manual_seed(9))
    pathwise = core.rollout(images, 2, generator=torch.Generator().manual_seed(9), reparameterize=True)
    torch.testing.assert_close(pathwise.locations, plain.locations)
    assert torch.equal(pathwise.scales, plain.scales)
    torch.testing.assert_close(pathwise.log_prior, plain.log_prior)  # the same value ...
    assert not plain.locations.requires_grad and pathwise.locations.requires_grad
    # ... but its gradient is the scales' score alone (which reaches the location head through the
    # states that earlier locations led to), and without scales there is none
    (scale_grad,) = torch.autograd.grad(pathwise.log_prior.sum(), core.policy.scale.weight)
    assert scale_grad.abs().sum() > 0
    no_scales = AttentionCore(**SMALL, learn_std=True)
    assert not no_scales.rollout(images, 2, reparameterize=True).log_prior.requires_grad
    assert no_scales.rollout(images, 2).log_prior.requires_grad
    location_head = core.policy.location
    # the locations carry the gradient to the policy head and to the layers before it
    (mean_grad, lstm_grad) = torch.autograd.grad(pathwise.hidden.sum(), [location_head.weight, core.recurrent.top.weight_hh])
    assert mean_grad.abs().sum() > 0 and lstm_grad.abs().sum() > 0


def test_an_unclamped_location_outside_the_image_keeps_its_gradient():
    """The policy never clamps, so a reparameterised location beyond [-1, 1] still has a gradient."""
    distribution = AttentionDistribution(torch.tensor([[0.95, -0.9]], requires_grad=True), torch.full((1, 2), 0.5))
    action = distribution.rsample(torch.Generator().manual_seed(1))
    assert action.reparameterized and action.location.abs().max() > 1
    (grad,) = torch.autograd.grad(action.location.sum(), distribution.mean)
    torch.testing.assert_close(grad, torch.ones(1, 2))
