"""The padded bidirectional LSTM gives what a packed nn.LSTM gives, with the same weights and gradients."""
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ram_lightning.core.padded_lstm import PaddedBidirectionalLSTM, reverse_within_length


def twins(seed: int = 0):
    """(ours, nn.LSTM) built from the same seed: the same initial weights, names and order."""
    torch.manual_seed(seed)
    ours = PaddedBidirectionalLSTM(5, 3)
    torch.manual_seed(seed)
    theirs = nn.LSTM(5, 3, batch_first=True, bidirectional=True)
    return ours, theirs


def packed_encoding(lstm, inputs, lengths):
    packed = pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
    return pad_packed_sequence(lstm(packed)[0], batch_first=True, total_length=inputs.shape[1])[0]


def test_reverse_within_length_reverses_each_row_up_to_its_length():
    values = torch.arange(8.0).view(2, 4)
    assert reverse_within_length(values, torch.tensor([3, 4])).tolist() == [[2, 1, 0, 3], [7, 6, 5, 4]]


def test_same_parameters_as_nn_lstm_in_name_order_and_initial_value():
    ours, theirs = twins()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()):
        assert torch.equal(a, b)


def test_it_equals_the_packed_encoding_in_values_and_gradients():
    ours, theirs = twins()
    inputs = torch.randn(4, 6, 5, requires_grad=True)
    lengths = torch.tensor([6, 2, 4, 1])
    torch.testing.assert_close(ours(inputs, lengths), packed_encoding(theirs, inputs, lengths), rtol=1e-6, atol=1e-6)
    weights = torch.randn(4, 6, 6)
    grads = [torch.autograd.grad((encoding * weights).sum(), [inputs, *module.parameters()]) for module, encoding in
             ((ours, ours(inputs, lengths)), (theirs, packed_encoding(theirs, inputs, lengths)))]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_the_padding_never_reaches_a_valid_position():
    ours, _ = twins(1)
    inputs, lengths = torch.randn(2, 5, 5), torch.tensor([3, 5])
    garbage = inputs.clone()
    garbage[0, 3:] = 1e3
    torch.testing.assert_close(ours(inputs, lengths), ours(garbage, lengths))
