"""Token and position embeddings.

Axial position embeddings factorise the position capacity ``N = n_1 * ... * n_k`` into axes and learn
one small table per axis: position ``p`` concatenates, for each axis, the row of that axis' table at
the mixed-radix digit of ``p``. For 16,384 positions and width 256 this needs ``128 * 64 + 128 * 192``
weights instead of ``16384 * 256``. Positions are looked up by id, so any length up to ``N`` trains
and evaluates, not only the full product.
"""

import math

import torch
from torch import nn

from .configuration import ReformerConfig


def axial_strides(axial_pos_shape: list[int]) -> torch.Tensor:
    """Place value of each axis in a position id, for example [128, 1] for the shape [128, 128]."""
    strides = [math.prod(axial_pos_shape[axis + 1 :]) for axis in range(len(axial_pos_shape))]
    return torch.tensor(strides, dtype=torch.long)


class AxialPositionEmbeddings(nn.Module):
    """Position embeddings factorised over the axes of ``config.axial_pos_shape``."""

    def __init__(self, config: ReformerConfig):
        super().__init__()
        self.axial_pos_shape = list(config.axial_pos_shape)
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(axis_length, width))
            for axis_length, width in zip(config.axial_pos_shape, config.axial_pos_embds_dim)
        )
        # Not saved with the weights, so ReformerPreTrainedModel._init_weights sets it again after loading.
        # The buffer also keeps initialize_weights (transformers 5.25) from skipping this module: for custom
        # code it passes over modules without an uninitialised parameter or buffer of their own.
        self.register_buffer("strides", axial_strides(self.axial_pos_shape), persistent=False)

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        """Embed ``position_ids`` ``[b, n]`` into ``[b, n, hidden_size]``."""
        lengths = torch.tensor(self.axial_pos_shape, device=position_ids.device)
        digits = (position_ids.unsqueeze(-1) // self.strides) % lengths  # [b, n, axes]
        parts = [weight[digits[..., axis]] for axis, weight in enumerate(self.weights)]
        return torch.cat(parts, dim=-1)


class LearnedPositionEmbeddings(nn.Module):
    """One learned vector per position."""

    def __init__(self, config: ReformerConfig):
        super().__init__()
        self.embedding = nn.Embedding(config.max_position_embeddings, config.hidden_size)

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        return self.embedding(position_ids)


class ReformerEmbeddings(nn.Module):
    """Token embeddings plus position embeddings, followed by dropout."""

    def __init__(self, config: ReformerConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        if config.position_embedding_type == "axial":
            self.position_embeddings = AxialPositionEmbeddings(config)
        else:
            self.position_embeddings = LearnedPositionEmbeddings(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self, position_ids: torch.Tensor, input_ids: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None
    ) -> torch.Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        hidden_states = inputs_embeds + self.position_embeddings(position_ids).to(inputs_embeds.dtype)
        return self.dropout(hidden_states)
