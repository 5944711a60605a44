"""bf16 autocast: products in bf16, every density and term the estimators see in fp32."""
import pytest
import torch
from torch import nn

from estimators import available_estimators, get_estimator
from ram_lightning.models.captioner import SPECIAL_TOKENS, AttentionCaptioner
from ram_lightning.models.classifier import AttentionClassifier
from ram_lightning.core import AttentionAction, AttentionCore
from ram_lightning.core import precision
from ram_lightning.core.caption_inference import CaptionInferenceNetwork
from ram_lightning.core.precision import Float32Linear, float32, full_precision

BF16 = dict(device_type="cpu", dtype=torch.bfloat16)
# Terms of bf16 and fp32 runs on the same draws agree to this (nats), row by row, wherever the
# two runs made the same discrete (scale) choices: the bf16 features move the location means by
# ~1e-3, which moves a Gaussian log-density of std 0.1 by a few 0.01 (measured max 0.03).
TERMS_TOLERANCE = 0.1


def test_float32_linear_computes_in_fp32_under_autocast_and_keeps_linear_keys():
    torch.manual_seed(0)
    layer, plain = Float32Linear(8, 3), nn.Linear(8, 3)
    assert layer.state_dict().keys() == plain.state_dict().keys()
    x = torch.randn(5, 8).to(torch.bfloat16)
    with torch.autocast(**BF16):
        out, rounded = layer(x), plain(x.float())
    assert out.dtype == torch.float32 and rounded.dtype == torch.bfloat16
    torch.testing.assert_close(out, torch.nn.functional.linear(x.float(), layer.weight, layer.bias))
    assert layer.double()(torch.randn(2, 8, dtype=torch.float64)).dtype == torch.float64  # an fp64 model stays fp64


def test_float32_and_full_precision_helpers():
    assert float32(torch.ones(2, dtype=torch.bfloat16)).dtype == torch.float32
    assert float32(torch.ones(2, dtype=torch.float64)).dtype == torch.float64
    assert float32(torch.ones(2, dtype=torch.long)).dtype == torch.long
    with torch.autocast(**BF16):
        with full_precision("cpu"):
            assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.float32
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16


def _bf16_lstm_runs() -> bool:
    lstm = nn.LSTM(4, 3, batch_first=True, bidirectional=True)  # the caption encoder's kind of LSTM
    try:
        with torch.autocast(**BF16):
            lstm(torch.randn(2, 5, 4))
    except RuntimeError:
        return False
    return True


def test_the_bf16_lstm_probe_says_what_this_cpu_does():
    assert precision.cpu_has_bf16_lstm() == _bf16_lstm_runs()


@pytest.mark.parametrize("has_bf16_lstm", [True, False])
def test_the_caption_encoder_runs_under_autocast_on_every_cpu(has_bf16_lstm, monkeypatch):
    """Where the CPU's LSTM kernel has a bf16 path, the encoder computes in bf16 (its output differs
    from the fp32 encoding by bf16 rounding; a packed sequence comes back as fp32 data, so the dtype
    does not tell); where it has none, autocast is off for the LSTM: exactly the fp32 encoding."""
    if has_bf16_lstm and not precision.cpu_has_bf16_lstm():
        pytest.skip("this CPU's LSTM kernel has no bf16 path (x86 without AVX-512); the fp32 case runs")
    monkeypatch.setattr(precision, "cpu_has_bf16_lstm", lambda: has_bf16_lstm)
    torch.manual_seed(0)
    q = CaptionInferenceNetwork(12, 6, 7, embedding_size=5, encoder_size=4, attention_size=4)
    captions, lengths = torch.tensor([[1, 5, 6, 2], [1, 7, 2, 0]]), torch.tensor([4, 3])
    with torch.autocast(**BF16):
        encoded = q.encode(captions, lengths)
    exact = q.encode(captions, lengths)
    assert encoded.dtype in (torch.float32, torch.bfloat16) and torch.isfinite(encoded).all()
    difference = (encoded.float() - exact).abs().max().item()
    if has_bf16_lstm:  # bf16 products: off by bf16 rounding (~1e-3), not more
        assert 0 < difference < 2e-2, difference
    else:  # autocast off for the LSTM: exactly the fp32 encoding
        assert encoded.dtype == torch.float32 and difference == 0


