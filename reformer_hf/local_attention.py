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

from .chunking import MASK_VALUE, attend, attend_in_groups, look_adjacent, split_into_chunks
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
        self.group_length = config.attention_group_length

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

        query = project(self.query) * d**-0.5
        keys, values = project(self.key), project(self.value)
        positions = split_into_chunks(torch.arange(n, device=hidden_states.device), w, dim=0)  # [c, w]
        valid = split_into_chunks(key_padding_mask, w, dim=1)  # [b, c, w]
        # A single chunk attends to itself only, also when windows wrap around. Wrapped windows are
        # built here for the whole sequence; the others per group of chunks in attend_in_groups.
        wrap = self.wraps and n > w
        if wrap:
            keys = look_adjacent(keys, before, after, 2, 0.0, wrap=True)  # [b, h, c, k, d]
            values = look_adjacent(values, before, after, 2, 0.0, wrap=True)
            key_positions = look_adjacent(positions, before, after, 0, -1, wrap=True)  # [c, k]
            valid = look_adjacent(valid, before, after, 1, False, wrap=True)  # [b, c, k]
        else:
            key_positions = positions

        def attend_chunks(window, query, keys, values, query_positions, key_positions, key_valid):
            keys = window(keys, 0.0, 2)  # [b, h, g, k, d]
            values = window(values, 0.0, 2)
            key_positions = window(key_positions, -1, 0)  # [g, k]
            allowed = window(key_valid, False, 1)[:, None, :, None, :]  # [b, 1, g, 1, k]
            if self.is_decoder:
                allowed = allowed & (key_positions[:, None, :] <= query_positions[:, :, None])  # [b, 1, g, w, k]
            logit_bias = torch.zeros(allowed.shape, dtype=torch.float32, device=query.device)
            logit_bias = logit_bias.masked_fill(~allowed, MASK_VALUE)
            return attend(
                query, keys, values, logit_bias, self.dropout, replace_masked=self.transformers_rounding,
                need_logsumexp=False,
            )

        windowed = not wrap
        outputs, _ = attend_in_groups(
            attend_chunks,
            [(query, 2, False), (keys, 2, windowed), (values, 2, windowed), (positions, 0, False),
             (key_positions, 0, windowed), (valid, 1, windowed)],
            output_chunk_dim=2,
            group_chunks=max(1, self.group_length // w) if self.group_length else 0,
            num_before=0 if wrap else before,
            num_after=0 if wrap else after,
        )  # [b, h, c, w, d]
        return outputs.reshape(b, h, n, d).transpose(1, 2).reshape(b, n, h * d), None


class FullSelfAttention(LocalSelfAttention):
    """Plain multi-head self-attention over the whole sequence: one chunk, no neighbours."""

    def window(self, length: int) -> tuple[int, int, int]:
        return length, 0, 0
