"""Chunked feed-forward: equal to the unchunked layer and to a plain torch reference."""

import pytest
import torch

from reformer_hf.feed_forward import ChunkedFeedForward


def reference_feed_forward(layer: ChunkedFeedForward, hidden_states: torch.Tensor, activation) -> torch.Tensor:
    normed = torch.nn.functional.layer_norm(
        hidden_states, (hidden_states.shape[-1],), layer.layer_norm.weight, layer.layer_norm.bias, layer.layer_norm.eps
    )
    inner = activation(normed @ layer.dense.weight.T + layer.dense.bias)
    return inner @ layer.output.weight.T + layer.output.bias


@pytest.mark.parametrize(
    "hidden_act, activation",
    [
        ("relu", torch.relu),
        ("gelu", torch.nn.functional.gelu),
        ("gelu_tanh", lambda x: torch.nn.functional.gelu(x, approximate="tanh")),
        ("silu", torch.nn.functional.silu),
    ],
)
def test_matches_reference(tiny_config, hidden_act, activation):
    layer = ChunkedFeedForward(tiny_config(hidden_act=hidden_act)).eval()
    hidden_states = torch.randn(2, 7, 32)
    torch.testing.assert_close(layer(hidden_states), reference_feed_forward(layer, hidden_states, activation))


@pytest.mark.parametrize("length", [12, 13])
@pytest.mark.parametrize("chunk_size", [1, 3, 4, 5, 12, 20])
def test_chunked_equals_unchunked(tiny_config, length, chunk_size):
    unchunked = ChunkedFeedForward(tiny_config(feed_forward_chunk_size=0)).eval()
    chunked = ChunkedFeedForward(tiny_config(feed_forward_chunk_size=chunk_size)).eval()
    chunked.load_state_dict(unchunked.state_dict())
    hidden_states = torch.randn(2, length, 32)
    unchunked_inputs = hidden_states.clone().requires_grad_(True)
    chunked_inputs = hidden_states.clone().requires_grad_(True)
    output_grad = torch.randn(2, length, 32)

    unchunked_outputs = unchunked(unchunked_inputs)
    chunked_outputs = chunked(chunked_inputs)
    unchunked_outputs.backward(output_grad)
    chunked_outputs.backward(output_grad)

    torch.testing.assert_close(chunked_outputs, unchunked_outputs, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(chunked_inputs.grad, unchunked_inputs.grad, rtol=1e-6, atol=1e-6)
    for (name, chunked_param), unchunked_param in zip(chunked.named_parameters(), unchunked.parameters()):
        torch.testing.assert_close(chunked_param.grad, unchunked_param.grad, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize(
    "chunk_size, length, expected",
    [(0, 10, [(0, 10)]), (4, 10, [(0, 4), (4, 8), (8, 10)]), (5, 10, [(0, 5), (5, 10)]), (16, 10, [(0, 10)])],
)
def test_chunk_slices(tiny_config, chunk_size, length, expected):
    layer = ChunkedFeedForward(tiny_config(feed_forward_chunk_size=chunk_size))
    assert [(part.start, part.stop) for part in layer.chunk_slices(length)] == expected


def test_dropout_in_training(tiny_config):
    layer = ChunkedFeedForward(tiny_config(hidden_dropout_prob=0.5))
    hidden_states = torch.randn(2, 8, 32)
    assert not torch.allclose(layer.train()(hidden_states), layer.eval()(hidden_states))