def test_rollout_densities_under_autocast_are_the_fp32_densities_of_the_states_it_used():
    """The policy reads bf16 LSTM states but scores in fp32: recomputing log p from the recorded
    states in fp32 gives the rollout's values to fp32 rounding (a bf16 density would be off by ~0.01)."""
    torch.manual_seed(0)
    core = AttentionCore(image_shape=(1, 24, 24), glimpse_size=4, num_patches=2, num_glimpses=3, scales=[1.0, 2.0],
                         hidden_size=16, glimpse_hidden=8, glimpse_features=16, context_size=6)
    with torch.autocast(**BF16):
        rollout = core.rollout(torch.rand(4, 1, 24, 24), num_samples=2, record_states=True,
                               generator=torch.Generator().manual_seed(1))
    assert rollout.log_prior.dtype == rollout.entropy.dtype == torch.float32
    rows = 4 * 2
    states = rollout.top_states.reshape(rows * 3, -1)
    assert states.dtype == torch.bfloat16  # the recurrent layers did run in bf16
    action = AttentionAction(rollout.locations.reshape(rows * 3, 2), rollout.scales.reshape(rows * 3))
    again = core.policy(states.float()).log_prob(action).view(4, 2, 3)
    torch.testing.assert_close(rollout.glimpse_log_prior, again, rtol=0, atol=1e-5)
    torch.testing.assert_close(rollout.log_prior, again.sum(-1), rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", sorted(available_estimators()))
def test_classifier_terms_from_bf16_and_fp32_runs_on_the_same_draws_agree(name):
    torch.manual_seed(0)
    model = AttentionClassifier(image_shape=(1, 24, 24), glimpse_size=4, num_patches=2, num_glimpses=3, scales=[1.0, 2.0],
                                hidden_size=32, glimpse_hidden=16, glimpse_features=32, context_size=6,
                                estimator=get_estimator(name, num_samples=3))
    model.train()
    images, labels = torch.rand(16, 1, 24, 24), torch.randint(0, 10, (16,))
    runs = {}
    for bf16 in (False, True):
        with torch.autocast(**BF16, enabled=bf16):
            terms, _, rollout = model.sample_terms(images, labels, 3, train=True, generator=torch.Generator().manual_seed(2))
            output = model.run_estimator(terms)
        runs[bf16] = (terms, rollout, output)
    (fp32_terms, fp32_rollout, fp32_out), (bf16_terms, bf16_rollout, bf16_out) = runs[False], runs[True]
    assert bf16_out.loss.dtype == torch.float32 and torch.isfinite(bf16_out.loss)
    assert abs(float(bf16_out.loss) - float(fp32_out.loss)) < TERMS_TOLERANCE
    same = (fp32_rollout.scales == bf16_rollout.scales).all(-1)  # [B, K] rows with the same scale choices
    assert same.float().mean() > 0.9
    for field, value in bf16_terms.named_tensors().items():
        assert value.dtype == torch.float32, field
        reference = getattr(fp32_terms, field)
        if value.shape == same.shape:
            value, reference = value[same], reference[same]
        assert (value - reference).abs().max() < TERMS_TOLERANCE, field


@pytest.mark.parametrize("name", ["reinforce", "wake_sleep_cv", "vimco"])
def test_captioner_terms_are_fp32_under_autocast(name):
    vocabulary = list(SPECIAL_TOKENS) + ["a", "red", "circle"]
    torch.manual_seed(0)
    model = AttentionCaptioner(vocabulary=vocabulary, image_shape=(3, 16, 16), encoder_channels=(4, 8), embedding_size=6,
                               hidden_size=8, attention_size=5, inference_embedding=4, inference_hidden=4, max_length=5,
                               estimator=get_estimator(name, num_samples=2))
    captions = torch.tensor([[1, 4, 5, 6, 2], [1, 4, 2, 0, 0]])
    batch = {"images": torch.rand(2, 3, 16, 16), "captions": captions, "lengths": (captions != 0).sum(1)}
    with torch.autocast(**BF16):
        terms = model.sample_terms(batch, 2, train=True)
        loss = model.run_estimator(terms).loss
    assert all(value.dtype == torch.float32 for value in terms.named_tensors().values())
    loss.backward()
    assert torch.isfinite(loss) and model.decoder.attention.score.weight.grad.abs().sum() > 0
