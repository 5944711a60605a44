"""detach_policy_input: where the policy's score-function gradient stops, and that it is exact
for the parameters it still reaches (the same draws, compared with the undetached gradient)."""
import pytest
import torch

from ram_lightning.errors import UserError
from ram_lightning.models.classifier import AttentionClassifier
from tests.core.test_rollout import SMALL

# parameter groups of the model, by where they sit relative to the policy
GROUPS = {
    "policy head": lambda m: m.core.policy,
    "top LSTM": lambda m: m.core.recurrent.top,
    "context network": lambda m: m.core.context,
    "bottom LSTM": lambda m: m.core.recurrent.bottom,
    "glimpse network": lambda m: m.core.glimpse,
    "class head": lambda m: m.head,
}


def surrogate_gradients(detach, estimator="reinforce", seed=0):
    """{group: flat gradient} of one estimator surrogate, the same weights and draws for every ``detach``."""
    torch.manual_seed(0)
    model = AttentionClassifier(num_classes=5, **SMALL, scales=[1.0, 2.0], estimator=estimator,
                                detach_policy_input=detach, inference_hidden=12, label_embedding_size=4)
    images, targets = torch.rand(4, 1, 24, 20), torch.randint(0, 5, (4,))
    torch.manual_seed(seed)
    terms, _, _ = model.sample_terms(images, targets, num_samples=3, train=True)
    model.estimator(terms).loss.backward()
    return {name: torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel())
                             for p in group(model).parameters()]) for name, group in GROUPS.items()}


@pytest.mark.parametrize("estimator", ["reinforce", "wake_sleep_cv"])
def test_top_input_gives_the_exact_gradient_to_the_policy_layers_and_none_below_them(estimator):
    exact, cut = surrogate_gradients(False, estimator), surrogate_gradients("top_input", estimator)
    for name in ("policy head", "top LSTM", "context network", "class head"):
        assert cut[name].abs().sum() > 0, name
        torch.testing.assert_close(cut[name], exact[name], rtol=1e-5, atol=1e-7, msg=name)
    for name in ("bottom LSTM", "glimpse network"):  # only the classification term reaches them
        assert not torch.allclose(cut[name], exact[name], rtol=1e-3, atol=1e-6), name


def test_a_pathwise_gradient_is_truncated_by_either_cut():
    """pathwise also reaches the policy layers through later states (mu_n -> l_n -> glimpse ->
    bottom -> top -> mu_n+1), which both cuts remove: not the exact gradient, as documented."""
    exact = surrogate_gradients(False, "pathwise")
    for detach in (True, "top_input"):
        cut = surrogate_gradients(detach, "pathwise")
        torch.testing.assert_close(cut["class head"], exact["class head"], rtol=1e-5, atol=1e-7)  # the same draws
        assert not torch.allclose(cut["policy head"], exact["policy head"], rtol=1e-3, atol=1e-6), detach


def test_true_cuts_at_the_policy_input_so_the_top_lstm_and_context_get_nothing():
    exact, cut = surrogate_gradients(False), surrogate_gradients(True)
    torch.testing.assert_close(cut["policy head"], exact["policy head"], rtol=1e-5, atol=1e-7)
    assert exact["top LSTM"].abs().sum() > 0 and exact["context network"].abs().sum() > 0
    assert cut["top LSTM"].abs().sum() == 0 and cut["context network"].abs().sum() == 0


def test_the_comparison_sees_other_draws():
    """Negative control: another seed's draws give another policy gradient, so the equalities above are not vacuous."""
    first, other = surrogate_gradients("top_input", seed=0), surrogate_gradients("top_input", seed=1)
    assert not torch.allclose(first["top LSTM"], other["top LSTM"], rtol=1e-3, atol=1e-6)


def test_an_unknown_detach_point_is_one_clear_error():
    with pytest.raises(UserError, match="detach_policy_input must be false, true or top_input, got 'bottom'"):
        AttentionClassifier(num_classes=5, **SMALL, detach_policy_input="bottom")
