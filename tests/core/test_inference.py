"""The inference network q(a | y, I): the densities it scores, and what it may train."""
import torch

from ram_lightning.core import AttentionCore, InferenceNetwork
from tests.core.test_rollout import SMALL


def make(scales=(0.5, 1.0, 2.0)):
    torch.manual_seed(3)
    core = AttentionCore(**SMALL, scales=list(scales), location_std=0.2)
    q = InferenceNetwork(core.hidden_size, target_size=5, hidden_size=12, num_scales=core.num_scales, location_std=0.2)
    return core, q


def test_sequences_drawn_from_q_are_scored_by_q_in_the_rollout_and_afterwards_alike():
    core, q = make()
    batch, samples = 3, 4
    features = torch.randn(batch * samples, 5)
    rollout = core.rollout(torch.rand(batch, 1, 24, 20), samples, q.proposal(features), record_states=True)
    rows = batch * samples
    rescored = q.log_prob(rollout.top_states.reshape(rows, core.num_glimpses, -1), features,
                          rollout.locations.reshape(rows, -1, 2), rollout.scales.reshape(rows, -1))
    torch.testing.assert_close(rescored.view(batch, samples), rollout.log_proposal)
    assert rollout.log_proposal.shape == rollout.log_prior.shape == (batch, samples)


def test_q_depends_on_the_target():
    core, q = make()
    state = torch.randn(6, core.hidden_size)
    a, b = q(state, torch.zeros(6, 5)), q(state, torch.ones(6, 5))
    assert not torch.allclose(a.mean, b.mean)


def test_q_trains_only_its_own_parameters():
    core, q = make()
    rollout = core.rollout(torch.rand(2, 1, 24, 20), 3, q.proposal(torch.randn(6, 5, requires_grad=True)))
    rollout.log_proposal.sum().backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in core.parameters())
    assert sum(p.grad.abs().sum() for p in q.parameters() if p.grad is not None) > 0


def test_the_prior_scores_the_actions_q_chose():
    core, q = make(scales=(1.0,))  # no scale choice: location-only
    rollout = core.rollout(torch.rand(2, 1, 24, 20), 2, q.proposal(torch.randn(4, 5)))
    assert rollout.scales is None and torch.isfinite(rollout.log_prior).all()
    rollout.log_prior.sum().backward()
    assert core.policy.location.weight.grad.abs().sum() > 0
