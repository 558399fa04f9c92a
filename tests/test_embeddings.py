"""Axial and learned position embeddings, and the token-plus-position embedding layer."""

import math

import pytest
import torch

from reformer_hf.embeddings import AxialPositionEmbeddings, LearnedPositionEmbeddings, ReformerEmbeddings
from reformer_hf.modeling import ReformerModel


def mixed_radix_digits(position: int, shape: list[int]) -> list[int]:
    """Digits of ``position`` in the mixed radix ``shape``, most significant axis first."""
    digits = []
    for axis_length in reversed(shape):
        position, digit = divmod(position, axis_length)
        digits.append(digit)
    return digits[::-1]


def randomise(module: torch.nn.Module) -> None:
    for parameter in module.parameters():
        torch.nn.init.normal_(parameter)


@pytest.mark.parametrize("shape, dims", [([8, 8], [16, 16]), ([2, 4, 8], [4, 12, 16])])
def test_axial_concatenates_axis_rows(tiny_config, shape, dims):
    config = tiny_config(axial_pos_shape=shape, axial_pos_embds_dim=dims)
    embeddings = AxialPositionEmbeddings(config)
    randomise(embeddings)
    position_ids = torch.arange(math.prod(shape)).unsqueeze(0)

    actual = embeddings(position_ids)

    for position in range(math.prod(shape)):
        digits = mixed_radix_digits(position, shape)
        expected = torch.cat([embeddings.weights[axis][digit] for axis, digit in enumerate(digits)])
        assert torch.equal(actual[0, position], expected), f"position {position}"


def test_axial_shape_and_batch(tiny_config):
    embeddings = AxialPositionEmbeddings(tiny_config())
    randomise(embeddings)
    position_ids = torch.tensor([[0, 9, 63], [5, 5, 1]])

    actual = embeddings(position_ids)

    assert actual.shape == (2, 3, 32)
    assert torch.equal(actual[1, 0], actual[1, 1])
    assert torch.equal(actual[0, 1], embeddings(torch.tensor([[9]]))[0, 0])


def test_axial_positions_distinct(tiny_config):
    embeddings = AxialPositionEmbeddings(tiny_config())
    randomise(embeddings)
    table = embeddings(torch.arange(64).unsqueeze(0))[0]
    assert torch.unique(table, dim=0).shape[0] == 64


def test_axial_parameter_count(tiny_config):
    embeddings = AxialPositionEmbeddings(tiny_config())
    assert sum(parameter.numel() for parameter in embeddings.parameters()) == 8 * 16 + 8 * 16


def test_learned_rows(tiny_config):
    config = tiny_config(position_embedding_type="learned", max_position_embeddings=20)
    embeddings = LearnedPositionEmbeddings(config)
    position_ids = torch.tensor([[3, 0, 19]])
    assert torch.equal(embeddings(position_ids)[0], embeddings.embedding.weight[[3, 0, 19]])


@pytest.mark.parametrize("position_type", ["axial", "learned"])
def test_sum_of_token_and_position(tiny_config, position_type):
    max_positions = None if position_type == "axial" else 64
    config = tiny_config(position_embedding_type=position_type, max_position_embeddings=max_positions)
    embeddings = ReformerEmbeddings(config).eval()
    randomise(embeddings)
    input_ids = torch.tensor([[4, 7, 7, 31]])
    position_ids = torch.tensor([[0, 1, 2, 40]])

    actual = embeddings(position_ids, input_ids=input_ids)

    expected = embeddings.word_embeddings.weight[input_ids] + embeddings.position_embeddings(position_ids)
    assert torch.equal(actual, expected)


def test_inputs_embeds_match_ids(tiny_config):
    embeddings = ReformerEmbeddings(tiny_config()).eval()
    input_ids = torch.tensor([[4, 7, 9]])
    position_ids = torch.arange(3).unsqueeze(0)
    inputs_embeds = embeddings.word_embeddings(input_ids)
    assert torch.equal(
        embeddings(position_ids, inputs_embeds=inputs_embeds), embeddings(position_ids, input_ids=input_ids)
    )


def test_dropout_applied_in_training(tiny_config):
    embeddings = ReformerEmbeddings(tiny_config(hidden_dropout_prob=0.5)).train()
    outputs = embeddings(torch.arange(16).unsqueeze(0), input_ids=torch.full((1, 16), 5))
    assert bool((outputs == 0).any())


def test_axial_weights_initialised(tiny_config):
    # torch.empty leaves whatever the memory held, so only _init_weights makes these normal(0, 0.02).
    config = tiny_config(axial_pos_shape=(16, 16), axial_pos_embds_dim=(16, 16), initializer_range=0.02)
    model = ReformerModel(config)
    for weight in model.embeddings.position_embeddings.weights:
        assert bool(torch.isfinite(weight).all())
        assert 0.015 < weight.std().item() < 0.025
