"""The learned-std read-out: a fixed std reads back exactly, a learned one starts at its initial
value and follows the head's weights (the negative control: it is not a constant)."""
import pytest
import torch

from benchmarks.lab.learned_std import policy_std
from estimators import Reinforce
from ram_lightning.models.classifier import AttentionClassifier
from tests.core.test_rollout import SMALL


def model(**options):
    torch.manual_seed(0)
    return AttentionClassifier(**SMALL, num_classes=3, scales=[0.5, 1.0], estimator=Reinforce(num_samples=1), **options).eval()


def images():
    torch.manual_seed(1)
    return [torch.rand(5, 1, 24, 20), torch.rand(3, 1, 24, 20)]


def test_a_fixed_std_reads_back_exactly():
    found = policy_std(model(location_std=0.17), images())
    assert found == pytest.approx({"mean": 0.17, "min": 0.17, "max": 0.17})


def test_a_learned_std_starts_at_its_initial_value_and_follows_the_heads_weights():
    learned = model(location_std=0.2, learn_std=True)
    assert policy_std(learned, images()) == pytest.approx({"mean": 0.2, "min": 0.2, "max": 0.2}, abs=1e-6)
    with torch.no_grad():  # std channels that read the features: the std now varies glimpse by glimpse
        learned.core.policy.location.weight[2:].normal_(0, 1.0)
    moved = policy_std(learned, images())
    assert moved["max"] - moved["min"] > 0.01
    assert moved["mean"] != pytest.approx(0.2, abs=1e-3)
    assert moved["min"] >= learned.core.policy.min_std


def test_every_glimpse_of_every_batch_is_read():
    seen = []
    learned = model(location_std=0.2, learn_std=True)
    learned.core.policy.register_forward_hook(lambda m, i, out: seen.append(out.std.shape[0]))
    policy_std(learned, images())
    assert seen == [5] * SMALL["num_glimpses"] + [3] * SMALL["num_glimpses"]  # one location per glimpse, per image
