"""Local (chunked) self-attention and plain full self-attention.

Local attention splits the sequence into chunks of ``local_chunk_length`` and lets each chunk attend
to itself and its ``local_num_chunks_before`` earlier and ``local_num_chunks_after`` later chunks.
The first chunk has nothing before it and the last nothing after it: the window never wraps around,
so padding at the end of a sequence never reaches its first tokens. ``config.chunk_window_wraps``
makes the window cyclic, as in transformers' Reformer, for converted checkpoints.

Full attention is the same computation with a single chunk covering the whole sequence, which
makes it the plain O(n^2) baseline that the Reformer paper compares against.

Shape legend: b batch, h heads, n length, d head size, c chunks, w chunk length, k keys per window.
"""

import torch
from torch import nn

from .chunking import MASK_VALUE, attend, look_adjacent, split_into_chunks
from .configuration import ReformerConfig


class LocalSelfAttention(nn.Module):
    """Multi-head chunked self-attention with separate query, key and value projections."""

    def __init__(self, config: ReformerConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.head_size = config.attention_head_size
        self.chunk_length = config.local_chunk_length
        self.num_chunks_before = config.local_num_chunks_before
        self.num_chunks_after = config.local_num_chunks_after
        self.is_decoder = config.is_decoder
        self.wraps = config.chunk_window_wraps
        self.transformers_rounding = config.lsh_transformers_rounding

        all_head_size = self.num_heads * self.head_size
        self.query = nn.Linear(config.hidden_size, all_head_size, bias=False)
        self.key = nn.Linear(config.hidden_size, all_head_size, bias=False)
        self.value = nn.Linear(config.hidden_size, all_head_size, bias=False)
        self.dropout = nn.Dropout(config.attention_dropout("local"))

    def window(self, length: int) -> tuple[int, int, int]:
        """Return chunk length, chunks before and chunks after for a sequence of ``length``."""
        return self.chunk_length, self.num_chunks_before, self.num_chunks_after

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_padding_mask: torch.Tensor,
        num_hashes: int | None = None,
        buckets: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, None]:
        """Attend within chunk windows.

        Args:
            hidden_states: ``[b, n, hidden_size]`` with ``n`` a multiple of the chunk length.
            key_padding_mask: ``[b, n]``, true at real tokens.
            num_hashes, buckets: Ignored. They keep the signature of ``LSHSelfAttention``.

        Returns:
            Outputs ``[b, n, h * d]`` and ``None`` in place of buckets.
        """
        b, n, _ = hidden_states.shape
        h, d = self.num_heads, self.head_size
        w, before, after = self.window(n)

        def project(linear: nn.Linear) -> torch.Tensor:
            heads = linear(hidden_states).view(b, n, h, d).transpose(1, 2)  # [b, h, n, d]
            return split_into_chunks(heads, w, dim=2)  # [b, h, c, w, d]

        # A single chunk attends to itself only, also when windows wrap around.
        wrap = self.wraps and n > w
        query = project(self.query) * d**-0.5
        keys = look_adjacent(project(self.key), before, after, 2, 0.0, wrap)  # [b, h, c, k, d]
        values = look_adjacent(project(self.value), before, after, 2, 0.0, wrap)

        positions = torch.arange(n, device=hidden_states.device)
        query_positions = split_into_chunks(positions, w, dim=0)  # [c, w]
        key_positions = look_adjacent(query_positions, before, after, 0, -1, wrap)  # [c, k]
        key_valid = look_adjacent(split_into_chunks(key_padding_mask, w, dim=1), before, after, 1, False, wrap)

        allowed = key_valid[:, None, :, None, :]  # [b, 1, c, 1, k]
        if self.is_decoder:
            allowed = allowed & (key_positions[:, None, :] <= query_positions[:, :, None])  # [b, 1, c, w, k]
        logit_bias = torch.zeros(allowed.shape, dtype=torch.float32, device=hidden_states.device)
        logit_bias = logit_bias.masked_fill(~allowed, MASK_VALUE)

        outputs, _ = attend(
            query, keys, values, logit_bias, self.dropout, replace_masked=self.transformers_rounding,
            need_logsumexp=False,
        )  # [b, h, c, w, d]
        return outputs.reshape(b, h, n, d).transpose(1, 2).reshape(b, n, h * d), None


class FullSelfAttention(LocalSelfAttention):
    """Plain multi-head self-attention over the whole sequence: one chunk, no neighbours."""

    def window(self, length: int) -> tuple[int, int, int]:
        return length, 0, 0
