"""Position-wise feed-forward layer, computed a chunk of positions at a time.

The feed-forward layer treats every position on its own, so it can run over the sequence in slices
of ``feed_forward_chunk_size`` positions. Only one slice's ``feed_forward_size``-wide intermediate
activations exist at once, in the forward pass and in the reversible backward recomputation, which
calls ``forward_chunk`` on the same slices in the same order.
"""

import torch
from torch import nn

from .configuration import ReformerConfig

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "gelu_tanh": lambda: nn.GELU(approximate="tanh"),
    "silu": nn.SiLU,
}


class ChunkedFeedForward(nn.Module):
    """Layer norm, dense, activation, dropout, dense and dropout, over slices of the sequence."""

    def __init__(self, config: ReformerConfig):
        super().__init__()
        self.chunk_size = config.feed_forward_chunk_size
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dense = nn.Linear(config.hidden_size, config.feed_forward_size)
        self.activation = _ACTIVATIONS[config.hidden_act]()
        self.output = nn.Linear(config.feed_forward_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def chunk_slices(self, length: int) -> list[slice]:
        """Slices of the sequence dim processed one at a time; one slice when chunking is off."""
        if self.chunk_size == 0 or self.chunk_size >= length:
            return [slice(0, length)]
        return [slice(start, min(start + self.chunk_size, length)) for start in range(0, length, self.chunk_size)]

    def forward_chunk(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Apply the layer to ``[b, m, hidden_size]`` positions."""
        hidden_states = self.activation(self.dense(self.layer_norm(hidden_states)))
        hidden_states = self.output(self.dropout(hidden_states))
        return self.dropout(hidden_states)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        slices = self.chunk_slices(hidden_states.shape[1])
        return torch.cat([self.forward_chunk(hidden_states[:, part]) for part in slices], dim=1)
